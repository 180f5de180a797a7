//! The journal on disk: what a restart finds, damaged files, pruning, and a disk that
//! refuses writes.

use super::format::{EndEntry, JobEntry, ResultEntry, VERSION};
use super::*;
use crate::core::TaskReport;
use crate::id::NodeId;
use crate::job::{Algo, JobSpec, PrimesJob, Split, Target, TaskOutput};
use crate::node::api::report::{JobReport, JobResults};
use crate::node::api::view::Submitter;
use crate::protocol::membership::JobSummary;

fn home(name: &str) -> std::path::PathBuf {
    let h = std::env::temp_dir().join(format!("mesh-journal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&h);
    h
}

fn entry(seq: u32) -> JobEntry {
    let job = PrimesJob::new(Target::Each { first: 10, last: 19 }, Algo::Trial, Split::Auto { workers: 1 }).unwrap();
    JobEntry {
        version: VERSION,
        seq,
        submitter: Submitter { user: "ann".into(), uid: 1000, node: "pi1".into() },
        outlives_submitter: true,
        submitted: format::unix_now(),
        spec: JobSpec::Primes(job),
    }
}

/// Task `task`'s result from pi2, as the loop hands it over.
fn accept(j: &mut Journal, job: JobId, task: u64) {
    let r = result(task);
    j.accepted(job, r.from, r.attempts, r.report, || r.node.to_string());
}

fn result(task: u64) -> ResultEntry {
    let report = TaskReport {
        task,
        outcome: Ok(TaskOutput::Sum(u128::from(task) * 7)),
        took: Duration::from_millis(3),
        blame: Default::default(),
    };
    ResultEntry { from: NodeId(9), node: "pi2".into(), attempts: 1, report }
}

fn end(seq: u32, at: u64) -> EndEntry {
    let report = JobReport {
        results: JobResults::Primes(Vec::new()),
        elapsed: Duration::from_secs(1),
        tasks: 10,
        failed: Vec::new(),
        failed_unlisted: 0,
        nodes: Vec::new(),
        workers: 1,
        duplicates: 0,
        backups: 0,
        retried: 0,
        halted: false,
        cancelled: false,
    };
    let summary = JobSummary {
        seq,
        kind: crate::job::JobKind::Primes,
        done: 10,
        failed: 0,
        total: 10,
        elapsed_ms: 1000,
        finished: true,
        shares: Vec::new(),
        submitter: None,
    };
    EndEntry { version: VERSION, at, report, summary }
}

fn job(seq: u32) -> JobId {
    JobId { owner: NodeId(1), seq }
}

/// Begins job `seq` and waits until its entry is on disk.
fn begin(j: &mut Journal, seq: u32) {
    let (tx, rx) = std::sync::mpsc::channel();
    j.begin(entry(seq), Box::new(move || tx.send(()).unwrap()));
    rx.recv().unwrap();
}

/// Commits what is pending now.
fn commit(j: &mut Journal) {
    j.next_commit = Instant::now();
    j.tick(Instant::now());
}

#[test]
fn a_restart_finds_each_job_with_its_committed_results_and_the_next_number() {
    let h = home("restart");
    let (mut j, found) = Journal::open(&h, Keep::default()).unwrap();
    assert_eq!((found.next_seq, found.jobs.len()), (1, 0));
    begin(&mut j, 1);
    begin(&mut j, 2);
    for t in [0, 3, 5] {
        accept(&mut j, job(1), t);
    }
    commit(&mut j);
    accept(&mut j, job(2), 1);
    j.end(job(2), end(2, format::unix_now()));
    // Accepted but never committed: a crash loses it.
    accept(&mut j, job(1), 7);
    j.pending.clear();
    j.close();
    let (j, found) = Journal::open(&h, Keep::default()).unwrap();
    assert_eq!(found.next_seq, 3, "numbers go on where they left off");
    assert!(found.lost.is_empty(), "{:?}", found.lost);
    let one = found.jobs.iter().find(|k| k.entry.seq == 1).unwrap();
    assert_eq!((&one.entry.spec, &one.entry.submitter), (&entry(1).spec, &entry(1).submitter));
    let tasks: Vec<u64> = one.results.iter().map(|r| r.report.task).collect();
    assert_eq!(tasks, [0, 3, 5], "the committed results, and not the one accepted after");
    assert_eq!(one.results[1], result(3));
    assert!(one.end.is_none(), "job 1 is to be resumed");
    let two = found.jobs.iter().find(|k| k.entry.seq == 2).unwrap();
    assert_eq!(two.results.len(), 1, "an end commits the job's last results with it");
    assert_eq!(two.end.as_ref().unwrap().summary.seq, 2);
    j.close();
    let _ = std::fs::remove_dir_all(&h);
}

#[test]
fn a_damaged_job_file_is_set_aside_and_named_and_the_others_are_kept() {
    let h = home("damaged");
    let (mut j, _) = Journal::open(&h, Keep::default()).unwrap();
    for seq in 1..=3 {
        begin(&mut j, seq);
        accept(&mut j, job(seq), 2);
    }
    j.close();
    let dir = h.join(format::DIR);
    std::fs::write(dir.join(format::file_name(1)), b"not a database at all").unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(dir.join(format::file_name(2))).unwrap();
    f.set_len(5000).unwrap();
    let (j, found) = Journal::open(&h, Keep::default()).unwrap();
    let mut lost: Vec<u32> = found.lost.iter().map(|l| l.seq).collect();
    lost.sort_unstable();
    assert_eq!(lost, [1, 2], "{:?}", found.lost);
    assert!(found.lost.iter().all(|l| l.why.contains(&format::file_name(l.seq))), "{:?}", found.lost);
    let kept: Vec<u32> = found.jobs.iter().map(|k| k.entry.seq).collect();
    assert_eq!(kept, [3]);
    assert_eq!(found.jobs[0].results, [result(2)]);
    assert_eq!(found.next_seq, 4, "a lost job's number is not given again");
    assert!(dir.join(format!("{}.lost", format::file_name(1))).exists(), "set aside, not deleted");
    j.close();
    let _ = std::fs::remove_dir_all(&h);
}

#[test]
fn ended_jobs_are_pruned_by_age_then_oldest_first_by_size_and_running_ones_never() {
    let h = home("prune");
    let (mut j, _) = Journal::open(&h, Keep::default()).unwrap();
    let now = format::unix_now();
    for seq in 1..=4 {
        begin(&mut j, seq);
    }
    j.end(job(1), end(1, now - 8 * 24 * 3600));
    j.end(job(2), end(2, now - 3600));
    j.end(job(3), end(3, now - 60));
    j.close();
    let size = std::fs::metadata(h.join(format::DIR).join(format::file_name(3))).unwrap().len();
    // A week, and room for about one ended job's file.
    let keep = Keep { age: Duration::from_secs(7 * 24 * 3600), bytes: size + size / 2 };
    let (j, found) = Journal::open(&h, keep).unwrap();
    let mut seqs: Vec<u32> = found.jobs.iter().map(|k| k.entry.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3, 4], "what a start finds, it prunes after");
    j.close();
    let (j, found) = Journal::open(&h, keep).unwrap();
    let mut seqs: Vec<u32> = found.jobs.iter().map(|k| k.entry.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [3, 4], "job 1 was too old, job 2 the oldest over the size; job 4 runs");
    j.close();
    let _ = std::fs::remove_dir_all(&h);
}

#[test]
fn a_disk_that_refuses_writes_pauses_the_journal_and_loses_nothing_once_it_takes_them() {
    let h = home("refuses");
    let (mut j, _) = Journal::open(&h, Keep::default()).unwrap();
    begin(&mut j, 1);
    // The journal's directory goes away and a file takes its place: every new file and
    // write fails, as on a full or broken disk.
    let dir = h.join(format::DIR);
    let aside = h.join("jobs.aside");
    std::fs::rename(&dir, &aside).unwrap();
    std::fs::write(&dir, b"in the way").unwrap();
    begin(&mut j, 2);
    accept(&mut j, job(2), 4);
    commit(&mut j);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!aside.join(format::file_name(2)).exists(), "nothing of job 2 reached the disk while it refused");
    // A job submitted now, behind the refused records, is not kept waiting for the disk.
    let (tx, rx) = std::sync::mpsc::channel();
    j.begin(entry(3), Box::new(move || tx.send(()).unwrap()));
    rx.recv_timeout(Duration::from_secs(10)).expect("a new job's submitter hears its id while the disk refuses");
    // Room again: what was refused is written at the next try.
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&aside, &dir).unwrap();
    accept(&mut j, job(2), 5);
    j.end(job(2), end(2, format::unix_now()));
    j.close();
    let (j, found) = Journal::open(&h, Keep::default()).unwrap();
    let two = found.jobs.iter().find(|k| k.entry.seq == 2).expect("job 2 was written once the disk took it");
    let tasks: Vec<u64> = two.results.iter().map(|r| r.report.task).collect();
    assert_eq!(tasks, [4, 5]);
    assert!(two.end.is_some());
    assert!(found.jobs.iter().any(|k| k.entry.seq == 3), "job 3's entry too");
    j.close();
    let _ = std::fs::remove_dir_all(&h);
}
