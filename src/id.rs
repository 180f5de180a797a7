//! Identifiers shared by the core, the wire protocols and the CLI.
//!
//! * [`NodeId`]: a node's 64-bit short id. The scheduler core needs a small `Copy` key and
//!   must not depend on libp2p; the network layer derives it from the libp2p `PeerId` with
//!   blake3 and keeps the map back. 64 bits make a collision on a LAN-sized mesh (even
//!   10^4 nodes) about a 1-in-10^11 event.
//! * [`JobId`]: the submitting node plus a sequence number, so any node can tell a job's
//!   owner from its id alone, without a lookup.
//! * Tasks are plain `u64` indices `0..tasks` inside their job.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's short id, derived from its libp2p peer id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The short id of a libp2p peer id (first 8 bytes of the blake3 hash of its bytes).
    pub fn from_peer_bytes(bytes: &[u8]) -> Self {
        let hash = blake3::hash(bytes);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        Self(u64::from_be_bytes(first))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{:08x}", self.0 >> 32)
    }
}

/// A job: the node that submitted it and owns its results, and that node's sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId {
    pub owner: NodeId,
    pub seq: u32,
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}-{}", self.owner.0 >> 32, self.seq)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_stable_and_distinct() {
        let a = NodeId::from_peer_bytes(b"peer-a");
        assert_eq!(a, NodeId::from_peer_bytes(b"peer-a"));
        assert_ne!(a, NodeId::from_peer_bytes(b"peer-b"));
        assert_eq!(a.to_string().len(), 16);
    }
}
