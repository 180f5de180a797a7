//! mesh-core: the sans-IO scheduler core of mesh, its identifiers, and the deterministic
//! simulator that proves it.
//!
//! Everything here is a pure state machine: no sockets, threads, clocks or unseeded
//! randomness. Time comes in as `now: Instant` arguments and randomness from a seeded RNG,
//! so the deterministic simulator ([`sim`], under `cfg(test)` or the `sim` feature) can
//! drive hundreds of nodes on a virtual clock and replay any run exactly. The compiler
//! keeps it pure: this crate depends on serde, blake3, fastrand, fixedbitset and
//! thiserror only, never on tokio, libp2p, wasmtime or anything that does I/O, and `cargo
//! test -p mesh-core` builds none of them. The `mesh` package re-exports it as
//! `mesh::core` (and [`id`] as `mesh::id`).
//!
//! The [`Scheduler`] API comes in four kinds (as in quinn-proto):
//! * getters: [`Scheduler::status`], [`Scheduler::progress`], ...;
//! * inputs: `submit`, `handle_task_done`, `handle_message`, `handle_peer_gone`, `cancel`;
//! * [`Scheduler::handle_timeout`] when [`Scheduler::poll_timeout`]'s deadline passes;
//! * outputs: [`Scheduler::poll_action`] until it returns `None`.
//!
//! The same core runs a lone laptop and a mesh of Pis; a node with no peers simply never
//! steals. See `docs/ARCHITECTURE.md` for the life of a job.

mod availability;
mod faults;
mod halt;
pub mod id;
mod ledger;
mod local_job;
mod needs;
mod outbox;
mod peers;
mod queue;
pub mod rate;
mod scheduler;
mod slots;
mod thief;
mod timer;
mod tombstones;
mod unplaced;

#[cfg(any(test, feature = "sim"))]
pub mod sim;

pub use availability::{Availability, BUSY_ABOVE, Hours, HoursError, IDLE_AT_MOST, Lending, Machine};
pub use faults::{FAULTS_BEFORE_PAUSE, PAUSE_FIRST, PAUSE_MAX};
pub use halt::{BadHalt, Halt, HaltLimit, HaltOn, parse_halt};
pub use ledger::MAX_LOST;
pub use needs::{
    BadRequirement, Facts, MAX_LABEL, MAX_LABELS, MAX_REQUIREMENTS, Needs, PyVersion, Requirement, Unplaceable,
    valid_name,
};
pub use peers::Status;
pub use queue::TaskRange;
pub use scheduler::{DoneTask, ResumeError, Scheduler};

use crate::id::{JobId, NodeId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Tunables. Defaults suit a LAN of Raspberry Pis: a gossip every second costs a Pi
/// nothing measurable, and second-scale expiry notices an unplugged node quickly.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker slots on this node.
    pub workers: u32,
    /// How often to publish our status.
    pub gossip_interval: Duration,
    /// Earliest re-publish after our queue became empty or non-empty.
    pub publish_min_gap: Duration,
    /// A peer silent this long is dead.
    pub peer_expiry: Duration,
    /// A steal request unanswered this long has failed.
    pub steal_timeout: Duration,
    /// First and last backoff step after failed steals (doubling in between).
    pub steal_backoff_min: Duration,
    pub steal_backoff_max: Duration,
    /// Results to buffer per job before sending them to the owner.
    pub result_batch: usize,
    /// Bytes of results (by [`Payload::size_hint`]) to buffer per job before sending them.
    pub result_batch_bytes: usize,
    /// Longest a finished result waits in the buffer.
    pub result_delay: Duration,
    /// Most ranges in one grant; bounds the steal reply size.
    pub max_grant_ranges: usize,
    /// How long a batch of tiny tasks handed to a worker at once should take. Tasks
    /// shorter than this go to workers in batches of consecutive tasks, so the hand-off to
    /// a worker costs once per batch instead of once per task.
    pub batch_target: Duration,
    /// The most tasks in one batch.
    pub max_batch: u64,
    /// How long a task that failed on this node is left to other nodes before this node
    /// may run it again as a backup (when nobody else reported on it).
    pub avoid_for: Duration,
    /// What this node offers, for matchmaking; peers learn it from the gossip.
    pub facts: Facts,
    /// Runs the native tasks of its own jobs even without `facts.allow_run`: the node of a
    /// submitter runs its own user's programs.
    pub runs_own: bool,
    /// How long an owned job's queued tasks must have had no node to run them before the
    /// owner says why (and fails them, under a halt on failures).
    pub place_grace: Duration,
    /// How often the owner says again why a job waits.
    pub wait_notice: Duration,
    /// How long an undelivered message waits before it is sent again.
    pub resend_after: Duration,
    /// Steal requests answered per peer and second, after a burst of `steal_burst`. An
    /// honest thief has one request out and backs off after an empty answer, so it stays
    /// far below; requests over it are not answered (the thief's own timeout covers them),
    /// so a member asking in a tight loop costs this node a bounded amount.
    pub steal_rate: f64,
    pub steal_burst: f64,
    /// Work sharing: a node that queues more than two tasks per worker hands about half
    /// to a peer it believes idle, unasked (a grant without a steal), so that work reaches
    /// idle nodes in a few message delays instead of a gossip round per generation. Off:
    /// measured in `benches/sim_scale.rs`, with `seek_work` it spreads a job over 1,000
    /// nodes in 6 ms instead of 17 ms but gains under a point of efficiency, about the
    /// seeds' spread (94.4 % against 93.5 %), costs a quarter more steal messages, and
    /// work pushed to a node that was just unplugged waits for its expiry
    /// (docs/SCALING.md).
    pub push_to_idle: bool,
    /// Cluster-aware stealing: a thief keeps one steal out to a near peer and, besides
    /// it, one to a remote peer (`Scheduler::set_remote`) that advertises work, so the
    /// slow link's round trip overlaps near steals. Off: random stealing over all peers,
    /// one request out.
    pub cluster_aware: bool,
    /// Thieves find work without waiting for gossip: a victim with nothing names a peer to
    /// ask instead (a hint, followed at once, a few hops at most: a job's owner names a
    /// holder of the job's work from its ledger, any other victim the peer it last
    /// granted work to), remembers
    /// the thief and hands it work unasked once it has more than it can run soon (a
    /// lifeline, after Saraswat et al., PPoPP 2011), and a thief that found work lately
    /// asks random peers when none is believed to have any. A node also tells its status
    /// early when its queue grew or shrank eightfold, and a new job at once. Off: thieves
    /// learn of work only from gossip, as before issue 16 (kept to measure the difference).
    pub seek_work: bool,
    /// Status messages a second that an idle mesh's periodic gossip may cost each node,
    /// at most: with n nodes, a node without a job publishes every `max(gossip_interval,
    /// n / gossip_budget)` and expiry grows in step, so each receives at most this many a
    /// second however big the mesh. 0: no budget.
    pub gossip_budget: f64,
    /// Random draws a thief weighs to pick a victim: it asks the busiest of them ("power
    /// of d choices"). Measured in `benches/sim_scale.rs`, 8 instead of 2 cut steal
    /// messages per task by about 40 % at 100 and 1,000 nodes at the same efficiency: a
    /// big queue gives a big grant, and is still there when the request arrives, however
    /// old its status (docs/SCALING.md).
    pub victim_choices: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            workers: 1,
            gossip_interval: Duration::from_secs(1),
            publish_min_gap: Duration::from_millis(100),
            peer_expiry: Duration::from_secs(5),
            steal_timeout: Duration::from_secs(1),
            steal_backoff_min: Duration::from_millis(50),
            steal_backoff_max: Duration::from_secs(2),
            result_batch: 256,
            result_batch_bytes: 256 * 1024,
            result_delay: Duration::from_millis(20),
            max_grant_ranges: 32,
            batch_target: Duration::from_millis(1),
            max_batch: 64,
            avoid_for: Duration::from_secs(30),
            facts: Facts::default(),
            runs_own: true,
            place_grace: Duration::from_secs(5),
            wait_notice: Duration::from_secs(10),
            resend_after: Duration::from_secs(1),
            steal_rate: 200.0,
            steal_burst: 50.0,
            push_to_idle: false,
            cluster_aware: true,
            seek_work: true,
            gossip_budget: 100.0,
            victim_choices: 8,
        }
    }
}

/// What the core needs to know of a job spec: what a node needs to run its tasks, and
/// when the job halts. The core never looks further into a spec.
pub trait Spec: Clone {
    fn needs(&self) -> &Needs;

    fn halt(&self) -> Option<Halt> {
        None
    }
}

/// A shared spec is a spec: a node holds each job's spec behind an `Arc`.
impl<T: Spec> Spec for std::sync::Arc<T> {
    fn needs(&self) -> &Needs {
        (**self).needs()
    }

    fn halt(&self) -> Option<Halt> {
        (**self).halt()
    }
}

impl Spec for u64 {
    fn needs(&self) -> &Needs {
        static NONE: Needs = Needs::NONE;
        &NONE
    }
}

/// The size of a task output on the wire, roughly, so result batches stay bounded in bytes
/// as well as in count.
pub trait Payload {
    fn size_hint(&self) -> usize;

    /// Whether the task succeeded. A program that ran to a non-zero exit returns its
    /// output, but the task failed: it is retried like an error.
    fn succeeded(&self) -> bool {
        true
    }
}

impl Payload for u64 {
    fn size_hint(&self) -> usize {
        9
    }
}

impl<R: Payload> TaskReport<R> {
    /// An output that succeeded.
    pub fn succeeded(&self) -> bool {
        self.outcome.as_ref().is_ok_and(Payload::succeeded)
    }

    fn size_hint(&self) -> usize {
        16 + match &self.outcome {
            Ok(r) => r.size_hint(),
            Err(e) => e.len(),
        }
    }
}

/// A finished task, as a worker reports it and as it travels to the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport<R> {
    pub task: u64,
    pub outcome: Result<R, String>,
    /// Time the worker spent on it.
    pub took: Duration,
    /// Whose fault a failure was. Absent on the wire when it was the task's.
    #[serde(default, skip_serializing_if = "Blame::is_task")]
    pub blame: Blame,
}

/// Whose fault a failed task is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Blame {
    /// The task's: it ran and failed, or would fail anywhere. It uses one of its retries.
    #[default]
    Task,
    /// The node's that ran it: no space or file descriptors left, a file it could not
    /// fetch, a program it could not start. The task runs again elsewhere without using a
    /// retry, and a node with such faults in a row pauses (`faults`).
    Node,
}

impl Blame {
    pub fn is_task(&self) -> bool {
        *self == Self::Task
    }
}

impl<R> TaskReport<R> {
    /// A report of a task whose failure, if it failed, was its own.
    pub fn new(task: u64, outcome: Result<R, String>, took: Duration) -> Self {
        Self { task, outcome, took, blame: Blame::Task }
    }
}

/// Work handed to a thief: ranges of one job, with the job's spec so the thief can run
/// them without asking anyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant<S> {
    pub job: JobId,
    pub spec: S,
    pub ranges: Vec<TaskRange>,
    /// Retries of failed tasks: the thief runs them itself and never grants them on, so
    /// they cannot drift back to the node they failed on.
    #[serde(default)]
    pub pinned: bool,
}

/// Scheduling messages between nodes. The network layer encodes them; see
/// `docs/PROTOCOL.md` for who sends what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<S, R> {
    /// Periodic load gossip (broadcast).
    Status(Status),
    /// "I am idle: give me work." `req` matches the reply to the request.
    Steal { req: u64 },
    /// The answer to a steal; `work` is `None` when the victim had nothing, and then
    /// `hint` may name a peer to ask next without waiting for gossip: from the job's
    /// owner, a holder of the job's work drawn from its ledger; from any other victim, the
    /// peer it last granted work to.
    Grant {
        req: u64,
        work: Option<Grant<S>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hint: Option<NodeId>,
    },
    /// Thief to owner: "I now hold these ranges of your job."
    Lease { job: JobId, ranges: Vec<TaskRange> },
    /// Finished tasks, to the job's owner.
    Results { job: JobId, reports: Vec<TaskReport<R>> },
    /// Owner to all (broadcast): the job is complete or cancelled; drop its work.
    JobEnded { job: JobId },
}

impl<S, R> Message<S, R> {
    /// Whether losing this message would lose work or results, so that its sender must
    /// hear when it was not delivered ([`Scheduler::handle_undelivered`]). Gossip and
    /// steal requests repeat anyway; a lost `JobEnded` is covered by each node retiring
    /// drained jobs.
    pub fn must_arrive(&self) -> bool {
        matches!(self, Self::Results { .. } | Self::Lease { .. } | Self::Grant { work: Some(_), .. })
    }
}

/// Why a node let go of a job it did not own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The owner said the job ended.
    Ended,
    /// The owner is gone.
    OwnerGone,
    /// This node cancelled its own job.
    Cancelled,
}

/// What the scheduler asks its driver to do.
#[derive(Debug)]
pub enum Action<S, R> {
    /// Start `tasks` of `job` (a batch of consecutive tasks, often just one) on the idle
    /// `worker`, which reports each task's result in order with `handle_task_done` and is
    /// idle again after the last. (Named apart from the `mesh run` kind of job.) `backup` marks a speculative re-run of a task that may
    /// still be running elsewhere.
    /// `own` says the job was submitted here: its native tasks run under this node's own
    /// user's say-so (`Config::runs_own`) rather than `mesh join --allow-run`.
    Start { worker: usize, job: JobId, tasks: TaskRange, backup: bool, own: bool },
    /// Send a message to one peer.
    Send { to: NodeId, msg: Message<S, R> },
    /// Send a message to every peer.
    Broadcast(Message<S, R>),
    /// Owner only: the first result for a task; later ones are dropped. A failed report
    /// here is final: the task used up its retries.
    Accepted { job: JobId, from: NodeId, report: TaskReport<R> },
    /// This node failed `FAULTS_BEFORE_PAUSE` tasks in a row by its own fault (the last
    /// one's error is `cause`) and takes no tasks for `pause`.
    Paused { pause: Duration, cause: String },
    /// Owner only: a task failed on `from` and will run again, on another node if any.
    Retrying { job: JobId, from: NodeId, report: TaskReport<R> },
    /// Owner only: `by` stole `tasks` of this job's tasks (from any victim).
    Stolen { job: JobId, by: NodeId, tasks: u64 },
    /// Owner only: every task of the job has a result, or the job halted
    /// (`progress.halted`) and the tasks without one will not run.
    JobFinished { job: JobId, progress: Progress },
    /// Owner only: the job has queued tasks that no live node can run, and why. Said after
    /// `place_grace` and every `wait_notice` while it lasts.
    Waiting { job: JobId, why: Unplaceable },
    /// This node let go of a job; its running tasks may be abandoned.
    JobDropped { job: JobId, reason: DropReason },
    /// A job dropped here because its owner seemed gone (`DropReason::OwnerGone`) is its
    /// owner's again: the owner is back. Its tasks may be granted here again, and must run.
    JobRevived { job: JobId },
}

/// An owned job's progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    /// Failures that were given another run.
    pub retried: u64,
    pub duplicates: u64,
    /// Speculative re-runs of this job's undone tasks that its owner started.
    pub backups: u64,
    /// The job stopped early under its halt rule.
    pub halted: bool,
}

/// Running totals of this node's scheduling, for statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Steal requests sent.
    pub steal_requests: u64,
    /// Steal requests that brought work.
    pub steals: u64,
    /// Steal requests received from thieves, whether they got work or not.
    pub steal_requests_received: u64,
    /// Of those, the ones over their thief's rate (`Config::steal_rate`), left unanswered.
    pub steal_requests_refused: u64,
    /// Tasks received through steals.
    pub tasks_stolen: u64,
    /// Tasks given away to thieves.
    pub tasks_given: u64,
    /// Grants pushed to idle peers unasked (`Config::push_to_idle`).
    pub pushes: u64,
    /// Steal requests sent to a peer that an empty answer named (a hint).
    pub hints_followed: u64,
    /// Empty answers this node, as a job's owner, gave with a hint drawn from its ledger.
    #[serde(default)]
    pub ledger_hints: u64,
    /// Speculative backup runs started.
    pub backups: u64,
}
