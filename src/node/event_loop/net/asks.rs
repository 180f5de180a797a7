//! The request-response protocols the loop's parts use beyond scheduling: blob chunks
//! (`protocol::blob`, for transfers) and asks about a job of another owner
//! (`protocol::job`, for `mesh wait` and `mesh cancel` on any node).

use super::{FromNet, Net};
use crate::exec::fetch::PeerAnswer;
use crate::node::event_loop::routes::node_of;
use crate::node::net::behaviour::Answer;
use crate::protocol::blob::{BlobRequest, BlobResponse};
use crate::protocol::job::JobRequest;
use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};

impl Net {
    pub(in crate::node::event_loop) fn request_blob(&mut self, peer: PeerId, req: BlobRequest) -> OutboundRequestId {
        self.swarm.behaviour_mut().blob.send_request(&peer, req)
    }

    pub(in crate::node::event_loop) fn answer_blob(
        &mut self,
        channel: ResponseChannel<BlobResponse>,
        response: BlobResponse,
    ) {
        let _ = self.swarm.behaviour_mut().blob.send_response(channel, response);
    }

    pub(in crate::node::event_loop) fn ask_job(&mut self, peer: PeerId, req: JobRequest) -> OutboundRequestId {
        self.swarm.behaviour_mut().job.send_request(&peer, req)
    }

    pub(in crate::node::event_loop) fn answer_job(&mut self, channel: ResponseChannel<Answer>, answer: Answer) {
        let _ = self.swarm.behaviour_mut().job.send_response(channel, answer);
    }

    /// The member whose node id starts with `prefix`: the owner of the jobs named
    /// `prefix-N`.
    pub(in crate::node::event_loop) fn member_by_prefix(&self, prefix: u32) -> Option<PeerId> {
        self.routes.peers().into_iter().find(|p| (node_of(p).0 >> 32) as u32 == prefix)
    }

    /// Blob requests and answers: translated for the loop's transfers.
    pub(super) fn on_blob(ev: request_response::Event<BlobRequest, BlobResponse>) -> Option<FromNet> {
        translate(
            ev,
            |peer, request, channel| FromNet::BlobAsked { peer, request, channel },
            |id, answer| FromNet::BlobAnswer { id, answer },
            "blob",
        )
    }

    /// Asks about jobs and their answers.
    pub(super) fn on_job(ev: request_response::Event<JobRequest, Answer>) -> Option<FromNet> {
        translate(
            ev,
            |peer, request, channel| FromNet::JobAsked { peer, request, channel },
            |id, answer| FromNet::JobAnswer { id, answer },
            "job",
        )
    }
}

/// A request-response event as the loop hears it: a peer's request with the channel to
/// answer on, or the answer to ours (or why there is none).
fn translate<Req, Resp>(
    ev: request_response::Event<Req, Resp>,
    asked: impl FnOnce(PeerId, Req, ResponseChannel<Resp>) -> FromNet,
    answered: impl FnOnce(OutboundRequestId, Result<Resp, PeerAnswer>) -> FromNet,
    what: &str,
) -> Option<FromNet> {
    match ev {
        request_response::Event::Message {
            peer,
            message: request_response::Message::Request { request, channel, .. },
            ..
        } => Some(asked(peer, request, channel)),
        request_response::Event::Message {
            message: request_response::Message::Response { request_id, response },
            ..
        } => Some(answered(request_id, Ok(response))),
        request_response::Event::OutboundFailure { request_id, error, .. } => {
            Some(answered(request_id, Err(PeerAnswer::Transfer(error.to_string()))))
        }
        request_response::Event::InboundFailure { peer, error, .. } => {
            tracing::debug!(%peer, %error, "a {what} request from a peer failed");
            None
        }
        request_response::Event::ResponseSent { .. } => None,
    }
}
