//! Blob transfers as the event loop sees them: fetches that workers wait for, requests
//! in flight to peers, chunks being served, and the node's blob counters. The logic of a
//! fetch is `node::blobs`; this is its bookkeeping.
//!
//! Tasks the loop spawns (a fetch, a chunk read) and the worker threads talk back to the
//! loop over a private bounded channel of [`Internal`] messages, never through the
//! public `Client`. Spawned tasks are tracked and end when the node stops.

use crate::core::TaskReport;
use crate::core::rate::TokenBucket;
use crate::exec::fetch::{BlobFetcher, FetchError, PeerAnswer};
use crate::id::{ContentId, JobId, NodeId};
use crate::job::TaskOutput;
use crate::node::api::view::BlobStats;
use crate::node::blobs::{self, ChunkSource, CorruptServes, Fetched};
use crate::node::net::behaviour::Answer;
use crate::protocol::blob::{BlobRequest, BlobResponse};
use crate::protocol::job::JobRequest;
use crate::store::{BlobStore, MAX_FILE};
use libp2p::PeerId;
use libp2p::futures::FutureExt;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long fetches of a blob fail at once after the store could not take it.
pub(crate) const STORE_FULL_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);
/// Chunks read for peers at once, at most.
pub(crate) const MAX_SERVING: usize = 4;
/// Chunks served to one peer a second (64 MiB/s), after a burst of [`CHUNK_BURST`] (16 MiB).
/// The peer's requests in flight are bounded (`protocol::blob::MAX_STREAMS` a
/// connection), so the wait for a turn stays short.
pub(crate) const CHUNKS_PER_SECOND: f64 = 256.0;
pub(crate) const CHUNK_BURST: f64 = 64.0;
/// Peers whose chunk rate is tracked at once.
const MAX_RATED_PEERS: usize = 512;
/// Blobs remembered as not fitting, at most.
const STORE_FAILURES_KEPT: usize = 64;

/// Internal messages queued to the loop at most; senders wait beyond that.
pub(crate) const INTERNAL_CAPACITY: usize = 64;

/// The loop's own plumbing: what its spawned tasks and worker threads tell it.
#[derive(Debug)]
pub(super) enum Internal {
    /// A worker needs a blob: fetch it (once, however many ask), from `hint` first.
    Fetch { id: ContentId, hint: NodeId, max: u64, reply: oneshot::Sender<Result<(), FetchError>> },
    /// A fetch the loop started has ended.
    FetchDone { id: ContentId, result: Result<Fetched, FetchError> },
    /// Send one blob request to a peer.
    Request { peer: PeerId, req: BlobRequest, reply: oneshot::Sender<Result<BlobResponse, PeerAnswer>> },
    /// Ask the owner of a job about it (`protocol::job`), for a follower or a cancel.
    Ask { peer: PeerId, req: JobRequest, reply: oneshot::Sender<Result<Answer, PeerAnswer>> },
    /// The answer to a peer's blob request, read from the store off the loop.
    Served { channel: ResponseChannel<BlobResponse>, response: BlobResponse },
    /// Results of an owned job whose outputs (large stdout, returned files) are now in
    /// the store; `lost`, those whose outputs could not be fetched (the error in each).
    Results { from: NodeId, job: JobId, reports: Vec<TaskReport<TaskOutput>>, lost: Vec<TaskReport<TaskOutput>> },
}

/// The sending side of the loop's private channel.
#[derive(Debug, Clone)]
pub(super) struct Plumbing(pub(super) mpsc::Sender<Internal>);

impl ChunkSource for Plumbing {
    async fn chunk(&self, peer: PeerId, req: BlobRequest) -> Result<BlobResponse, PeerAnswer> {
        let (reply, rx) = oneshot::channel();
        let stopped = || PeerAnswer::Transfer("the node stopped".into());
        self.0.send(Internal::Request { peer, req, reply }).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// The worker threads' way to the loop's fetches.
#[derive(Debug)]
pub(super) struct LoopFetcher(pub(super) Plumbing);

impl BlobFetcher for LoopFetcher {
    fn fetch(&self, id: ContentId, hint: NodeId, max: u64) -> Result<(), FetchError> {
        let (reply, rx) = oneshot::channel();
        self.0.0.blocking_send(Internal::Fetch { id, hint, max, reply }).map_err(|_| FetchError::NodeStopped)?;
        rx.blocking_recv().map_err(|_| FetchError::NodeStopped)?
    }
}

#[derive(Debug)]
pub(super) struct Transfers {
    plumbing: Plumbing,
    store: Arc<BlobStore>,
    /// Blobs being fetched, with the workers waiting for each.
    waiting: HashMap<ContentId, Vec<oneshot::Sender<Result<(), FetchError>>>>,
    /// Our blob requests in flight, with whoever waits for the answer.
    requests: HashMap<OutboundRequestId, oneshot::Sender<Result<BlobResponse, PeerAnswer>>>,
    stats: BlobStats,
    corrupt: Arc<CorruptServes>,
    /// Blobs the store could not take (a full disk), and when: for [`STORE_FULL_PAUSE`]
    /// after, a fetch of one fails at once with that error instead of transferring it
    /// again for every task that needs it. Other blobs, which may fit, are still fetched.
    /// At most [`STORE_FAILURES_KEPT`].
    store_failed: HashMap<ContentId, (tokio::time::Instant, FetchError)>,
    /// Chunks being read for peers, at most [`MAX_SERVING`] at once over all of them, in
    /// the order asked: a member asking in a tight loop waits its turn and costs this node
    /// a bounded amount of disk and threads.
    serving: Arc<tokio::sync::Semaphore>,
    /// Each peer's chunks, at most [`CHUNKS_PER_SECOND`] (bursts of [`CHUNK_BURST`]):
    /// requests over it wait their turn before they are read.
    chunk_rates: HashMap<PeerId, TokenBucket>,
    /// The first few blobs this node fetched, kept only for `MESH_FAILPOINT_ROGUE_BLOBS`
    /// (a test hook), which asks its peers for them again and again; `None` without it.
    pub(super) fetched: Option<Vec<ContentId>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Transfers {
    pub(super) fn new(
        plumbing: Plumbing,
        store: Arc<BlobStore>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            plumbing,
            store,
            waiting: HashMap::new(),
            requests: HashMap::new(),
            stats: BlobStats::default(),
            corrupt: Arc::new(CorruptServes::from_env()),
            store_failed: HashMap::new(),
            serving: Arc::new(tokio::sync::Semaphore::new(MAX_SERVING)),
            chunk_rates: HashMap::new(),
            fetched: None,
            tracker,
            shutdown,
        }
    }

    pub(super) fn stats(&self) -> BlobStats {
        self.stats
    }

    /// A worker needs `id`: join the fetch under way, or start one from `owner` first and
    /// then the other `members`.
    pub(super) fn fetch(
        &mut self,
        id: ContentId,
        owner: Option<PeerId>,
        members: Vec<PeerId>,
        max: u64,
        reply: oneshot::Sender<Result<(), FetchError>>,
    ) {
        if let Some(waiting) = self.waiting.get_mut(&id) {
            waiting.push(reply);
            return;
        }
        if let Some((at, e)) = self.store_failed.get(&id)
            && at.elapsed() < STORE_FULL_PAUSE
        {
            let _ = reply.send(Err(e.clone()));
            return;
        }
        self.waiting.insert(id, vec![reply]);
        let (plumbing, store) = (self.plumbing.clone(), self.store.clone());
        self.spawn(async move {
            // Whatever happens, the waiting workers must hear back: a panic is an error too.
            let fetch = AssertUnwindSafe(blobs::fetch_from_mesh(&plumbing, &store, id, owner, members, max));
            let result = fetch.catch_unwind().await.unwrap_or_else(|p| {
                let message = p.downcast_ref::<&str>().map_or_else(|| "a panic".to_string(), ToString::to_string);
                Err(FetchError::Panicked { blob: id, message })
            });
            let _ = plumbing.0.send(Internal::FetchDone { id, result }).await;
        });
    }

    /// A fetch ended: every worker waiting for it learns how.
    pub(super) fn fetch_done(&mut self, id: ContentId, result: Result<Fetched, FetchError>) {
        let outcome = match result {
            Ok(f) => {
                tracing::debug!(blob = %id.fmt_short(), bytes = f.bytes, from = %f.from, rejected = f.rejected, "fetched a blob");
                if let Some(fetched) = self.fetched.as_mut().filter(|f| f.len() < 4) {
                    fetched.push(id);
                }
                self.stats.fetched += 1;
                self.stats.bytes_in += f.bytes;
                self.stats.rejected += u64::from(f.rejected);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(blob = %id.fmt_short(), %e, "blob fetch failed");
                if matches!(e, FetchError::Store(_)) {
                    self.store_failed.retain(|_, (at, _)| at.elapsed() < STORE_FULL_PAUSE);
                    if self.store_failed.len() < STORE_FAILURES_KEPT {
                        self.store_failed.insert(id, (tokio::time::Instant::now(), e.clone()));
                    }
                }
                Err(e)
            }
        };
        for reply in self.waiting.remove(&id).unwrap_or_default() {
            let _ = reply.send(outcome.clone());
        }
    }

    /// A blob request went out as `id`; its answer goes to `reply`.
    pub(super) fn sent(&mut self, id: OutboundRequestId, reply: oneshot::Sender<Result<BlobResponse, PeerAnswer>>) {
        self.requests.insert(id, reply);
    }

    /// The answer to one of our requests, or why there is none.
    pub(super) fn answered(&mut self, id: OutboundRequestId, answer: Result<BlobResponse, PeerAnswer>) {
        if let Some(reply) = self.requests.remove(&id) {
            let _ = reply.send(answer);
        }
    }

    /// A peer asks for a chunk: read it off the loop, in its turn; the answer comes back
    /// as `Served`.
    pub(super) fn serve(&mut self, peer: PeerId, request: BlobRequest, channel: ResponseChannel<BlobResponse>) {
        let now = std::time::Instant::now();
        if self.chunk_rates.len() >= MAX_RATED_PEERS && !self.chunk_rates.contains_key(&peer) {
            // Peers come and go over weeks; a fresh start forgets the departed.
            self.chunk_rates.clear();
        }
        let wait = self
            .chunk_rates
            .entry(peer)
            .or_insert_with(|| TokenBucket::new(CHUNKS_PER_SECOND, CHUNK_BURST, now))
            .reserve(now);
        let (plumbing, store, corrupt) = (self.plumbing.clone(), self.store.clone(), self.corrupt.clone());
        let serving = self.serving.clone();
        self.spawn(async move {
            tokio::time::sleep(wait).await;
            let Ok(_turn) = serving.acquire().await else { return };
            let read = tokio::task::spawn_blocking(move || blobs::serve(&store, &request, &corrupt));
            let response = read.await.unwrap_or(BlobResponse::Missing);
            let _ = plumbing.0.send(Internal::Served { channel, response }).await;
        });
    }

    /// Counts a chunk on its way out.
    pub(super) fn served(&mut self, response: &BlobResponse) {
        if let BlobResponse::Chunk { data, .. } = response {
            self.stats.chunks_served += 1;
            self.stats.bytes_out += data.len() as u64;
        }
    }

    /// Whether results carry outputs this node must fetch before they count.
    pub(super) fn lacks_outputs(&self, reports: &[TaskReport<TaskOutput>]) -> bool {
        reports.iter().any(|r| outputs(r).iter().any(|b| !self.store.contains(*b)))
    }

    /// Fetches the outputs of results from `from` (`runner`, then the `members`), then
    /// hands the results on as `Results`. A report whose outputs cannot be fetched is
    /// handed on as lost: its task runs again.
    pub(super) fn fetch_outputs(
        &self,
        from: NodeId,
        runner: Option<PeerId>,
        members: Vec<PeerId>,
        job: JobId,
        reports: Vec<TaskReport<TaskOutput>>,
    ) {
        let (plumbing, store) = (self.plumbing.clone(), self.store.clone());
        self.spawn(async move {
            let (mut fetched, mut lost) = (Vec::new(), Vec::new());
            'reports: for mut r in reports {
                for blob in outputs(&r) {
                    if store.contains(blob) {
                        continue;
                    }
                    let got = blobs::fetch_from_mesh(&plumbing, &store, blob, runner, members.clone(), MAX_FILE).await;
                    if let Err(e) = got {
                        tracing::warn!(%job, task = r.task, %e, "cannot fetch a task's output; it runs again");
                        r.outcome = Err(format!("its output could not be fetched from the node that ran it: {e}"));
                        lost.push(r);
                        continue 'reports;
                    }
                }
                fetched.push(r);
            }
            let _ = plumbing.0.send(Internal::Results { from, job, reports: fetched, lost }).await;
        });
    }

    /// Trims the home's caches to their budgets, off the loop.
    pub(super) fn prune(&self, home: std::path::PathBuf) {
        self.spawn(async move {
            let _ = tokio::task::spawn_blocking(move || crate::exec::wasm::prune_caches(&home)).await;
        });
    }

    /// The node is leaving: workers waiting for a blob are woken with an error.
    pub(super) fn close(&mut self) {
        self.waiting.clear();
        self.requests.clear();
    }

    /// The loop's private channel, for a task of its own.
    pub(super) fn plumbing(&self) -> Plumbing {
        self.plumbing.clone()
    }

    /// Runs a task until it ends or the node stops, whichever is first.
    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            shutdown.run_until_cancelled(task).await;
        });
    }
}

/// The blobs a task's result refers to.
fn outputs(r: &TaskReport<TaskOutput>) -> Vec<ContentId> {
    r.outcome.as_ref().map(|o| o.blobs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_fetch_serves_every_waiting_worker() {
        let home = std::env::temp_dir().join(format!("mesh-transfers-{}", std::process::id()));
        let (tx, mut rx) = mpsc::channel(INTERNAL_CAPACITY);
        let mut t =
            Transfers::new(Plumbing(tx), Arc::new(BlobStore::new(&home)), TaskTracker::new(), CancellationToken::new());
        let id = ContentId::of(b"module");
        let (r1, w1) = oneshot::channel();
        let (r2, w2) = oneshot::channel();
        t.fetch(id, None, vec![], MAX_FILE, r1);
        t.fetch(id, None, vec![], MAX_FILE, r2);
        // No peers: the one fetch fails at once, and says so to both workers.
        let Some(Internal::FetchDone { id: done, result }) = rx.recv().await else { panic!("no FetchDone") };
        assert_eq!(done, id);
        t.fetch_done(done, result);
        for w in [w1, w2] {
            assert!(matches!(w.await.unwrap(), Err(FetchError::Exhausted { peers: 0, .. })));
        }
        assert!(rx.try_recv().is_err(), "a single fetch ran for both");
        let ok = Fetched { bytes: 10, from: PeerId::random(), rejected: 2 };
        t.fetch_done(id, Ok(ok));
        assert_eq!((t.stats().fetched, t.stats().bytes_in, t.stats().rejected), (1, 10, 2));
    }
}
