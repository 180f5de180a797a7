//! The ids of jobs that ended, remembered so that their late grants and results are
//! ignored. At most [`TOMBSTONES`] are kept; the oldest is forgotten first.

use crate::id::JobId;
use std::collections::{HashSet, VecDeque};

/// How many ended job ids a node remembers.
pub(crate) const TOMBSTONES: usize = 4096;

/// A bounded set of ended jobs, forgetting the oldest.
#[derive(Debug, Default)]
pub(crate) struct Tombstones {
    /// In the order they ended: the front is forgotten first.
    order: VecDeque<JobId>,
    ended: HashSet<JobId>,
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
}
