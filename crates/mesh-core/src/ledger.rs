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
//! * `held` counts, per holder, the undone tasks of its leases, kept in step with every
//!   lease and result. The owner's empty answers to thieves name a holder drawn by it
//!   (`draw_holder`), so thieves find the job's work without waiting for gossip.
//!
//! * A failed task is retried up to `retries` times before it counts as failed for good.
//!   The ledger remembers, per failing task, how often it failed and on which node last,
//!   so the scheduler can run the retry elsewhere.
//!
//! Leases are advice, not truth: a lost report leaves a stale holder. Correctness never
//! depends on them, because the owner also re-runs undone tasks itself once nothing is left
//! to steal (see `Scheduler::speculate`).

use super::queue::TaskRange;
use crate::id::NodeId;
use fixedbitset::FixedBitSet;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct Ledger {
    done: FixedBitSet,
    done_count: u64,
    failed: u64,
    retried: u64,
    duplicates: u64,
    /// Backup runs of this job's tasks that the owner started.
    backups: u64,
    /// start -> (end, holder); ranges never overlap.
    leases: BTreeMap<u64, (u64, NodeId)>,
    /// Per holder, the tasks of its leases that are not done: where the job's work is.
    held: BTreeMap<NodeId, u64>,
    /// Where the next speculative scan starts.
    cursor: u64,
    /// Failed attempts allowed beyond the first run.
    retries: u32,
    /// Tasks that failed and are not done: failures so far, and the node and time of the
    /// last one.
    failures: HashMap<u64, Failure>,
    /// Tasks not done whose results came but could not be used (see [`Ledger::lost`]), and
    /// how often.
    lost: HashMap<u64, u32>,
}

/// How many times a task's result may be lost before the loss counts as a failure.
pub const MAX_LOST: u32 = 3;

/// The failure record of a task that is not done yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub count: u32,
    pub last_on: NodeId,
    pub at: Instant,
}

/// What accepting a result did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Accept {
    /// First result for this task.
    New,
    /// The task was already done; the result is dropped.
    Duplicate,
    /// The task failed and has retries left: it stays undone and must run again.
    Retry,
}

impl Ledger {
    pub(crate) fn new(tasks: u64, retries: u32) -> Self {
        Self {
            lost: HashMap::new(),
            // Invariant: task counts are bounded by the job parser far below usize::MAX.
            done: FixedBitSet::with_capacity(usize::try_from(tasks).expect("task count fits")),
            done_count: 0,
            failed: 0,
            retried: 0,
            duplicates: 0,
            backups: 0,
            leases: BTreeMap::new(),
            held: BTreeMap::new(),
            cursor: 0,
            retries,
            failures: HashMap::new(),
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.done.len() as u64
    }

    pub(crate) fn done_count(&self) -> u64 {
        self.done_count
    }

    pub(crate) fn failed(&self) -> u64 {
        self.failed
    }

    /// Failures that were given another run.
    pub(crate) fn retried(&self) -> u64 {
        self.retried
    }

    /// Undone tasks whose last failure was on `node`, less than `window` before `now`
    /// (whenever it was, with no window).
    pub(crate) fn failed_on_within(&self, node: NodeId, now: Instant, window: Option<std::time::Duration>) -> Vec<u64> {
        let recent = |at: Instant| window.is_none_or(|w| now.saturating_duration_since(at) < w);
        self.failures.iter().filter(|(_, f)| f.last_on == node && recent(f.at)).map(|(&t, _)| t).collect()
    }

    /// The failed, undone tasks inside `r`, in order, each with the node it failed on last.
    pub(crate) fn failed_in(&self, r: TaskRange) -> Vec<(u64, NodeId)> {
        let mut v: Vec<(u64, NodeId)> =
            self.failures.iter().filter(|(t, _)| (r.start..r.end).contains(*t)).map(|(&t, f)| (t, f.last_on)).collect();
        v.sort_unstable();
        v
    }

    pub(crate) fn backups(&self) -> u64 {
        self.backups
    }

    /// The owner started a backup run of one of the job's tasks.
    pub(crate) fn note_backup(&mut self) {
        self.backups += 1;
    }

    pub(crate) fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.done_count == self.total()
    }

    pub(crate) fn is_done(&self, task: u64) -> bool {
        self.done.contains(task as usize)
    }

    /// Records a result that `from` produced. Out-of-range tasks (garbage from a peer) are
    /// duplicates. A failure with retries left leaves the task undone.
    pub(crate) fn accept(&mut self, now: Instant, task: u64, ok: bool, from: NodeId) -> Accept {
        if task >= self.total() || self.is_done(task) {
            self.duplicates += 1;
            return Accept::Duplicate;
        }
        if !ok {
            let f = self.failures.entry(task).or_insert(Failure { count: 0, last_on: from, at: now });
            *f = Failure { count: f.count + 1, last_on: from, at: now };
            if f.count <= self.retries {
                self.retried += 1;
                return Accept::Retry;
            }
            self.failed += 1;
        }
        self.failures.remove(&task);
        self.lost.remove(&task);
        if let Some(holder) = self.holder_of(task) {
            self.unhold(holder, 1);
        }
        self.done.insert(task as usize);
        self.done_count += 1;
        Accept::New
    }

    /// Marks `task` done from a journal, as the result the owner accepted before it
    /// restarted (`ok`: it succeeded; otherwise it failed for good). Returns false for a
    /// task out of range or already done, which changes nothing.
    pub(crate) fn restore(&mut self, task: u64, ok: bool) -> bool {
        if task >= self.total() || self.is_done(task) {
            return false;
        }
        self.done.insert(task as usize);
        self.done_count += 1;
        self.failed += u64::from(!ok);
        true
    }

    /// The tasks without a result, as ranges in order.
    pub(crate) fn undone_ranges(&self) -> Vec<TaskRange> {
        let mut out: Vec<TaskRange> = Vec::new();
        for t in self.done.zeroes() {
            let t = t as u64;
            match out.last_mut() {
                Some(r) if r.end == t => r.end = t + 1,
                _ => out.push(TaskRange::new(t, t + 1)),
            }
        }
        out
    }

    /// A result for `task` arrived but what it refers to could not be had (its output was
    /// not fetchable from the node that ran it). Returns whether the task may simply run
    /// again without counting as a failure: at most [`MAX_LOST`] times, after which the
    /// caller counts it as one.
    pub(crate) fn lost(&mut self, task: u64) -> bool {
        if task >= self.total() || self.is_done(task) {
            return false;
        }
        let n = self.lost.entry(task).or_insert(0);
        *n += 1;
        *n <= MAX_LOST
    }

    /// How many times `task` has failed so far, and where and when it failed last.
    #[cfg(test)]
    pub(crate) fn failure(&self, task: u64) -> Option<Failure> {
        self.failures.get(&task).copied()
    }

    /// Records that `holder` now holds `r`, replacing older holders of any overlap.
    pub(crate) fn lease(&mut self, r: TaskRange, holder: NodeId) {
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
            self.unhold(h, self.undone_in(r.start, e.min(r.end)));
        }
        // Remove or trim leases that start inside r.
        let inside: Vec<u64> = self.leases.range(r.start..r.end).map(|(&s, _)| s).collect();
        for s in inside {
            if let Some((e, h)) = self.leases.remove(&s) {
                if e > r.end {
                    self.leases.insert(r.end, (e, h));
                }
                self.unhold(h, self.undone_in(s, e.min(r.end)));
            }
        }
        self.leases.insert(r.start, (r.end, holder));
        *self.held.entry(holder).or_insert(0) += self.undone_in(r.start, r.end);
    }

    /// Takes back every range leased to `holder` and returns its tasks that are not done,
    /// as ranges. The caller queues them and becomes their holder.
    pub(crate) fn reclaim(&mut self, holder: NodeId) -> Vec<TaskRange> {
        let mine: Vec<(u64, u64)> =
            self.leases.iter().filter(|(_, (_, h))| *h == holder).map(|(&s, &(e, _))| (s, e)).collect();
        let mut out = Vec::new();
        for (s, e) in mine {
            self.leases.remove(&s);
            out.extend(self.undone_runs(s, e));
        }
        self.held.remove(&holder);
        out
    }

    /// A holder drawn at random in proportion to the undone tasks it holds, among those
    /// that hold more than `min` and that `skip` rejects not: where a thief that asked the
    /// owner in vain is sent, so that thieves go where the job's work is without any
    /// status gossip. Leases are advice (see the module doc), so this is a hint.
    pub(crate) fn draw_holder(
        &self,
        rng: &mut fastrand::Rng,
        min: u64,
        skip: impl Fn(NodeId) -> bool,
    ) -> Option<NodeId> {
        let rich = || self.held.iter().filter(|&(&h, &n)| n > min && !skip(h));
        let total: u64 = rich().map(|(_, &n)| n).sum();
        if total == 0 {
            return None;
        }
        let mut at = rng.u64(0..total);
        for (&h, &n) in rich() {
            if at < n {
                return Some(h);
            }
            at -= n;
        }
        None
    }

    /// The undone tasks of `holder`'s leases.
    #[cfg(test)]
    pub(crate) fn held_by(&self, holder: NodeId) -> u64 {
        self.held.get(&holder).copied().unwrap_or(0)
    }

    fn holder_of(&self, task: u64) -> Option<NodeId> {
        let (_, &(e, h)) = self.leases.range(..=task).next_back()?;
        (e > task).then_some(h)
    }

    fn unhold(&mut self, holder: NodeId, tasks: u64) {
        if let Some(n) = self.held.get_mut(&holder) {
            *n = n.saturating_sub(tasks);
            if *n == 0 {
                self.held.remove(&holder);
            }
        }
    }

    /// Undone tasks in `start..end`.
    fn undone_in(&self, start: u64, end: u64) -> u64 {
        let (s, e) = (start as usize, end as usize);
        (e.saturating_sub(s) - self.done.count_ones(s..e)) as u64
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
    pub(crate) fn next_undone(&mut self, skip: impl Fn(u64) -> bool) -> Option<u64> {
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

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn accept_is_idempotent() {
        let t0 = t0();
        let mut l = Ledger::new(3, 0);
        assert_eq!(l.accept(t0, 1, true, A), Accept::New);
        assert_eq!(l.accept(t0, 1, true, A), Accept::Duplicate);
        assert_eq!(l.accept(t0, 7, true, A), Accept::Duplicate);
        assert_eq!((l.done_count(), l.duplicates()), (1, 2));
        l.accept(t0, 0, false, A);
        l.accept(t0, 2, true, A);
        assert!(l.is_complete());
        assert_eq!(l.failed(), 1);
    }

    #[test]
    fn failures_are_retried_then_final() {
        let t0 = t0();
        let mut l = Ledger::new(2, 2);
        assert_eq!(l.accept(t0, 0, false, A), Accept::Retry);
        assert_eq!(l.failure(0), Some(Failure { count: 1, last_on: A, at: t0 }));
        let t1 = t0 + std::time::Duration::from_secs(1);
        assert_eq!(l.accept(t1, 0, false, B), Accept::Retry);
        assert_eq!(l.failure(0), Some(Failure { count: 2, last_on: B, at: t1 }));
        let s = std::time::Duration::from_secs(1);
        assert_eq!(l.failed_on_within(B, t1, Some(s)), vec![0]);
        assert!(l.failed_on_within(B, t1 + s, Some(s)).is_empty(), "the window has passed");
        assert_eq!(l.failed_on_within(B, t1 + s, None), vec![0], "no window: however long ago");
        assert!(l.failed_on_within(A, t1, Some(s)).is_empty());
        assert_eq!(l.failed_in(TaskRange::new(0, 2)), vec![(0, B)]);
        assert!(l.failed_in(TaskRange::new(1, 2)).is_empty());
        assert!(!l.is_done(0));
        assert_eq!(l.accept(t0, 0, false, A), Accept::New, "the third failure is final with 2 retries");
        assert_eq!((l.failed(), l.failure(0)), (1, None));
        assert_eq!(l.accept(t0, 0, true, B), Accept::Duplicate);
        // A success after a failure clears it and counts as done, not failed.
        assert_eq!(l.accept(t0, 1, false, A), Accept::Retry);
        assert_eq!(l.accept(t0, 1, true, B), Accept::New);
        assert_eq!((l.failed(), l.failure(1), l.is_complete()), (1, None, true));
    }

    #[test]
    fn reclaim_returns_only_undone_tasks_of_that_holder() {
        let t0 = t0();
        let mut l = Ledger::new(20, 0);
        l.lease(TaskRange::new(0, 10), A);
        l.lease(TaskRange::new(10, 20), B);
        l.lease(TaskRange::new(5, 12), B); // A keeps 0..5, B holds 5..20
        l.accept(t0, 6, true, A);
        l.accept(t0, 15, true, A);
        assert_eq!(
            l.reclaim(B),
            vec![TaskRange::new(5, 6), TaskRange::new(7, 12), TaskRange::new(12, 15), TaskRange::new(16, 20)]
        );
        assert!(l.reclaim(B).is_empty());
        assert_eq!(l.reclaim(A), vec![TaskRange::new(0, 5)]);
    }

    #[test]
    fn the_ledger_counts_what_each_holder_has_left_and_draws_by_it() {
        let t0 = t0();
        let c = NodeId(3);
        let mut l = Ledger::new(100, 0);
        l.lease(TaskRange::new(0, 60), A);
        l.lease(TaskRange::new(60, 100), B);
        assert_eq!((l.held_by(A), l.held_by(B)), (60, 40));
        // B's thief C takes the back half of B's range; a task A runs is done.
        l.lease(TaskRange::new(80, 100), c);
        l.accept(t0, 5, true, A);
        l.accept(t0, 5, true, A); // a duplicate changes nothing
        assert_eq!((l.held_by(A), l.held_by(B), l.held_by(c)), (59, 20, 20));
        // A lease over done and undone tasks moves only the undone ones, and a result
        // counts against whoever holds the task now.
        l.accept(t0, 90, true, c);
        l.lease(TaskRange::new(50, 95), B);
        assert_eq!((l.held_by(A), l.held_by(B), l.held_by(c)), (49, 44, 5));
        assert_eq!(l.reclaim(B).iter().map(TaskRange::len).sum::<u64>(), 44);
        assert_eq!(l.held_by(B), 0, "a reclaimed holder holds nothing");
        // Draws follow the counts, skip whom they are told to, and ignore small holders.
        let mut rng = fastrand::Rng::with_seed(1);
        let a_picks = (0..1000).filter(|_| l.draw_holder(&mut rng, 1, |_| false) == Some(A)).count();
        assert!((850..=960).contains(&a_picks), "A holds 49 of 54: {a_picks}");
        assert_eq!(l.draw_holder(&mut rng, 1, |h| h == A), Some(c));
        assert_eq!(l.draw_holder(&mut rng, 5, |h| h == A), None, "c holds only 5");
        for t in 0..100 {
            l.accept(t0, t, true, A);
        }
        assert_eq!(l.draw_holder(&mut rng, 0, |_| false), None, "all done: nobody holds work");
    }

    proptest::proptest! {
        /// However leases, results and reclaims interleave, each holder's count is the
        /// undone tasks of the ranges leased to it, counted one by one.
        #[test]
        fn held_counts_match_the_leases(ops in proptest::collection::vec((0u8..3, 0u64..40, 1u64..15, 1u64..4), 1..60)) {
            let t0 = t0();
            let mut l = Ledger::new(40, 0);
            for (op, start, len, who) in ops {
                let who = NodeId(who);
                match op {
                    0 => l.lease(TaskRange::new(start, start + len), who),
                    1 => { l.accept(t0, start, true, who); }
                    _ => { l.reclaim(who); }
                }
                for h in (1..4).map(NodeId) {
                    let want = (0..40).filter(|&t| !l.is_done(t) && l.holder_of(t) == Some(h)).count() as u64;
                    proptest::prop_assert_eq!(l.held_by(h), want, "holder {:?}", h);
                }
            }
        }
    }

    #[test]
    fn lease_splits_an_enclosing_range() {
        let mut l = Ledger::new(10, 0);
        l.lease(TaskRange::new(0, 10), A);
        l.lease(TaskRange::new(3, 4), B);
        assert_eq!(l.reclaim(A), vec![TaskRange::new(0, 3), TaskRange::new(4, 10)]);
        assert_eq!(l.reclaim(B), vec![TaskRange::new(3, 4)]);
    }

    #[test]
    fn next_undone_cycles_and_skips() {
        let t0 = t0();
        let mut l = Ledger::new(5, 0);
        l.accept(t0, 0, true, A);
        l.accept(t0, 3, true, A);
        assert_eq!(l.next_undone(|t| t == 1), Some(2));
        assert_eq!(l.next_undone(|_| false), Some(4));
        assert_eq!(l.next_undone(|_| false), Some(1));
        assert_eq!(l.next_undone(|_| true), None);
    }
}
