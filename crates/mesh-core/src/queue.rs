//! Queued work as index ranges, and the steal-half split.
//!
//! A node's queue for one job is a deque of half-open task ranges. Local workers take
//! single tasks from the front; a thief takes about half of the remaining tasks from the
//! back. Holding ranges instead of task lists means:
//!
//! * a job of a million tasks costs one 16-byte range, not a million entries;
//! * a steal message carries a few ranges whatever the amount of work it moves;
//! * work is split only when it is actually stolen, so a lone node never pays for it.
//!
//! Invariant: `len` is the sum of the lengths of `ranges`, and no range is empty.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The tasks `start..end` of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRange {
    pub start: u64,
    pub end: u64,
}

impl TaskRange {
    pub fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One job's queued tasks on one node.
#[derive(Debug, Default, Clone)]
pub(crate) struct WorkQueue {
    ranges: VecDeque<TaskRange>,
    len: u64,
}

impl WorkQueue {
    /// Number of queued tasks.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a range; empty ranges are ignored.
    pub(crate) fn push(&mut self, r: TaskRange) {
        if !r.is_empty() {
            self.len += r.len();
            self.ranges.push_back(r);
        }
    }

    /// Takes the next task from the front.
    pub(crate) fn pop(&mut self) -> Option<u64> {
        self.pop_batch(1).map(|r| r.start)
    }

    /// Takes up to `n` (at least 1) consecutive tasks from the front.
    pub(crate) fn pop_batch(&mut self, n: u64) -> Option<TaskRange> {
        let front = self.ranges.front_mut()?;
        let end = front.end.min(front.start + n.max(1));
        let run = TaskRange::new(front.start, end);
        front.start = end;
        if front.is_empty() {
            self.ranges.pop_front();
        }
        self.len -= run.len();
        Some(run)
    }

    /// Removes about half of the queued tasks (rounded up) from the back, as at most
    /// `max_ranges` ranges, and returns them. A queue of one task gives that task away:
    /// the victim's workers are all busy, so an idle thief starts it sooner.
    pub(crate) fn steal_half(&mut self, max_ranges: usize) -> Vec<TaskRange> {
        let mut want = self.len.div_ceil(2);
        let mut out = Vec::new();
        while want > 0 && out.len() < max_ranges {
            // Invariant: len > 0 while want > 0, so there is a back range.
            let Some(back) = self.ranges.back_mut() else { break };
            if back.len() <= want {
                let r = *back;
                self.ranges.pop_back();
                want -= r.len();
                self.len -= r.len();
                out.push(r);
            } else {
                let cut = back.end - want;
                out.push(TaskRange::new(cut, back.end));
                back.end = cut;
                self.len -= want;
                want = 0;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pop_in_order_then_empty() {
        let mut q = WorkQueue::default();
        q.push(TaskRange::new(3, 5));
        q.push(TaskRange::new(9, 10));
        q.push(TaskRange::new(7, 7));
        assert_eq!(q.len(), 3);
        assert_eq!((q.pop(), q.pop(), q.pop(), q.pop()), (Some(3), Some(4), Some(9), None));
        assert!(q.is_empty());
    }

    #[test]
    fn steal_takes_back_half() {
        let mut q = WorkQueue::default();
        q.push(TaskRange::new(0, 10));
        assert_eq!(q.steal_half(8), vec![TaskRange::new(5, 10)]);
        assert_eq!(q.len(), 5);
        assert_eq!(q.steal_half(8), vec![TaskRange::new(2, 5)]);
        assert_eq!(q.steal_half(8), vec![TaskRange::new(1, 2)]);
        assert_eq!(q.steal_half(8), vec![TaskRange::new(0, 1)]);
        assert!(q.steal_half(8).is_empty());
    }

    proptest! {
        /// Stealing and popping partition the queued tasks: nothing lost, nothing doubled.
        #[test]
        fn steal_and_pop_partition(
            lens in proptest::collection::vec(0u64..50, 1..8),
            ops in proptest::collection::vec(0u8..3, 0..40),
            max_ranges in 1usize..4,
        ) {
            let mut q = WorkQueue::default();
            let mut next = 0;
            let mut expected = Vec::new();
            for l in lens {
                q.push(TaskRange::new(next, next + l));
                expected.extend(next..next + l);
                next += l + 3;
            }
            let mut seen = Vec::new();
            for op in ops {
                if op == 0 {
                    let before = q.len();
                    let got = q.steal_half(max_ranges);
                    let n: u64 = got.iter().map(TaskRange::len).sum();
                    prop_assert!(n <= before.div_ceil(2));
                    prop_assert!(got.len() <= max_ranges);
                    prop_assert_eq!(q.len(), before - n);
                    seen.extend(got.iter().flat_map(|r| r.start..r.end));
                } else if let Some(t) = q.pop() {
                    seen.push(t);
                }
            }
            while let Some(t) = q.pop() {
                seen.push(t);
            }
            seen.sort_unstable();
            prop_assert_eq!(seen, expected);
        }
    }
}
