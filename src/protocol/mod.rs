//! The byte formats mesh speaks, one module each: the wire protocols between nodes
//! ([`sched`], [`blob`], [`job`], [`membership`]), the mDNS advert ([`advert`]), the
//! Python worker's frames ([`worker`]) and the blob store's layout on disk ([`store`]).
//! Every module owns its version, its message types, its size limits, and a module doc
//! that reads as its spec; `docs/PROTOCOL.md` collects them.
//!
//! One format lives elsewhere, on purpose: the control socket's JSON lines are the node's
//! API types (`JobReport`, `PeersReply`) serialized, so their spec is
//! `node::control`'s module doc, next to the types; moving them here would make this
//! module depend on `node`, which depends on it.
//!
//! All messages are CBOR (RFC 8949) through serde and `ciborium`. Decoding never trusts a
//! peer: input past the protocol's size limit is refused before parsing, and any parse
//! error is a [`DecodeError`] that the caller logs and drops.

pub(crate) mod advert;
pub(crate) mod blob;
#[cfg(test)]
mod golden;
pub(crate) mod job;
pub(crate) mod membership;
pub(crate) mod sched;
pub(crate) mod store;
pub(crate) mod worker;

use libp2p::StreamProtocol;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io;
use std::marker::PhantomData;

/// Why a peer's message was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    #[error("invalid message: {0}")]
    Invalid(&'static str),
}

/// Encodes a message as CBOR.
pub(crate) fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    // Invariant: writing to a Vec cannot fail, and our types always serialize.
    ciborium::into_writer(msg, &mut out).expect("CBOR encoding into a Vec");
    out
}

/// Decodes a CBOR message of at most `max` bytes.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge { len: bytes.len(), max });
    }
    ciborium::from_reader(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// A message of a request-response protocol: its size limit and its checks beyond parsing.
pub(crate) trait Wire: Serialize + DeserializeOwned + Send + 'static {
    /// Largest encoding accepted; bigger input is refused before parsing.
    const MAX_BYTES: usize;

    /// Checks what parsing cannot: bounds, consistency. Peers are not trusted.
    fn check(&self) -> Result<(), DecodeError> {
        Ok(())
    }

    fn decode_checked(bytes: &[u8]) -> Result<Self, DecodeError> {
        let msg: Self = decode(bytes, Self::MAX_BYTES)?;
        msg.check()?;
        Ok(msg)
    }
}

/// A request-response codec that writes each message as CBOR and closes the stream, and
/// reads at most the message type's limit.
#[derive(Debug)]
pub(crate) struct CborCodec<Req, Resp>(PhantomData<fn() -> (Req, Resp)>);

impl<Req, Resp> Default for CborCodec<Req, Resp> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Req, Resp> Clone for CborCodec<Req, Resp> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

fn invalid(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

async fn read_wire<M: Wire, T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<M> {
    let mut buf = Vec::new();
    io.take(M::MAX_BYTES as u64 + 1).read_to_end(&mut buf).await?;
    M::decode_checked(&buf).map_err(invalid)
}

async fn write_bytes<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: Vec<u8>) -> io::Result<()> {
    io.write_all(&bytes).await?;
    io.close().await
}

impl<Req: Wire, Resp: Wire> libp2p::request_response::Codec for CborCodec<Req, Resp> {
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T: AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req> {
        read_wire(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp> {
        read_wire(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Req,
    ) -> io::Result<()> {
        write_bytes(io, encode(&req)).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Resp,
    ) -> io::Result<()> {
        write_bytes(io, encode(&r)).await
    }
}
