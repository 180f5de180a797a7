//! A job asked of its owner by another node: libp2p request-response protocol `/mesh/job/1`.
//!
//! # Spec
//! `mesh wait JOB` and `mesh cancel JOB` on a node that does not own the job reach the
//! owner with this protocol. The job is named as its users name it, by [`JobRef`] (the
//! owner's 32-bit prefix and the job's number); the asking node finds the owner among its
//! members by that prefix. A [`JobRequest`] says for whom it asks (`user`: the login name
//! the asking node gives its caller's uid) and what:
//!
//! | ask | answer |
//! |---|---|
//! | `Follow { from, spec }` | `Following`: the job's progress, its streamed events from index `from` on (as many as fit in [`EVENTS_BYTES`], at least one), the index after the last, the spec if `spec`, and the report once the job ended and no event is left |
//! | `Cancel` | `Cancelled`: the owner cancelled it mesh-wide |
//!
//! Either ask may be answered `Refused` (why, for the user to read: the job is another
//! user's, or it ended) or `Unknown` (no such job there, or it ended too long ago).
//!
//! A follower asks again every [`POLL`] while the job runs, at once while `more` says
//! events are left. `incarnation` names the owner's process: when it changes (the owner
//! restarted and resumed the job from its journal), the follower asks from 0 again and
//! drops the tasks it already has.
//!
//! **Who may.** The owner compares `user` with the job's submitter's user name. The asking
//! node vouches for `user` from the kernel's word on its control socket, but any holder of
//! the shared key can claim any name: the rule stops a mistake (a classmate's job id
//! mistyped), not a key holder who lies, who could run code on `--allow-run` nodes anyway.
//! The key is the boundary, as for running programs (docs/robustness.md).
//!
//! Limits: a request is at most [`MAX_REQUEST_BYTES`]; an answer at most
//! [`MAX_ANSWER_BYTES`] (a report as big as the control socket carries) with at most
//! [`MAX_EVENTS`] events; unanswered after [`REQUEST_TIMEOUT`] it has failed; at most
//! [`MAX_STREAMS`] asks per connection at once.

use super::{DecodeError, Wire};
use libp2p::StreamProtocol;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/mesh/job/1");
pub(crate) const MAX_REQUEST_BYTES: usize = 1024;
/// A job's report goes whole, as on the control socket (`node::control::MAX_REPLY`).
pub(crate) const MAX_ANSWER_BYTES: usize = 65 << 20;
/// The events of one answer stop growing past this many encoded bytes.
pub(crate) const EVENTS_BYTES: usize = 1 << 20;
pub(crate) const MAX_EVENTS: usize = 4096;
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const MAX_STREAMS: usize = 4;
/// How often a follower asks while the job runs.
pub(crate) const POLL: Duration = Duration::from_millis(500);
/// Longest user name a request carries.
const MAX_USER: usize = 256;

/// A job as its users name it: the owner's 32-bit prefix and the job's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobName {
    pub owner: u32,
    pub seq: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobRequest {
    pub job: JobName,
    pub user: String,
    pub ask: Ask,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Ask {
    Follow { from: u32, spec: bool },
    Cancel,
}

/// The owner's answer; `S`, `E` and `R` are the node's job spec, event and report types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: DeserializeOwned, E: DeserializeOwned, R: DeserializeOwned"))]
pub(crate) enum JobAnswer<S, E, R> {
    Following(Box<Following<S, E, R>>),
    Cancelled,
    Refused(String),
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: DeserializeOwned, E: DeserializeOwned, R: DeserializeOwned"))]
pub(crate) struct Following<S, E, R> {
    /// The owner's process: a new one after a restart.
    pub incarnation: u64,
    pub done: u64,
    pub total: u64,
    pub spec: Option<S>,
    pub events: Vec<E>,
    /// The index after the last event sent.
    pub next: u32,
    /// Events are left beyond `next`: ask again at once.
    pub more: bool,
    pub report: Option<R>,
}

impl Wire for JobRequest {
    const MAX_BYTES: usize = MAX_REQUEST_BYTES;

    fn check(&self) -> Result<(), DecodeError> {
        if self.user.is_empty() || self.user.len() > MAX_USER {
            return Err(DecodeError::Invalid("job request's user name out of bounds"));
        }
        Ok(())
    }
}

impl<S, E, R> Wire for JobAnswer<S, E, R>
where
    S: Serialize + DeserializeOwned + Send + 'static,
    E: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    const MAX_BYTES: usize = MAX_ANSWER_BYTES;

    fn check(&self) -> Result<(), DecodeError> {
        match self {
            Self::Following(f) if f.events.len() > MAX_EVENTS || f.done > f.total => {
                Err(DecodeError::Invalid("job answer out of bounds"))
            }
            Self::Refused(why) if why.len() > MAX_REQUEST_BYTES => Err(DecodeError::Invalid("job refusal too long")),
            _ => Ok(()),
        }
    }
}

/// The codec of `/mesh/job/1` for the node's types.
pub(crate) type Codec<S, E, R> = super::CborCodec<JobRequest, JobAnswer<S, E, R>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode;

    type Answer = JobAnswer<String, String, u64>;

    #[test]
    fn messages_round_trip_and_stay_small() {
        let req = JobRequest { job: JobName { owner: 7, seq: 3 }, user: "u".repeat(MAX_USER), ask: Ask::Cancel };
        let bytes = encode(&req);
        assert!(bytes.len() <= MAX_REQUEST_BYTES);
        assert_eq!(JobRequest::decode_checked(&bytes).unwrap(), req);
        let f = Following {
            incarnation: 9,
            done: 1,
            total: 2,
            spec: Some("spec".to_string()),
            events: vec!["e".to_string()],
            next: 1,
            more: false,
            report: Some(5),
        };
        let a: Answer = JobAnswer::Following(Box::new(f));
        assert_eq!(Answer::decode_checked(&encode(&a)).unwrap(), a);
        for a in [Answer::Cancelled, Answer::Refused("no".into()), Answer::Unknown] {
            assert_eq!(Answer::decode_checked(&encode(&a)).unwrap(), a);
        }
    }

    #[test]
    fn hostile_messages_are_refused() {
        let nobody = JobRequest { job: JobName { owner: 7, seq: 3 }, user: String::new(), ask: Ask::Cancel };
        assert!(JobRequest::decode_checked(&encode(&nobody)).is_err());
        let long = JobRequest { user: "u".repeat(MAX_USER + 1), ..nobody };
        assert!(JobRequest::decode_checked(&encode(&long)).is_err());
        let f = Following {
            incarnation: 0,
            done: 3,
            total: 2,
            spec: None,
            events: Vec::<String>::new(),
            next: 0,
            more: false,
            report: None::<u64>,
        };
        let liar: JobAnswer<String, String, u64> = JobAnswer::Following(Box::new(f));
        assert!(Answer::decode_checked(&encode(&liar)).is_err());
        assert!(JobRequest::decode_checked(&[0xff; 2000]).is_err());
        assert!(Answer::decode_checked(b"\x00garbage").is_err());
    }
}
