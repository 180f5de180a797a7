//! Identifiers shared by the core, the wire protocols and the CLI.
//!
//! * [`NodeId`]: a node's 64-bit short id. The scheduler core needs a small `Copy` key and
//!   must not depend on libp2p; the network layer derives it from the libp2p `PeerId` with
//!   blake3 and keeps the map back. 64 bits make a collision on a LAN-sized mesh (even
//!   10^4 nodes) about a 1-in-10^11 event.
//! * [`JobId`]: the submitting node plus a sequence number, so any node can tell a job's
//!   owner from its id alone, without a lookup.
//! * Tasks are plain `u64` indices `0..tasks` inside their job.
//! * [`ContentId`]: the blake3 hash of a blob (a WebAssembly module, a job's input), so
//!   any node can fetch it from any other and check what it got.

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

/// A blob's content address: the blake3 hash of its bytes. Shown and serialised as 64 hex
/// digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId(pub [u8; 32]);

impl ContentId {
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// The first 12 hex digits: enough to tell blobs apart in logs and tables.
    pub fn fmt_short(&self) -> String {
        self.to_string()[..12].to_string()
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&blake3::Hash::from_bytes(self.0).to_hex())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({})", self.fmt_short())
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a blake3 hash (64 hex digits)")]
pub struct NotAContentId(String);

impl std::str::FromStr for ContentId {
    type Err = NotAContentId;

    fn from_str(s: &str) -> Result<Self, NotAContentId> {
        blake3::Hash::from_hex(s).map(|h| Self(*h.as_bytes())).map_err(|_| NotAContentId(s.into()))
    }
}

impl Serialize for ContentId {
    fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ContentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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

    #[test]
    fn content_ids_round_trip_as_hex() {
        let id = ContentId::of(b"hello");
        let hex = id.to_string();
        assert_eq!(hex, "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f");
        assert_eq!(hex.parse::<ContentId>().unwrap(), id);
        assert_eq!(id.fmt_short(), "ea8f163db386");
        assert!("xyz".parse::<ContentId>().is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<ContentId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ContentId>("\"00\"").is_err());
    }
}
