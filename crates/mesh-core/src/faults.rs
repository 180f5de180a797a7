//! A node's own faults: a task that failed because of the node that ran it, not because
//! of the task ([`Blame::Node`](super::Blame): no space or no file descriptors left, a file
//! it could not fetch, a program it could not start).
//!
//! Such a failure uses none of the task's retries: its owner runs it again elsewhere (see
//! `Scheduler::accept`). A node that fails [`FAULTS_BEFORE_PAUSE`] tasks in a row this way
//! stops taking tasks for a while, as a node that stops lending does: [`PAUSE_FIRST`], then
//! twice as long after each pause that ended in another fault, up to [`PAUSE_MAX`]. One
//! task that runs (well or not, by its own doing) resets both. Without this, a node with a
//! full disk fails tasks in microseconds, and so steals and fails most of every job.
//!
//! Pure: time comes in.

use std::time::{Duration, Instant};

/// Node faults in a row before the node pauses.
pub const FAULTS_BEFORE_PAUSE: u32 = 3;
/// The first pause.
pub const PAUSE_FIRST: Duration = Duration::from_secs(10);
/// The longest pause.
pub const PAUSE_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Node faults since the last task that ran.
    in_a_row: u32,
    /// Pauses since the last task that ran.
    pauses: u32,
    /// While paused: until when.
    until: Option<Instant>,
}

impl Faults {
    /// A task failed by the node's fault. Returns the pause that starts now, if one does.
    pub(crate) fn fault(&mut self, now: Instant) -> Option<Duration> {
        // Tasks that were running when the pause began do not count again.
        if self.until.is_some() {
            return None;
        }
        self.in_a_row += 1;
        if self.in_a_row < FAULTS_BEFORE_PAUSE {
            return None;
        }
        let pause = PAUSE_FIRST.saturating_mul(1 << self.pauses.min(10)).min(PAUSE_MAX);
        self.pauses += 1;
        self.in_a_row = 0;
        self.until = Some(now + pause);
        Some(pause)
    }

    /// A task ran: the node works.
    pub(crate) fn ran(&mut self) {
        self.in_a_row = 0;
        self.pauses = 0;
    }

    pub(crate) fn paused(&self) -> bool {
        self.until.is_some()
    }

    /// Ends the pause if its time has come; returns whether it did.
    pub(crate) fn resume(&mut self, now: Instant) -> bool {
        match self.until {
            Some(t) if t <= now => {
                self.until = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_after_faults_in_a_row_and_doubles_until_a_task_runs() {
        let t0 = Instant::now();
        let mut f = Faults::default();
        assert_eq!((f.fault(t0), f.fault(t0)), (None, None));
        f.ran();
        assert_eq!((f.fault(t0), f.fault(t0)), (None, None), "a task that ran resets the count");
        assert_eq!(f.fault(t0), Some(PAUSE_FIRST));
        assert!(f.paused() && !f.resume(t0));
        assert_eq!(f.fault(t0), None, "no new pause while paused");
        assert!(f.resume(t0 + PAUSE_FIRST) && !f.paused());
        let mut pauses = Vec::new();
        for _ in 0..8 {
            let faults: Vec<Option<Duration>> = (0..FAULTS_BEFORE_PAUSE).map(|_| f.fault(t0)).collect();
            assert!(faults[..2].iter().all(Option::is_none), "{faults:?}");
            pauses.push(faults[2].expect("the third fault in a row pauses"));
            assert!(f.resume(t0 + PAUSE_MAX));
        }
        assert_eq!(pauses[0], PAUSE_FIRST * 2, "the pause after a pause is twice as long");
        assert_eq!(*pauses.last().unwrap(), PAUSE_MAX, "and bounded");
        f.ran();
        assert_eq!((0..3).find_map(|_| f.fault(t0)), Some(PAUSE_FIRST), "a task that ran resets the pauses");
    }
}
