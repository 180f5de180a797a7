//! The per-node scheduler: local queues, work stealing, result routing and recovery.
//!
//! One `Scheduler` runs on every node and serves every job it has work for. Its rules:
//!
//! 1. **Local work first.** An idle worker takes the next task of the local queues,
//!    round-robin across jobs, so concurrent submitters share a node fairly.
//! 2. **Steal when idle.** With idle workers and nothing queued, the node asks one victim
//!    for work: the busiest of 8 random draws from the peers that advertise queued tasks
//!    (near ones; besides, at most one request goes to a remote peer across the slow
//!    link). The victim gives about half of its largest queue, as index ranges. Thieves also seek
//!    work that gossip has not told of yet: hints in empty answers, lifelines, and random
//!    asks shortly after finding work (`stealing.rs`). An empty answer or a timeout backs
//!    off exponentially, and a node that neither found nor heard of work lately sends
//!    nothing: idle meshes stay silent.
//! 3. **Results go to the owner.** A node that runs another node's tasks buffers the
//!    results and sends them in batches to the job's owner (the submitter).
//! 4. **The owner decides completion.** Its [`Ledger`] counts each task once.
//! 5. **Retries.** A failed task with retries left goes back to its owner's queue, marked
//!    with the node it failed on. That node does not run it again while another node may:
//!    the owner runs it, or grants it to another thief first.
//! 6. **Recovery.** When a peer dies the owner re-queues the undone tasks leased to it, and
//!    every node drops the jobs the dead peer owned. Results and leases that were not
//!    delivered go again, and a grant that was not is taken back. When nothing is left to
//!    steal, an idle owner re-runs its undone tasks itself (backup runs), so stragglers
//!    and stale leases can delay a job but never stall it. A failed task runs again away
//!    from the node it failed on, unless that node is the only one that may run it.
//!
//! Bounds: result buffers flush at `result_batch`; a grant carries at most
//! `max_grant_ranges` ranges; one steal is in flight at a time (and one more to a remote
//! peer); the ended-job tombstones keep the last
//! [`TOMBSTONES`](super::tombstones::TOMBSTONES) ids.

mod delivery;
mod gossip;
mod lending;
mod placing;
mod resume;
mod stealing;

pub use resume::{DoneTask, ResumeError};

use crate::faults::Faults;
use crate::id::{JobId, NodeId};
use crate::ledger::{Accept, Ledger};
use crate::local_job::Job;
use crate::needs::Facts;
use crate::outbox::Outbox;
use crate::peers::{Peers, Status};
use crate::queue::TaskRange;
use crate::rate::TokenBucket;
use crate::slots::Slots;
use crate::thief::{Slot, Stealing};
use crate::timer::{Timer, TimerTable};
use crate::tombstones::Tombstones;
use crate::unplaced::Placement;
use crate::{Action, Blame, Config, Counters, DropReason, Message, Payload, Progress, Spec, TaskReport};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

#[derive(Debug)]
pub struct Scheduler<S, R> {
    id: NodeId,
    cfg: Config,
    rng: fastrand::Rng,
    jobs: BTreeMap<JobId, Job<S>>,
    /// Jobs that may have queued work, in round-robin order.
    rr: VecDeque<JobId>,
    ended: Tombstones,
    slots: Slots,
    peers: Peers,
    timers: TimerTable,
    stealing: Stealing,
    outbox: Outbox<R>,
    actions: VecDeque<Action<S, R>>,
    next_seq: u32,
    tasks_done: u64,
    counters: Counters,
    published: Option<Published>,
    placement: Placement,
    /// Undelivered messages to send again, with their destination.
    resend: VecDeque<(NodeId, Message<S, R>)>,
    /// Whether this node lends its workers now (`mesh join --hours`, `--when-idle`).
    /// When not, it starts no new runs but the retries pinned to it, steals nothing and
    /// backs nothing up; it still grants, so what it holds goes to the others.
    lending: bool,
    /// Each thief's steal requests, bounded by `Config::steal_rate`.
    steal_asks: BTreeMap<NodeId, TokenBucket>,
    /// Tasks that failed by this node's own fault, and the pause they may have caused:
    /// while paused, the node takes no tasks, as when it does not lend.
    faults: Faults,
}

/// The status this node last gossiped, and when.
#[derive(Debug, Clone, Copy)]
struct Published {
    at: Instant,
    status: Status,
}

impl<S: Spec, R: Payload> Scheduler<S, R> {
    pub fn new(id: NodeId, cfg: Config, seed: u64, now: Instant) -> Self {
        let workers = cfg.workers as usize;
        let mut rng = fastrand::Rng::with_seed(seed);
        // A random first sequence number: a node that restarts with the same identity (a
        // short-lived `mesh submit` node) must not reuse job ids that peers remember as ended.
        let next_seq = rng.u32(..);
        let mut timers = TimerTable::default();
        timers.set(Timer::Gossip, now);
        timers.set(Timer::PeerSweep, now + cfg.peer_expiry / 4);
        Self {
            id,
            rng,
            jobs: BTreeMap::new(),
            rr: VecDeque::new(),
            ended: Tombstones::default(),
            slots: Slots::new(workers),
            peers: Peers::default(),
            timers,
            stealing: Stealing::new(cfg.steal_backoff_min, cfg.steal_backoff_max),
            outbox: Outbox::new(cfg.result_batch, cfg.result_batch_bytes),
            actions: VecDeque::new(),
            next_seq,
            tasks_done: 0,
            counters: Counters::default(),
            published: None,
            placement: Placement::default(),
            resend: VecDeque::new(),
            lending: true,
            steal_asks: BTreeMap::new(),
            faults: Faults::default(),
            cfg,
        }
    }

    // ---- getters ----

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn status(&self) -> Status {
        Status {
            // A node that lends nothing now offers no workers: the statistics and `mesh
            // peers` show it, and no peer waits for it.
            workers: if self.lends() { self.cfg.workers } else { 0 },
            busy: self.slots.busy() as u32,
            queued: self.jobs.values().map(Job::queued).sum(),
            tasks_done: self.tasks_done,
            steals: self.counters.steals,
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// The spec of a job this node has work for.
    pub fn spec(&self, job: JobId) -> Option<&S> {
        self.jobs.get(&job).map(|j| &j.spec)
    }

    /// Progress of a job this node owns and that has not finished.
    pub fn progress(&self, job: JobId) -> Option<Progress> {
        let l = self.jobs.get(&job)?.ledger.as_ref()?;
        Some(Progress {
            total: l.total(),
            done: l.done_count(),
            failed: l.failed(),
            retried: l.retried(),
            duplicates: l.duplicates(),
            backups: l.backups(),
            halted: false,
        })
    }

    /// Whether this node still has any work (queued or running) or owned jobs.
    pub fn is_idle(&self) -> bool {
        self.jobs.is_empty() && self.slots.all_idle()
    }

    // ---- inputs ----

    /// Submits a job of `tasks` tasks owned by this node. A failed task runs again up to
    /// `retries` times.
    pub fn submit(&mut self, now: Instant, spec: S, tasks: u64, retries: u32) -> JobId {
        let job = JobId { owner: self.id, seq: self.next_seq };
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut j = Job::new(spec, Some(Ledger::new(tasks, retries)));
        j.queue.push(TaskRange::new(0, tasks));
        self.jobs.insert(job, j);
        self.rr.push_back(job);
        if tasks == 0 {
            self.finish(now, job, false);
        } else if self.cfg.seek_work {
            // A new job is news for every idle node: tell it now, whatever the gap.
            self.timers.set(Timer::Gossip, now);
        }
        self.pump(now);
        job
    }

    /// Cancels a job this node owns: every node drops its work.
    pub fn cancel(&mut self, now: Instant, job: JobId) {
        if job.owner == self.id && self.jobs.contains_key(&job) {
            self.actions.push_back(Action::Broadcast(Message::JobEnded { job }));
            self.drop_job(job, DropReason::Cancelled);
            self.pump(now);
        }
    }

    /// A worker finished the task it was given.
    pub fn handle_task_done(&mut self, now: Instant, worker: usize, mut report: TaskReport<R>) {
        let Some((job, task)) = self.slots.task_done(worker) else { return };
        report.task = task;
        self.tasks_done += 1;
        self.note_fault(now, job, &report);
        if let Some(j) = self.jobs.get_mut(&job) {
            j.observe(report.took);
        }
        if job.owner == self.id {
            self.accept(now, self.id, job, report);
        } else if let Some(j) = self.jobs.get(&job) {
            // The last of this job here: its owner may be waiting for nothing else.
            let drained = !j.has_local_work() && !self.slots.jobs().contains(&job);
            if self.outbox.push(job, report) || drained {
                self.flush(job);
            } else {
                self.timers.set_if_earlier(Timer::FlushResults, now + self.cfg.result_delay);
            }
        }
        self.pump(now);
    }

    /// A message from a peer. Peers may be buggy or hostile: nothing here trusts them
    /// beyond what the message can affect.
    pub fn handle_message(&mut self, now: Instant, from: NodeId, msg: Message<S, R>) {
        match msg {
            Message::Status(s) => self.on_status(from, now, s),
            Message::Steal { req } => {
                if !self.on_steal(now, from, req) {
                    return;
                }
            }
            Message::Grant { req, work, hint } => self.on_grant(now, from, req, work, hint),
            Message::Lease { job, ranges } => {
                if let Some(l) = self.ledger_mut(job) {
                    let tasks = ranges.iter().map(TaskRange::len).sum();
                    for r in ranges {
                        l.lease(r, from);
                    }
                    self.actions.push_back(Action::Stolen { job, by: from, tasks });
                }
            }
            Message::Results { job, reports } => {
                if job.owner == self.id {
                    for r in reports {
                        self.accept(now, from, job, r);
                    }
                }
            }
            Message::JobEnded { job } => {
                // Only the owner may end a job.
                if job.owner == from {
                    if self.jobs.contains_key(&job) {
                        self.drop_job(job, DropReason::Ended);
                    }
                    if self.jobs.is_empty() {
                        self.stealing.stop_hunting();
                    }
                    self.ended.insert(job);
                }
            }
        }
        self.pump(now);
    }

    /// The network layer's word on whether `peer` is on another LAN (mDNS did not find
    /// it): a thief keeps at most one steal out to such peers, besides its near one.
    pub fn set_remote(&mut self, peer: NodeId, remote: bool) {
        self.peers.set_remote(peer, remote);
    }

    /// What a peer offers, as it gossips it; steals and grants follow it.
    pub fn handle_facts(&mut self, now: Instant, peer: NodeId, facts: Facts) {
        self.peers.set_facts(peer, facts);
        self.pump(now);
    }

    /// The network layer learned that a peer left or its connection is gone for good.
    pub fn handle_peer_gone(&mut self, now: Instant, peer: NodeId) {
        self.steal_asks.remove(&peer);
        if self.peers.remove(peer) {
            self.peer_down(peer);
        }
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for t in self.timers.expired(now) {
            match t {
                Timer::Gossip => {
                    self.publish(now);
                    self.timers.set(Timer::Gossip, now + self.gossip_interval());
                }
                Timer::PeerSweep => {
                    for dead in self.peers.expire(now, self.peer_expiry()) {
                        self.peer_down(dead);
                    }
                    self.retire_drained();
                    self.check_placement(now);
                    self.timers.set(Timer::PeerSweep, now + self.peer_expiry() / 4);
                }
                Timer::StealTimeout => {
                    if let Some(victim) = self.stealing.timed_out(Slot::Near) {
                        self.peers.mark_empty(victim);
                        self.back_off(now);
                    }
                }
                Timer::FarStealTimeout => {
                    if let Some(victim) = self.stealing.timed_out(Slot::Far) {
                        self.peers.mark_empty(victim);
                    }
                }
                Timer::StealRetry => {}
                Timer::FlushResults => {
                    for job in self.outbox.jobs() {
                        self.flush(job);
                    }
                }
                Timer::Resend => self.resend(),
                Timer::Resume => self.resume(now),
            }
        }
        self.pump(now);
    }

    // ---- outputs ----

    pub fn poll_action(&mut self) -> Option<Action<S, R>> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ---- internals ----

    /// Puts idle workers to work: local tasks, else a steal, else backup runs. A node
    /// that does not lend now runs only the retries pinned to it (no other node may take
    /// them).
    fn pump(&mut self, now: Instant) {
        if self.cfg.seek_work {
            self.feed_lifelines(now);
        }
        if !self.lends() {
            while let Some(worker) = self.slots.next_idle() {
                let pinned = self.jobs.iter_mut().find_map(|(&id, j)| j.pinned.pop().map(|t| (id, t)));
                let Some((job, task)) = pinned else { break };
                self.start(worker, job, TaskRange::new(task, task + 1), false);
            }
            self.maybe_publish(now);
            return;
        }
        while let Some(worker) = self.slots.next_idle() {
            let Some((job, run)) = self.next_local_batch() else { break };
            self.start(worker, job, run, false);
        }
        if self.cfg.push_to_idle {
            self.push_to_idle();
        }
        self.steal_if_idle(now);
        self.maybe_publish(now);
    }

    fn next_local_batch(&mut self) -> Option<(JobId, TaskRange)> {
        let me = self.id;
        let (target, max, workers) = (self.cfg.batch_target, self.cfg.max_batch, self.slots.len());
        while let Some(job) = self.rr.pop_front() {
            if !self.may_run(job) {
                continue; // its work waits for a node that can run it
            }
            let sole = self.sole_runner(job, me);
            let Some(j) = self.jobs.get_mut(&job) else { continue };
            let len = j.batch_len(target, max, workers);
            if let Some(run) = j.next_run(me, sole, len) {
                if j.has_work_for(me, sole) {
                    self.rr.push_back(job);
                }
                return Some((job, run));
            }
        }
        None
    }

    /// Lists a job for round-robin service, once.
    fn enlist(&mut self, job: JobId) {
        if !self.rr.contains(&job) {
            self.rr.push_back(job);
        }
    }

    fn start(&mut self, worker: usize, job: JobId, tasks: TaskRange, backup: bool) {
        self.slots.start(worker, job, tasks);
        let own = self.runs_as_own(job);
        self.actions.push_back(Action::Start { worker, job, tasks, backup, own });
    }

    fn accept(&mut self, now: Instant, from: NodeId, job: JobId, report: TaskReport<R>) {
        let me = self.id;
        // The node's fault, not the task's: it runs again elsewhere without using a retry,
        // as a result that could not be fetched does (a few times, then it counts). Where
        // no other node may run it, it counts at once, as any failure.
        let elsewhere = report.blame == Blame::Node && !report.succeeded() && !self.sole_runner(job, from);
        let Some(j) = self.jobs.get_mut(&job) else { return };
        let Some(ledger) = j.ledger.as_mut() else { return };
        if elsewhere && ledger.lost(report.task) {
            let task = report.task;
            ledger.lease(TaskRange::new(task, task + 1), me);
            j.add_retry(task, from);
            self.actions.push_back(Action::Retrying { job, from, report });
            self.enlist(job);
            return;
        }
        match ledger.accept(now, report.task, report.succeeded(), from) {
            Accept::New => {
                let complete = ledger.is_complete();
                let (failed, total) = (ledger.failed(), ledger.total());
                let halts = j.spec.halt().is_some_and(|h| h.reached(ledger.done_count() - failed, failed, total));
                // Done now (a backup's result, or a final failure): no retry is owed.
                j.retry.retain(|&(t, _)| t != report.task);
                self.actions.push_back(Action::Accepted { job, from, report });
                if complete || halts {
                    self.finish(now, job, halts && !complete);
                }
            }
            Accept::Retry => {
                let task = report.task;
                ledger.lease(TaskRange::new(task, task + 1), me);
                j.add_retry(task, from);
                self.actions.push_back(Action::Retrying { job, from, report });
                self.enlist(job);
            }
            Accept::Duplicate => {}
        }
    }

    /// Ends an owned job: complete, or `halted` early (its tasks without a result will
    /// not run). Every node drops its work.
    fn finish(&mut self, now: Instant, job: JobId, halted: bool) {
        let Some(mut progress) = self.progress(job) else { return };
        progress.halted = halted;
        self.placement.retain(|j| *j != job);
        self.jobs.remove(&job);
        self.ended.insert(job);
        self.actions.push_back(Action::JobFinished { job, progress });
        self.actions.push_back(Action::Broadcast(Message::JobEnded { job }));
        // Every node's dashboard shows this node's jobs from its announces: tell the end
        // soon, not a whole (perhaps budget-stretched) interval later.
        self.publish_soon(now);
    }

    fn drop_job(&mut self, job: JobId, reason: DropReason) {
        self.jobs.remove(&job);
        self.outbox.discard(job);
        self.ended.insert_dropped(job, reason == DropReason::OwnerGone);
        self.actions.push_back(Action::JobDropped { job, reason });
    }

    fn peer_down(&mut self, peer: NodeId) {
        for slot in self.stealing.peer_gone(peer) {
            self.timers.stop(slot.timeout());
        }
        let orphaned: Vec<JobId> = self.jobs.keys().filter(|j| j.owner == peer).copied().collect();
        for job in orphaned {
            self.drop_job(job, DropReason::OwnerGone);
        }
        let me = self.id;
        let mut requeued = Vec::new();
        for (&job, j) in self.jobs.iter_mut() {
            if j.take_back(peer, me) {
                requeued.push(job);
            }
        }
        // With one peer fewer, this node may now be the only one left to run a retry.
        let retrying = self.jobs.iter().filter(|(_, j)| !j.retry.is_empty()).map(|(&id, _)| id);
        requeued.extend(retrying);
        for job in requeued {
            self.enlist(job);
        }
    }

    /// Forgets foreign jobs with nothing queued, running or buffered here. Normally the
    /// owner's `JobEnded` does this; the sweep covers a lost one.
    fn retire_drained(&mut self) {
        let me = self.id;
        let busy = self.slots.jobs();
        self.jobs
            .retain(|job, j| job.owner == me || j.has_local_work() || busy.contains(job) || self.outbox.holds(job));
    }

    fn flush(&mut self, job: JobId) {
        if let Some(reports) = self.outbox.take(job) {
            let msg = Message::Results { job, reports };
            self.actions.push_back(Action::Send { to: job.owner, msg });
        }
        if self.outbox.is_empty() {
            self.timers.stop(Timer::FlushResults);
        }
    }

    fn ledger_mut(&mut self, job: JobId) -> Option<&mut Ledger> {
        self.jobs.get_mut(&job)?.ledger.as_mut()
    }
}
