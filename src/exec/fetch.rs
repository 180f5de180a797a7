//! Blobs a task needs (a module, a task list, a file to send), from this node's store or
//! fetched from the mesh, and why that can fail. A worker thread blocks while the node's
//! event loop fetches a missing blob ([`BlobFetcher`]); the loop fetches each blob once
//! however many workers wait for it.

use crate::id::{ContentId, NodeId};
use crate::store::{BlobStore, MAX_BLOB, MAX_FILE, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Brings a missing blob into the store, from the peers. It blocks: workers call it from
/// their own threads.
pub trait BlobFetcher: Send + Sync + std::fmt::Debug {
    /// Fetches `id` into the store, asking the node `hint` (the job's owner) first. A
    /// peer that says the blob is larger than `max` bytes is not fetched from.
    fn fetch(&self, id: ContentId, hint: NodeId, max: u64) -> Result<(), FetchError>;
}

/// Why a blob could not be fetched from the mesh. Shared by every worker waiting for the
/// same fetch, hence `Clone`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Every round over every candidate failed; `last` is the last peer's answer.
    #[error("cannot fetch blob {} from {peers} peer(s): {last}", .blob.fmt_short())]
    Exhausted { blob: ContentId, peers: usize, last: PeerAnswer },
    #[error("fetching blob {} took over {limit:?}", .blob.fmt_short())]
    Deadline { blob: ContentId, limit: Duration },
    /// This node could not store the blob (its disk is full, say). Nothing partial is
    /// left behind.
    #[error("this node cannot store the blob: {0}")]
    Store(Arc<StoreError>),
    #[error("the node stopped during the fetch")]
    NodeStopped,
    /// A bug: the fetch itself panicked. Its waiters still hear of it.
    #[error("the fetch of blob {} broke: {message}", .blob.fmt_short())]
    Panicked { blob: ContentId, message: String },
}

/// What the last peer asked for a blob answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerAnswer {
    #[error("no peer has it")]
    NobodyHasIt,
    #[error("the copy from {peer} did not match its hash")]
    Mismatch { peer: String },
    #[error("{peer} sent a chunk that does not fit a {total}-byte blob")]
    BadChunk { peer: String, total: u64 },
    #[error("{peer} offered {total} bytes where at most {max} are expected")]
    TooLarge { peer: String, total: u64, max: u64 },
    /// The request itself failed (timeout, connection closed, unsupported protocol).
    #[error("{0}")]
    Transfer(String),
    /// The whole fetch ran past its deadline during this peer's transfer.
    #[error("the transfer was too slow")]
    TooSlow,
    /// This node runs without a network: there is nobody to ask.
    #[error("this node has no network")]
    NoNetwork,
}

/// Why a blob a task needs is not to be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlobError {
    /// Not in the store, and this node has no peers to ask (a `--local` run).
    #[error("blob {} is not on this node", .0.fmt_short())]
    NotHere(ContentId),
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

impl From<StoreError> for BlobError {
    fn from(e: StoreError) -> Self {
        Self::Store(Arc::new(e))
    }
}

/// The store, and the way to the mesh for what it lacks.
#[derive(Debug, Clone)]
pub(crate) struct Blobs {
    pub(crate) store: Arc<BlobStore>,
    fetcher: Option<Arc<dyn BlobFetcher>>,
}

impl Blobs {
    pub(crate) fn new(store: Arc<BlobStore>, fetcher: Option<Arc<dyn BlobFetcher>>) -> Self {
        Self { store, fetcher }
    }

    /// A whole blob (at most `store::MAX_BLOB`), fetched first if it is missing or damaged.
    pub(crate) fn read(&self, id: ContentId, hint: Option<NodeId>) -> Result<Vec<u8>, BlobError> {
        match self.store.read(id) {
            Ok(b) => return Ok(b),
            Err(StoreError::Missing(_) | StoreError::Corrupt(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.fetch(id, hint, MAX_BLOB)?;
        Ok(self.store.read(id)?)
    }

    /// Makes sure a blob of `len` bytes (as the job says; at most `store::MAX_FILE`) is
    /// in the store and sound, fetching it if not.
    pub(crate) fn ensure(&self, id: ContentId, len: u64, hint: Option<NodeId>) -> Result<(), BlobError> {
        match self.store.check(id) {
            Ok(_) => return Ok(()),
            Err(StoreError::Missing(_) | StoreError::Corrupt(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.fetch(id, hint, len.min(MAX_FILE))?;
        self.store.check(id)?;
        Ok(())
    }

    fn fetch(&self, id: ContentId, hint: Option<NodeId>, max: u64) -> Result<(), BlobError> {
        match (&self.fetcher, hint) {
            (Some(f), Some(hint)) => Ok(f.fetch(id, hint, max)?),
            _ => Err(BlobError::NotHere(id)),
        }
    }
}
