//! The handle other tasks use to talk to a running event loop: bounded commands, each with
//! a oneshot reply. A stopped loop is an error ([`NodeStopped`]), never a panic.

use super::blobs::Fetched;
use super::membership::PeerRow;
use super::report::JobReport;
use crate::id::{ContentId, NodeId};
use crate::job::JobSpec;
use crate::protocol::blob::{BlobRequest, BlobResponse};
use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

/// Commands queued to the event loop at most; senders wait beyond that.
pub const COMMAND_CAPACITY: usize = 32;

/// The event loop is gone.
#[derive(Debug, thiserror::Error)]
#[error("the mesh node has stopped")]
pub struct NodeStopped;

/// What `mesh peers` shows: this node, then every other node it knows of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeersReply {
    pub rows: Vec<PeerRow>,
}

/// A job handed to the node: its progress, then its report.
#[derive(Debug)]
pub struct JobHandle {
    pub progress: watch::Receiver<(u64, u64)>,
    pub done: oneshot::Receiver<JobReport>,
}

#[derive(Debug)]
pub enum Command {
    Peers {
        reply: oneshot::Sender<PeersReply>,
    },
    Submit {
        job: JobSpec,
        progress: watch::Sender<(u64, u64)>,
        done: oneshot::Sender<JobReport>,
    },
    /// A worker needs a blob: fetch it (once, however many ask), from `hint` first.
    Fetch {
        id: ContentId,
        hint: NodeId,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// A fetch the loop started has ended.
    FetchDone {
        id: ContentId,
        result: Result<Fetched, String>,
    },
    /// Send one blob request to a peer.
    BlobRequest {
        peer: PeerId,
        req: BlobRequest,
        reply: oneshot::Sender<Result<BlobResponse, String>>,
    },
    /// The answer to a peer's blob request, read from the store off the loop.
    BlobServed {
        channel: ResponseChannel<BlobResponse>,
        response: BlobResponse,
    },
}

#[derive(Debug, Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
}

impl Client {
    pub fn new() -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        (Self { tx }, rx)
    }

    /// Submits a job to the node; it runs on the mesh with this node as its owner.
    pub async fn submit(&self, job: JobSpec) -> Result<JobHandle, NodeStopped> {
        let (progress, progress_rx) = watch::channel((0, job.tasks()));
        let (done, done_rx) = oneshot::channel();
        self.tx.send(Command::Submit { job, progress, done }).await.map_err(|_| NodeStopped)?;
        Ok(JobHandle { progress: progress_rx, done: done_rx })
    }

    /// Queues a command, waiting while the queue is full.
    pub async fn send(&self, cmd: Command) -> Result<(), NodeStopped> {
        self.tx.send(cmd).await.map_err(|_| NodeStopped)
    }

    /// [`Client::send`] for threads outside the runtime (the workers).
    pub fn send_blocking(&self, cmd: Command) -> Result<(), NodeStopped> {
        self.tx.blocking_send(cmd).map_err(|_| NodeStopped)
    }

    /// One blob request to `peer` and its answer.
    pub async fn blob_request(&self, peer: PeerId, req: BlobRequest) -> Result<BlobResponse, String> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::BlobRequest { peer, req, reply }).await.map_err(|e| e.to_string())?;
        rx.await.map_err(|_| NodeStopped.to_string())?
    }

    pub async fn peers(&self) -> Result<PeersReply, NodeStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Peers { reply }).await.map_err(|_| NodeStopped)?;
        rx.await.map_err(|_| NodeStopped)
    }
}
