//! Moving blobs between nodes: fetching a missing module or input from peers, and serving
//! chunks of ours. The wire format is `protocol::blob`; the event loop only translates,
//! and the logic lives here.
//!
//! * A worker that needs a blob calls [`LoopFetcher::fetch`], which blocks it until the
//!   event loop's fetch finishes. The loop runs one fetch per blob however many workers
//!   wait for it, so a node receives each blob once.
//! * [`fetch`] asks the job's owner first, then every other member, chunk by chunk, and
//!   checks the blake3 hash of the whole before storing it. A blob that fails the check is
//!   rejected and fetched again from the next peer; three rounds over all peers are tried
//!   before the fetch fails (and with it the task, which is then retried elsewhere).
//! * [`serve`] reads one chunk from the store on a blocking thread.

use super::client::{Client, Command};
use crate::exec::wasm::BlobFetcher;
use crate::id::{ContentId, NodeId};
use crate::protocol::blob::{BlobRequest, BlobResponse, CHUNK};
use crate::store::{BlobStore, StoreError};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;

/// Rounds over all candidate peers before a fetch gives up.
pub const FETCH_ROUNDS: u32 = 3;
/// The longest a fetch may take, whatever the peers do.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(120);

/// A node's blob traffic since it started, shown by `mesh peers --json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobStats {
    /// Blobs fetched from peers.
    pub fetched: u64,
    pub bytes_in: u64,
    /// Transfers rejected because the blob did not match its hash.
    pub rejected: u64,
    /// Chunks served to peers.
    pub chunks_served: u64,
    pub bytes_out: u64,
}

/// A finished fetch.
#[derive(Debug, Clone, Copy)]
pub struct Fetched {
    pub bytes: u64,
    pub from: PeerId,
    pub rejected: u32,
}

/// The worker threads' way to the event loop's fetches.
#[derive(Debug)]
pub struct LoopFetcher(pub Client);

impl BlobFetcher for LoopFetcher {
    fn fetch(&self, id: ContentId, hint: NodeId) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.0.send_blocking(Command::Fetch { id, hint, reply }).map_err(|e| e.to_string())?;
        rx.blocking_recv().map_err(|_| "the node stopped during the fetch".to_string())?
    }
}

enum FromPeer {
    Missing,
    Failed(String),
}

/// Fetches `id` into `store`: from the job's `owner` first, then from the other `members`
/// in random order (so that many fetchers spread over the holders), within
/// [`FETCH_DEADLINE`].
pub async fn fetch_from_mesh(
    client: &Client,
    store: &Arc<BlobStore>,
    id: ContentId,
    owner: Option<PeerId>,
    mut members: Vec<PeerId>,
) -> Result<Fetched, String> {
    members.retain(|p| Some(*p) != owner);
    fastrand::shuffle(&mut members);
    let candidates: Vec<PeerId> = owner.into_iter().chain(members).collect();
    tokio::time::timeout(FETCH_DEADLINE, fetch(client, store, id, &candidates))
        .await
        .unwrap_or_else(|_| Err(format!("fetching blob {} took over {FETCH_DEADLINE:?}", id.fmt_short())))
}

/// Fetches `id` into `store` from the first of `candidates` that has it.
pub async fn fetch(
    client: &Client,
    store: &Arc<BlobStore>,
    id: ContentId,
    candidates: &[PeerId],
) -> Result<Fetched, String> {
    let mut rejected = 0;
    let mut last = String::from("no peer has it");
    for round in 0..FETCH_ROUNDS {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(500) * round).await;
        }
        for &peer in candidates {
            match fetch_from(client, id, peer).await {
                Ok(bytes) if ContentId::of(&bytes) == id => {
                    let n = bytes.len() as u64;
                    let store = store.clone();
                    tokio::task::spawn_blocking(move || store.put_verified(id, &bytes))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    return Ok(Fetched { bytes: n, from: peer, rejected });
                }
                Ok(_) => {
                    rejected += 1;
                    last = format!("the copy from {peer} did not match its hash");
                    tracing::warn!(blob = %id.fmt_short(), %peer, "blob failed its hash check; rejected, fetching it again");
                }
                Err(FromPeer::Missing) => {}
                Err(FromPeer::Failed(e)) => {
                    tracing::debug!(blob = %id.fmt_short(), %peer, %e, "blob transfer failed");
                    last = e;
                }
            }
        }
    }
    Err(format!("cannot fetch blob {} from {} peer(s): {last}", id.fmt_short(), candidates.len()))
}

/// All of a blob from one peer, unchecked.
async fn fetch_from(client: &Client, id: ContentId, peer: PeerId) -> Result<Vec<u8>, FromPeer> {
    let mut buf: Vec<u8> = Vec::new();
    let mut total = None;
    loop {
        let req = BlobRequest { id, offset: buf.len() as u64, len: CHUNK };
        let resp = client.blob_request(peer, req).await.map_err(FromPeer::Failed)?;
        let BlobResponse::Chunk { total: t, data } = resp else { return Err(FromPeer::Missing) };
        let t = *total.get_or_insert(t);
        // Every chunk but the last is whole: a peer cannot drag a transfer out with
        // slivers.
        let want = (t.saturating_sub(buf.len() as u64)).min(u64::from(CHUNK));
        if data.len() as u64 != want || want == 0 {
            return Err(FromPeer::Failed(format!("{peer} sent a chunk that does not fit a {t}-byte blob")));
        }
        buf.extend_from_slice(&data);
        if buf.len() as u64 == t {
            return Ok(buf);
        }
    }
}

/// A test hook: when `MESH_FAILPOINT_CORRUPT_BLOBS=N` is set, the first N chunks this node
/// serves have a byte flipped, as a faulty peer's would.
#[derive(Debug, Default)]
pub struct CorruptServes(AtomicU32);

impl CorruptServes {
    pub fn from_env() -> Self {
        let n = std::env::var("MESH_FAILPOINT_CORRUPT_BLOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        if n > 0 {
            tracing::warn!(n, "MESH_FAILPOINT_CORRUPT_BLOBS is set: this node serves corrupted blob chunks");
        }
        Self(AtomicU32::new(n))
    }

    fn take(&self) -> bool {
        self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }
}

/// Answers a peer's chunk request from the store. Blocking: run it off the event loop.
pub fn serve(store: &BlobStore, req: &BlobRequest, corrupt: &CorruptServes) -> BlobResponse {
    match store.read_chunk(req.id, req.offset, req.len.min(CHUNK)) {
        Ok((total, mut data)) => {
            if !data.is_empty() && corrupt.take() {
                data[0] ^= 0xff;
            }
            BlobResponse::Chunk { total, data: ByteBuf::from(data) }
        }
        Err(StoreError::Missing(_)) => BlobResponse::Missing,
        Err(e) => {
            tracing::warn!(%e, "cannot serve a blob");
            BlobResponse::Missing
        }
    }
}
