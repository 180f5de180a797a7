//! The owner's ledger of one job: which tasks are done, and who holds the rest.
//!
//! Only the submitting node (the job's owner) keeps a ledger. It is the single source of
//! truth for completion:
//!
//! * `done` is a bitset; a result for a task already done is a duplicate and is dropped.
//!   That makes completion idempotent, so re-running a task (after a node death, a lost
//!   message or a speculative backup run) can never count a result twice.
//! * `leases` records, per task range, the node that last reported holding it (thieves
//!   report every steal). When a node dies, its leased ranges that are not done go back
//!   into the owner's queue at once, where idle nodes steal them again.
//!
//! Leases are advice, not truth: a lost report leaves a stale holder. Correctness never
//! depends on them, because the owner also re-runs undone tasks itself once nothing is left
//! to steal (see `Scheduler::speculate`).

use super::queue::TaskRange;
use crate::id::NodeId;
use fixedbitset::FixedBitSet;
use std::collections::BTreeMap;

#[derive(Debug)]
pub struct Ledger {
    done: FixedBitSet,
    done_count: u64,
    failed: u64,
    duplicates: u64,
    /// start -> (end, holder); ranges never overlap.
    leases: BTreeMap<u64, (u64, NodeId)>,
    /// Where the next speculative scan starts.
    cursor: u64,
}

/// What accepting a result did.
#[derive(Debug, PartialEq, Eq)]
pub enum Accept {
    /// First result for this task.
    New,
    /// The task was already done; the result is dropped.
    Duplicate,
}

impl Ledger {
    pub fn new(tasks: u64) -> Self {
        Self {
            // Invariant: task counts are bounded by the job parser far below usize::MAX.
            done: FixedBitSet::with_capacity(usize::try_from(tasks).expect("task count fits")),
            done_count: 0,
            failed: 0,
            duplicates: 0,
            leases: BTreeMap::new(),
            cursor: 0,
        }
    }

    pub fn total(&self) -> u64 {
        self.done.len() as u64
    }

    pub fn done_count(&self) -> u64 {
        self.done_count
    }

    pub fn failed(&self) -> u64 {
        self.failed
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn is_complete(&self) -> bool {
        self.done_count == self.total()
    }

    pub fn is_done(&self, task: u64) -> bool {
        self.done.contains(task as usize)
    }

    /// Records a result. Out-of-range tasks (garbage from a peer) are duplicates.
    pub fn accept(&mut self, task: u64, ok: bool) -> Accept {
        if task >= self.total() || self.done.put(task as usize) {
            self.duplicates += 1;
            return Accept::Duplicate;
        }
        self.done_count += 1;
        if !ok {
            self.failed += 1;
        }
        Accept::New
    }

    /// Records that `holder` now holds `r`, replacing older holders of any overlap.
    pub fn lease(&mut self, r: TaskRange, holder: NodeId) {
        let r = TaskRange::new(r.start, r.end.min(self.total()));
        if r.is_empty() {
            return;
        }
        // Trim the lease that starts before r and reaches into it.
        if let Some((&s, &(e, h))) = self.leases.range(..r.start).next_back()
            && e > r.start
        {
            self.leases.insert(s, (r.start, h));
            if e > r.end {
                self.leases.insert(r.end, (e, h));
            }
        }
        // Remove or trim leases that start inside r.
        let inside: Vec<u64> = self.leases.range(r.start..r.end).map(|(&s, _)| s).collect();
        for s in inside {
            if let Some((e, h)) = self.leases.remove(&s)
                && e > r.end
            {
                self.leases.insert(r.end, (e, h));
            }
        }
        self.leases.insert(r.start, (r.end, holder));
    }

    /// Takes back every range leased to `holder` and returns its tasks that are not done,
    /// as ranges. The caller queues them and becomes their holder.
    pub fn reclaim(&mut self, holder: NodeId) -> Vec<TaskRange> {
        let mine: Vec<(u64, u64)> =
            self.leases.iter().filter(|(_, (_, h))| *h == holder).map(|(&s, &(e, _))| (s, e)).collect();
        let mut out = Vec::new();
        for (s, e) in mine {
            self.leases.remove(&s);
            out.extend(self.undone_runs(s, e));
        }
        out
    }

    /// The maximal runs of undone tasks inside `start..end`.
    fn undone_runs(&self, start: u64, end: u64) -> Vec<TaskRange> {
        let mut out: Vec<TaskRange> = Vec::new();
        for t in start..end {
            if self.is_done(t) {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.end == t => last.end += 1,
                _ => out.push(TaskRange::new(t, t + 1)),
            }
        }
        out
    }

    /// The next undone task, scanning round-robin from the cursor, that `skip` rejects not.
    /// Used for speculative backup runs at the end of a job.
    pub fn next_undone(&mut self, skip: impl Fn(u64) -> bool) -> Option<u64> {
        let total = self.total();
        if self.is_complete() {
            return None;
        }
        let from = self.cursor as usize;
        let found = self
            .done
            .zeroes()
            .skip_while(|&t| t < from)
            .chain(self.done.zeroes().take_while(|&t| t < from))
            .map(|t| t as u64)
            .find(|&t| !skip(t))?;
        self.cursor = (found + 1) % total;
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    #[test]
    fn accept_is_idempotent() {
        let mut l = Ledger::new(3);
        assert_eq!(l.accept(1, true), Accept::New);
        assert_eq!(l.accept(1, true), Accept::Duplicate);
        assert_eq!(l.accept(7, true), Accept::Duplicate);
        assert_eq!((l.done_count(), l.duplicates()), (1, 2));
        l.accept(0, false);
        l.accept(2, true);
        assert!(l.is_complete());
        assert_eq!(l.failed(), 1);
    }

    #[test]
    fn reclaim_returns_only_undone_tasks_of_that_holder() {
        let mut l = Ledger::new(20);
        l.lease(TaskRange::new(0, 10), A);
        l.lease(TaskRange::new(10, 20), B);
        l.lease(TaskRange::new(5, 12), B); // A keeps 0..5, B holds 5..20
        l.accept(6, true);
        l.accept(15, true);
        assert_eq!(
            l.reclaim(B),
            vec![TaskRange::new(5, 6), TaskRange::new(7, 12), TaskRange::new(12, 15), TaskRange::new(16, 20)]
        );
        assert!(l.reclaim(B).is_empty());
        assert_eq!(l.reclaim(A), vec![TaskRange::new(0, 5)]);
    }

    #[test]
    fn lease_splits_an_enclosing_range() {
        let mut l = Ledger::new(10);
        l.lease(TaskRange::new(0, 10), A);
        l.lease(TaskRange::new(3, 4), B);
        assert_eq!(l.reclaim(A), vec![TaskRange::new(0, 3), TaskRange::new(4, 10)]);
        assert_eq!(l.reclaim(B), vec![TaskRange::new(3, 4)]);
    }

    #[test]
    fn next_undone_cycles_and_skips() {
        let mut l = Ledger::new(5);
        l.accept(0, true);
        l.accept(3, true);
        assert_eq!(l.next_undone(|t| t == 1), Some(2));
        assert_eq!(l.next_undone(|_| false), Some(4));
        assert_eq!(l.next_undone(|_| false), Some(1));
        assert_eq!(l.next_undone(|_| true), None);
    }
}
