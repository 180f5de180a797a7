//! The handle users of a running node hold: bounded requests to its event loop, each with
//! a reply. It carries only what a user may ask (submit a job, list the mesh); the loop's
//! own plumbing (blob transfers) has a private channel. A stopped node is an error
//! ([`NodeStopped`]), never a panic.

use crate::job::JobSpec;
use crate::node::api::report::JobReport;
use crate::node::api::view::{JobEvent, JobProgress, PeersReply};
use tokio::sync::{mpsc, oneshot, watch};

/// Requests queued to the event loop at most; senders wait beyond that.
pub const COMMAND_CAPACITY: usize = 32;

/// The event loop is gone.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the mesh node has stopped")]
pub struct NodeStopped;

/// Why a job did not come back from a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("interrupted; the job's partial results are lost")]
    Interrupted,
    #[error(transparent)]
    Stopped(#[from] NodeStopped),
    #[error("the node dropped the job before it finished")]
    JobDropped,
}

/// A job handed to the node: its progress, then its report. If the handle is dropped
/// before the report comes, the node cancels the job mesh-wide at its next housekeeping
/// (every `HOUSEKEEPING`); a node that stops instead says goodbye, and its peers drop the
/// job's work when it goes.
#[derive(Debug)]
pub struct JobHandle {
    pub progress: watch::Receiver<JobProgress>,
    /// A run job's tasks as they finish, and notices of why a job waits.
    pub events: mpsc::UnboundedReceiver<JobEvent>,
    pub done: oneshot::Receiver<JobReport>,
}

/// What a user asks of the node.
#[derive(Debug)]
pub(in crate::node) enum Command {
    Peers {
        reply: oneshot::Sender<PeersReply>,
    },
    Submit {
        job: JobSpec,
        progress: watch::Sender<JobProgress>,
        events: mpsc::UnboundedSender<JobEvent>,
        done: oneshot::Sender<JobReport>,
    },
}

/// A cloneable handle to a running node.
#[derive(Debug, Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
}

impl Client {
    pub(in crate::node) fn new() -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        (Self { tx }, rx)
    }

    /// Submits a job to the node; it runs on the mesh with this node as its owner.
    pub async fn submit(&self, job: JobSpec) -> Result<JobHandle, NodeStopped> {
        let (progress, progress_rx) = watch::channel(JobProgress { done: 0, total: job.tasks() });
        let (done, done_rx) = oneshot::channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        self.tx.send(Command::Submit { job, progress, events, done }).await.map_err(|_| NodeStopped)?;
        Ok(JobHandle { progress: progress_rx, events: events_rx, done: done_rx })
    }

    /// This node's row, then every other node it knows of.
    pub async fn peers(&self) -> Result<PeersReply, NodeStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Peers { reply }).await.map_err(|_| NodeStopped)?;
        rx.await.map_err(|_| NodeStopped)
    }
}
