//! What the scheduler does when a message or a result did not make it: a message that
//! must arrive ([`Message::must_arrive`]) and was not delivered is sent again (results,
//! leases) or taken back (a grant's work, which the thief never got); a result whose
//! output could not be fetched runs again. While both ends live, no work is lost to a
//! dropped message, and no job waits for a backup run that its owner cannot do. More of
//! [`Scheduler`]'s methods; its state is in `mod.rs`.

use super::Scheduler;
use crate::id::{JobId, NodeId};
use crate::timer::Timer;
use crate::{Action, Message, Payload, Spec, TaskRange, TaskReport};
use std::time::Instant;

/// Messages waiting to be sent again; beyond this, the oldest is dropped (backup runs and
/// dead-peer recovery still cover what it carried).
pub(crate) const RESEND_MAX: usize = 1024;

impl<S: Spec, R: Payload> Scheduler<S, R> {
    /// The network could not deliver `msg` to `to` (no acknowledgement, connection lost).
    pub fn handle_undelivered(&mut self, now: Instant, to: NodeId, msg: Message<S, R>) {
        if self.peers.contains(to) {
            match msg {
                Message::Grant { work: Some(g), .. } => self.take_back_grant(g.job, &g.ranges),
                Message::Results { job, .. } | Message::Lease { job, .. } if self.ended.contains(&job) => {}
                Message::Results { .. } | Message::Lease { .. } => {
                    if self.resend.len() >= RESEND_MAX {
                        self.resend.pop_front();
                    }
                    self.resend.push_back((to, msg));
                    self.timers.set_if_earlier(Timer::Resend, now + self.cfg.resend_after);
                }
                _ => {}
            }
        }
        // A peer that is gone: its leases are reclaimed, and its jobs dropped, as it went.
        self.pump(now);
    }

    /// The owner got a result for `report.task` of `job` from `from` but could not fetch
    /// its output: the task runs again (away from `from` if another node may run it),
    /// without counting as a failure the first few times, and as one after that.
    pub fn handle_lost(&mut self, now: Instant, from: NodeId, job: JobId, report: TaskReport<R>) {
        let me = self.id;
        let task = report.task;
        let Some(j) = self.jobs.get_mut(&job) else { return };
        let Some(l) = j.ledger.as_mut() else { return };
        if l.lost(task) {
            l.lease(TaskRange::new(task, task + 1), me);
            j.add_retry(task, from);
            self.actions.push_back(Action::Retrying { job, from, report });
            self.enlist(job);
            self.pump(now);
        } else {
            self.accept(now, from, job, report);
            self.pump(now);
        }
    }

    /// Sends again what waited for [`Timer::Resend`].
    pub(super) fn resend(&mut self) {
        while let Some((to, msg)) = self.resend.pop_front() {
            let live = match &msg {
                Message::Results { job, .. } | Message::Lease { job, .. } => !self.ended.contains(job),
                _ => true,
            };
            if live && self.peers.contains(to) {
                self.actions.push_back(Action::Send { to, msg });
            }
        }
    }

    /// A grant the thief never got: its ranges are this node's again. On the owner, the
    /// lease comes back here and a failed task (a pinned retry among them) goes back on the
    /// retry list, avoiding the node it failed on.
    fn take_back_grant(&mut self, job: JobId, ranges: &[TaskRange]) {
        let me = self.id;
        let Some(j) = self.jobs.get_mut(&job) else { return };
        for &r in ranges {
            j.requeue(r, me);
        }
        self.enlist(job);
    }
}
