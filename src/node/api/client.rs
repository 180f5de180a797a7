//! The handle users of a running node hold: bounded requests to its event loop, each with
//! a reply. It carries only what a user may ask (submit a job, list the mesh); the loop's
//! own plumbing (blob transfers) has a private channel. A stopped node is an error
//! ([`NodeStopped`]), never a panic.

use crate::id::JobId;
use crate::job::JobSpec;
use crate::node::api::report::JobReport;
use crate::node::api::view::{JobAccessError, JobEvent, JobProgress, JobRef, OnGone, PeersReply, Submitter};
use tokio::sync::{mpsc, oneshot, watch};

/// A handle's parts, made by the owner: progress, events, the report.
pub(in crate::node) fn handle_channels(
    job: JobId,
    progress: JobProgress,
) -> (JobHandle, watch::Sender<JobProgress>, mpsc::UnboundedSender<JobEvent>, oneshot::Sender<JobReport>) {
    let (progress, progress_rx) = watch::channel(progress);
    let (done, done_rx) = oneshot::channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    (JobHandle { job, progress: progress_rx, events: events_rx, done: done_rx }, progress, events, done)
}

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

/// A job handed to the node, or found there: its progress, then its report. When every
/// handle of a job is dropped before its report comes, the node does what the job's
/// [`OnGone`] says: cancels it mesh-wide at its next housekeeping (every `HOUSEKEEPING`),
/// or runs it on, detached. A node that stops says goodbye, and its peers drop the job's
/// work when it goes.
#[derive(Debug)]
pub struct JobHandle {
    pub job: JobId,
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
        how: Submission,
        reply: oneshot::Sender<JobHandle>,
    },
    /// A new handle on an owned job, running or recently ended, for the user `uid`.
    Attach {
        job: JobRef,
        uid: u32,
        reply: oneshot::Sender<Result<(JobHandle, std::sync::Arc<JobSpec>), JobAccessError>>,
    },
    /// Cancel an owned job for the user `uid`.
    Cancel {
        job: JobRef,
        uid: u32,
        reply: oneshot::Sender<Result<(), JobAccessError>>,
    },
}

/// Who submits a job, and what the owner does when nobody waits for it any more.
#[derive(Debug, Clone)]
pub struct Submission {
    pub submitter: Submitter,
    pub on_gone: OnGone,
}

/// A cloneable handle to a running node.
#[derive(Debug, Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    /// The node's name, for the jobs this handle submits.
    node: std::sync::Arc<str>,
}

impl Client {
    pub(in crate::node) fn new(node: &str) -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        (Self { tx, node: node.into() }, rx)
    }

    /// Submits a job to the node for this process's user; it runs on the mesh with this
    /// node as its owner, and is cancelled if its handle is dropped before it ends.
    pub async fn submit(&self, job: JobSpec) -> Result<JobHandle, NodeStopped> {
        let how = Submission { submitter: Submitter::this_process(&self.node), on_gone: OnGone::Cancel };
        self.submit_as(job, how).await
    }

    /// Submits a job as `how` says.
    pub async fn submit_as(&self, job: JobSpec, how: Submission) -> Result<JobHandle, NodeStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Submit { job, how, reply }).await.map_err(|_| NodeStopped)?;
        rx.await.map_err(|_| NodeStopped)
    }

    /// A handle on the owned job `job` (running: from its start, then as it goes; ended:
    /// its events and report at once), with its spec, if user `uid` may see it.
    pub async fn attach(
        &self,
        job: JobRef,
        uid: u32,
    ) -> Result<Result<(JobHandle, std::sync::Arc<JobSpec>), JobAccessError>, NodeStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Attach { job, uid, reply }).await.map_err(|_| NodeStopped)?;
        rx.await.map_err(|_| NodeStopped)
    }

    /// Cancels the owned job `job` mesh-wide, if user `uid` may.
    pub async fn cancel(&self, job: JobRef, uid: u32) -> Result<Result<(), JobAccessError>, NodeStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Cancel { job, uid, reply }).await.map_err(|_| NodeStopped)?;
        rx.await.map_err(|_| NodeStopped)
    }

    /// This node's row, then every other node it knows of.
    pub async fn peers(&self) -> Result<PeersReply, NodeStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Peers { reply }).await.map_err(|_| NodeStopped)?;
        rx.await.map_err(|_| NodeStopped)
    }
}
