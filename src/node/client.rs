//! The handle other tasks use to talk to a running event loop: bounded commands, each with
//! a oneshot reply. A stopped loop is an error ([`NodeStopped`]), never a panic.

use super::membership::PeerRow;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

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

#[derive(Debug)]
pub enum Command {
    Peers { reply: oneshot::Sender<PeersReply> },
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

    pub async fn peers(&self) -> Result<PeersReply, NodeStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Peers { reply }).await.map_err(|_| NodeStopped)?;
        rx.await.map_err(|_| NodeStopped)
    }
}
