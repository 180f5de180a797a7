//! Scheduling messages between nodes: libp2p request-response protocol `/mesh/sched/4`.
//!
//! # Spec
//! Each scheduler [`Message`] (steal, grant, lease, results, job ended) travels as one
//! request on its own substream: the sender writes the CBOR encoding of the message and
//! closes its side; the receiver answers with a one-byte acknowledgement (CBOR `null`,
//! `0xf6`) once it has handed the message to its scheduler. Replies at the scheduling
//! level (a `Grant` answering a `Steal`) are requests in the other direction, matched by
//! their `req` id, so a slow or lost answer never holds a substream open.
//!
//! Limits: a message is at most [`MAX_MESSAGE_BYTES`] (a results batch holds at most 256
//! reports or about 256 KiB of outputs, and one output at most 64 KiB); at most [`MAX_STREAMS`] substreams per connection; a request unanswered after
//! [`REQUEST_TIMEOUT`] has failed, and the core's own timeouts and the owner's backup runs
//! cover the loss. Job specs inside grants are validated like user input.

use super::{CborCodec, DecodeError, Wire};
use crate::core::Message;
use crate::job::{JobSpec, TaskOutput};
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/mesh/sched/4");
pub(crate) const MAX_MESSAGE_BYTES: usize = 1 << 20;
pub(crate) const MAX_STREAMS: usize = 64;
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The most ranges a grant may carry. Victims send at most `core::Config::max_grant_ranges`
/// (32); this wider bound only keeps a hostile grant from costing the thief much.
pub(crate) const MAX_GRANT_RANGES: usize = 1024;

/// A scheduling message as it crosses the network.
pub(crate) type WireMessage = Message<Arc<JobSpec>, TaskOutput>;

/// The acknowledgement of a request: CBOR `null` (`0xf6`) on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ack;

impl Wire for Ack {
    const MAX_BYTES: usize = 1;
}

impl Wire for WireMessage {
    const MAX_BYTES: usize = MAX_MESSAGE_BYTES;

    fn check(&self) -> Result<(), DecodeError> {
        if let Self::Grant { work: Some(g), .. } = self {
            g.spec.validate().map_err(|_| DecodeError::Invalid("grant carries an invalid job spec"))?;
            if g.ranges.len() > MAX_GRANT_RANGES || g.ranges.iter().any(|r| r.end > g.spec.tasks()) {
                return Err(DecodeError::Invalid("grant ranges outside the job"));
            }
        }
        Ok(())
    }
}

/// The codec of `/mesh/sched/4`.
pub(crate) type Codec = CborCodec<WireMessage, Ack>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Grant, TaskRange, TaskReport};
    use crate::id::{JobId, NodeId};
    use crate::job::{Algo, PrimesJob, Split, Target};
    use crate::protocol::encode;

    fn job() -> Arc<JobSpec> {
        Arc::new(JobSpec::Primes(PrimesJob::new(Target::Below(1000), Algo::Sieve, Split::Tasks(10)).unwrap()))
    }

    #[test]
    fn messages_round_trip() {
        let id = JobId { owner: NodeId(7), seq: 3 };
        let msgs: Vec<WireMessage> = vec![
            Message::Steal { req: 9 },
            Message::Grant {
                req: 9,
                work: Some(Grant { job: id, spec: job(), ranges: vec![TaskRange::new(5, 10)], pinned: false }),
                hint: None,
            },
            Message::Grant { req: 10, work: None, hint: Some(NodeId(12)) },
            Message::Results {
                job: id,
                reports: vec![
                    TaskReport {
                        task: 1,
                        outcome: Ok(TaskOutput::Sum(u128::MAX)),
                        took: Duration::from_micros(5),
                        blame: Default::default(),
                    },
                    TaskReport {
                        task: 2,
                        outcome: Ok(TaskOutput::Bytes(serde_bytes::ByteBuf::from(vec![0, 255, 10]))),
                        took: Duration::from_micros(5),
                        blame: Default::default(),
                    },
                    TaskReport {
                        task: 3,
                        outcome: Err("timed out".into()),
                        took: Duration::from_secs(1),
                        blame: Default::default(),
                    },
                ],
            },
            Message::JobEnded { job: id },
        ];
        for m in msgs {
            assert_eq!(WireMessage::decode_checked(&encode(&m)).unwrap(), m);
        }
    }

    #[test]
    fn hostile_grants_are_refused() {
        let id = JobId { owner: NodeId(7), seq: 3 };
        let beyond: WireMessage = Message::Grant {
            req: 1,
            work: Some(Grant { job: id, spec: job(), ranges: vec![TaskRange::new(5, 11)], pinned: false }),
            hint: None,
        };
        assert!(WireMessage::decode_checked(&encode(&beyond)).is_err());
        let JobSpec::Primes(mut bad) = (*job()).clone() else { unreachable!() };
        bad.span = 0;
        let bad = JobSpec::Primes(bad);
        let m: WireMessage = Message::Grant {
            req: 1,
            work: Some(Grant { job: id, spec: Arc::new(bad), ranges: vec![], pinned: true }),
            hint: None,
        };
        assert!(WireMessage::decode_checked(&encode(&m)).is_err());
        assert!(WireMessage::decode_checked(b"\x00\x01garbage").is_err());
    }
}
