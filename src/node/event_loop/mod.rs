//! The event loop: the one task that drives a node, with or without a network.
//!
//! It `select!`s over shutdown, finished worker runs, user commands ([`Client`]), its own
//! plumbing ([`Internal`]), the network ([`Net`], absent in a `--local` run) and the next
//! deadline, and only translates: events go into the scheduler core, and the core's
//! actions come back out as worker runs, messages, gossip and reports. The loop's state
//! is in named parts, each the one place its facts are written:
//!
//! * [`Watches`]: the jobs this node owns and whoever waits for them;
//! * [`Transfers`]: blob fetches, requests and serves, and the blob counters;
//! * [`Net`]: the Swarm, discovery, membership and [`routes`](routes::Routes).
//!
//! Leaving: on shutdown the node publishes a `bye`, unregisters its mDNS record and gives
//! the swarm a moment to send both, so peers drop it within a second or two. Workers get
//! [`WORKER_GRACE`] to finish their current run.
//!
//! [`Client`]: super::Client

mod asks;
mod commands;
mod journalling;
mod net;
mod remote;
mod rogue;
mod roster;
mod routes;
mod transfers;
mod watches;

use net::VERSION;

use super::api::client::Command;
use super::api::config::NodeConfig;
use super::api::report::NodeInfo;
use super::api::view::{Health, PeerRow, PeerState};
use super::dashboard::{Board, Inputs, Snapshot};
use super::host::health::HealthProbe;
use super::host::identity::Identity;
use super::host::lending::LendCheck;
use super::host::workers::{Finished, Work, WorkerPool};
use crate::core::{Action, Config, Facts, Lending, Message, Scheduler, TaskReport};
use crate::exec::fetch::PeerAnswer;
use crate::exec::run::Permission;
use crate::exec::{Executor, TaskError};
use crate::id::NodeId;
use crate::job::{JobSpec, TaskOutput};
use crate::store::BlobStore;
use anyhow::{Context, Result};
use net::{FromNet, Net};
use rogue::Rogue;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transfers::{INTERNAL_CAPACITY, Internal, LoopFetcher, Plumbing, Transfers};
use watches::Watches;

/// How often abandoned jobs are looked for and membership is swept.
pub(crate) const HOUSEKEEPING: Duration = Duration::from_millis(500);
/// How often a running node trims its blob store and code cache to their budgets (a
/// node that runs for weeks keeps receiving modules, inputs and returned files).
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How long a stopping node waits for its workers to finish their current run; a worker
/// still busy after that ends with the process.
pub(crate) const WORKER_GRACE: Duration = Duration::from_secs(2);

/// This node as its statistics and `mesh peers` show it.
#[derive(Debug)]
struct Me {
    identity: Identity,
    workers: u32,
    facts: Facts,
    home: std::path::PathBuf,
}

#[derive(Debug)]
pub(super) struct EventLoop {
    me: Me,
    sched: Scheduler<Arc<JobSpec>, TaskOutput>,
    pool: WorkerPool,
    finished: mpsc::Receiver<Finished>,
    commands: mpsc::Receiver<Command>,
    internal: mpsc::Receiver<Internal>,
    watches: Watches,
    transfers: Transfers,
    /// Asks about other owners' jobs (`mesh wait`, `mesh cancel` here).
    asks: asks::Asks,
    net: Option<Net>,
    /// Shared with the workers; the loop ends a job's running programs through it.
    exec: Arc<Executor>,
    next_housekeeping: Instant,
    /// Test hooks: steal requests, and requests for each blob this node fetched, sent to
    /// every peer each housekeeping, as a member stuck in a tight loop would
    /// (`MESH_FAILPOINT_ROGUE_STEALS=N`, `MESH_FAILPOINT_ROGUE_BLOBS=N`).
    rogue: Rogue,
    next_prune: Instant,
    /// `--hours`, `--when-idle`: whether the node lends its workers now.
    lend: LendCheck,
    /// What the dashboard shows, when the node serves one.
    board: Option<Board>,
    /// How this machine is doing, for its own row (read at most every few seconds).
    health: HealthProbe,
    /// The owned jobs on disk (`mesh join`).
    journal: Option<crate::node::journal::Journal>,
}

impl EventLoop {
    /// The loop, and the dashboard's view of it if `dashboard` is asked for.
    pub(super) fn new(
        identity: Identity,
        cfg: NodeConfig,
        dashboard: bool,
        commands: mpsc::Receiver<Command>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<(Self, Option<watch::Receiver<Arc<Snapshot>>>)> {
        let now = Instant::now();
        let (board, view) = match dashboard {
            true => {
                let (board, view) = Board::new(&identity.name, now);
                (Some(board), Some(view))
            }
            false => (None, None),
        };
        let facts = cfg.facts();
        let sched_cfg =
            Config { workers: cfg.workers, facts: facts.clone(), runs_own: cfg.runs_own, ..Config::default() };
        let seed = identity.node_id.0 ^ seed();
        crate::exec::wasm::prune_caches(&cfg.home);
        let (tx, internal) = mpsc::channel(INTERNAL_CAPACITY);
        let plumbing = Plumbing(tx);
        let store = Arc::new(BlobStore::new(&cfg.home));
        // Without a network a missing blob cannot be fetched: the executor says so at once.
        let fetcher = cfg.network.is_some().then(|| Arc::new(LoopFetcher(plumbing.clone())) as _);
        let runs = Permission { allow_run: cfg.allow_run, runs_own: cfg.runs_own };
        let exec = Arc::new(Executor::new(cfg.home.clone(), store.clone(), fetcher, runs));
        let (pool, finished) = WorkerPool::start(cfg.workers as usize, exec.clone(), cfg.worker_nice)
            .context("starting worker threads")?;
        let net = match cfg.network {
            Some(n) => Some(Net::start(&identity, n, facts.clone(), cfg.workers, sched_cfg.peer_expiry, now)?),
            None => None,
        };
        let journal = cfg.journal.map(|keep| crate::node::journal::Journal::open(&cfg.home, keep));
        let journal = journal.transpose().context("opening the job journal")?;
        let rogue = Rogue::from_env();
        let mut transfers = Transfers::new(plumbing, store, tracker, shutdown);
        transfers.fetched = (rogue.blob_requests > 0).then(Vec::new);
        let (journal, found) = journal.unzip();
        let mut event_loop = Self {
            sched: Scheduler::new(identity.node_id, sched_cfg, seed, now),
            me: Me { identity, workers: cfg.workers, facts, home: cfg.home },
            pool,
            finished,
            commands,
            internal,
            watches: Watches::default(),
            transfers,
            asks: asks::Asks::new(),
            net,
            exec,
            next_housekeeping: now,
            rogue,
            next_prune: now + PRUNE_EVERY,
            lend: LendCheck::new(cfg.lending),
            board,
            health: HealthProbe::new(),
            journal,
        };
        if let Some(found) = found {
            event_loop.recover(found);
        }
        Ok((event_loop, view))
    }

    /// Runs until `shutdown` is cancelled (or the network fails), then leaves the mesh
    /// politely.
    pub(super) async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        let result = self.serve(&shutdown).await;
        self.leave().await;
        result
    }

    async fn serve(&mut self, shutdown: &CancellationToken) -> Result<()> {
        loop {
            self.drain_actions();
            let deadline = self.sched.poll_timeout().map_or(self.next_housekeeping, |t| t.min(self.next_housekeeping));
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(f) = self.finished.recv() => {
                    if let Some(board) = &mut self.board {
                        board.ran(f.kind, &f.reports);
                    }
                    for r in f.reports {
                        self.sched.handle_task_done(Instant::now(), f.worker, r);
                    }
                }
                Some(cmd) = self.commands.recv() => self.on_command(cmd),
                Some(msg) = self.internal.recv() => self.on_internal(msg),
                input = Net::next(&mut self.net) => {
                    // Invariant: `Net::next` only yields when there is a network.
                    let events = match self.net.as_mut() {
                        Some(net) => net.handle(input, Instant::now())?,
                        None => Vec::new(),
                    };
                    for ev in events {
                        self.on_net(ev);
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => self.on_tick(),
            }
        }
        Ok(())
    }

    fn drain_actions(&mut self) {
        while let Some(action) = self.sched.poll_action() {
            match action {
                Action::Start { worker, job, tasks, own, .. } => {
                    let work = |spec| Work { job, tasks, spec, own };
                    let started = self.sched.spec(job).cloned().is_some_and(|spec| self.pool.run(worker, work(spec)));
                    if !started {
                        // The job is gone or the worker is: fail the run rather than leave
                        // the worker counted busy for ever.
                        for task in tasks.start..tasks.end {
                            let outcome = Err(TaskError::NotStarted.to_string());
                            let report = TaskReport { task, outcome, took: Duration::ZERO, blame: Default::default() };
                            self.sched.handle_task_done(Instant::now(), worker, report);
                        }
                    }
                }
                Action::Send { to, msg } => {
                    if let Some(net) = &mut self.net {
                        net.send(to, msg);
                    }
                }
                Action::Broadcast(Message::Status(s)) => {
                    if let Some(net) = &mut self.net {
                        net.announce(s, false);
                    }
                }
                Action::Broadcast(msg) => {
                    if let Some(net) = &mut self.net {
                        net.broadcast(&msg);
                    }
                }
                Action::Accepted { job, from, report } => {
                    self.journal_accepted(job, from, &report);
                    let (me, net) = (&self.me, &self.net);
                    self.watches.accepted(job, from, report, &|n| describe(me, net.as_ref(), n));
                }
                Action::Retrying { job, from, report } => {
                    tracing::debug!(%job, task = report.task, node = %from, "task failed; retrying");
                    if let Some(board) = &mut self.board {
                        board.retried();
                    }
                    self.watches.retrying(job, from, &report);
                }
                Action::Stolen { job, by, .. } => self.watches.stolen(job, by),
                Action::JobFinished { job, progress } => {
                    // Whatever of it still runs here (a halted job's tasks, backup runs of
                    // a complete one) ends.
                    self.exec.cancel(job);
                    if let Some(board) = &mut self.board {
                        board.finished();
                    }
                    let (me, net) = (&self.me, &self.net);
                    self.watches.finish(job, progress, &|n| describe(me, net.as_ref(), n));
                    self.journal_end(job);
                }
                Action::JobDropped { job, reason } => {
                    tracing::debug!(%job, ?reason, "dropped a job");
                    self.exec.cancel(job);
                    self.watches.drop_job(job);
                }
                Action::JobRevived { job } => self.exec.revive(job),
                Action::Paused { pause, cause } => {
                    tracing::warn!(
                        "this node failed {} tasks in a row by its own fault ({cause}); it takes no tasks for {pause:?}, \
                         and others run them",
                        crate::core::FAULTS_BEFORE_PAUSE
                    );
                }
                Action::Waiting { job, why } => {
                    tracing::debug!(%job, %why, "no node can run the job's queued tasks");
                    self.watches.waiting(job, why.to_string());
                }
            }
        }
    }

    fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::Fetch { id, hint, max, reply } => {
                let (owner, members) = self.net.as_ref().map(|n| n.blob_holders(hint)).unwrap_or_default();
                self.transfers.fetch(id, owner, members, max, reply);
            }
            Internal::FetchDone { id, result } => self.transfers.fetch_done(id, result),
            Internal::Request { peer, req, reply } => match &mut self.net {
                Some(net) => self.transfers.sent(net.request_blob(peer, req), reply),
                None => {
                    let _ = reply.send(Err(PeerAnswer::NoNetwork));
                }
            },
            Internal::Ask { peer, req, reply } => self.ask(peer, req, reply),
            Internal::Results { from, job, reports, lost } => {
                let now = Instant::now();
                self.sched.handle_message(now, from, Message::Results { job, reports });
                for report in lost {
                    self.sched.handle_lost(now, from, job, report);
                }
            }
            Internal::Served { channel, response } => {
                self.transfers.served(&response);
                if let Some(net) = &mut self.net {
                    net.answer_blob(channel, response);
                }
            }
        }
    }

    fn on_net(&mut self, ev: FromNet) {
        let now = Instant::now();
        match ev {
            FromNet::Message { from, msg: Message::Results { job, mut reports } }
                if job.owner == self.me.identity.node_id =>
            {
                if let Some(spec) = self.sched.spec(job) {
                    reports.iter_mut().for_each(|r| spec.screen(r));
                }
                if self.transfers.lacks_outputs(&reports) {
                    // Results count once their outputs are here: fetch those from the runner.
                    let (runner, members) = self.net.as_ref().map(|n| n.blob_holders(from)).unwrap_or_default();
                    self.transfers.fetch_outputs(from, runner, members, job, reports);
                } else {
                    self.sched.handle_message(now, from, Message::Results { job, reports });
                }
            }
            FromNet::Message { from, msg } => self.sched.handle_message(now, from, msg),
            FromNet::Undelivered { to, msg } => self.sched.handle_undelivered(now, to, msg),
            FromNet::Facts { from, facts, remote } => {
                self.sched.set_remote(from, remote);
                self.sched.handle_facts(now, from, facts);
            }
            FromNet::PeerGone(node) => self.sched.handle_peer_gone(now, node),
            FromNet::AnnounceNow => {
                let s = self.sched.status();
                if let Some(net) = &mut self.net {
                    net.announce(s, false);
                }
            }
            FromNet::BlobAsked { peer, request, channel } => self.transfers.serve(peer, request, channel),
            FromNet::BlobAnswer { id, answer } => self.transfers.answered(id, answer),
            FromNet::JobAsked { peer, request, channel } => self.answer_ask(peer, request, channel),
            FromNet::JobAnswer { id, answer } => self.asks.answered(id, answer),
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        if self.sched.poll_timeout().is_some_and(|t| t <= now) {
            self.sched.handle_timeout(now);
        }
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + HOUSEKEEPING;
        // Nobody waits for a job whose results nobody else can use (a Python script that
        // exited): it is cancelled everywhere rather than computed for nobody. Other jobs
        // run on, detached.
        for job in self.watches.abandoned() {
            tracing::debug!(%job, "submitter went away; cancelling the job");
            self.cancel(job);
        }
        if let Some(net) = &mut self.net {
            self.rogue.misbehave(net, self.transfers.fetched.as_deref().unwrap_or_default());
        }
        let expiry = self.sched.peer_expiry();
        let gone = self.net.as_mut().map(|n| n.housekeeping(now, expiry)).unwrap_or_default();
        for ev in gone {
            self.on_net(ev);
        }
        if now >= self.next_prune {
            self.next_prune = now + PRUNE_EVERY;
            self.transfers.prune(self.me.home.clone());
            self.journal.as_mut().map(crate::node::journal::Journal::prune);
        }
        if let Some(j) = &mut self.journal {
            j.tick(now);
        }
        if let Some(lending) = self.lend.poll(now, self.sched.status().busy) {
            tracing::info!("{} {lending}", self.me.identity.name);
            self.sched.set_lending(now, lending == Lending::Yes);
        }
        let jobs = self.watches.summaries(now);
        if let Some(net) = &mut self.net {
            net.set_jobs(jobs);
        }
        self.publish(now);
    }

    /// A new snapshot for the dashboard, if the node serves one.
    fn publish(&mut self, now: Instant) {
        let farewells = self.net.as_mut().map(Net::take_farewells).unwrap_or_default();
        if self.board.is_none() {
            return;
        }
        let status = self.sched.status();
        // A node that does not lend now offers no workers (`Scheduler::status`).
        let lending = status.workers > 0;
        let inputs = Inputs { rows: self.rows(now), farewells, status, counters: self.sched.counters(), lending };
        let (me, net) = (&self.me, &self.net);
        if let Some(board) = &mut self.board {
            board.publish(now, inputs, &|n| describe(me, net.as_ref(), n));
        }
    }

    /// `mesh peers`: this node, then every other node it knows of.
    fn rows(&mut self, now: Instant) -> Vec<PeerRow> {
        let health = self.health.now(now);
        let mut rows = vec![self.self_row(now, health)];
        if let Some(net) = &self.net {
            rows.extend(net.rows(now));
        }
        rows
    }

    fn self_row(&self, now: Instant, health: Health) -> PeerRow {
        let s = self.sched.status();
        let id = &self.me.identity;
        PeerRow {
            name: id.name.clone(),
            peer_id: id.peer_id.to_base58(),
            addrs: self.net.as_ref().map(Net::listen_addrs).unwrap_or_default(),
            workers: Some(s.workers),
            busy: Some(s.busy),
            queued: Some(s.queued),
            tasks_done: Some(s.tasks_done),
            steals: Some(s.steals),
            rtt_ms: None,
            version: VERSION.into(),
            last_seen_s: Some(0.0),
            is_self: true,
            state: PeerState::Member,
            blobs: Some(self.transfers.stats()),
            facts: Some(self.me.facts.clone()),
            health: Some(health),
            jobs: self.watches.summaries(now),
        }
    }

    async fn leave(mut self) {
        self.exec.cancel_all();
        if let Some(net) = &mut self.net {
            // The goodbye tells of jobs that just finished, for the dashboards.
            net.set_jobs(self.watches.summaries(Instant::now()));
            net.leave(self.sched.status()).await;
            tracing::info!("this node left the mesh");
        }
        // Workers waiting for a blob must not wait for a loop that has stopped: closing
        // the channels fails their requests, and dropping the fetches' waiters wakes the
        // ones already waiting. Submitters still waiting see their reply dropped.
        self.commands.close();
        while self.commands.try_recv().is_ok() {}
        self.internal.close();
        while self.internal.try_recv().is_ok() {}
        self.transfers.close();
        self.asks.close();
        self.watches.clear();
        if let Some(journal) = self.journal.take() {
            let _ = tokio::task::spawn_blocking(move || journal.close()).await;
        }
        let pool = self.pool;
        let _ = tokio::task::spawn_blocking(move || pool.shutdown(WORKER_GRACE)).await;
    }
}

/// How the statistics name a node: this one, else as the network knows it.
fn describe(me: &Me, net: Option<&Net>, node: NodeId) -> NodeInfo {
    if node == me.identity.node_id {
        let id = &me.identity;
        return NodeInfo { name: id.name.clone(), peer_id: id.peer_id.to_base58(), workers: me.workers };
    }
    match net {
        Some(net) => net.describe(node),
        None => NodeInfo { name: node.to_string(), peer_id: String::new(), workers: 0 },
    }
}

/// The name [`describe`] gives a node, without encoding its peer id: once per result.
fn name_of(me: &Me, net: Option<&Net>, node: NodeId) -> String {
    match net {
        _ if node == me.identity.node_id => me.identity.name.clone(),
        Some(net) => net.name_of(node),
        None => node.to_string(),
    }
}

/// A seed for the scheduler's victim choice; it needs variety between nodes, not secrecy.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    nanos.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
}
