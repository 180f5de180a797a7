//! A node misbehaving on purpose, for the tests of what a member can cost another: steal
//! requests and blob requests sent to every peer each housekeeping, as a member stuck in
//! a tight loop would (`MESH_FAILPOINT_ROGUE_STEALS=N`, `MESH_FAILPOINT_ROGUE_BLOBS=N`).

use super::net::Net;
use crate::core::Message;

/// A node misbehaving on purpose, for the tests of what a member can cost another.
#[derive(Debug, Default)]
pub(super) struct Rogue {
    steals: u32,
    pub(super) blob_requests: u32,
}

impl Rogue {
    pub(super) fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(0u32);
        let rogue =
            Self { steals: var("MESH_FAILPOINT_ROGUE_STEALS"), blob_requests: var("MESH_FAILPOINT_ROGUE_BLOBS") };
        if rogue.steals > 0 || rogue.blob_requests > 0 {
            tracing::warn!(?rogue, "a MESH_FAILPOINT_ROGUE_* is set: this node floods its peers with requests");
        }
        rogue
    }

    /// Sends its requests to every peer; answers come back to nobody and are dropped.
    pub(super) fn misbehave(&self, net: &mut Net, fetched: &[crate::id::ContentId]) {
        for i in 0..self.steals {
            net.broadcast(&Message::Steal { req: u64::MAX - u64::from(i) });
        }
        for peer in net.routes.peers() {
            for &id in fetched {
                for _ in 0..self.blob_requests {
                    let req = crate::protocol::blob::BlobRequest { id, offset: 0, len: crate::protocol::blob::CHUNK };
                    net.request_blob(peer, req);
                }
            }
        }
    }
}
