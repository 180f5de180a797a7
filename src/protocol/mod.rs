//! Wire protocols, one module each. Every module owns its versioned id, its message types,
//! its size limits, and a module doc that reads as its spec; `docs/PROTOCOL.md` collects
//! them.
//!
//! All messages are CBOR (RFC 8949) through serde and `ciborium`. Decoding never trusts a
//! peer: input past the protocol's size limit is refused before parsing, and any parse
//! error is a [`DecodeError`] that the caller logs and drops.

pub mod membership;
pub mod sched;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a peer's message was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    #[error("invalid message: {0}")]
    Invalid(&'static str),
}

/// Encodes a message as CBOR.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    // Invariant: writing to a Vec cannot fail, and our types always serialize.
    ciborium::into_writer(msg, &mut out).expect("CBOR encoding into a Vec");
    out
}

/// Decodes a CBOR message of at most `max` bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge { len: bytes.len(), max });
    }
    ciborium::from_reader(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}
