//! How to reach a node: the map from the core's [`NodeId`]s to libp2p [`PeerId`]s, and
//! the address of each peer's connection. The one place these facts are written.
//!
//! A route is learned when a peer joins the mesh or sends a scheduling message (so a
//! thief that has not announced yet still gets its grant), and forgotten when the peer
//! leaves or its last connection closes.

use crate::id::NodeId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;

#[derive(Debug, Default)]
pub(super) struct Routes {
    peer_of: HashMap<NodeId, PeerId>,
    /// The remote address of each connected peer, as `mesh peers` shows it.
    conn_addr: HashMap<PeerId, Multiaddr>,
}

impl Routes {
    /// `peer` can be reached: returns its node id.
    pub(super) fn learn(&mut self, peer: PeerId) -> NodeId {
        let node = node_of(&peer);
        self.peer_of.insert(node, peer);
        node
    }

    /// `peer` left the mesh: returns its node id.
    pub(super) fn forget(&mut self, peer: &PeerId) -> NodeId {
        let node = node_of(peer);
        self.peer_of.remove(&node);
        node
    }

    pub(super) fn peer(&self, node: NodeId) -> Option<PeerId> {
        self.peer_of.get(&node).copied()
    }

    /// Every node with a route, for broadcasts and blob fetches.
    pub(super) fn peers(&self) -> Vec<PeerId> {
        self.peer_of.values().copied().collect()
    }

    pub(super) fn connected(&mut self, peer: PeerId, addr: Multiaddr) {
        self.conn_addr.insert(peer, addr);
    }

    /// The last connection to `peer` closed: no route is left either.
    pub(super) fn disconnected(&mut self, peer: &PeerId) -> NodeId {
        self.conn_addr.remove(peer);
        self.forget(peer)
    }

    pub(super) fn addr(&self, peer: &PeerId) -> Option<Multiaddr> {
        self.conn_addr.get(peer).cloned()
    }
}

/// The core's short id of a peer.
pub(super) fn node_of(peer: &PeerId) -> NodeId {
    NodeId::from_peer_bytes(&peer.to_bytes())
}

/// The peer id a multiaddr names, if it does (`/p2p/…`).
pub(super) fn peer_in(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| if let Protocol::P2p(id) = p { Some(id) } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_learned_and_forgotten_by_peer() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut r = Routes::default();
        let na = r.learn(a);
        assert_eq!(na, node_of(&a));
        assert_eq!(r.learn(a), na, "learning twice changes nothing");
        r.learn(b);
        r.connected(b, "/ip4/198.18.0.12/tcp/4877".parse().unwrap());
        assert_eq!(r.peer(na), Some(a));
        assert_eq!(r.peers().len(), 2);
        assert_eq!(r.forget(&a), na);
        assert_eq!(r.peer(na), None);
        assert!(r.addr(&b).is_some());
        assert_eq!(r.disconnected(&b), node_of(&b));
        assert!(r.addr(&b).is_none() && r.peers().is_empty());
    }
}
