//! Results waiting to go to their jobs' owners. A non-owner buffers finished tasks per
//! job and sends them in one `Results` message when the batch is full (by count or by
//! bytes) or when the flush timer fires, so a thief does not send a message per task.

use super::{Payload, TaskReport};
use crate::id::JobId;
use std::collections::BTreeMap;

/// One job's buffered results.
#[derive(Debug)]
struct Batch<R> {
    reports: Vec<TaskReport<R>>,
    /// Their size on the wire, by [`Payload::size_hint`].
    bytes: usize,
}

/// Buffered results, per job. Ordered so flushes (and so simulations) are deterministic.
#[derive(Debug)]
pub(crate) struct Outbox<R> {
    batches: BTreeMap<JobId, Batch<R>>,
    /// A batch of this many reports, or this many bytes, is full.
    max_reports: usize,
    max_bytes: usize,
}

impl<R: Payload> Outbox<R> {
    pub(crate) fn new(max_reports: usize, max_bytes: usize) -> Self {
        Self { batches: BTreeMap::new(), max_reports, max_bytes }
    }

    /// Buffers a report; returns whether the job's batch is now full.
    pub(crate) fn push(&mut self, job: JobId, report: TaskReport<R>) -> bool {
        let b = self.batches.entry(job).or_insert_with(|| Batch { reports: Vec::new(), bytes: 0 });
        b.bytes += report.size_hint();
        b.reports.push(report);
        b.reports.len() >= self.max_reports || b.bytes >= self.max_bytes
    }

    /// Takes a job's batch, if it has results.
    pub(crate) fn take(&mut self, job: JobId) -> Option<Vec<TaskReport<R>>> {
        self.batches.remove(&job).map(|b| b.reports).filter(|r| !r.is_empty())
    }

    /// Drops a job's batch: its owner no longer wants it.
    pub(crate) fn discard(&mut self, job: JobId) {
        self.batches.remove(&job);
    }

    pub(crate) fn holds(&self, job: &JobId) -> bool {
        self.batches.contains_key(job)
    }

    pub(crate) fn jobs(&self) -> Vec<JobId> {
        self.batches.keys().copied().collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;
    use std::time::Duration;

    fn report(task: u64) -> TaskReport<u64> {
        TaskReport { task, outcome: Ok(task), took: Duration::ZERO, blame: Default::default() }
    }

    #[test]
    fn a_batch_is_full_by_count_or_by_bytes() {
        let (a, b) = (JobId { owner: NodeId(1), seq: 1 }, JobId { owner: NodeId(2), seq: 1 });
        let mut by_count = Outbox::new(3, usize::MAX);
        assert!(!by_count.push(a, report(0)));
        assert!(!by_count.push(b, report(0)));
        assert!(!by_count.push(a, report(1)));
        assert!(by_count.push(a, report(2)), "the third report of one job fills it");
        assert_eq!(by_count.jobs(), [a, b]);
        let tasks: Vec<u64> = by_count.take(a).unwrap().iter().map(|r| r.task).collect();
        assert_eq!(tasks, [0, 1, 2], "in the order they finished");
        assert!(by_count.take(a).is_none());
        by_count.discard(b);
        assert!(by_count.is_empty() && !by_count.holds(&b));

        let one_report = report(0).size_hint();
        let mut by_bytes = Outbox::new(usize::MAX, 2 * one_report);
        assert!(!by_bytes.push(a, report(0)));
        assert!(by_bytes.push(a, report(1)));
    }
}
