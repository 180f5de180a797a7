//! Blob transfer between nodes: libp2p request-response protocol `/mesh/blob/4`.
//!
//! # Spec
//! Blobs (WebAssembly modules, job inputs) are named by their [`ContentId`], the blake3
//! hash of their bytes, and travel in chunks. A [`BlobRequest`] asks for `len` bytes
//! (at most [`CHUNK`]) at `offset`; the answer is a [`BlobResponse`]:
//!
//! | response | meaning |
//! |---|---|
//! | `Chunk { total, data }` | the blob is `total` bytes; `data` starts at `offset` |
//! | `Missing` | this node does not have the blob |
//!
//! A fetcher asks for consecutive chunks until it holds `total` bytes, then hashes the
//! whole: a blob whose hash differs from its id is rejected and fetched again, from the
//! next node that may have it. Nothing is trusted before that check, so serving nodes need
//! not be trusted either.
//!
//! Limits: a request is at most [`MAX_REQUEST_BYTES`]; a chunk at most [`CHUNK`] bytes; a
//! blob at most [`MAX_FILE`] bytes; a request unanswered after [`REQUEST_TIMEOUT`] has
//! failed; at most [`MAX_STREAMS`] transfers per connection at once.

use super::{CborCodec, DecodeError, Wire};
use crate::id::ContentId;
pub(crate) use crate::store::MAX_FILE;
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::time::Duration;

pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/mesh/blob/4");
/// Bytes per chunk: big enough to keep a LAN busy, small enough for a Pi's memory.
pub(crate) const CHUNK: u32 = 256 * 1024;
pub(crate) const MAX_REQUEST_BYTES: usize = 256;
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const MAX_STREAMS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlobRequest {
    pub id: ContentId,
    pub offset: u64,
    pub len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum BlobResponse {
    Chunk { total: u64, data: ByteBuf },
    Missing,
}

impl Wire for BlobRequest {
    const MAX_BYTES: usize = MAX_REQUEST_BYTES;

    fn check(&self) -> Result<(), DecodeError> {
        if self.len > CHUNK || self.offset > MAX_FILE {
            return Err(DecodeError::Invalid("blob request out of bounds"));
        }
        Ok(())
    }
}

impl Wire for BlobResponse {
    const MAX_BYTES: usize = CHUNK as usize + 128;

    fn check(&self) -> Result<(), DecodeError> {
        match self {
            Self::Chunk { total, data } if *total > MAX_FILE || data.len() as u64 > *total => {
                Err(DecodeError::Invalid("blob chunk out of bounds"))
            }
            _ => Ok(()),
        }
    }
}

/// The codec of `/mesh/blob/4`.
pub(crate) type Codec = CborCodec<BlobRequest, BlobResponse>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode;

    #[test]
    fn messages_round_trip_and_stay_small() {
        let req = BlobRequest { id: ContentId::of(b"m"), offset: 5, len: CHUNK };
        let bytes = encode(&req);
        assert!(bytes.len() <= MAX_REQUEST_BYTES);
        assert_eq!(BlobRequest::decode_checked(&bytes).unwrap(), req);
        let full = BlobResponse::Chunk { total: MAX_FILE, data: ByteBuf::from(vec![7u8; CHUNK as usize]) };
        let bytes = encode(&full);
        assert!(bytes.len() <= BlobResponse::MAX_BYTES, "a full chunk fits: {}", bytes.len());
        assert_eq!(BlobResponse::decode_checked(&bytes).unwrap(), full);
        assert_eq!(BlobResponse::decode_checked(&encode(&BlobResponse::Missing)).unwrap(), BlobResponse::Missing);
    }

    #[test]
    fn hostile_messages_are_refused() {
        let greedy = BlobRequest { id: ContentId::of(b"m"), offset: 0, len: CHUNK + 1 };
        assert!(BlobRequest::decode_checked(&encode(&greedy)).is_err());
        let huge = BlobResponse::Chunk { total: MAX_FILE + 1, data: ByteBuf::new() };
        assert!(BlobResponse::decode_checked(&encode(&huge)).is_err());
        let liar = BlobResponse::Chunk { total: 1, data: ByteBuf::from(vec![0; 2]) };
        assert!(BlobResponse::decode_checked(&encode(&liar)).is_err());
        assert!(BlobResponse::decode_checked(&[0xff; 300_000]).is_err());
        assert!(BlobRequest::decode_checked(b"\x00garbage").is_err());
    }
}
