//! This node's asks of other owners about their jobs (`protocol::job`) while in flight:
//! each waits for its answer here, matched by request id. The asks themselves, and the
//! answers this node gives, are `remote`'s.

use crate::exec::fetch::PeerAnswer;
use crate::node::net::behaviour::Answer;
use libp2p::request_response::OutboundRequestId;
use std::collections::HashMap;
use tokio::sync::oneshot;

/// This node's asks of owners in flight, at most.
pub(crate) const MAX_ASKS: usize = 64;

/// Where the answer to one ask goes.
pub(super) type AnswerReply = oneshot::Sender<Result<Answer, PeerAnswer>>;

/// Our asks in flight, and this process's incarnation as an owner.
#[derive(Debug)]
pub(super) struct Asks {
    pub(super) pending: HashMap<OutboundRequestId, AnswerReply>,
    /// Told to followers: a new one after a restart.
    pub(super) incarnation: u64,
}

impl Asks {
    pub(super) fn new() -> Self {
        Self { pending: HashMap::new(), incarnation: fastrand::u64(..) }
    }

    /// The answer to one of our asks.
    pub(super) fn answered(&mut self, id: OutboundRequestId, answer: Result<Answer, PeerAnswer>) {
        if let Some(reply) = self.pending.remove(&id) {
            let _ = reply.send(answer);
        }
    }

    /// The node is leaving: those waiting for an answer hear it stopped.
    pub(super) fn close(&mut self) {
        self.pending.clear();
    }
}
