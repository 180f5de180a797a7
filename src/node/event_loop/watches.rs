//! The jobs this node owns, each with whoever waits for it: a collector that builds the
//! report, a progress channel and the reply for the report. A job whose submitter
//! stopped waiting (Ctrl-C, a closed control connection) is *abandoned*, and the loop
//! cancels it mesh-wide rather than compute it for nobody.

use crate::core::{Progress, TaskReport};
use crate::id::{JobId, NodeId};
use crate::job::{JobSpec, TaskOutput};
use crate::node::report::{Collector, Describe, JobReport};
use crate::node::view::JobProgress;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{oneshot, watch};

/// An owned job and its waiting submitter.
#[derive(Debug)]
struct Watch {
    collector: Collector,
    progress: watch::Sender<JobProgress>,
    done: oneshot::Sender<JobReport>,
}

#[derive(Debug, Default)]
pub(super) struct Watches {
    jobs: HashMap<JobId, Watch>,
}

impl Watches {
    pub(super) fn add(
        &mut self,
        job: JobId,
        spec: Arc<JobSpec>,
        now: Instant,
        progress: watch::Sender<JobProgress>,
        done: oneshot::Sender<JobReport>,
    ) {
        self.jobs.insert(job, Watch { collector: Collector::new(spec, now), progress, done });
    }

    /// A task's first (final) result.
    pub(super) fn accepted(&mut self, job: JobId, from: NodeId, report: TaskReport<TaskOutput>) {
        if let Some(w) = self.jobs.get_mut(&job) {
            w.collector.add(from, report);
            let _ = w.progress.send(w.collector.progress());
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
    pub(super) fn finish(&mut self, job: JobId, progress: Progress, backups: u64, describe: Describe<'_>) {
        if let Some(w) = self.jobs.remove(&job) {
            let _ = w.done.send(w.collector.finish(progress, backups, describe));
        }
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
    use crate::job::{Algo, PrimesJob, Split, Target};
    use crate::node::report::{JobResults, NodeInfo, PrimesResult};
    use std::time::Duration;

    fn spec() -> Arc<JobSpec> {
        Arc::new(JobSpec::Primes(
            PrimesJob::new(Target::Each { first: 10, last: 11 }, Algo::Trial, Split::Auto { workers: 1 }).unwrap(),
        ))
    }

    fn ok(task: u64, sum: u128) -> TaskReport<TaskOutput> {
        TaskReport { task, outcome: Ok(TaskOutput::Sum(sum)), took: Duration::from_millis(1) }
    }

    #[test]
    fn progress_then_the_report_reach_the_submitter() {
        let (job, me) = (JobId { owner: NodeId(1), seq: 7 }, NodeId(1));
        let mut w = Watches::default();
        let (ptx, mut prx) = watch::channel(JobProgress::default());
        let (dtx, mut drx) = oneshot::channel();
        w.add(job, spec(), Instant::now(), ptx, dtx);
        w.accepted(job, me, ok(0, 17));
        assert_eq!(*prx.borrow_and_update(), JobProgress { done: 1, total: 2 });
        w.stolen(job, NodeId(2));
        w.accepted(job, NodeId(2), ok(1, 17));
        let progress = Progress { total: 2, done: 2, failed: 0, retried: 0, duplicates: 0 };
        let describe = |n: NodeId| NodeInfo { name: format!("{n}"), peer_id: String::new(), workers: 1 };
        w.finish(job, progress, 0, &describe);
        let report = drx.try_recv().unwrap();
        assert_eq!(
            report.results,
            JobResults::Primes(vec![PrimesResult { n: 10, sum: 17 }, PrimesResult { n: 11, sum: 17 }])
        );
        assert_eq!(report.steals(), 1);
        assert!(w.take_abandoned().is_empty());
    }

    #[test]
    fn a_submitter_that_stopped_waiting_abandons_its_job() {
        let mut w = Watches::default();
        let (a, b) = (JobId { owner: NodeId(1), seq: 1 }, JobId { owner: NodeId(1), seq: 2 });
        let (pa, _) = watch::channel(JobProgress::default());
        let (pb, _) = watch::channel(JobProgress::default());
        let (da, _kept) = oneshot::channel();
        let (db, dropped) = oneshot::channel();
        w.add(a, spec(), Instant::now(), pa, da);
        w.add(b, spec(), Instant::now(), pb, db);
        drop(dropped);
        assert_eq!(w.take_abandoned(), [b]);
        assert!(w.take_abandoned().is_empty(), "taken once");
    }
}
