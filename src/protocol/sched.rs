//! Scheduling messages between nodes: libp2p request-response protocol `/mesh/sched/1`.
//!
//! # Spec
//! Each scheduler [`Message`] (steal, grant, lease, results, job ended) travels as one
//! request on its own substream: the sender writes the CBOR encoding of the message and
//! closes its side; the receiver answers with a one-byte acknowledgement (CBOR `null`,
//! `0xf6`) once it has handed the message to its scheduler. Replies at the scheduling
//! level (a `Grant` answering a `Steal`) are requests in the other direction, matched by
//! their `req` id, so a slow or lost answer never holds a substream open.
//!
//! Limits: a message is at most [`MAX_MESSAGE_BYTES`] (a results batch of 256 reports is a
//! few KiB); at most [`MAX_STREAMS`] substreams per connection; a request unanswered after
//! [`REQUEST_TIMEOUT`] has failed, and the core's own timeouts and the owner's backup runs
//! cover the loss. Job specs inside grants are validated like user input.

use super::{DecodeError, decode, encode};
use crate::core::Message;
use crate::job::{PrimesJob, TaskOutput};
use libp2p::StreamProtocol;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io;
use std::sync::Arc;
use std::time::Duration;

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/mesh/sched/1");
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
pub const MAX_STREAMS: usize = 64;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A scheduling message as it crosses the network.
pub type WireMessage = Message<Arc<PrimesJob>, TaskOutput>;

/// The acknowledgement of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack;

const ACK: &[u8] = &[0xf6];

/// Decodes and checks a message from a peer.
pub fn decode_message(bytes: &[u8]) -> Result<WireMessage, DecodeError> {
    let msg: WireMessage = decode(bytes, MAX_MESSAGE_BYTES)?;
    if let Message::Grant { work: Some(g), .. } = &msg {
        g.spec.validate().map_err(|_| DecodeError::Invalid("grant carries an invalid job spec"))?;
        if g.ranges.len() > 1024 || g.ranges.iter().any(|r| r.end > g.spec.tasks()) {
            return Err(DecodeError::Invalid("grant ranges outside the job"));
        }
    }
    Ok(msg)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Codec;

fn invalid(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

async fn read_limited<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > max {
        return Err(invalid(format!("message over {max} bytes")));
    }
    Ok(buf)
}

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = WireMessage;
    type Response = Ack;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<WireMessage>
    where
        T: AsyncRead + Unpin + Send,
    {
        let buf = read_limited(io, MAX_MESSAGE_BYTES).await?;
        decode_message(&buf).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Ack>
    where
        T: AsyncRead + Unpin + Send,
    {
        let buf = read_limited(io, ACK.len()).await?;
        if buf == ACK { Ok(Ack) } else { Err(invalid("bad acknowledgement")) }
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: WireMessage) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&encode(&req)).await?;
        io.close().await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, _: Ack) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(ACK).await?;
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Grant, TaskRange, TaskReport};
    use crate::id::{JobId, NodeId};
    use crate::job::{Algo, Split, Target};

    fn job() -> Arc<PrimesJob> {
        Arc::new(PrimesJob::new(Target::Below(1000), Algo::Sieve, Split::Tasks(10)).unwrap())
    }

    #[test]
    fn messages_round_trip() {
        let id = JobId { owner: NodeId(7), seq: 3 };
        let msgs: Vec<WireMessage> = vec![
            Message::Steal { req: 9 },
            Message::Grant {
                req: 9,
                work: Some(Grant { job: id, spec: job(), ranges: vec![TaskRange::new(5, 10)], pinned: false }),
            },
            Message::Results {
                job: id,
                reports: vec![TaskReport { task: 1, outcome: Ok(u128::MAX), took: Duration::from_micros(5) }],
            },
            Message::JobEnded { job: id },
        ];
        for m in msgs {
            assert_eq!(decode_message(&encode(&m)).unwrap(), m);
        }
    }

    #[test]
    fn hostile_grants_are_refused() {
        let id = JobId { owner: NodeId(7), seq: 3 };
        let beyond: WireMessage = Message::Grant {
            req: 1,
            work: Some(Grant { job: id, spec: job(), ranges: vec![TaskRange::new(5, 11)], pinned: false }),
        };
        assert!(decode_message(&encode(&beyond)).is_err());
        let mut bad = (*job()).clone();
        bad.span = 0;
        let m: WireMessage =
            Message::Grant { req: 1, work: Some(Grant { job: id, spec: Arc::new(bad), ranges: vec![], pinned: true }) };
        assert!(decode_message(&encode(&m)).is_err());
        assert!(decode_message(b"\x00\x01garbage").is_err());
    }
}
