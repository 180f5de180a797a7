//! The owned jobs' watches: handles, replay, detaching, cancelling, and who may.

use super::*;
use crate::core::Needs;
use crate::id::ContentId;
use crate::job::run::{Captured, Ended as RunEnded, RunJob, RunOutput};
use crate::job::{Algo, PrimesJob, Split, Target};
use crate::node::api::report::{JobResults, NodeInfo, PrimesResult};
use std::time::Duration;

fn spec() -> Arc<JobSpec> {
    Arc::new(JobSpec::Primes(
        PrimesJob::new(Target::Each { first: 10, last: 11 }, Algo::Trial, Split::Auto { workers: 1 }).unwrap(),
    ))
}

fn run_spec(tasks: u64) -> Arc<JobSpec> {
    Arc::new(JobSpec::Run(Box::new(RunJob {
        command: vec!["true".into()],
        tasks,
        inputs: ContentId::of(b"tasks"),
        files: None,
        returns: Vec::new(),
        timeout: None,
        memory_mb: None,
        retries: 1,
        halt: None,
        needs: Needs::native(Vec::new()),
    })))
}

fn ok(task: u64, sum: u128) -> TaskReport<TaskOutput> {
    TaskReport { task, outcome: Ok(TaskOutput::Sum(sum)), took: Duration::from_millis(1), blame: Default::default() }
}

fn ran(task: u64, code: i32) -> TaskReport<TaskOutput> {
    let out = RunOutput {
        ended: RunEnded::Exit(code),
        problem: None,
        stdout: Captured::Inline(b"hi".to_vec().into()),
        stderr: Captured::Inline(Vec::new().into()),
        returned: Vec::new(),
        started_ms: 0,
    };
    TaskReport { task, outcome: Ok(TaskOutput::Run(Box::new(out))), took: Duration::ZERO, blame: Default::default() }
}

/// Uids that are neither root nor this process's.
const ALICE: u32 = 4242;
const BOB: u32 = 4243;

fn by(uid: u32, on_gone: OnGone) -> Submission {
    Submission { submitter: Submitter { user: format!("u{uid}"), uid, node: "pi3".into() }, on_gone }
}

fn describe(n: NodeId) -> NodeInfo {
    NodeInfo { name: format!("{n}"), peer_id: String::new(), workers: 1 }
}

fn done(progress: u64, total: u64, failed: u64) -> Progress {
    Progress { total, done: progress, failed, ..Progress::default() }
}

fn task_of(e: JobEvent) -> u64 {
    match e {
        JobEvent::Task(t) => t.task,
        other => panic!("not a task event: {other:?}"),
    }
}

fn id(seq: u32) -> JobId {
    JobId { owner: NodeId(1), seq }
}

#[test]
fn progress_then_the_report_reach_the_submitter() {
    let (job, me) = (id(7), NodeId(1));
    let mut w = Watches::default();
    let mut h = w.add(job, spec(), Instant::now(), by(ALICE, OnGone::Cancel));
    assert_eq!(h.job, job);
    w.accepted(job, me, ok(0, 17), &describe);
    assert_eq!(*h.progress.borrow_and_update(), JobProgress { done: 1, total: 2 });
    w.stolen(job, NodeId(2));
    w.accepted(job, NodeId(2), ok(1, 17), &describe);
    w.finish(job, done(2, 2, 0), &describe);
    let report = h.done.try_recv().unwrap();
    let sums = vec![PrimesResult { n: 10, sum: 17 }, PrimesResult { n: 11, sum: 17 }];
    assert_eq!(report.results, JobResults::Primes(sums));
    assert_eq!((report.steals(), report.cancelled), (1, false));
    assert!(h.events.try_recv().is_err(), "a primes job streams nothing");
    let told = w.summaries(Instant::now());
    assert_eq!(told.len(), 1, "a finished job is told of for a while");
    let s = &told[0];
    assert_eq!((s.seq, s.done, s.total, s.finished), (7, 2, 2, true));
    assert_eq!(s.submitter.as_deref(), Some("u4242@pi3"));
    assert_eq!(s.shares.iter().map(|s| (s.node, s.tasks)).collect::<Vec<_>>(), [(NodeId(1), 1), (NodeId(2), 1)]);
    let later = Instant::now() + FINISHED_SHOWN + Duration::from_secs(1);
    assert!(w.summaries(later).is_empty(), "and then no longer told of");
    assert!(w.abandoned().is_empty());
}

#[test]
fn a_run_job_streams_each_task_and_says_why_it_waits() {
    let job = id(8);
    let mut w = Watches::default();
    let mut h = w.add(job, run_spec(2), Instant::now(), by(ALICE, OnGone::Detach));
    w.waiting(job, "of 1 node, 1 does not allow runs".into());
    let failed = ran(1, 3);
    w.retrying(job, NodeId(2), &failed);
    w.accepted(job, NodeId(2), failed, &describe);
    assert_eq!(h.events.try_recv().unwrap(), JobEvent::Waiting("of 1 node, 1 does not allow runs".into()));
    let JobEvent::Task(t) = h.events.try_recv().unwrap() else { panic!("no task event") };
    assert_eq!((t.task, t.attempts, t.outcome.as_ref().map(|o| o.ended)), (1, 2, Ok(RunEnded::Exit(3))));
    w.finish(job, Progress { halted: true, ..done(1, 2, 1) }, &describe);
    let report = h.done.try_recv().unwrap();
    assert_eq!((report.results, report.halted), (JobResults::Run, true));
    assert_eq!(report.failed[0].error, "exited with code 3");
}

#[test]
fn a_job_nobody_can_use_is_abandoned_and_a_detached_one_runs_on() {
    let mut w = Watches::default();
    let (a, b, c) = (id(1), id(2), id(3));
    let _kept = w.add(a, spec(), Instant::now(), by(ALICE, OnGone::Cancel));
    let python_like = w.add(b, spec(), Instant::now(), by(ALICE, OnGone::Cancel));
    let detached = w.add(c, spec(), Instant::now(), by(ALICE, OnGone::Detach));
    let told: Vec<(u32, bool)> = w.summaries(Instant::now()).iter().map(|s| (s.seq, s.finished)).collect();
    assert_eq!(told, [(1, false), (2, false), (3, false)], "running jobs, oldest first");
    drop((python_like, detached));
    assert_eq!(w.abandoned(), [b], "only the job whose results nobody can use");
    w.cancelled(b, None, &describe);
    assert!(w.abandoned().is_empty(), "cancelled once");
    assert!(w.running(JobRef::of(c), ALICE).is_ok(), "the detached job runs on");
}

#[test]
fn a_later_handle_gets_the_events_so_far_then_the_rest_and_the_report() {
    let job = id(4);
    let mut w = Watches::default();
    let mut first = w.add(job, run_spec(2), Instant::now(), by(ALICE, OnGone::Detach));
    w.accepted(job, NodeId(2), ran(0, 0), &describe);
    let (mut late, spec) = w.attach(JobRef::of(job), ALICE).unwrap();
    assert_eq!((spec.tasks(), late.job), (2, job));
    assert_eq!(task_of(late.events.try_recv().unwrap()), 0, "the event so far, replayed");
    assert_eq!(*late.progress.borrow_and_update(), JobProgress { done: 1, total: 2 });
    w.accepted(job, NodeId(2), ran(1, 0), &describe);
    assert_eq!(task_of(late.events.try_recv().unwrap()), 1);
    assert_eq!([0, 1].map(|_| task_of(first.events.try_recv().unwrap())), [0, 1], "the submitter's too");
    w.finish(job, done(2, 2, 0), &describe);
    assert_eq!(late.done.try_recv().unwrap(), first.done.try_recv().unwrap(), "one report for both");
    // After the end: everything at once.
    let (mut after, _) = w.attach(JobRef::of(job), ALICE).unwrap();
    assert_eq!([0, 1].map(|_| task_of(after.events.try_recv().unwrap())), [0, 1]);
    assert_eq!(after.done.try_recv().unwrap().tasks, 2);
    assert_eq!(*after.progress.borrow(), JobProgress { done: 2, total: 2 });
}

#[test]
fn only_the_submitter_the_node_user_or_root_may_wait_for_or_cancel_a_job() {
    let (job, other) = (JobId { owner: NodeId(0xabcd_0000_0000_0000), seq: 5 }, JobRef { owner: 0xabcd, seq: 6 });
    let mut w = Watches::default();
    let _h = w.add(job, spec(), Instant::now(), by(ALICE, OnGone::Detach));
    let r = JobRef::of(job);
    assert_eq!(r.to_string(), "abcd0000-5");
    assert_eq!(w.running(r, ALICE), Ok(job));
    assert_eq!(w.running(r, 0), Ok(job), "root may");
    // SAFETY: geteuid has no preconditions and cannot fail.
    assert_eq!(w.running(r, unsafe { libc::geteuid() }), Ok(job), "the node's own user may");
    let refused = JobAccessError::NotYours { job: r, submitter: "u4242@pi3".into() };
    assert_eq!(w.running(r, BOB), Err(refused.clone()));
    assert_eq!(w.attach(r, BOB).map(|_| ()), Err(refused.clone()));
    assert_eq!(w.running(other, ALICE), Err(JobAccessError::Unknown(other)));
    w.cancelled(job, None, &describe);
    assert_eq!(w.running(r, ALICE), Err(JobAccessError::Ended(r)), "an ended job cannot be cancelled");
    assert_eq!(w.attach(r, BOB).map(|_| ()), Err(refused), "nor its results read by another");
    let (mut h, _) = w.attach(r, ALICE).unwrap();
    let report = h.done.try_recv().unwrap();
    assert!(report.cancelled && report.halted, "a cancelled job's report says so");
}
