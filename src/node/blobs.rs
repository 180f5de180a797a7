//! Moving blobs between nodes: fetching a missing module or input from peers, and serving
//! chunks of ours. The wire format is `protocol::blob`; the event loop only translates
//! (`event_loop::transfers`), and the logic lives here.
//!
//! * [`fetch_from_mesh`] asks the job's owner (or the node that ran a task, for its
//!   results) first, then every other member in random order, chunk by chunk. Chunks go
//!   straight to a temporary file in the store, hashed on the way, so a blob of gigabytes
//!   never sits in memory; it enters the store only if its blake3 hash is its id. A blob
//!   that fails the check is rejected and fetched again from the next peer;
//!   [`FETCH_ROUNDS`] rounds over all peers, [`ROUND_PAUSE`] apart and growing, are tried
//!   within [`FETCH_DEADLINE`] plus a second for every [`FETCH_RATE`] bytes of the blob,
//!   before the fetch fails (and with it the task, which is then retried elsewhere).
//! * Chunks come from a [`ChunkSource`]: the event loop's transfer handle in a node, a
//!   fake peer in the tests below.
//! * [`serve`] reads one chunk from the store; it blocks, so the loop runs it off itself.

use crate::exec::fetch::{FetchError, PeerAnswer};
use crate::id::ContentId;
use crate::protocol::blob::{BlobRequest, BlobResponse, CHUNK};
use crate::store::{BlobStore, Incoming, MAX_FILE, StoreError};
use libp2p::PeerId;
use serde_bytes::ByteBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Rounds over all candidate peers before a fetch gives up.
pub(crate) const FETCH_ROUNDS: u32 = 3;
/// The pause before the second round; each later round waits one more of these.
pub(crate) const ROUND_PAUSE: Duration = Duration::from_millis(500);
/// The longest a fetch of a small blob may take, whatever the peers do.
pub(crate) const FETCH_DEADLINE: Duration = Duration::from_secs(120);
/// The slowest transfer a fetch allows a big blob, in bytes per second, on top of
/// [`FETCH_DEADLINE`]: a Pi's 100 Mbit/s moves 12 MB/s.
pub(crate) const FETCH_RATE: u64 = 1 << 20;

/// Where chunks come from: one request to one peer, and its answer.
pub(crate) trait ChunkSource {
    async fn chunk(&self, peer: PeerId, req: BlobRequest) -> Result<BlobResponse, PeerAnswer>;
}

/// A finished fetch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fetched {
    pub(crate) bytes: u64,
    pub(crate) from: PeerId,
    /// Copies rejected on the way because they did not match the blob's hash.
    pub(crate) rejected: u32,
}

/// Fetches `id` into `store`: from the job's `owner` first, then from the other `members`
/// in random order (so that many fetchers spread over the holders), within
/// [`FETCH_DEADLINE`].
pub(crate) async fn fetch_from_mesh(
    source: &impl ChunkSource,
    store: &Arc<BlobStore>,
    id: ContentId,
    owner: Option<PeerId>,
    mut members: Vec<PeerId>,
    max: u64,
) -> Result<Fetched, FetchError> {
    members.retain(|p| Some(*p) != owner);
    fastrand::shuffle(&mut members);
    let candidates: Vec<PeerId> = owner.into_iter().chain(members).collect();
    fetch(source, store, id, &candidates, max).await
}

/// Fetches `id` into `store` from the first of `candidates` that has it.
async fn fetch(
    source: &impl ChunkSource,
    store: &Arc<BlobStore>,
    id: ContentId,
    candidates: &[PeerId],
    max: u64,
) -> Result<Fetched, FetchError> {
    let mut rejected = 0;
    let mut last = PeerAnswer::NobodyHasIt;
    if candidates.is_empty() {
        return Err(FetchError::Exhausted { blob: id, peers: 0, last });
    }
    let started = tokio::time::Instant::now();
    let mut deadline = started + FETCH_DEADLINE;
    for round in 0..FETCH_ROUNDS {
        if round > 0 {
            tokio::time::sleep(ROUND_PAUSE * round).await;
        }
        for &peer in candidates {
            let from_peer = match fetch_from(source, store, id, peer, max, started, &mut deadline).await {
                // This node cannot take the blob (its disk is full): no other peer or
                // round will change that.
                Err(FromPeer::Store(e)) => return Err(FetchError::Store(Arc::new(e))),
                Err(FromPeer::Peer(answer)) => Err(answer),
                Ok(incoming) => Ok(incoming),
            };
            match from_peer {
                Ok(incoming) => {
                    let n = incoming.len;
                    let store = store.clone();
                    match tokio::task::spawn_blocking(move || incoming.finish(&store, id)).await {
                        Ok(Ok(())) => return Ok(Fetched { bytes: n, from: peer, rejected }),
                        Ok(Err(StoreError::Corrupt(_))) => {
                            rejected += 1;
                            last = PeerAnswer::Mismatch { peer: peer.to_string() };
                            tracing::warn!(blob = %id.fmt_short(), %peer, "blob failed its hash check; rejected, fetching it again");
                        }
                        Ok(Err(e)) => return Err(FetchError::Store(Arc::new(e))),
                        Err(_) => return Err(FetchError::NodeStopped),
                    }
                }
                Err(PeerAnswer::NobodyHasIt) => {}
                Err(PeerAnswer::TooSlow) => return Err(FetchError::Deadline { blob: id, limit: deadline - started }),
                Err(e) => {
                    tracing::debug!(blob = %id.fmt_short(), %peer, %e, "blob transfer failed");
                    last = e;
                }
            }
        }
    }
    Err(FetchError::Exhausted { blob: id, peers: candidates.len(), last })
}

/// Why a transfer from one peer stopped: the peer's side, or this node's store.
#[derive(Debug)]
enum FromPeer {
    Peer(PeerAnswer),
    Store(StoreError),
}

impl From<PeerAnswer> for FromPeer {
    fn from(a: PeerAnswer) -> Self {
        Self::Peer(a)
    }
}

/// All of a blob from one peer, into a temporary file of the store, unchecked.
/// `NobodyHasIt` means this peer lacks it; `TooSlow`, that the fetch's deadline passed
/// (each chunk is bounded by the protocol's request timeout, so by at most that much).
/// Once the size is known, the deadline grows by a second per [`FETCH_RATE`] bytes.
async fn fetch_from(
    source: &impl ChunkSource,
    store: &Arc<BlobStore>,
    id: ContentId,
    peer: PeerId,
    max: u64,
    started: tokio::time::Instant,
    deadline: &mut tokio::time::Instant,
) -> Result<Incoming, FromPeer> {
    let mut incoming = store.incoming().map_err(FromPeer::Store)?;
    let mut total = None;
    loop {
        let req = BlobRequest { id, offset: incoming.len, len: CHUNK };
        let BlobResponse::Chunk { total: t, data } = source.chunk(peer, req).await? else {
            return Err(PeerAnswer::NobodyHasIt.into());
        };
        if t > max.min(MAX_FILE) {
            // Refused before anything is written, and before the deadline grows for it.
            return Err(PeerAnswer::TooLarge { peer: peer.to_string(), total: t, max: max.min(MAX_FILE) }.into());
        }
        let t = *total.get_or_insert_with(|| {
            *deadline = (*deadline).max(started + FETCH_DEADLINE + Duration::from_secs(t / FETCH_RATE));
            t
        });
        // Every chunk but the last is whole: a peer cannot drag a transfer out with
        // slivers.
        let want = (t.saturating_sub(incoming.len)).min(u64::from(CHUNK));
        if data.len() as u64 != want || want == 0 {
            return Err(PeerAnswer::BadChunk { peer: peer.to_string(), total: t }.into());
        }
        incoming.write(&data).map_err(FromPeer::Store)?;
        if incoming.len == t {
            return Ok(incoming);
        }
        if tokio::time::Instant::now() >= *deadline {
            return Err(PeerAnswer::TooSlow.into());
        }
    }
}

/// A test hook: when `MESH_FAILPOINT_CORRUPT_BLOBS=N` is set, the first N chunks this node
/// serves have a byte flipped, as a faulty peer's would.
#[derive(Debug, Default)]
pub(crate) struct CorruptServes(AtomicU32);

impl CorruptServes {
    pub(crate) fn from_env() -> Self {
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
pub(crate) fn serve(store: &BlobStore, req: &BlobRequest, corrupt: &CorruptServes) -> BlobResponse {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Peers that serve blobs from their own stores, some of them damaged.
    struct FakePeers {
        stores: HashMap<PeerId, (BlobStore, CorruptServes)>,
        asked: std::sync::Mutex<Vec<PeerId>>,
    }

    impl ChunkSource for FakePeers {
        async fn chunk(&self, peer: PeerId, req: BlobRequest) -> Result<BlobResponse, PeerAnswer> {
            self.asked.lock().unwrap().push(peer);
            let (store, corrupt) = self.stores.get(&peer).ok_or(PeerAnswer::Transfer("connection closed".into()))?;
            Ok(serve(store, &req, corrupt))
        }
    }

    fn home(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mesh-blobs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test(start_paused = true)]
    async fn a_damaged_copy_is_rejected_and_the_next_peer_serves_it() {
        let blob: Vec<u8> = (0..(CHUNK as usize * 2 + 17)).map(|i| (i % 251) as u8).collect();
        let (bad, good, gone) = (PeerId::random(), PeerId::random(), PeerId::random());
        let dirs = [home("bad"), home("good"), home("me")];
        let mut stores = HashMap::new();
        for (peer, dir, corrupt) in [(bad, &dirs[0], 1), (good, &dirs[1], 0)] {
            let store = BlobStore::new(dir);
            store.put(&blob).unwrap();
            stores.insert(peer, (store, CorruptServes(AtomicU32::new(corrupt))));
        }
        let peers = FakePeers { stores, asked: Default::default() };
        let mine = Arc::new(BlobStore::new(&dirs[2]));
        let id = ContentId::of(&blob);
        let got = fetch_from_mesh(&peers, &mine, id, Some(bad), vec![gone, good], MAX_FILE).await.unwrap();
        assert_eq!((got.from, got.rejected, got.bytes), (good, 1, blob.len() as u64));
        assert_eq!(mine.read(id).unwrap(), blob);
        assert_eq!(peers.asked.lock().unwrap()[0], bad, "the owner is asked first");
        for d in dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    /// A blob that must be read whole is at most MAX_BLOB: a peer offering more is not
    /// fetched from at all, and the next one is asked.
    #[tokio::test(start_paused = true)]
    async fn a_peer_offering_more_than_expected_is_refused_at_once() {
        let blob: Vec<u8> = (0..(CHUNK as usize + 5)).map(|i| (i % 251) as u8).collect();
        let dirs = [home("large-src"), home("large-me")];
        let holder = PeerId::random();
        let store = BlobStore::new(&dirs[0]);
        store.put(&blob).unwrap();
        let stores = HashMap::from([(holder, (store, CorruptServes::default()))]);
        let peers = FakePeers { stores, asked: Default::default() };
        let mine = Arc::new(BlobStore::new(&dirs[1]));
        let id = ContentId::of(&blob);
        let err = fetch_from_mesh(&peers, &mine, id, Some(holder), vec![], CHUNK.into()).await.unwrap_err();
        assert!(matches!(&err, FetchError::Exhausted { last: PeerAnswer::TooLarge { .. }, .. }), "{err}");
        assert_eq!(peers.asked.lock().unwrap().len(), FETCH_ROUNDS as usize, "one chunk asked per round, no more");
        assert!(!mine.contains(id));
        fetch_from_mesh(&peers, &mine, id, Some(holder), vec![], MAX_FILE).await.unwrap();
        assert_eq!(mine.read(id).unwrap(), blob);
        for d in dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_blob_nobody_has_fails_after_every_round() {
        let dir = home("none");
        let peers = FakePeers { stores: HashMap::new(), asked: Default::default() };
        let (a, b) = (PeerId::random(), PeerId::random());
        let err =
            fetch_from_mesh(&peers, &Arc::new(BlobStore::new(&dir)), ContentId::of(b"x"), Some(a), vec![b], MAX_FILE)
                .await
                .unwrap_err();
        assert!(matches!(err, FetchError::Exhausted { peers: 2, .. }), "{err}");
        assert_eq!(peers.asked.lock().unwrap().len(), 2 * FETCH_ROUNDS as usize);
        let _ = std::fs::remove_dir_all(dir);
    }
}
