//! The ids of jobs that ended, remembered so that their late grants and results are
//! ignored. At most [`TOMBSTONES`] are kept; the oldest is forgotten first.
//!
//! A job dropped because its owner seemed gone is an *orphan*: it ended here, not
//! everywhere. An owner that comes back (it restarted and resumed its jobs from its
//! journal, or a partition healed) is forgiven: its orphans are forgotten at its first
//! status, so its work may be stolen again.

use crate::id::{JobId, NodeId};
use std::collections::{HashMap, HashSet, VecDeque};

/// How many ended job ids a node remembers.
pub(crate) const TOMBSTONES: usize = 4096;

/// A bounded set of ended jobs, forgetting the oldest.
#[derive(Debug, Default)]
pub(crate) struct Tombstones {
    /// In the order they ended: the front is forgotten first.
    order: VecDeque<JobId>,
    ended: HashSet<JobId>,
    /// Orphans by owner: each id is also in `ended`.
    orphans: HashMap<NodeId, Vec<JobId>>,
}

impl Tombstones {
    pub(crate) fn contains(&self, job: &JobId) -> bool {
        self.ended.contains(job)
    }

    /// Remembers that `job` ended.
    pub(crate) fn insert(&mut self, job: JobId) {
        if self.ended.insert(job) {
            self.order.push_back(job);
            if self.order.len() > TOMBSTONES
                && let Some(old) = self.order.pop_front()
            {
                self.ended.remove(&old);
                self.forget_orphan(old);
            }
        }
    }

    /// Remembers that `job` ended here; an `orphan` was dropped because its owner seemed
    /// gone.
    pub(crate) fn insert_dropped(&mut self, job: JobId, orphan: bool) {
        if orphan && !self.ended.contains(&job) {
            self.orphans.entry(job.owner).or_default().push(job);
        }
        self.insert(job);
    }

    /// `owner` is back: its orphaned jobs are no longer taken as ended. Returns them.
    pub(crate) fn forgive(&mut self, owner: NodeId) -> Vec<JobId> {
        let jobs = self.orphans.remove(&owner).unwrap_or_default();
        for job in &jobs {
            // The id stays in `order` and leaves it in turn; `ended` no longer has it.
            self.ended.remove(job);
        }
        jobs
    }

    fn forget_orphan(&mut self, job: JobId) {
        if let Some(jobs) = self.orphans.get_mut(&job.owner) {
            jobs.retain(|j| *j != job);
            if jobs.is_empty() {
                self.orphans.remove(&job.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    fn job(seq: u32) -> JobId {
        JobId { owner: NodeId(1), seq }
    }

    #[test]
    fn keeps_the_newest_and_forgets_the_oldest() {
        let mut t = Tombstones::default();
        for seq in 0..=TOMBSTONES as u32 {
            t.insert(job(seq));
        }
        t.insert(job(5)); // again: no second entry
        assert!(!t.contains(&job(0)), "the oldest is forgotten");
        assert!(t.contains(&job(1)) && t.contains(&job(TOMBSTONES as u32)));
        assert_eq!(t.order.len(), TOMBSTONES);
        assert_eq!(t.ended.len(), TOMBSTONES);
    }

    #[test]
    fn an_owner_that_comes_back_is_forgiven_its_orphans_only() {
        let mut t = Tombstones::default();
        t.insert(job(1));
        t.insert_dropped(job(2), true);
        t.insert_dropped(JobId { owner: NodeId(9), seq: 3 }, true);
        assert_eq!(t.forgive(NodeId(1)), [job(2)]);
        assert!(t.contains(&job(1)), "a job that ended stays ended");
        assert!(!t.contains(&job(2)), "an orphan of the owner that came back is forgiven");
        assert!(t.contains(&JobId { owner: NodeId(9), seq: 3 }), "another owner's orphan stays");
        assert_eq!(t.forgive(NodeId(1)), [], "forgiven once");
        assert!(t.contains(&job(1)));
    }

    #[test]
    fn orphans_are_bounded_with_the_rest() {
        let mut t = Tombstones::default();
        for seq in 0..(2 * TOMBSTONES) as u32 {
            t.insert_dropped(job(seq), true);
        }
        assert_eq!(t.orphans[&NodeId(1)].len(), TOMBSTONES);
    }
}
