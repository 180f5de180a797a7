//! The steal exchange, as the scheduler runs it: a thief asks one victim at a time, the
//! victim grants about half of a job that the thief may run (retries it may run first,
//! pinned to it), and the thief queues the ranges and tells the job's owner by a lease.
//! More of [`Scheduler`]'s methods; its state is in `mod.rs`, the thief's request and
//! backoff in `thief`.

use super::Scheduler;
use crate::id::{JobId, NodeId};
use crate::local_job::Job;
use crate::peers::Reach;
use crate::queue::TaskRange;
use crate::rate::TokenBucket;
use crate::thief::Slot;
use crate::timer::Timer;
use crate::{Action, Grant, Message, Payload, Spec};
use std::time::{Duration, Instant};

/// Grants pushed per event, at most.
const MAX_PUSHES: usize = 8;
/// Grants of one job one node pushes, at most.
const PUSHES_PER_JOB: u32 = 8;
/// The request id of a pushed grant: no steal asked for it.
const PUSHED: u64 = u64::MAX;
/// How long a thief answered with nothing stays on this node's lifelines.
const LIFELINE_AGE: Duration = Duration::from_secs(1);

impl<S: Spec, R: Payload> Scheduler<S, R> {
    /// Asks `victim` for work: in the far slot when it is remote and stealing is
    /// cluster-aware, else in the one every thief has.
    pub(super) fn send_steal(&mut self, now: Instant, victim: NodeId) {
        let far = self.cfg.cluster_aware && self.peers.is_remote(victim);
        let req = self.stealing.ask(victim, far);
        self.counters.steal_requests += 1;
        let slot = if far { Slot::Far } else { Slot::Near };
        self.timers.set(slot.timeout(), now + self.cfg.steal_timeout);
        self.actions.push_back(Action::Send { to: victim, msg: Message::Steal { req } });
    }

    /// Idle workers and nothing to run: ask for work. Random stealing keeps one request
    /// out, to any peer that advertises work. Cluster-aware, a thief keeps one out to a
    /// near peer and, besides it, one across the slow link, so the link's round trip
    /// overlaps near steals instead of stalling them (Satin's CRS). With no victim near,
    /// a thief that found work lately asks random near peers (`Stealing::hunting`), and
    /// with none anywhere the owner backs up its own undone tasks.
    pub(super) fn steal_if_idle(&mut self, now: Instant) {
        if self.slots.next_idle().is_none() {
            return;
        }
        let can_steal = !self.timers.is_armed(Timer::StealRetry);
        let aware = self.cfg.cluster_aware;
        let far =
            if aware { self.peers.choose_victim(&mut self.rng, Reach::Far, self.cfg.victim_choices) } else { None };
        if let Some(victim) = far.filter(|_| can_steal && !self.stealing.is_waiting_far()) {
            self.send_steal(now, victim);
        }
        if self.stealing.is_waiting() {
            return;
        }
        let reach = if aware { Reach::Near } else { Reach::All };
        match self.peers.choose_victim(&mut self.rng, reach, self.cfg.victim_choices) {
            Some(victim) if can_steal => self.send_steal(now, victim),
            Some(_) => {}
            None => {
                let hunt = can_steal && self.cfg.seek_work && self.stealing.hunting();
                if let Some(victim) = hunt.then(|| self.peers.choose_any(&mut self.rng, reach)).flatten() {
                    self.send_steal(now, victim);
                }
                if far.is_none() {
                    self.speculate(now);
                }
            }
        }
    }

    /// A thief asks for work. Returns false when it asks over its rate (`Config::
    /// steal_rate`): it gets no answer, and its own timeout covers that.
    pub(super) fn on_steal(&mut self, now: Instant, from: NodeId, req: u64) -> bool {
        self.counters.steal_requests_received += 1;
        let (rate, burst) = (self.cfg.steal_rate, self.cfg.steal_burst);
        let asks = self.steal_asks.entry(from).or_insert_with(|| TokenBucket::new(rate, burst, now));
        if !asks.take(now) {
            self.counters.steal_requests_refused += 1;
            return false;
        }
        let work = self.grant(from);
        // Nothing here: keep the thief on a lifeline, and name a peer that has work so the
        // thief need not wait for gossip to find the last of a job's work: as an owner, a
        // holder its ledger knows of; else the peer this node last granted work to.
        let hint = match work {
            None if self.cfg.seek_work => {
                self.peers.note_waiting(from, now);
                let held = self.holder_hint(from);
                self.counters.ledger_hints += u64::from(held.is_some());
                held.or_else(|| self.peers.choose_hint(from))
            }
            _ => None,
        };
        self.actions.push_back(Action::Send { to: from, msg: Message::Grant { req, work, hint } });
        true
    }

    /// For a thief this node, as an owner, has nothing for: a holder of its job's work,
    /// drawn in proportion to the undone tasks its ledger says each holds (more than the
    /// one a holder may be running).
    fn holder_hint(&mut self, thief: NodeId) -> Option<NodeId> {
        let me = self.id;
        let peers = &self.peers;
        let skip = |h: NodeId| h == thief || h == me || !peers.contains(h);
        self.jobs.values().filter_map(|j| j.ledger.as_ref()).find_map(|l| l.draw_holder(&mut self.rng, 1, skip))
    }

    /// A thief asks: give it about half of the retries it may run, if any; else about half
    /// of the largest local queue.
    pub(super) fn grant(&mut self, thief: NodeId) -> Option<Grant<S>> {
        let max = self.cfg.max_grant_ranges;
        // The jobs the thief may run, and whether it is the only node that may.
        let runnable: Vec<(JobId, bool)> = self
            .jobs
            .iter()
            .filter(|(_, j)| self.thief_may_run(j.spec.needs(), thief))
            .map(|(&id, _)| (id, self.sole_runner(id, thief)))
            .collect();
        let sole = |id: &JobId| runnable.iter().find(|(j, _)| j == id).map(|&(_, sole)| sole);
        let (&job, j) = match self.jobs.iter_mut().find(|(id, j)| sole(id).is_some_and(|s| j.has_retries_for(thief, s)))
        {
            Some(found) => found,
            None => self
                .jobs
                .iter_mut()
                .filter(|(id, j)| sole(id).is_some() && !j.queue.is_empty())
                .max_by_key(|(_, j)| j.queue.len())?,
        };
        let (ranges, pinned) = j.give(thief, sole(&job).unwrap_or(false), max);
        self.peers.note_grant(thief);
        self.counters.tasks_given += ranges.iter().map(TaskRange::len).sum::<u64>();
        Some(Grant { job, spec: j.spec.clone(), ranges, pinned })
    }

    /// Lifelines: while this node queues more than two tasks per worker, it grants about
    /// half to the newest thief it lately answered with nothing, unasked. That thief was
    /// idle a moment ago, which no gossip can tell as fresh, and it shares on the same way,
    /// so the last of a job's work spreads in a few message delays instead of waiting for
    /// thieves to find it.
    pub(super) fn feed_lifelines(&mut self, now: Instant) {
        let keep = 2 * self.slots.len() as u64;
        for _ in 0..MAX_PUSHES {
            if self.jobs.values().map(Job::queued).sum::<u64>() <= keep {
                return;
            }
            let Some(thief) = self.peers.take_waiting(now, LIFELINE_AGE) else { return };
            if let Some(work) = self.grant(thief) {
                self.counters.pushes += 1;
                self.actions.push_back(Action::Send {
                    to: thief,
                    msg: Message::Grant { req: PUSHED, work: Some(work), hint: None },
                });
            }
        }
    }

    /// Work sharing: while this node queues more than two tasks per worker, it grants about
    /// half to a peer it believes idle, unasked. The peer takes it as any grant (and leases
    /// it from the owner); each receiver shares on in turn, so a job reaches every idle
    /// node in O(log n) message delays. Nothing is pushed from an idle node, so an idle
    /// mesh stays silent.
    pub(super) fn push_to_idle(&mut self) {
        let keep = 2 * self.slots.len() as u64;
        for _ in 0..MAX_PUSHES {
            // Each node pushes a job's work a few times at most: a tree of fan-out
            // PUSHES_PER_JOB reaches n nodes in log n generations, and more pushes would
            // only move work back and forth on stale beliefs of who is idle.
            let queued: u64 = self.jobs.values().filter(|j| j.pushes < PUSHES_PER_JOB).map(|j| j.queued()).sum();
            if queued <= keep {
                return;
            }
            let Some(peer) = self.peers.choose_idle(&mut self.rng) else { return };
            let work = self.grant(peer);
            let tasks = work.as_ref().map_or(0, |g| g.ranges.iter().map(TaskRange::len).sum());
            self.peers.mark_fed(peer, tasks);
            if let Some(g) = &work {
                if let Some(j) = self.jobs.get_mut(&g.job) {
                    j.pushes += 1;
                }
                self.counters.pushes += 1;
                self.actions
                    .push_back(Action::Send { to: peer, msg: Message::Grant { req: PUSHED, work, hint: None } });
            }
        }
    }

    pub(super) fn on_grant(
        &mut self,
        now: Instant,
        victim: NodeId,
        req: u64,
        work: Option<Grant<S>>,
        hint: Option<NodeId>,
    ) {
        let slot = self.stealing.answered(req, victim);
        if let Some(slot) = slot {
            self.timers.stop(slot.timeout());
        }
        // Work is accepted even when its request timed out: dropping it would lose it. A
        // grant of a job that names this node as its owner but was not submitted here is
        // forged (or of a job long gone): taking it would run someone's program as if this
        // node's own user had asked for it.
        let Some(g) = work.filter(|g| !g.ranges.is_empty() && !self.ended.contains(&g.job) && !self.forged(g.job))
        else {
            self.peers.mark_empty(victim);
            if slot == Some(Slot::Far) {
                return; // the far slot is used only while a remote peer advertises work
            }
            // An empty answer to the request out now may name a peer with work: ask it at
            // once, a few hops at most. Only members are asked, so a hint cannot make this
            // node dial anyone new.
            let idle = self.lends() && self.slots.next_idle().is_some();
            let current = slot == Some(Slot::Near);
            let mut next = hint.filter(|&h| current && idle && h != self.id && h != victim && self.peers.contains(h));
            // A hint across the slow link yields to a near peer believed to have work.
            if self.cfg.cluster_aware && next.is_some_and(|h| self.peers.is_remote(h)) {
                let near = self.peers.choose_victim(&mut self.rng, Reach::Near, self.cfg.victim_choices);
                next = near.or(next);
            }
            // ...and waits if the one request across the link is out already.
            let far_busy =
                |h: NodeId| self.cfg.cluster_aware && self.peers.is_remote(h) && self.stealing.is_waiting_far();
            if let Some(h) = next.filter(|&h| !far_busy(h))
                && self.stealing.follow_hint()
            {
                self.counters.hints_followed += 1;
                self.send_steal(now, h);
                return;
            }
            self.back_off(now);
            return;
        };
        self.counters.steals += 1;
        self.stealing.succeeded();
        self.timers.stop(Timer::StealRetry);
        let (job, me) = (g.job, self.id);
        let j = self.jobs.entry(job).or_insert_with(|| Job::new(g.spec, None));
        for r in &g.ranges {
            self.counters.tasks_stolen += r.len();
            // Work of this node's own job coming back (stolen from a thief that held it):
            // what failed here meanwhile stays a retry for the other nodes.
            if !g.pinned {
                j.requeue(*r, me);
                continue;
            }
            j.pinned.push(*r);
            if let Some(l) = j.ledger.as_mut() {
                l.lease(*r, me);
            }
        }
        if j.ledger.is_some() {
            let tasks = g.ranges.iter().map(TaskRange::len).sum();
            self.actions.push_back(Action::Stolen { job, by: self.id, tasks });
        } else {
            let msg = Message::Lease { job, ranges: g.ranges };
            self.actions.push_back(Action::Send { to: job.owner, msg });
        }
        self.enlist(job);
    }

    /// Whether `job` claims to be this node's own without having been submitted here.
    fn forged(&self, job: JobId) -> bool {
        job.owner == self.id && self.jobs.get(&job).is_none_or(|j| j.ledger.is_none())
    }

    pub(super) fn back_off(&mut self, now: Instant) {
        let wait = self.stealing.back_off();
        self.timers.set(Timer::StealRetry, now + wait);
    }
}
