//! The jobs this node owns, each with whoever waits for it: a collector that builds the
//! report, a progress channel, a channel of events (a run job's tasks as they finish,
//! notices of why it waits) and the reply for the report. A job whose submitter stopped
//! waiting (Ctrl-C, a closed control connection) is *abandoned*, and the loop cancels it
//! mesh-wide rather than compute it for nobody.
//!
//! The event channel is unbounded on purpose: it carries each task's result once, so it
//! holds at most one job's results, the bound the collector of a wasm job has too; a
//! slow submitter must not stall the loop.

use crate::core::{Progress, TaskReport};
use crate::id::{JobId, NodeId};
use crate::job::{Delivery, JobKind, JobSpec, TaskOutput};
use crate::node::api::report::{Collector, Describe, JobReport};
use crate::node::api::view::{JobEvent, JobProgress};
use crate::protocol::membership::{FINISHED_SHOWN, JobSummary};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

/// An owned job and its waiting submitter.
#[derive(Debug)]
struct Watch {
    collector: Collector,
    progress: watch::Sender<JobProgress>,
    events: mpsc::UnboundedSender<JobEvent>,
    done: oneshot::Sender<JobReport>,
    /// Each task goes to the submitter as it finishes ([`Delivery::Streamed`]).
    streams: bool,
    kind: JobKind,
}

/// Where a submitter hears of its job: progress, events and, at the end, the report.
#[derive(Debug)]
pub(super) struct Listener {
    pub(super) progress: watch::Sender<JobProgress>,
    pub(super) events: mpsc::UnboundedSender<JobEvent>,
    pub(super) done: oneshot::Sender<JobReport>,
}

/// Finished jobs remembered for the announce at most.
const ENDED_KEPT: usize = 16;

#[derive(Debug, Default)]
pub(super) struct Watches {
    jobs: HashMap<JobId, Watch>,
    /// Jobs that finished, newest last, told of for `FINISHED_SHOWN` after.
    ended: VecDeque<(Instant, JobSummary)>,
}

impl Watches {
    pub(super) fn add(&mut self, job: JobId, spec: Arc<JobSpec>, now: Instant, to: Listener) {
        let (streams, kind) = (spec.delivery() == Delivery::Streamed, spec.kind());
        let Listener { progress, events, done } = to;
        let collector = Collector::new(spec, now);
        self.jobs.insert(job, Watch { collector, progress, events, done, streams, kind });
    }

    /// A task's first (final) result; a run job's goes to the submitter at once.
    pub(super) fn accepted(
        &mut self,
        job: JobId,
        from: NodeId,
        report: TaskReport<TaskOutput>,
        describe: Describe<'_>,
    ) {
        let Some(w) = self.jobs.get_mut(&job) else { return };
        if w.streams {
            let (node, attempts) = (describe(from).name, w.collector.attempts(report.task));
            let event = JobEvent::finished(w.kind, report.task, node, attempts, report.took, &report.outcome);
            let _ = w.events.send(event);
        }
        w.collector.add(from, report);
        let _ = w.progress.send(w.collector.progress());
    }

    /// No live node can run the job's queued tasks: the submitter hears why.
    pub(super) fn waiting(&mut self, job: JobId, why: String) {
        if let Some(w) = self.jobs.get(&job) {
            let _ = w.events.send(JobEvent::Waiting(why));
        }
    }

    /// A failed attempt that will run again.
    pub(super) fn retrying(&mut self, job: JobId, from: NodeId, report: &TaskReport<TaskOutput>) {
        if let Some(w) = self.jobs.get_mut(&job) {
            w.collector.retrying(from, report);
        }
    }

    pub(super) fn stolen(&mut self, job: JobId, by: NodeId) {
        if let Some(w) = self.jobs.get_mut(&job) {
            w.collector.stolen(by);
        }
    }

    /// The job is complete: its report goes to the submitter.
    pub(super) fn finish(&mut self, job: JobId, progress: Progress, describe: Describe<'_>) {
        if let Some(w) = self.jobs.remove(&job) {
            let now = Instant::now();
            while self.ended.len() >= ENDED_KEPT
                || self.ended.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) > FINISHED_SHOWN)
            {
                self.ended.pop_front();
            }
            self.ended.push_back((now, w.collector.summary(job.seq, now, true)));
            let _ = w.done.send(w.collector.finish(progress, describe));
        }
    }

    /// The owned jobs as the announce and the dashboard tell of them: the running ones,
    /// oldest first, then those finished in the last `FINISHED_SHOWN`, newest first.
    pub(super) fn summaries(&self, now: Instant) -> Vec<JobSummary> {
        let mut running: Vec<(&JobId, &Watch)> = self.jobs.iter().collect();
        running.sort_by_key(|(id, _)| id.seq);
        let running = running.into_iter().map(|(id, w)| w.collector.summary(id.seq, now, false));
        let shown = self.ended.iter().rev().filter(|(at, _)| now.saturating_duration_since(*at) <= FINISHED_SHOWN);
        running.chain(shown.map(|(_, s)| s.clone())).collect()
    }

    /// The job is gone without a report; its submitter sees the reply dropped.
    pub(super) fn drop_job(&mut self, job: JobId) {
        self.jobs.remove(&job);
    }

    /// Removes and returns the jobs whose submitter stopped waiting.
    pub(super) fn take_abandoned(&mut self) -> Vec<JobId> {
        let gone: Vec<JobId> = self.jobs.iter().filter(|(_, w)| w.done.is_closed()).map(|(j, _)| *j).collect();
        for job in &gone {
            self.jobs.remove(job);
        }
        gone
    }

    /// Drops every watch: the node is leaving, and its submitters see the reply dropped.
    pub(super) fn clear(&mut self) {
        self.jobs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Needs;
    use crate::id::ContentId;
    use crate::job::run::{Captured, Ended, RunJob, RunOutput};
    use crate::job::{Algo, PrimesJob, Split, Target};
    use crate::node::api::report::{JobResults, NodeInfo, PrimesResult};
    use std::time::Duration;

    fn spec() -> Arc<JobSpec> {
        Arc::new(JobSpec::Primes(
            PrimesJob::new(Target::Each { first: 10, last: 11 }, Algo::Trial, Split::Auto { workers: 1 }).unwrap(),
        ))
    }

    fn ok(task: u64, sum: u128) -> TaskReport<TaskOutput> {
        TaskReport {
            task,
            outcome: Ok(TaskOutput::Sum(sum)),
            took: Duration::from_millis(1),
            blame: Default::default(),
        }
    }

    struct Ends {
        progress: watch::Receiver<JobProgress>,
        events: mpsc::UnboundedReceiver<JobEvent>,
        done: oneshot::Receiver<JobReport>,
    }

    fn listener() -> (Listener, Ends) {
        let (progress, p) = watch::channel(JobProgress::default());
        let (events, e) = mpsc::unbounded_channel();
        let (done, d) = oneshot::channel();
        (Listener { progress, events, done }, Ends { progress: p, events: e, done: d })
    }

    fn describe(n: NodeId) -> NodeInfo {
        NodeInfo { name: format!("{n}"), peer_id: String::new(), workers: 1 }
    }

    #[test]
    fn progress_then_the_report_reach_the_submitter() {
        let (job, me) = (JobId { owner: NodeId(1), seq: 7 }, NodeId(1));
        let mut w = Watches::default();
        let (to, mut ends) = listener();
        w.add(job, spec(), Instant::now(), to);
        w.accepted(job, me, ok(0, 17), &describe);
        assert_eq!(*ends.progress.borrow_and_update(), JobProgress { done: 1, total: 2 });
        w.stolen(job, NodeId(2));
        w.accepted(job, NodeId(2), ok(1, 17), &describe);
        let progress = Progress { total: 2, done: 2, failed: 0, retried: 0, duplicates: 0, backups: 0, halted: false };
        w.finish(job, progress, &describe);
        let report = ends.done.try_recv().unwrap();
        assert_eq!(
            report.results,
            JobResults::Primes(vec![PrimesResult { n: 10, sum: 17 }, PrimesResult { n: 11, sum: 17 }])
        );
        assert_eq!(report.steals(), 1);
        assert!(ends.events.try_recv().is_err(), "a primes job streams nothing");
        let told = w.summaries(Instant::now());
        assert_eq!(told.len(), 1, "a finished job is told of for a while");
        let s = &told[0];
        assert_eq!((s.seq, s.done, s.total, s.finished), (7, 2, 2, true));
        assert_eq!(s.shares.iter().map(|s| (s.node, s.tasks)).collect::<Vec<_>>(), [(NodeId(1), 1), (NodeId(2), 1)]);
        let later = Instant::now() + FINISHED_SHOWN + std::time::Duration::from_secs(1);
        assert!(w.summaries(later).is_empty(), "and then forgotten");
        assert!(w.take_abandoned().is_empty());
    }

    #[test]
    fn a_run_job_streams_each_task_and_says_why_it_waits() {
        let job = JobId { owner: NodeId(1), seq: 8 };
        let run = RunJob {
            command: vec!["true".into()],
            tasks: 2,
            inputs: ContentId::of(b"tasks"),
            files: None,
            returns: Vec::new(),
            timeout: None,
            memory_mb: None,
            retries: 1,
            halt: None,
            needs: Needs::native(Vec::new()),
        };
        let out = RunOutput {
            ended: Ended::Exit(3),
            problem: None,
            stdout: Captured::Inline(b"hi".to_vec().into()),
            stderr: Captured::Inline(Vec::new().into()),
            returned: Vec::new(),
            started_ms: 0,
        };
        let mut w = Watches::default();
        let (to, mut ends) = listener();
        w.add(job, Arc::new(JobSpec::Run(Box::new(run))), Instant::now(), to);
        w.waiting(job, "of 1 node, 1 does not allow runs".into());
        let failed = TaskReport {
            task: 1,
            outcome: Ok(TaskOutput::Run(Box::new(out.clone()))),
            took: Duration::ZERO,
            blame: Default::default(),
        };
        w.retrying(job, NodeId(2), &failed);
        w.accepted(job, NodeId(2), failed, &describe);
        assert_eq!(ends.events.try_recv().unwrap(), JobEvent::Waiting("of 1 node, 1 does not allow runs".into()));
        let JobEvent::Task(t) = ends.events.try_recv().unwrap() else { panic!("no task event") };
        assert_eq!((t.task, t.attempts, t.outcome.as_ref().map(|o| o.ended)), (1, 2, Ok(Ended::Exit(3))));
        let progress = Progress { total: 2, done: 1, failed: 1, retried: 1, duplicates: 0, backups: 0, halted: true };
        w.finish(job, progress, &describe);
        let report = ends.done.try_recv().unwrap();
        assert_eq!((report.results, report.halted), (JobResults::Run, true));
        assert_eq!(report.failed[0].error, "exited with code 3");
    }

    #[test]
    fn a_submitter_that_stopped_waiting_abandons_its_job() {
        let mut w = Watches::default();
        let (a, b) = (JobId { owner: NodeId(1), seq: 1 }, JobId { owner: NodeId(1), seq: 2 });
        let (ta, _kept) = listener();
        let (tb, dropped) = listener();
        w.add(a, spec(), Instant::now(), ta);
        w.add(b, spec(), Instant::now(), tb);
        let told: Vec<(u32, bool)> = w.summaries(Instant::now()).iter().map(|s| (s.seq, s.finished)).collect();
        assert_eq!(told, [(1, false), (2, false)], "running jobs, oldest first");
        drop(dropped);
        assert_eq!(w.take_abandoned(), [b]);
        assert!(w.take_abandoned().is_empty(), "taken once");
    }
}
