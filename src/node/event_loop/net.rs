//! The network half of a node, absent in a `--local` run: the libp2p Swarm, mDNS
//! discovery, membership and routes. It translates libp2p and mDNS events into
//! [`FromNet`] events for the loop, and the core's messages into requests and gossip. It
//! decides nothing about work: membership decides who is in the mesh, the core the rest.

use super::roster::Roster;
use super::routes::{Routes, node_of, peer_in};
use crate::core::{Facts, Message, Status};
use crate::exec::fetch::PeerAnswer;
use crate::id::NodeId;
use crate::node::api::config::NetConfig;
use crate::node::api::report::NodeInfo;
use crate::node::api::view::PeerRow;
use crate::node::host::health::HealthProbe;
use crate::node::host::identity::Identity;
use crate::node::net::behaviour::Answer;
use crate::node::net::behaviour::{Behaviour, BehaviourEvent, build_swarm};
use crate::node::net::discovery::{Advert, Discovery, DiscoveryEvent};
use crate::node::net::members::{Decision, Departure, Farewell, Membership};
use crate::node::net::sightings::why_refused;
use crate::protocol::blob::{BlobRequest, BlobResponse};
use crate::protocol::job::JobRequest;
use crate::protocol::membership::{Announce, JobSummary, MAX_JOBS, MAX_SHARES, PROTOCOL_VERSION, TOPIC};
use crate::protocol::sched::{Ack, WireMessage};
use anyhow::{Context, Result};
use libp2p::futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, ping};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod asks;

/// How often unconnected `--peer` addresses are dialed again.
pub(crate) const STATIC_REDIAL: Duration = Duration::from_secs(10);
/// How long a leaving node keeps the swarm running to deliver its goodbye.
pub(crate) const GOODBYE_GRACE: Duration = Duration::from_millis(300);

/// The release of this build, announced and advertised.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Something happened on the network.
#[derive(Debug)]
pub(super) enum NetInput {
    Swarm(SwarmEvent<BehaviourEvent>),
    Discovery(DiscoveryEvent),
}

/// What the network tells the rest of the node.
#[derive(Debug)]
pub(super) enum FromNet {
    /// A scheduling message, or a member's gossiped status, for the core.
    Message { from: NodeId, msg: WireMessage },
    /// A message that must arrive did not (no acknowledgement): the core decides what now.
    Undelivered { to: NodeId, msg: WireMessage },
    /// What a member offers, from its announce; `remote`: mDNS is on and never found it.
    Facts { from: NodeId, facts: Facts, remote: bool },
    /// A member left, went silent or lost its last connection.
    PeerGone(NodeId),
    /// Someone new to tell about us: announce now rather than at the next gossip.
    AnnounceNow,
    /// A peer asks for a chunk of a blob.
    BlobAsked { peer: PeerId, request: BlobRequest, channel: ResponseChannel<BlobResponse> },
    /// The answer to one of our blob requests, or why there is none.
    BlobAnswer { id: OutboundRequestId, answer: Result<BlobResponse, PeerAnswer> },
    /// A node asks about a job this one owns (`protocol::job`).
    JobAsked { peer: PeerId, request: JobRequest, channel: ResponseChannel<Answer> },
    /// The owner's answer to one of our asks, or why there is none.
    JobAnswer { id: OutboundRequestId, answer: Result<Answer, PeerAnswer> },
}

pub(super) struct Net {
    name: String,
    /// What this node offers, in every announce.
    facts: Facts,
    /// How this machine is doing, in every announce (read every few seconds).
    health: HealthProbe,
    cfg: NetConfig,
    swarm: Swarm<Behaviour>,
    topic: gossipsub::IdentTopic,
    membership: Membership,
    discovery: Option<Discovery>,
    disc_rx: Option<mpsc::Receiver<DiscoveryEvent>>,
    pub(super) routes: Routes,
    /// Every node seen, by name, for the statistics.
    roster: Roster,
    /// Messages that must arrive, until acknowledged (bounded by the requests in flight,
    /// each of which ends in an answer or a failure within the protocol's timeout).
    unacked: HashMap<OutboundRequestId, (NodeId, WireMessage)>,
    listen_addrs: Vec<Multiaddr>,
    workers: u32,
    /// The node has not yet said hello (it does, once its listen addresses are known).
    hello_due: bool,
    /// This node's own jobs, told in every announce.
    jobs: Vec<JobSummary>,
    /// Members silent this long are dropped (the core's `peer_expiry`).
    expiry: Duration,
    next_static_dial: Instant,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net").field("me", self.swarm.local_peer_id()).finish_non_exhaustive()
    }
}

impl Net {
    /// Builds the swarm and starts listening; mDNS starts once the port is known.
    pub(super) fn start(
        identity: &Identity,
        cfg: NetConfig,
        facts: Facts,
        workers: u32,
        expiry: Duration,
        now: Instant,
    ) -> Result<Self> {
        let mut swarm = build_swarm(identity.keypair.clone(), &cfg.key)?;
        let topic = gossipsub::IdentTopic::new(TOPIC);
        swarm.behaviour_mut().gossipsub.subscribe(&topic).context("subscribing to the membership topic")?;
        swarm.listen_on(cfg.listen.clone()).with_context(|| format!("cannot listen on {}", cfg.listen))?;
        Ok(Self {
            name: identity.name.clone(),
            facts,
            health: HealthProbe::new(),
            membership: Membership::new(identity.peer_id, cfg.key.fingerprint()),
            cfg,
            swarm,
            topic,
            discovery: None,
            disc_rx: None,
            routes: Routes::default(),
            unacked: HashMap::new(),
            roster: Roster::default(),
            listen_addrs: Vec::new(),
            workers,
            hello_due: true,
            jobs: Vec::new(),
            expiry,
            next_static_dial: now,
        })
    }

    /// The next network event; never, for a node without a network.
    pub(super) async fn next(net: &mut Option<Self>) -> NetInput {
        let Some(net) = net else { return std::future::pending().await };
        let (disc_rx, swarm) = (&mut net.disc_rx, &mut net.swarm);
        let disc = async {
            match disc_rx {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(ev) = disc => NetInput::Discovery(ev),
            ev = swarm.select_next_some() => NetInput::Swarm(ev),
        }
    }

    /// Translates one event.
    pub(super) fn handle(&mut self, input: NetInput, now: Instant) -> Result<Vec<FromNet>> {
        Ok(match input {
            NetInput::Discovery(DiscoveryEvent::Found(rec)) => {
                let connected = self.swarm.is_connected(&rec.peer_id);
                let d = self.membership.on_record(now, rec, connected);
                self.apply(d).into_iter().collect()
            }
            NetInput::Discovery(DiscoveryEvent::Removed { fullname }) => {
                self.membership.on_record_removed(&fullname);
                Vec::new()
            }
            NetInput::Swarm(ev) => self.on_swarm_event(ev, now)?,
        })
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>, now: Instant) -> Result<Vec<FromNet>> {
        let out = match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::debug!(%address, "listening");
                let port = address.iter().find_map(|p| if let Protocol::Tcp(port) = p { Some(port) } else { None });
                self.listen_addrs.push(address);
                if let (Some(port), None, true) = (port, &self.discovery, self.cfg.mdns) {
                    self.start_discovery(port)?;
                }
                Vec::new()
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                self.routes.connected(peer_id, endpoint.get_remote_address().clone());
                self.membership.on_connected(peer_id, endpoint.get_remote_address().clone());
                vec![FromNet::AnnounceNow]
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                let d = self.membership.on_disconnected(now, peer_id);
                let gone = self.apply(d);
                self.routes.disconnected(&peer_id);
                gone.into_iter().collect()
            }
            SwarmEvent::OutgoingConnectionError { peer_id: None, error, .. } => {
                // Only --peer addresses are dialed without a peer id: the user asked for
                // this one, so say what likely went wrong.
                tracing::warn!(%error, "cannot connect to a --peer; is it up, and does it use the same --key?");
                Vec::new()
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "dial failed");
                Vec::new()
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                tracing::debug!(%send_back_addr, %error, "incoming connection failed (another key?)");
                Vec::new()
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                self.on_gossip(message, now)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { .. })) => {
                vec![FromNet::AnnounceNow]
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. })) => {
                self.membership.on_rtt(peer, rtt);
                Vec::new()
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sched(ev)) => self.on_sched(ev).into_iter().collect(),
            SwarmEvent::Behaviour(BehaviourEvent::Blob(ev)) => Self::on_blob(ev).into_iter().collect(),
            SwarmEvent::Behaviour(BehaviourEvent::Job(ev)) => Self::on_job(ev).into_iter().collect(),
            _ => Vec::new(),
        };
        Ok(out)
    }

    fn on_gossip(&mut self, message: gossipsub::Message, now: Instant) -> Vec<FromNet> {
        let Some(from) = message.source else { return Vec::new() };
        let a = match Announce::decode(&message.data) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(peer = %from, %e, "dropped a bad announce");
                return Vec::new();
            }
        };
        let (status, facts, name) = (a.status, a.facts.clone(), a.name.clone());
        let usable = a.protocol == PROTOCOL_VERSION && !a.bye;
        let addr = self.routes.addr(&from);
        // A member heard only through others (on another LAN): connect where it listens.
        let dial = self.membership.dial_told(now, from, &a, self.swarm.is_connected(&from));
        let d = self.membership.on_announce(now, from, a, addr);
        let mut out: Vec<FromNet> = self.apply(d).into_iter().chain(self.apply(dial)).collect();
        if usable && self.membership.is_member(&from) {
            self.roster.here(node_of(&from), from, &name, status.workers);
            let remote = self.cfg.mdns && !self.membership.sighted(&from);
            out.push(FromNet::Facts { from: node_of(&from), facts, remote });
            out.push(FromNet::Message { from: node_of(&from), msg: Message::Status(status) });
        }
        out
    }

    fn on_sched(&mut self, ev: request_response::Event<WireMessage, Ack>) -> Option<FromNet> {
        match ev {
            request_response::Event::Message {
                peer,
                message: request_response::Message::Request { request, channel, .. },
                ..
            } => {
                let _ = self.swarm.behaviour_mut().sched.send_response(channel, Ack);
                let from = self.routes.learn(peer);
                return Some(FromNet::Message { from, msg: request });
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::warn!(%peer, %error, "dropped a bad scheduling message");
            }
            request_response::Event::Message {
                message: request_response::Message::Response { request_id, .. },
                ..
            } => {
                self.unacked.remove(&request_id);
            }
            request_response::Event::OutboundFailure { peer, error, request_id, .. } => {
                tracing::debug!(%peer, %error, "scheduling message not delivered");
                if let Some((to, msg)) = self.unacked.remove(&request_id) {
                    return Some(FromNet::Undelivered { to, msg });
                }
            }
            _ => {}
        }
        None
    }

    /// Carries out a membership decision; a peer that left is reported.
    fn apply(&mut self, d: Decision) -> Option<FromNet> {
        match d {
            Decision::Nothing => None,
            Decision::Dial(peer, addrs) => {
                let opts = DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    tracing::debug!(%peer, %e, "dial not started");
                }
                None
            }
            Decision::Joined(peer) => {
                self.routes.learn(peer);
                // The node's own hello comes before anything it tells of others.
                self.hello_if_due();
                let name = self.membership.name_of(&peer).unwrap_or("?");
                tracing::info!(%peer, "{name} joined the mesh");
                None
            }
            Decision::Left(peer, how) => {
                let node = self.routes.forget(&peer);
                let name = self.roster.info(node).map_or_else(|| peer.to_string(), |i| i.name);
                self.roster.gone(node, how.is_lost());
                match how {
                    Departure::Bye => tracing::info!(%peer, "{name} left the mesh"),
                    Departure::Disconnected => tracing::info!(%peer, "{name} is gone: its connection closed"),
                    Departure::Silent => tracing::info!(%peer, "{name} is gone: silent for {:?}", self.expiry),
                }
                Some(FromNet::PeerGone(node))
            }
            Decision::Refused { name, state, version, protocol } => {
                tracing::warn!(
                    "node {name} on this LAN {}; it cannot join this mesh",
                    why_refused(state, &version, protocol)
                );
                None
            }
        }
    }

    /// Periodic upkeep: silent members are dropped, owed dials and `--peer` redials made.
    /// `expiry`: the core's now, which an idle mesh's gossip budget stretches.
    pub(super) fn housekeeping(&mut self, now: Instant, expiry: Duration) -> Vec<FromNet> {
        self.expiry = expiry;
        let mut gone = Vec::new();
        self.hello_if_due();
        for p in self.membership.expire(now, self.expiry) {
            let _ = self.swarm.disconnect_peer_id(p);
            gone.extend(self.apply(Decision::Left(p, Departure::Silent)));
        }
        let swarm = &self.swarm;
        let owed = self.membership.overdue_dials(now, |p| swarm.is_connected(p));
        for (p, addrs) in owed {
            self.apply(Decision::Dial(p, addrs));
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
        gone
    }

    pub(super) fn send(&mut self, to: NodeId, msg: WireMessage) {
        match self.routes.peer(to) {
            Some(peer) => {
                let keep = msg.must_arrive().then(|| msg.clone());
                let id = self.swarm.behaviour_mut().sched.send_request(&peer, msg);
                if let Some(msg) = keep {
                    self.unacked.insert(id, (to, msg));
                }
            }
            None => tracing::debug!(%to, "no route to node; the scheduler will recover"),
        }
    }

    pub(super) fn broadcast(&mut self, msg: &WireMessage) {
        for peer in self.routes.peers() {
            self.swarm.behaviour_mut().sched.send_request(&peer, msg.clone());
        }
    }

    pub(super) fn announce(&mut self, status: Status, bye: bool) {
        let a = Announce {
            protocol: PROTOCOL_VERSION,
            version: VERSION.into(),
            name: self.name.clone(),
            status,
            bye,
            facts: self.facts.clone(),
            health: Some(self.health.now(Instant::now())),
            jobs: self.jobs.clone(),
            addrs: Announce::addrs_of(&self.listen_addrs),
        };
        // With no subscribed peer yet this fails; the next announce goes out a second later.
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), a.encode()) {
            tracing::trace!(%e, "announce not published");
        }
    }

    /// The jobs every announce tells of from now on: at most `MAX_JOBS`, each naming its
    /// `MAX_SHARES` busiest nodes.
    pub(super) fn set_jobs(&mut self, mut jobs: Vec<JobSummary>) {
        jobs.truncate(MAX_JOBS);
        jobs.iter_mut().for_each(|j| j.shares.truncate(MAX_SHARES));
        self.jobs = jobs;
    }

    /// What members that left told of their jobs in their goodbye, since the last call.
    pub(super) fn take_farewells(&mut self) -> Vec<Farewell> {
        self.membership.take_farewells()
    }

    /// Whom to ask for a blob of a job owned by `owner`: the owner, then every member.
    pub(super) fn blob_holders(&self, owner: NodeId) -> (Option<PeerId>, Vec<PeerId>) {
        (self.routes.peer(owner), self.routes.peers())
    }

    /// How the statistics name another node.
    /// How the statistics name another node, cheaply: once per accepted result.
    pub(super) fn name_of(&self, node: NodeId) -> String {
        self.roster.name(node).unwrap_or_else(|| self.describe(node).name)
    }

    pub(super) fn describe(&self, node: NodeId) -> NodeInfo {
        if let Some(info) = self.roster.info(node) {
            return info;
        }
        let Some(peer) = self.routes.peer(node) else {
            return NodeInfo { name: node.to_string(), peer_id: String::new(), workers: 0 };
        };
        match self.membership.members().find(|(p, _)| **p == peer) {
            Some((_, m)) => NodeInfo { name: m.name.clone(), peer_id: peer.to_base58(), workers: m.status.workers },
            None => NodeInfo { name: peer.to_base58(), peer_id: peer.to_base58(), workers: 0 },
        }
    }

    /// The other nodes' rows of `mesh peers`.
    pub(super) fn rows(&self, now: Instant) -> Vec<PeerRow> {
        self.membership.rows(now)
    }

    pub(super) fn listen_addrs(&self) -> Vec<String> {
        self.listen_addrs.iter().map(ToString::to_string).collect()
    }

    /// Says hello once the node listens, if it has not yet.
    fn hello_if_due(&mut self) {
        if self.hello_due && !self.listen_addrs.is_empty() {
            self.hello_due = false;
            self.say_hello();
        }
    }

    /// The one line a node logs when it is up: who it is, where it listens, what it offers.
    fn say_hello(&self) {
        let key = match self.cfg.key.is_open() {
            true => "no key (any machine on the LAN can join)".to_string(),
            false => format!("key {}", self.cfg.key.fingerprint()),
        };
        let runs = if self.facts.allow_run { "runs others' programs" } else { "runs only sandboxed tasks for others" };
        let addrs: Vec<String> = self.listen_addrs.iter().map(ToString::to_string).collect();
        let workers = match self.workers {
            1 => "1 worker".to_string(),
            n => format!("{n} workers"),
        };
        tracing::info!(
            "mesh node {} is up: peer id {}, listening on {}, {workers}, {key}, {runs}",
            self.name,
            self.swarm.local_peer_id(),
            addrs.join(" "),
        );
    }

    fn start_discovery(&mut self, port: u16) -> Result<()> {
        let advert = Advert {
            name: self.name.clone(),
            peer_id: *self.swarm.local_peer_id(),
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

    /// Says goodbye: a `bye` announce and the mDNS record withdrawn, with a moment for
    /// both to go out.
    pub(super) async fn leave(&mut self, status: Status) {
        self.announce(status, true);
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
    }
}
