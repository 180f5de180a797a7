//! A deterministic N-node simulator for the scheduler core.
//!
//! It drives N [`Scheduler`]s on a virtual clock: messages take a seeded random latency and
//! may be lost or cut by a partition, tasks take a seeded random time divided by their
//! node's speed, and nodes can be killed at a set time. Everything comes from one seed, so a
//! failing case replays exactly. A run costs milliseconds, which lets proptest try hundreds
//! of meshes. `drive` stops with an error after a fixed number of events, which turns a
//! livelock into a test failure instead of a hang.
//!
//! Task outputs are a hash of (job salt, task), so the simulator knows the exact expected
//! result of every job and checks it. Tasks can also fail: every task on a `broken` node,
//! and "poison" tasks on every node, which exercises retries.
//!
//! Nodes have [`Facts`] and jobs [`Needs`] and halt rules: every run the core hands a
//! node is checked against the job's needs, and any breach is recorded in
//! [`Sim::violations`].

#[cfg(test)]
use crate::Facts;
use crate::id::{JobId, NodeId};
use crate::{Action, Blame, Config, Halt, Message, Needs, Scheduler, TaskReport};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Why [`Sim::drive`] gave up before every job with a live owner finished. Each names the
/// unfinished jobs, with how many of their tasks were accepted.
#[derive(Debug, thiserror::Error)]
pub enum Stuck {
    #[error("no events left, but jobs are unfinished: {unfinished:?}")]
    Quiet { unfinished: Vec<(JobId, u64)> },
    #[error("virtual deadline {deadline:?} passed; unfinished: {unfinished:?}")]
    Deadline { deadline: Duration, unfinished: Vec<(JobId, u64)> },
    #[error("livelock: {events} events; unfinished: {unfinished:?}")]
    Livelock { events: u64, unfinished: Vec<(JobId, u64)> },
}

mod journal;
mod restart;
mod run;
mod setup;
pub use setup::{JobOutcome, NodeSpec, SimConfig, SimSpec};

type Spec = SimSpec;

/// How long after a lost message that must arrive its sender hears of it, as from the
/// network layer's request timeout.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        msg: Message<Spec, u64>,
    },
    /// `node`'s message to `to` was not acknowledged.
    Undelivered {
        node: usize,
        to: usize,
        msg: Message<Spec, u64>,
    },
    Done {
        node: usize,
        worker: usize,
        task: u64,
        value: Result<u64, String>,
        blame: Blame,
        took: Duration,
    },
    Wake {
        node: usize,
    },
    /// `crash`: the peers learn at once (a killed process's connections close); otherwise
    /// they notice only by its silence (an unplugged node).
    Kill {
        node: usize,
        crash: bool,
    },
    Submit {
        node: usize,
        spec: SimSpec,
        tasks: u64,
    },
    Cut {
        side: Vec<usize>,
        until: Duration,
    },
    /// `node` starts or stops lending its workers (`mesh join --hours`, `--when-idle`).
    Lend {
        node: usize,
        lending: bool,
    },
    /// `node` commits its journal, or starts again and resumes its jobs (`restart.rs`).
    Commit {
        node: usize,
    },
    Restart {
        node: usize,
    },
}

#[derive(Debug)]
struct SimNode {
    sched: Scheduler<Spec, u64>,
    speed: f64,
    alive: bool,
    lending: bool,
    wake_at: Option<Instant>,
    /// Jobs whose tasks its driver no longer starts (a real node's cancel flags).
    stopped: HashSet<JobId>,
}

#[derive(Debug)]
pub struct Sim {
    cfg: SimConfig,
    t0: Instant,
    now: Instant,
    nodes: Vec<SimNode>,
    index: HashMap<NodeId, usize>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    events: HashMap<u64, Event>,
    seq: u64,
    rng: fastrand::Rng,
    /// Active partition: the side and when it heals.
    cut: Option<(Vec<usize>, Instant)>,
    pub jobs: BTreeMap<JobId, JobOutcome>,
    pub messages: u64,
    pub steal_messages: u64,
    /// Of those, the ones between two LANs.
    pub wan_steal_messages: u64,
    /// Steal requests across LANs not yet answered, by thief and request, and the most
    /// one thief ever had out at once.
    far_out: BTreeSet<(usize, u64)>,
    pub max_far_steals_out: usize,
    /// Copies of status gossip sent (each broadcast counts once per receiver).
    pub status_messages: u64,
    /// When each node first started a task.
    pub first_run: Vec<Option<Duration>>,
    /// When each node's last run so far ends.
    pub last_done: Vec<Duration>,
    /// Task time run over all nodes, duplicates included.
    pub busy: Duration,
    /// Submissions not yet made: the run cannot be over before them.
    pending_submits: usize,
    /// Runs handed to workers (each one or more consecutive tasks).
    pub runs: u64,
    /// Runs handed to a node that may not run the job: must stay empty.
    pub violations: Vec<String>,
    /// Notices of jobs that no node could run, as the owners gave them.
    pub waiting: Vec<(JobId, String)>,
    /// Runs each node started while it was not lending its workers.
    pub runs_not_lending: Vec<u64>,
    /// Pauses each node took after faults of its own.
    pub pauses: Vec<u64>,
    journal: journal::Journals,
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Self {
        let t0 = Instant::now();
        let mut index = HashMap::new();
        let nodes: Vec<SimNode> = cfg
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let id = NodeId(0x1000 + i as u64);
                index.insert(id, i);
                let core = Config { workers: n.workers, facts: n.facts.clone(), ..cfg.core.clone() };
                let sched = Scheduler::new(id, core, cfg.seed.wrapping_add(i as u64), t0);
                SimNode { sched, speed: n.speed, alive: true, lending: true, wake_at: None, stopped: HashSet::new() }
            })
            .collect();
        let rng = fastrand::Rng::with_seed(cfg.seed);
        let (n, journal) = (nodes.len(), journal::Journals::new(&cfg));
        let mut sim = Self {
            cfg,
            t0,
            now: t0,
            nodes,
            index,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            seq: 0,
            rng,
            cut: None,
            jobs: BTreeMap::new(),
            messages: 0,
            steal_messages: 0,
            wan_steal_messages: 0,
            far_out: BTreeSet::new(),
            max_far_steals_out: 0,
            status_messages: 0,
            first_run: vec![None; n],
            last_done: vec![Duration::ZERO; n],
            busy: Duration::ZERO,
            pending_submits: 0,
            runs: 0,
            violations: Vec::new(),
            waiting: Vec::new(),
            runs_not_lending: vec![0; n],
            pauses: vec![0; n],
            journal,
        };
        // Facts travel with the first gossip; here every node knows them from the start.
        for i in 0..sim.nodes.len() {
            for j in (0..sim.nodes.len()).filter(|&j| j != i) {
                let (peer, facts) = (sim.id(j), sim.cfg.nodes[j].facts.clone());
                sim.nodes[i].sched.handle_facts(t0, peer, facts);
            }
            sim.after_input(i);
        }
        sim
    }

    pub fn id(&self, node: usize) -> NodeId {
        self.nodes[node].sched.id()
    }

    pub fn alive(&self, node: usize) -> bool {
        self.nodes[node].alive
    }

    pub fn node(&self, node: usize) -> &Scheduler<Spec, u64> {
        &self.nodes[node].sched
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Schedules a job of `tasks` tasks submitted by `node` at virtual time `at`.
    pub fn submit_at(&mut self, at: Duration, node: usize, tasks: u64) {
        self.submit_with(at, node, tasks, Needs::NONE, None);
    }

    /// Like [`Sim::submit_at`], for a job with needs and a halt rule.
    pub fn submit_with(&mut self, at: Duration, node: usize, tasks: u64, needs: Needs, halt: Option<Halt>) {
        let spec = SimSpec { salt: self.rng.u64(..), needs, halt };
        self.pending_submits += 1;
        self.push(self.t0 + at, Event::Submit { node, spec, tasks });
    }

    /// `node` stops (`false`) or starts (`true`) lending its workers at `at`.
    pub fn lend_at(&mut self, at: Duration, node: usize, lending: bool) {
        self.push(self.t0 + at, Event::Lend { node, lending });
    }

    /// Cuts `side` off from the rest between `at` and `until`.
    pub fn cut_at(&mut self, at: Duration, side: Vec<usize>, until: Duration) {
        self.push(self.t0 + at, Event::Cut { side, until });
    }

    /// Runs until every job with a live owner has finished and `settle` more virtual time
    /// has passed, or fails after `max_events` events (a livelock) or at `deadline`.
    pub fn drive(&mut self, max_events: u64, settle: Duration, deadline: Duration) -> Result<(), Stuck> {
        let mut done_at: Option<Instant> = None;
        for _ in 0..max_events {
            if done_at.is_none() && self.all_finished() {
                done_at = Some(self.now);
            }
            if let Some(d) = done_at
                && self.now >= d + settle
            {
                return Ok(());
            }
            let Some(Reverse((at, seq))) = self.queue.pop() else {
                return if done_at.is_some() { Ok(()) } else { Err(Stuck::Quiet { unfinished: self.unfinished() }) };
            };
            if at - self.t0 > deadline {
                return Err(Stuck::Deadline { deadline, unfinished: self.unfinished() });
            }
            self.now = at;
            if let Some(ev) = self.events.remove(&seq) {
                self.handle(ev);
            }
        }
        Err(Stuck::Livelock { events: max_events, unfinished: self.unfinished() })
    }

    fn all_finished(&self) -> bool {
        self.pending_submits == 0
            && self.journal.pending == 0
            && self.jobs.values().all(|j| j.finished_at.is_some() || !self.nodes[j.owner].alive)
    }

    fn unfinished(&self) -> Vec<(JobId, u64)> {
        self.jobs
            .iter()
            .filter(|(_, j)| j.finished_at.is_none() && self.nodes[j.owner].alive)
            .map(|(&id, j)| (id, j.accepted.iter().filter(|&&c| c > 0).count() as u64))
            .collect()
    }

    fn push(&mut self, at: Instant, ev: Event) {
        let seq = self.seq;
        self.seq += 1;
        self.events.insert(seq, ev);
        self.queue.push(Reverse((at, seq)));
    }

    fn handle(&mut self, ev: Event) {
        let now = self.now;
        match ev {
            Event::Deliver { to, from, msg } => {
                if self.nodes[to].alive && !self.is_cut(from, to) {
                    let from_id = self.id(from);
                    if matches!(msg, Message::Status(_)) {
                        // As the network layer says with each announce: mDNS found the
                        // peer or not.
                        let remote = self.cfg.lan(from) != self.cfg.lan(to);
                        self.nodes[to].sched.set_remote(from_id, remote);
                    }
                    self.nodes[to].sched.handle_message(now, from_id, msg);
                    self.after_input(to);
                } else if msg.must_arrive() {
                    self.push(now + ACK_TIMEOUT, Event::Undelivered { node: from, to, msg });
                }
            }
            Event::Undelivered { node, to, msg } => {
                if self.nodes[node].alive {
                    let to_id = self.id(to);
                    self.nodes[node].sched.handle_undelivered(now, to_id, msg);
                    self.after_input(node);
                }
            }
            Event::Done { node, worker, task, value, blame, took } => {
                if self.nodes[node].alive {
                    let report = TaskReport { task, outcome: value, took, blame };
                    self.nodes[node].sched.handle_task_done(now, worker, report);
                    self.after_input(node);
                }
            }
            Event::Wake { node } => {
                let n = &mut self.nodes[node];
                if n.alive && n.sched.poll_timeout().is_some_and(|t| t <= now) {
                    n.wake_at = None;
                    n.sched.handle_timeout(now);
                    self.after_input(node);
                }
            }
            Event::Kill { node, crash } => {
                self.nodes[node].alive = false;
                self.journal_crash(node);
                let dead = self.id(node);
                let told: Vec<usize> = (0..self.nodes.len()).filter(|&i| crash && self.nodes[i].alive).collect();
                for i in told {
                    self.nodes[i].sched.handle_peer_gone(now, dead);
                    self.after_input(i);
                }
            }
            Event::Cut { side, until } => self.cut = Some((side, self.t0 + until)),
            Event::Commit { node } => self.on_commit(node),
            Event::Restart { node } => self.on_restart(node),
            Event::Lend { node, lending } => {
                let n = &mut self.nodes[node];
                n.lending = lending;
                if n.alive {
                    n.sched.set_lending(now, lending);
                    self.after_input(node);
                }
            }
            Event::Submit { node, spec, tasks } => {
                self.pending_submits -= 1;
                if !self.nodes[node].alive {
                    return;
                }
                let salt = spec.salt;
                let job = self.nodes[node].sched.submit(now, spec.clone(), tasks, self.cfg.retries);
                self.journal_job(node, job, &spec, tasks);
                let ok = (0..tasks).filter(|&t| !self.is_poison(t));
                let expected = ok.fold(0u64, |a, t| a.wrapping_add(output(salt, t)));
                self.jobs.insert(
                    job,
                    JobOutcome {
                        owner: node,
                        tasks,
                        expected,
                        sum: 0,
                        accepted: vec![0; tasks as usize],
                        failed: Vec::new(),
                        retried: vec![0; tasks as usize],
                        per_node: BTreeMap::new(),
                        finished_at: None,
                        halted: false,
                    },
                );
                self.after_input(node);
            }
        }
    }

    fn is_cut(&self, a: usize, b: usize) -> bool {
        match &self.cut {
            Some((side, until)) if self.now < *until => side.contains(&a) != side.contains(&b),
            _ => false,
        }
    }

    /// Carries out a node's actions and re-arms its wake-up.
    fn after_input(&mut self, i: usize) {
        while let Some(a) = self.nodes[i].sched.poll_action() {
            self.act(i, a);
        }
        let n = &mut self.nodes[i];
        if let Some(t) = n.sched.poll_timeout()
            && n.wake_at.is_none_or(|w| t < w || w <= self.now)
        {
            n.wake_at = Some(t);
            let at = t.max(self.now);
            self.push(at, Event::Wake { node: i });
        }
    }

    fn act(&mut self, i: usize, a: Action<Spec, u64>) {
        match a {
            Action::Start { worker, job, tasks, .. } => self.run(i, worker, job, tasks),
            Action::Send { to, msg } => {
                let to = self.index[&to];
                self.send(i, to, msg);
            }
            Action::Broadcast(msg) => {
                for to in 0..self.nodes.len() {
                    if to != i {
                        self.send(i, to, msg.clone());
                    }
                }
            }
            Action::Accepted { job, from, report } => {
                let from = self.index[&from];
                self.journal_result(i, job, from, &report);
                let j = self.jobs.get_mut(&job).expect("accepted job was submitted");
                j.accepted[report.task as usize] += 1;
                match report.outcome {
                    Ok(v) => j.sum = j.sum.wrapping_add(v),
                    Err(_) => j.failed.push(report.task),
                }
                *j.per_node.entry(from).or_default() += 1;
            }
            Action::Retrying { job, report, .. } => {
                let j = self.jobs.get_mut(&job).expect("retried job was submitted");
                j.retried[report.task as usize] += 1;
            }
            Action::JobFinished { job, progress } => {
                let at = self.now - self.t0;
                self.journal_end(i, job);
                let j = self.jobs.get_mut(&job).expect("finished job was submitted");
                j.finished_at = Some(at);
                j.halted = progress.halted;
            }
            Action::Waiting { job, why } => self.waiting.push((job, why.to_string())),
            Action::Paused { .. } => self.pauses[i] += 1,
            // As a real executor's: a dropped job's tasks fail at once until its owner is back.
            Action::JobDropped { job, .. } => _ = self.nodes[i].stopped.insert(job),
            Action::JobRevived { job } => _ = self.nodes[i].stopped.remove(&job),
            Action::Stolen { .. } => {}
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: Message<Spec, u64>) {
        self.messages += 1;
        match msg {
            Message::Steal { .. } | Message::Grant { .. } => {
                self.steal_messages += 1;
                let far = self.cfg.lan(from) != self.cfg.lan(to);
                self.wan_steal_messages += u64::from(far);
                match msg {
                    Message::Steal { req } if far => {
                        self.far_out.insert((from, req));
                        let out = self.far_out.range((from, 0)..=(from, u64::MAX)).count();
                        self.max_far_steals_out = self.max_far_steals_out.max(out);
                    }
                    Message::Grant { req, .. } => _ = self.far_out.remove(&(to, req)),
                    _ => {}
                }
            }
            Message::Status(_) => self.status_messages += 1,
            _ => {}
        }
        if self.rng.f64() < self.cfg.loss {
            if msg.must_arrive() {
                self.push(self.now + ACK_TIMEOUT, Event::Undelivered { node: from, to, msg });
            }
            return;
        }
        let (lo, hi) = self.cfg.latency;
        let mut lat = lo + (hi - lo).mul_f64(self.rng.f64());
        if self.cfg.lan(from) != self.cfg.lan(to) {
            lat += self.cfg.wan_latency;
        }
        self.push(self.now + lat, Event::Deliver { to, from, msg });
    }
}

/// The output of a task: a well-mixed hash, so a wrong or doubled result shows in the sum.
pub fn output(salt: u64, task: u64) -> u64 {
    let mut z = salt ^ task.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A deterministic number in [0, 1) from a hash.
fn unit(x: u64) -> f64 {
    (output(0, x) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod bounds;
#[cfg(test)]
mod lending;
#[cfg(test)]
mod restarts;
#[cfg(test)]
mod seeking;
#[cfg(test)]
mod tests;
