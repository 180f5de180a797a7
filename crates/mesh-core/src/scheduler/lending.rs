//! Whether this node takes tasks now: its owner lends its workers (`mesh join --hours`,
//! `--when-idle`), and it is not paused after failing tasks by its own fault (`faults`).
//! A node that takes none finishes the runs it has started, runs only the retries pinned
//! to it, and its queued work goes to thieves. More of [`Scheduler`]'s methods; its state
//! is in `mod.rs`.

use super::Scheduler;
use crate::id::JobId;
use crate::timer::Timer;
use crate::{Action, Blame, Payload, Spec, TaskReport};
use std::time::Instant;

impl<S: Spec, R: Payload> Scheduler<S, R> {
    /// Whether this node lends its workers from now on. A node that stops lending
    /// finishes the runs it has started, and its queued work goes to thieves; its peers
    /// learn it from the next gossip.
    pub fn set_lending(&mut self, now: Instant, lending: bool) {
        if self.lending != lending {
            self.lending = lending;
            self.publish(now);
            self.pump(now);
        }
    }

    /// Whether this node takes tasks now: it lends its workers, and is not paused after
    /// faults of its own.
    pub(super) fn lends(&self) -> bool {
        self.lending && !self.faults.paused()
    }

    /// A worker's report, as it bears on this node's health. A fault of this node's counts
    /// toward a pause only where another node could run the task: the only node that may
    /// run a job fails its tasks for good instead, and keeps on.
    pub(super) fn note_fault(&mut self, now: Instant, job: JobId, report: &TaskReport<R>) {
        if report.blame == Blame::Node && !report.succeeded() {
            if !self.sole_runner(job, self.id)
                && let Some(pause) = self.faults.fault(now)
            {
                let cause = report.outcome.as_ref().err().cloned().unwrap_or_else(|| "it could not start".into());
                self.timers.set(Timer::Resume, now + pause);
                self.actions.push_back(Action::Paused { pause, cause });
                self.publish(now);
            }
        } else {
            self.faults.ran();
        }
    }

    /// A pause's time is over: the node takes tasks again.
    pub(super) fn resume(&mut self, now: Instant) {
        if self.faults.resume(now) {
            self.publish(now);
        }
    }
}
