//! Status gossip, as the scheduler runs it: a status every gossip interval, an early one
//! when the queue turns empty or non-empty or changes eightfold, and a budget that keeps
//! what each node of an idle mesh receives bounded however big the mesh grows. More of
//! [`Scheduler`]'s methods.
//!
//! Every node hears every other's status, so with n nodes each receives n statuses per
//! interval. The budget stretches the interval of a node that holds no job to
//! `n / gossip_budget` once the mesh is big enough, and the expiry of a silent peer in
//! step, so an idle mesh costs each node at most `gossip_budget` statuses a second
//! however big it grows. Up to 100 nodes the default changes nothing; at 1,000 an idle
//! node publishes every 10 s and an unplugged node is noticed after 50 s (a closed
//! connection still at once). A node with a job publishes every `gossip_interval`, and
//! early as above, unbudgeted: measured, bounding those statuses cost thieves too much
//! (docs/SCALING.md).

use super::{Published, Scheduler};
use crate::id::NodeId;
use crate::timer::Timer;
use crate::{Action, Message, Payload, Spec, Status};
use std::time::{Duration, Instant};

impl<S: Spec, R: Payload> Scheduler<S, R> {
    /// How often this node publishes its status now: stretched by the budget while it
    /// holds no job; every `gossip_interval` while it does, so thieves' view of queue
    /// lengths stays fresh where it matters.
    pub(super) fn gossip_interval(&self) -> Duration {
        if self.jobs.is_empty() { self.idle_gossip_interval() } else { self.cfg.gossip_interval }
    }

    /// The interval of a node without a job: `gossip_interval`, stretched so that n such
    /// nodes cost every node at most `gossip_budget` statuses a second.
    fn idle_gossip_interval(&self) -> Duration {
        let (base, budget) = (self.cfg.gossip_interval, self.cfg.gossip_budget);
        let nodes = self.peers.len() as f64 + 1.0;
        if budget > 0.0 { base.max(Duration::from_secs_f64(nodes / budget)) } else { base }
    }

    /// How long a silent peer is believed alive now: `peer_expiry`, stretched as the
    /// gossip interval is.
    pub fn peer_expiry(&self) -> Duration {
        let base = self.cfg.gossip_interval.as_secs_f64();
        let stretch = if base > 0.0 { self.idle_gossip_interval().as_secs_f64() / base } else { 1.0 };
        self.cfg.peer_expiry.mul_f64(stretch.max(1.0))
    }

    /// A peer's status. Work newly seen there ends this node's backoff (the backoff is for
    /// stale beliefs) and starts random asks while gossip lags behind.
    pub(super) fn on_status(&mut self, from: NodeId, now: Instant, s: Status) {
        let news = self.cfg.seek_work && s.queued > 0 && !self.peers.advertises_work(from);
        self.peers.update(now, from, s);
        // It is alive: the jobs dropped when it seemed gone may come back (a resumed job).
        for job in self.ended.forgive(from) {
            self.actions.push_back(Action::JobRevived { job });
        }
        if news {
            self.timers.stop(Timer::StealRetry);
            self.stealing.saw_work();
        }
    }

    pub(super) fn publish(&mut self, now: Instant) {
        let s = self.status();
        self.published = Some(Published { at: now, status: s });
        self.actions.push_back(Action::Broadcast(Message::Status(s)));
    }

    /// Publishes early when our queue turns empty or non-empty, so thieves learn of new
    /// work (and stop asking for gone work) without waiting a whole gossip interval; and
    /// when it grew or shrank eightfold (a big grant came in, or most of it ran), so that
    /// thieves' choice of the busiest weighs queues as they are near the end of a job.
    pub(super) fn maybe_publish(&mut self, now: Instant) {
        let Some(last) = self.published else { return };
        let queued: u64 = self.jobs.values().map(|j| j.queued()).sum();
        let was = last.status.queued;
        let shifted = queued > SHIFT * was + SHIFT_SLACK || SHIFT * queued + SHIFT_SLACK < was;
        if (queued > 0) != (was > 0) || (self.cfg.seek_work && shifted) {
            self.publish_soon(now);
        }
    }

    /// Publishes once `publish_min_gap` has passed since the last status, or now.
    pub(super) fn publish_soon(&mut self, now: Instant) {
        if let Some(last) = self.published {
            self.timers.set_if_earlier(Timer::Gossip, (last.at + self.cfg.publish_min_gap).max(now));
        }
    }
}

/// A queue this many times longer or shorter than last told is told early...
const SHIFT: u64 = 8;
/// ...when it changed by more than this many tasks, so small queues do not chatter.
const SHIFT_SLACK: u64 = 4;
