//! The event loop of a `mesh join` node: the one task that owns the Swarm.
//!
//! It `select!`s over shutdown, commands from [`Client`]s, mDNS events, swarm events and the
//! next deadline, and only translates: swarm and mDNS events go into [`Membership`] and the
//! scheduler core; their decisions come back out as dials, publishes and disconnects.
//!
//! Leaving: on shutdown the node publishes a `bye` announce, unregisters its mDNS record and
//! gives the swarm a moment to send both, so peers drop it within a second or two.

use super::behaviour::{Behaviour, BehaviourEvent, build_swarm};
use super::blobs::{BlobStats, CorruptServes, LoopFetcher};
use super::client::{Client, Command, PeersReply};
use super::identity::Identity;
use super::membership::{Decision, Membership, PeerRow};
use super::report::{Collector, JobReport};
use super::workers::{Finished, WorkerPool};
use crate::core::{Action, Config, Message, Scheduler, Status, TaskReport};
use crate::discovery::{Advert, Discovery, DiscoveryEvent};
use crate::exec::Executor;
use crate::id::{ContentId, JobId, NodeId};
use crate::job::{JobSpec, TaskOutput};
use crate::protocol::blob::BlobResponse;
use crate::protocol::membership::{Announce, PROTOCOL_VERSION, TOPIC};
use crate::protocol::sched::{Ack, WireMessage};
use crate::secret::SharedKey;
use crate::store::BlobStore;
use anyhow::{Context, Result};
use libp2p::futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, ping, request_response};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// How often membership is swept and owed dials are made.
const HOUSEKEEPING: Duration = Duration::from_millis(500);
/// How often unconnected `--peer` addresses are dialed again.
const STATIC_REDIAL: Duration = Duration::from_secs(10);
/// How long a leaving node keeps the swarm running to deliver its goodbye.
const GOODBYE_GRACE: Duration = Duration::from_millis(300);
/// How long a leaving node waits for its workers to finish their current run.
const WORKER_GRACE: Duration = Duration::from_secs(2);

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

mod transfers;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub identity: Identity,
    /// Holds the blob store and the compiled-code cache.
    pub home: PathBuf,
    pub key: SharedKey,
    pub workers: u32,
    pub listen: Multiaddr,
    pub static_peers: Vec<Multiaddr>,
    pub mdns: bool,
}

pub struct EventLoop {
    cfg: NodeConfig,
    swarm: Swarm<Behaviour>,
    sched: Scheduler<Arc<JobSpec>, TaskOutput>,
    membership: Membership,
    discovery: Option<Discovery>,
    disc_rx: Option<mpsc::Receiver<DiscoveryEvent>>,
    commands: mpsc::Receiver<Command>,
    /// Our own handle, for tasks the loop spawns (fetches, blob reads).
    client: Client,
    exec: Arc<Executor>,
    /// Blobs being fetched, with the workers waiting for each.
    fetching: HashMap<ContentId, Vec<oneshot::Sender<Result<(), String>>>>,
    blob_requests: HashMap<request_response::OutboundRequestId, oneshot::Sender<Result<BlobResponse, String>>>,
    blob_stats: BlobStats,
    corrupt: Arc<CorruptServes>,
    topic: gossipsub::IdentTopic,
    peer_of: HashMap<NodeId, PeerId>,
    conn_addr: HashMap<PeerId, Multiaddr>,
    listen_addrs: Vec<Multiaddr>,
    next_housekeeping: Instant,
    next_static_dial: Instant,
    pool: WorkerPool,
    finished: mpsc::Receiver<Finished>,
    /// Jobs this node owns, with whoever waits for them.
    watches: HashMap<JobId, Watch>,
}

/// An owned job and its waiting submitter.
#[derive(Debug)]
struct Watch {
    collector: Collector,
    progress: watch::Sender<(u64, u64)>,
    done: oneshot::Sender<JobReport>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop").field("me", &self.cfg.identity.peer_id).finish_non_exhaustive()
    }
}

impl EventLoop {
    pub fn new(cfg: NodeConfig, client: Client, commands: mpsc::Receiver<Command>) -> Result<Self> {
        let mut swarm = build_swarm(cfg.identity.keypair.clone(), &cfg.key)?;
        let topic = gossipsub::IdentTopic::new(TOPIC);
        swarm.behaviour_mut().gossipsub.subscribe(&topic).context("subscribing to the membership topic")?;
        swarm.listen_on(cfg.listen.clone()).with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let now = Instant::now();
        let sched_cfg = Config { workers: cfg.workers, ..Config::default() };
        let seed = u64::from_le_bytes(cfg.identity.node_id.0.to_le_bytes()) ^ super::seed();
        crate::exec::wasm::prune_caches(&cfg.home);
        let store = Arc::new(BlobStore::new(&cfg.home));
        let fetcher = Arc::new(LoopFetcher(client.clone()));
        let exec = Arc::new(Executor::new(cfg.home.clone(), store, Some(fetcher)));
        let (pool, finished) =
            WorkerPool::start(cfg.workers as usize, exec.clone()).context("starting worker threads")?;
        Ok(Self {
            client,
            exec,
            fetching: HashMap::new(),
            blob_requests: HashMap::new(),
            blob_stats: BlobStats::default(),
            corrupt: Arc::new(CorruptServes::from_env()),
            pool,
            finished,
            watches: HashMap::new(),
            sched: Scheduler::new(cfg.identity.node_id, sched_cfg, seed, now),
            membership: Membership::new(cfg.identity.peer_id, cfg.key.fingerprint()),
            swarm,
            discovery: None,
            disc_rx: None,
            commands,
            topic,
            peer_of: HashMap::new(),
            conn_addr: HashMap::new(),
            listen_addrs: Vec::new(),
            next_housekeeping: now,
            next_static_dial: now,
            cfg,
        })
    }

    /// Runs until `shutdown` is cancelled, then leaves the mesh politely.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        loop {
            self.drain_actions();
            let deadline = self.sched.poll_timeout().map_or(self.next_housekeeping, |t| t.min(self.next_housekeeping));
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(f) = self.finished.recv() => {
                    for r in f.reports {
                        self.sched.handle_task_done(Instant::now(), f.worker, r);
                    }
                }
                Some(cmd) = self.commands.recv() => self.on_command(cmd),
                Some(ev) = recv_opt(&mut self.disc_rx) => self.on_discovery(ev),
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev)?,
                () = tokio::time::sleep_until(deadline.into()) => self.on_tick(),
            }
        }
        self.leave().await;
        Ok(())
    }

    fn drain_actions(&mut self) {
        while let Some(action) = self.sched.poll_action() {
            match action {
                Action::Run { worker, job, tasks, .. } => {
                    let started =
                        self.sched.spec(job).cloned().is_some_and(|spec| self.pool.run(worker, job, tasks, spec));
                    if !started {
                        // The job is gone or the worker is: fail the run rather than leave
                        // the worker counted busy for ever.
                        for task in tasks.start..tasks.end {
                            let report = TaskReport {
                                task,
                                outcome: Err("the task could not start".into()),
                                took: Duration::ZERO,
                            };
                            self.sched.handle_task_done(Instant::now(), worker, report);
                        }
                    }
                }
                Action::Send { to, msg } => self.send(to, msg),
                Action::Broadcast(Message::Status(s)) => self.announce(s, false),
                Action::Broadcast(msg) => {
                    let members: Vec<NodeId> = self.peer_of.keys().copied().collect();
                    for to in members {
                        self.send(to, msg.clone());
                    }
                }
                Action::Accepted { job, from, report } => {
                    if let Some(w) = self.watches.get_mut(&job) {
                        w.collector.add(from, report);
                        let _ = w.progress.send((w.collector.done, w.collector.total()));
                    }
                }
                Action::Retrying { job, from, report } => {
                    tracing::info!(%job, task = report.task, node = %from, "task failed; retrying");
                    if let Some(w) = self.watches.get_mut(&job) {
                        w.collector.retrying(from, &report);
                    }
                }
                Action::Stolen { job, by, .. } => {
                    if let Some(w) = self.watches.get_mut(&job) {
                        w.collector.stolen(by);
                    }
                }
                Action::JobFinished { job, progress } => {
                    if let Some(w) = self.watches.remove(&job) {
                        let backups = self.sched.counters().backups;
                        let report = w.collector.finish(progress, backups, &|n| self.describe(n));
                        let _ = w.done.send(report);
                    }
                }
                Action::JobDropped { job, reason } => {
                    tracing::debug!(%job, ?reason, "dropped a job");
                    self.watches.remove(&job);
                }
            }
        }
    }

    fn send(&mut self, to: NodeId, msg: WireMessage) {
        match self.peer_of.get(&to) {
            Some(peer) => {
                self.swarm.behaviour_mut().sched.send_request(peer, msg);
            }
            None => tracing::debug!(%to, "no route to node; the scheduler will recover"),
        }
    }

    /// (name, peer id, workers) of a node, for statistics.
    fn describe(&self, node: NodeId) -> (String, String, u32) {
        if node == self.cfg.identity.node_id {
            return (self.cfg.identity.name.clone(), self.cfg.identity.peer_id.to_base58(), self.cfg.workers);
        }
        let Some(peer) = self.peer_of.get(&node) else { return (node.to_string(), String::new(), 0) };
        match self.membership.members().find(|(p, _)| *p == peer) {
            Some((_, m)) => (m.name.clone(), peer.to_base58(), m.status.workers),
            None => (peer.to_base58(), peer.to_base58(), 0),
        }
    }

    fn announce(&mut self, status: Status, bye: bool) {
        let a = Announce {
            protocol: PROTOCOL_VERSION,
            version: VERSION.into(),
            name: self.cfg.identity.name.clone(),
            status,
            bye,
        };
        // With no subscribed peer yet this fails; the next announce goes out a second later.
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), a.encode()) {
            tracing::trace!(%e, "announce not published");
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Submit { job, progress, done } => {
                let now = Instant::now();
                let spec = Arc::new(job);
                let collector = Collector::new(spec.clone(), now);
                let id = self.sched.submit(now, spec.clone(), spec.tasks(), spec.retries());
                tracing::info!(job = %id, tasks = spec.tasks(), "job submitted");
                self.watches.insert(id, Watch { collector, progress, done });
            }
            Command::Peers { reply } => {
                let now = Instant::now();
                let mut rows = vec![self.self_row()];
                rows.extend(self.membership.rows(now));
                let _ = reply.send(PeersReply { rows });
            }
            Command::Fetch { id, hint, reply } => self.on_fetch(id, hint, reply),
            Command::FetchDone { id, result } => self.on_fetch_done(id, result),
            Command::BlobRequest { peer, req, reply } => {
                let rid = self.swarm.behaviour_mut().blob.send_request(&peer, req);
                self.blob_requests.insert(rid, reply);
            }
            Command::BlobServed { channel, response } => self.on_blob_served(channel, response),
        }
    }

    fn self_row(&self) -> PeerRow {
        let s = self.sched.status();
        PeerRow {
            name: self.cfg.identity.name.clone(),
            peer_id: self.cfg.identity.peer_id.to_base58(),
            addrs: self.listen_addrs.iter().map(ToString::to_string).collect(),
            workers: Some(s.workers),
            busy: Some(s.busy),
            queued: Some(s.queued),
            tasks_done: Some(s.tasks_done),
            rtt_ms: None,
            version: VERSION.into(),
            last_seen_s: Some(0.0),
            is_self: true,
            state: "member".into(),
            blobs: Some(self.blob_stats),
        }
    }

    fn on_discovery(&mut self, ev: DiscoveryEvent) {
        match ev {
            DiscoveryEvent::Found(rec) => {
                let connected = self.swarm.is_connected(&rec.peer_id);
                let d = self.membership.on_record(Instant::now(), rec, connected);
                self.apply(d);
            }
            DiscoveryEvent::Removed { fullname } => self.membership.on_record_removed(&fullname),
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        if self.sched.poll_timeout().is_some_and(|t| t <= now) {
            self.sched.handle_timeout(now);
        }
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING;
            // A submitter that stopped waiting (Ctrl-C, a closed control connection): its
            // job is cancelled everywhere rather than computed for nobody.
            let abandoned: Vec<JobId> =
                self.watches.iter().filter(|(_, w)| w.done.is_closed()).map(|(j, _)| *j).collect();
            for job in abandoned {
                tracing::info!(%job, "submitter went away; cancelling the job");
                self.watches.remove(&job);
                self.sched.cancel(now, job);
            }
            let expiry = Config::default().peer_expiry;
            for p in self.membership.expire(now, expiry) {
                tracing::info!(peer = %p, "peer went silent; dropping it");
                let _ = self.swarm.disconnect_peer_id(p);
                self.apply(Decision::Left(p));
            }
            let swarm = &self.swarm;
            let owed = self.membership.overdue_dials(now, |p| swarm.is_connected(p));
            for (p, addrs) in owed {
                self.apply(Decision::Dial(p, addrs));
            }
        }
        if now >= self.next_static_dial {
            self.next_static_dial = now + STATIC_REDIAL;
            for addr in self.cfg.static_peers.clone() {
                let known = peer_in(&addr).is_some_and(|p| self.swarm.is_connected(&p));
                if !known && let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::warn!(%addr, %e, "cannot dial --peer");
                }
            }
        }
    }

    fn apply(&mut self, d: Decision) {
        match d {
            Decision::Nothing => {}
            Decision::Dial(peer, addrs) => {
                let opts = DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    tracing::debug!(%peer, %e, "dial not started");
                }
            }
            Decision::Joined(peer) => {
                let node = NodeId::from_peer_bytes(&peer.to_bytes());
                self.peer_of.insert(node, peer);
                tracing::info!(%peer, "peer joined the mesh");
            }
            Decision::Left(peer) => {
                let node = NodeId::from_peer_bytes(&peer.to_bytes());
                self.peer_of.remove(&node);
                self.sched.handle_peer_gone(Instant::now(), node);
                tracing::info!(%peer, "peer left the mesh");
            }
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) -> Result<()> {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                let port = address.iter().find_map(|p| if let Protocol::Tcp(port) = p { Some(port) } else { None });
                self.listen_addrs.push(address);
                if let (Some(port), None, true) = (port, &self.discovery, self.cfg.mdns) {
                    self.start_discovery(port)?;
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                self.conn_addr.insert(peer_id, endpoint.get_remote_address().clone());
                // Tell the newcomer about us now rather than at the next tick.
                let s = self.sched.status();
                self.announce(s, false);
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.conn_addr.remove(&peer_id);
                let d = self.membership.on_disconnected(Instant::now(), peer_id);
                self.apply(d);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                if peer_id.is_none() {
                    // Only --peer addresses are dialed without a peer id: the user asked for
                    // this one, so say what likely went wrong.
                    tracing::warn!(%error, "cannot connect to a --peer; is it up, and does it use the same --key?");
                } else {
                    tracing::debug!(?peer_id, %error, "dial failed");
                }
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                tracing::debug!(%send_back_addr, %error, "incoming connection failed (another key?)");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                self.on_gossip(message);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { .. })) => {
                let s = self.sched.status();
                self.announce(s, false);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. })) => {
                self.membership.on_rtt(peer, rtt);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sched(ev)) => self.on_sched(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Blob(ev)) => self.on_blob(ev),
            _ => {}
        }
        Ok(())
    }

    fn on_gossip(&mut self, message: gossipsub::Message) {
        let Some(from) = message.source else { return };
        let a = match Announce::decode(&message.data) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(peer = %from, %e, "dropped a bad announce");
                return;
            }
        };
        let status = a.status;
        let usable = a.protocol == PROTOCOL_VERSION && !a.bye;
        let addr = self.conn_addr.get(&from).cloned();
        let d = self.membership.on_announce(Instant::now(), from, a, addr);
        self.apply(d);
        if usable && self.membership.is_member(&from) {
            let node = NodeId::from_peer_bytes(&from.to_bytes());
            self.peer_of.insert(node, from);
            self.sched.handle_message(Instant::now(), node, Message::Status(status));
        }
    }

    fn on_sched(&mut self, ev: request_response::Event<WireMessage, Ack>) {
        match ev {
            request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            } => {
                let _ = self.swarm.behaviour_mut().sched.send_response(channel, Ack);
                let node = NodeId::from_peer_bytes(&peer.to_bytes());
                self.peer_of.insert(node, peer);
                self.sched.handle_message(Instant::now(), node, request);
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::warn!(%peer, %error, "dropped a bad scheduling message");
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "scheduling message not delivered");
            }
            _ => {}
        }
    }

    fn start_discovery(&mut self, port: u16) -> Result<()> {
        let advert = Advert {
            name: self.cfg.identity.name.clone(),
            peer_id: self.cfg.identity.peer_id,
            port,
            fingerprint: self.cfg.key.fingerprint(),
            protocol: PROTOCOL_VERSION,
            version: VERSION.into(),
        };
        let (d, rx) = Discovery::start(Some(&advert))?;
        self.discovery = Some(d);
        self.disc_rx = Some(rx);
        Ok(())
    }

    async fn leave(mut self) {
        let s = self.sched.status();
        self.announce(s, true);
        let disc = self.discovery.take().map(|d| tokio::task::spawn_blocking(move || d.shutdown()));
        let grace = tokio::time::sleep(GOODBYE_GRACE);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                () = &mut grace => break,
                _ = self.swarm.select_next_some() => {}
            }
        }
        if let Some(d) = disc {
            let _ = d.await;
        }
        // Workers waiting for a blob must not wait for a loop that has stopped: closing
        // the command queue fails their requests, and dropping the fetches' waiters wakes
        // the ones already waiting.
        self.commands.close();
        while self.commands.try_recv().is_ok() {}
        self.fetching.clear();
        self.pool.shutdown(WORKER_GRACE);
        tracing::info!("left the mesh");
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn peer_in(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| if let Protocol::P2p(id) = p { Some(id) } else { None })
}
