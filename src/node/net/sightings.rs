//! Nodes seen on the LAN by their mDNS records: whether one may be a member, and how it
//! shows in `mesh peers` while it is not one (or while no node runs, in browse mode).

use crate::node::api::view::{PeerRow, PeerState};
use crate::node::net::discovery::Record;
use crate::protocol::membership::PROTOCOL_VERSION;
use libp2p::Multiaddr;

/// Why a node seen on the LAN cannot be a member, if it cannot: another protocol version
/// first (an older node's key fingerprint differs too, since the key's derivation changed
/// with version 5, and "upgrade it" is the advice that helps), then another key.
pub(crate) fn refusal(r: &Record, fingerprint: &str) -> Option<PeerState> {
    if r.protocol != PROTOCOL_VERSION {
        Some(PeerState::Incompatible)
    } else if r.fingerprint != fingerprint {
        Some(PeerState::DifferentKey)
    } else {
        None
    }
}

/// What the log says of a node that cannot join, in the state [`refusal`] gave it.
pub(crate) fn why_refused(state: PeerState, version: &str, protocol: u32) -> String {
    match state {
        PeerState::DifferentKey => "uses a different key (check --key-file or MESH_KEY)".to_string(),
        _ => format!(
            "runs another mesh version, {version} (wire protocol {protocol}, this node's is {PROTOCOL_VERSION}): \
             upgrade the older one"
        ),
    }
}

/// A row for a node known only from its mDNS record.
pub(crate) fn sighting_row(r: &Record, state: PeerState) -> PeerRow {
    PeerRow {
        name: r.name.clone(),
        peer_id: r.peer_id.to_base58(),
        addrs: addrs_of(r).iter().map(ToString::to_string).collect(),
        workers: None,
        busy: None,
        queued: None,
        tasks_done: None,
        steals: None,
        rtt_ms: None,
        version: r.version.clone(),
        last_seen_s: None,
        is_self: false,
        state,
        blobs: None,
        facts: None,
        health: None,
        jobs: Vec::new(),
    }
}

pub(in crate::node) fn addrs_of(r: &Record) -> Vec<Multiaddr> {
    r.addrs.iter().map(|ip| format!("/ip4/{ip}/tcp/{}", r.port).parse().expect("a valid ip4/tcp multiaddr")).collect()
}
