//! The mDNS advert: how a node tells the LAN it is there (`node::net::discovery` sends and
//! browses it).
//!
//! # Spec
//! A node registers one DNS-SD service instance of type [`SERVICE_TYPE`]
//! (`_mesh._tcp.local.`). The SRV port is the node's libp2p TCP port; the A records are
//! every IPv4 address of the host. The TXT record carries:
//!
//! | key | value |
//! |---|---|
//! | `id` | the libp2p peer id (base58) |
//! | `pv` | the wire protocol version (`protocol::membership::PROTOCOL_VERSION`) |
//! | `kf` | the shared key's fingerprint (`secret::SharedKey::fingerprint`), or `open` |
//! | `v` | the mesh release |
//! | `name` | the node's `--name` |
//!
//! The key itself is never advertised. A record without a valid `id`, `pv`, `kf` and
//! port, or with a value longer than [`MAX_TXT_VALUE`], is junk ([`Junk`] says why). An
//! absent `v` or `name` reads as `?`.

use libp2p::PeerId;

/// The DNS-SD service type of mesh nodes.
pub(crate) const SERVICE_TYPE: &str = "_mesh._tcp.local.";

/// Longest TXT value accepted from a peer.
pub(crate) const MAX_TXT_VALUE: usize = 128;

/// What a node advertises: its TXT record and SRV port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advert {
    pub name: String,
    pub peer_id: PeerId,
    pub port: u16,
    pub fingerprint: String,
    pub protocol: u32,
    pub version: String,
}

/// Why a peer's advert is junk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Junk {
    #[error("no id")]
    NoId,
    #[error("bad peer id")]
    BadPeerId,
    #[error("no pv")]
    NoProtocol,
    #[error("bad pv")]
    BadProtocol,
    #[error("no kf")]
    NoFingerprint,
    #[error("port 0")]
    NoPort,
}

impl Advert {
    /// The TXT record's keys and values.
    pub(crate) fn txt(&self) -> [(&'static str, String); 5] {
        [
            ("id", self.peer_id.to_base58()),
            ("pv", self.protocol.to_string()),
            ("kf", self.fingerprint.clone()),
            ("v", self.version.clone()),
            ("name", self.name.clone()),
        ]
    }

    /// Checks a peer's TXT record (`get` looks a key up) and SRV port.
    pub(crate) fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>, port: u16) -> Result<Self, Junk> {
        let txt = |k: &str| get(k).filter(|v| v.len() <= MAX_TXT_VALUE);
        let peer_id: PeerId = txt("id").ok_or(Junk::NoId)?.parse().map_err(|_| Junk::BadPeerId)?;
        let protocol: u32 = txt("pv").ok_or(Junk::NoProtocol)?.parse().map_err(|_| Junk::BadProtocol)?;
        let fingerprint = txt("kf").ok_or(Junk::NoFingerprint)?.to_string();
        if port == 0 {
            return Err(Junk::NoPort);
        }
        Ok(Self {
            name: txt("name").unwrap_or("?").to_string(),
            peer_id,
            port,
            fingerprint,
            protocol,
            version: txt("v").unwrap_or("?").to_string(),
        })
    }
}
