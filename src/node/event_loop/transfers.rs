//! The event loop's side of blob transfers: starting and finishing fetches, and passing
//! chunks between the swarm and `node::blobs`. Translation only; the logic is in
//! `node::blobs`.

use super::EventLoop;
use crate::id::{ContentId, NodeId};
use crate::node::blobs;
use crate::node::client::Command;
use crate::protocol::blob::{BlobRequest, BlobResponse};
use libp2p::PeerId;
use libp2p::request_response::{self, ResponseChannel};
use tokio::sync::oneshot;

impl EventLoop {
    /// A worker needs a blob: join the fetch under way, or start one from the job's owner
    /// and then every other member.
    pub(super) fn on_fetch(&mut self, id: ContentId, hint: NodeId, reply: oneshot::Sender<Result<(), String>>) {
        if let Some(waiting) = self.fetching.get_mut(&id) {
            waiting.push(reply);
            return;
        }
        let owner = self.peer_of.get(&hint).copied();
        let members: Vec<PeerId> = self.peer_of.values().copied().collect();
        self.fetching.insert(id, vec![reply]);
        let (client, store) = (self.client.clone(), self.exec.store().clone());
        tokio::spawn(async move {
            let result = blobs::fetch_from_mesh(&client, &store, id, owner, members).await;
            let _ = client.send(Command::FetchDone { id, result }).await;
        });
    }

    pub(super) fn on_fetch_done(&mut self, id: ContentId, result: Result<blobs::Fetched, String>) {
        let outcome = match result {
            Ok(f) => {
                tracing::info!(blob = %id.fmt_short(), bytes = f.bytes, from = %f.from, rejected = f.rejected, "fetched a blob");
                self.blob_stats.fetched += 1;
                self.blob_stats.bytes_in += f.bytes;
                self.blob_stats.rejected += u64::from(f.rejected);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(blob = %id.fmt_short(), %e, "blob fetch failed");
                Err(e)
            }
        };
        for reply in self.fetching.remove(&id).unwrap_or_default() {
            let _ = reply.send(outcome.clone());
        }
    }

    pub(super) fn on_blob(&mut self, ev: request_response::Event<BlobRequest, BlobResponse>) {
        match ev {
            request_response::Event::Message {
                message: request_response::Message::Request { request, channel, .. },
                ..
            } => {
                let (client, store, corrupt) = (self.client.clone(), self.exec.store().clone(), self.corrupt.clone());
                tokio::spawn(async move {
                    let read = tokio::task::spawn_blocking(move || blobs::serve(&store, &request, &corrupt));
                    let response = read.await.unwrap_or(BlobResponse::Missing);
                    let _ = client.send(Command::BlobServed { channel, response }).await;
                });
            }
            request_response::Event::Message {
                message: request_response::Message::Response { request_id, response },
                ..
            } => {
                if let Some(reply) = self.blob_requests.remove(&request_id) {
                    let _ = reply.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some(reply) = self.blob_requests.remove(&request_id) {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "blob request from a peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    pub(super) fn on_blob_served(&mut self, channel: ResponseChannel<BlobResponse>, response: BlobResponse) {
        if let BlobResponse::Chunk { data, .. } = &response {
            self.blob_stats.chunks_served += 1;
            self.blob_stats.bytes_out += data.len() as u64;
        }
        let _ = self.swarm.behaviour_mut().blob.send_response(channel, response);
    }
}
