//! The handle other tasks use to talk to a running event loop: bounded commands, each with
//! a oneshot reply. A stopped loop is an error ([`NodeStopped`]), never a panic.

use super::membership::PeerRow;
use super::report::JobReport;
use crate::job::PrimesJob;
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
    Peers { reply: oneshot::Sender<PeersReply> },
    Submit { job: PrimesJob, progress: watch::Sender<(u64, u64)>, done: oneshot::Sender<JobReport> },
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
    pub async fn submit(&self, job: PrimesJob) -> Result<JobHandle, NodeStopped> {
        let (progress, progress_rx) = watch::channel((0, job.tasks()));
        let (done, done_rx) = oneshot::channel();
        self.tx.send(Command::Submit { job, progress, done }).await.map_err(|_| NodeStopped)?;
        Ok(JobHandle { progress: progress_rx, done: done_rx })
    }

    pub async fn peers(&self) -> Result<PeersReply, NodeStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Peers { reply }).await.map_err(|_| NodeStopped)?;
        rx.await.map_err(|_| NodeStopped)
    }
}
