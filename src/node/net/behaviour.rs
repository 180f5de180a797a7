//! The libp2p stack: TCP, then pnet with the shared key (if any), then Noise and Yamux;
//! gossipsub for membership, ping for round-trip times, and request-response for the
//! scheduling messages (`protocol::sched`), blob transfers (`protocol::blob`) and asks
//! about another owner's job (`protocol::job`).
//!
//! Gossipsub's defaults (D = 6, D_lo = 5) assume big meshes; with 2–5 nodes they would
//! keep every node "under-meshed" and grafting forever. mesh sets D = 4, D_lo = 1,
//! D_hi = 8, publishes each announce to its gossipsub mesh rather than flooding every
//! peer, and tells [`GOSSIP_LAZY`] peers outside the mesh what it has seen each heartbeat:
//! an announce costs a node about the same at 5 hosts as at 20 (docs/SCALING.md).
//!
//! Two behaviours without a protocol bound what a host costs before it shows the key
//! (`node::limits`): libp2p's connection limits and a per-address handshake limit.

use crate::job::JobSpec;
use crate::node::api::report::JobReport;
use crate::node::api::view::JobEvent;
use crate::node::net::limits;
use crate::protocol::membership::MAX_ANNOUNCE_BYTES;
use crate::protocol::{blob, job, sched};
use crate::secret::SharedKey;
use anyhow::{Context, Result};
use libp2p::core::transport::upgrade::Version;
use libp2p::futures::future::Either;
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Swarm, SwarmBuilder, Transport, gossipsub, noise, ping, request_response, tcp, yamux};
use std::time::Duration;

/// How often ping measures round-trip times: gentle for a Raspberry Pi.
pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(5);

/// Connections with nothing to do stay open this long; membership gossip keeps them busy,
/// so in practice only a peer that stopped talking is closed by it.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often gossipsub maintains its mesh (grafts, prunes, gossip about seen messages).
pub(crate) const GOSSIP_HEARTBEAT: Duration = Duration::from_secs(1);

/// Peers outside its mesh that a node tells, each heartbeat, which messages it has seen
/// (IHAVE), so that one the mesh failed to carry is fetched. Only a fixed few, and a node
/// publishes to its mesh peers, not to every peer (no flood publishing): each announce
/// then costs a node a few copies, however big the mesh. Measured with `cargo bench
/// --bench lan -- gossip`, an idle node of 20 hosts received 148 kB/s with flood
/// publishing and gossip to a quarter of the others, 28–51 kB/s like this; per peer, the
/// cost grew from 2.0 to 7.8 kB/s between 5 and 20 hosts before, and stays at 1.5–2.7
/// kB/s now (docs/SCALING.md).
pub(crate) const GOSSIP_LAZY: usize = 2;

/// A connection must finish pnet, Noise and Yamux within this, or it is dropped.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest gossipsub frame: a few announces of at most `MAX_ANNOUNCE_BYTES` each, with
/// gossipsub's own envelope and signature.
pub(crate) const MAX_GOSSIP_BYTES: usize = MAX_ANNOUNCE_BYTES * 4;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    // First, so that a connection over a bound is refused before the others see it.
    pub limits: libp2p::connection_limits::Behaviour,
    pub per_ip: limits::PendingPerIp,
    pub gossipsub: gossipsub::Behaviour,
    pub ping: ping::Behaviour,
    pub sched: request_response::Behaviour<sched::Codec>,
    pub blob: request_response::Behaviour<blob::Codec>,
    pub job: request_response::Behaviour<JobCodec>,
}

/// `/mesh/job/1` for this node's job types.
pub(crate) type JobCodec = job::Codec<JobSpec, JobEvent, JobReport>;
/// An owner's answer about one of its jobs.
pub(crate) type Answer = job::JobAnswer<JobSpec, JobEvent, JobReport>;

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Behaviour")
    }
}

/// Builds the swarm for this identity and key.
pub(crate) fn build_swarm(keypair: Keypair, key: &SharedKey) -> Result<Swarm<Behaviour>> {
    let psk = key.psk().map(PreSharedKey::new);
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|kp| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
            let noise = noise::Config::new(kp)?;
            let base = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
            // pnet wraps the raw socket before any libp2p negotiation, so a peer with
            // another key cannot even start a handshake.
            let transport = base
                .and_then(move |socket, _| async move {
                    match psk {
                        Some(psk) => PnetConfig::new(psk).handshake(socket).await.map(Either::Left),
                        None => Ok(Either::Right(socket)),
                    }
                })
                .upgrade(Version::V1)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .timeout(HANDSHAKE_TIMEOUT);
            Ok(transport)
        })
        .context("building the transport")?
        .with_behaviour(|kp| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
            let cfg = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(GOSSIP_HEARTBEAT)
                .mesh_n(4)
                .mesh_n_low(1)
                .mesh_n_high(8)
                .mesh_outbound_min(1)
                .gossip_lazy(GOSSIP_LAZY)
                .gossip_factor(0.0)
                .flood_publish(false)
                .max_transmit_size(MAX_GOSSIP_BYTES)
                .validation_mode(gossipsub::ValidationMode::Strict)
                .build()?;
            let gossipsub = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(kp.clone()), cfg)?;
            let ping = ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL));
            let sched = request_response_of(sched::PROTOCOL, sched::REQUEST_TIMEOUT, sched::MAX_STREAMS);
            let blob = request_response_of(blob::PROTOCOL, blob::REQUEST_TIMEOUT, blob::MAX_STREAMS);
            let job = request_response_of(job::PROTOCOL, job::REQUEST_TIMEOUT, job::MAX_STREAMS);
            let (limits, per_ip) = (limits::global(), limits::PendingPerIp::new(limits::MAX_PENDING_PER_IP));
            Ok(Behaviour { limits, per_ip, gossipsub, ping, sched, blob, job })
        })
        .context("building the network behaviour")?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    Ok(swarm)
}

/// A request-response behaviour for one of mesh's protocols, with its limits.
fn request_response_of<
    C: request_response::Codec<Protocol = libp2p::StreamProtocol> + Default + Clone + Send + 'static,
>(
    protocol: libp2p::StreamProtocol,
    timeout: Duration,
    streams: usize,
) -> request_response::Behaviour<C> {
    let cfg = request_response::Config::default().with_request_timeout(timeout).with_max_concurrent_streams(streams);
    request_response::Behaviour::with_codec(C::default(), [(protocol, request_response::ProtocolSupport::Full)], cfg)
}
