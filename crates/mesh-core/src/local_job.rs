//! One job as one node holds it: its queue, and on the owner its ledger and retries.
//!
//! The [`Scheduler`](super::Scheduler) decides between jobs and between nodes; a `Job`
//! answers for itself: which task to run next here, how many at once, which retries a
//! given thief may take, and how to take back work from a dead node. Invariants:
//! * `retry` (owner only) holds undone failed tasks, each with the node that must not run
//!   it again while another node may; a task is in it at most once. Every method that
//!   hands out retries takes `sole`: the node asking is the only live node that may run
//!   the job's tasks, so the avoidance does not hold (or the retry would wait for ever);
//! * `pinned` (thieves only) holds retries granted to this node, which it runs itself and
//!   never grants on, so a retry cannot drift back to where it failed.

use super::ledger::Ledger;
use super::queue::{TaskRange, WorkQueue};
use crate::id::NodeId;
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug)]
pub(super) struct Job<S> {
    pub(super) spec: S,
    pub(super) queue: WorkQueue,
    /// Present on the owner only.
    pub(super) ledger: Option<Ledger>,
    /// Owner only: failed tasks to run again, each with the node it must avoid.
    pub(super) retry: VecDeque<(u64, NodeId)>,
    /// Retries granted to this node: run here, never granted on.
    pub(super) pinned: WorkQueue,
    /// The mean time of this job's tasks here in nanoseconds (an exponential average),
    /// once known.
    mean_task_ns: Option<u64>,
    /// Grants of this job this node pushed to idle peers unasked.
    pub(super) pushes: u32,
}

impl<S> Job<S> {
    pub(super) fn new(spec: S, ledger: Option<Ledger>) -> Self {
        Self {
            spec,
            queue: WorkQueue::default(),
            ledger,
            retry: VecDeque::new(),
            pinned: WorkQueue::default(),
            mean_task_ns: None,
            pushes: 0,
        }
    }

    /// Tasks thieves may take: the queue and the owner's retries.
    pub(super) fn queued(&self) -> u64 {
        self.queue.len() + self.retry.len() as u64
    }

    /// Whether anything of this job waits here to run (for a node that does not own it).
    pub(super) fn has_local_work(&self) -> bool {
        !self.queue.is_empty() || !self.pinned.is_empty()
    }

    /// Whether `node` has anything of this job to run locally.
    pub(super) fn has_work_for(&self, node: NodeId, sole: bool) -> bool {
        self.has_local_work() || self.retry.iter().any(|&(_, avoid)| sole || avoid != node)
    }

    /// The next run of tasks here: a pinned retry, an owner's retry, or up to `run` tasks
    /// from the front of the queue.
    pub(super) fn next_run(&mut self, node: NodeId, sole: bool, run: u64) -> Option<TaskRange> {
        let single = |t: u64| TaskRange::new(t, t + 1);
        self.pinned.pop().or_else(|| self.take_retry(node, sole)).map(single).or_else(|| self.queue.pop_batch(run))
    }

    /// Takes a retry that `node` may run (any, when `sole`).
    fn take_retry(&mut self, node: NodeId, sole: bool) -> Option<u64> {
        let i = self.retry.iter().position(|&(_, avoid)| sole || avoid != node)?;
        self.retry.remove(i).map(|(t, _)| t)
    }

    /// Queues a failed task to run again, away from `avoid`.
    pub(super) fn add_retry(&mut self, task: u64, avoid: NodeId) {
        if !self.retry.iter().any(|&(t, _)| t == task) {
            self.retry.push_back((task, avoid));
        }
    }

    pub(super) fn has_retries_for(&self, thief: NodeId, sole: bool) -> bool {
        self.retry.iter().any(|&(_, avoid)| sole || avoid != thief)
    }

    /// About half of the retries `thief` may run (at most `max`), as one-task ranges.
    pub(super) fn take_retries_for(&mut self, thief: NodeId, sole: bool, max: usize) -> Vec<TaskRange> {
        let eligible = self.retry.iter().filter(|&&(_, avoid)| sole || avoid != thief).count();
        let mut want = eligible.div_ceil(2).min(max);
        let mut out = Vec::with_capacity(want);
        self.retry.retain(|&(t, avoid)| {
            let take = want > 0 && (sole || avoid != thief);
            if take {
                want -= 1;
                out.push(TaskRange::new(t, t + 1));
            }
            !take
        });
        out
    }

    /// Owner only: takes back what `dead` held and queues it again here, as `me`. Failed
    /// tasks go back to the retry list, still avoiding the node they failed on. Returns
    /// whether anything came back.
    /// What a thief gets: about half of the retries it may run, pinned to it, else about
    /// half of the queue; leased to it in the ledger if this node owns the job.
    pub(super) fn give(&mut self, thief: NodeId, sole: bool, max: usize) -> (Vec<TaskRange>, bool) {
        let retries = self.take_retries_for(thief, sole, max);
        let pinned = !retries.is_empty();
        let ranges = if pinned { retries } else { self.queue.steal_half(max) };
        if let Some(ledger) = self.ledger.as_mut() {
            for r in &ranges {
                ledger.lease(*r, thief);
            }
        }
        (ranges, pinned)
    }

    pub(super) fn take_back(&mut self, dead: NodeId, me: NodeId) -> bool {
        let Some(l) = self.ledger.as_mut() else { return false };
        let back = l.reclaim(dead);
        for &r in &back {
            self.requeue(r, me);
        }
        !back.is_empty()
    }

    /// Queues `r` here again, on the owner as its holder `me`: its failed tasks go to the
    /// retry list (still avoiding the node they failed on), never into the plain queue,
    /// where this node would run them again whatever they failed on. On a node that does
    /// not own the job, `r` simply joins the queue.
    pub(super) fn requeue(&mut self, r: TaskRange, me: NodeId) {
        let Some(l) = self.ledger.as_mut() else {
            self.queue.push(r);
            return;
        };
        l.lease(r, me);
        let mut start = r.start;
        for (t, avoid) in l.failed_in(r) {
            self.queue.push(TaskRange::new(start, t));
            self.add_retry(t, avoid);
            start = t + 1;
        }
        self.queue.push(TaskRange::new(start, r.end));
    }

    /// How many tasks to hand a worker at once: enough to last about `target`, at most
    /// `max`, and never more than a share of the queue that leaves the rest to thieves.
    pub(super) fn batch_len(&self, target: Duration, max: u64, workers: usize) -> u64 {
        let Some(mean) = self.mean_task_ns else { return 1 };
        let want = (target.as_nanos() as u64).checked_div(mean).unwrap_or(max);
        want.min(max).min(self.queue.len() / (2 * workers as u64 + 1)).max(1)
    }

    /// Folds a local task time into the mean.
    pub(super) fn observe(&mut self, took: Duration) {
        let t = took.as_nanos().min(u128::from(u64::MAX / 8)) as u64;
        self.mean_task_ns = Some(self.mean_task_ns.map_or(t, |m| (m * 7 + t) / 8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    #[test]
    fn retries_avoid_their_node_and_go_half_to_a_thief() {
        let mut j: Job<()> = Job::new((), Some(Ledger::new(10, 3)));
        for t in [1, 2, 3, 4] {
            j.add_retry(t, A);
        }
        j.add_retry(5, B);
        j.add_retry(5, B);
        assert_eq!(j.retry.len(), 5, "a task is on the list once");
        assert!(j.has_retries_for(B, false) && j.has_retries_for(A, false));
        // A may take only task 5, B any of the four others, half of them.
        assert_eq!(j.take_retries_for(A, false, 32), vec![TaskRange::new(5, 6)]);
        assert_eq!(j.take_retries_for(B, false, 32), vec![TaskRange::new(1, 2), TaskRange::new(2, 3)]);
        assert!(!j.has_work_for(A, false), "what is left avoids A");
        assert!(!j.has_retries_for(A, false));
        assert!(j.has_work_for(A, true), "unless A is the only node that may run them");
        assert!(j.has_retries_for(A, true));
        assert_eq!(j.next_run(B, false, 8), Some(TaskRange::new(3, 4)));
        assert_eq!(j.take_retries_for(A, true, 32), vec![TaskRange::new(4, 5)], "the sole runner takes it back");
    }

    #[test]
    fn runs_last_about_the_target_and_leave_work_to_thieves() {
        let mut j: Job<()> = Job::new((), None);
        j.queue.push(TaskRange::new(0, 10_000));
        let ms = Duration::from_millis(1);
        assert_eq!(j.batch_len(ms, 64, 2), 1, "one at a time until a task time is known");
        j.observe(Duration::from_micros(100));
        assert_eq!(j.batch_len(ms, 64, 2), 10);
        j.observe(Duration::ZERO);
        j.observe(Duration::ZERO);
        assert!(j.batch_len(ms, 64, 2) > 10, "faster tasks, longer runs");
        j.queue = WorkQueue::default();
        j.queue.push(TaskRange::new(0, 20));
        assert_eq!(j.batch_len(ms, 64, 2), 4, "at most a fifth of the queue with 2 workers");
    }
}
