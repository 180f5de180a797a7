//! What a node is: its name, home and workers, and how (or whether) it joins a network.
//! The CLI fills these in from its arguments; nothing else about a node is configured.

use crate::secret::SharedKey;
use libp2p::Multiaddr;
use std::path::PathBuf;

/// What a node is: its name, home and workers, and whether it joins a network.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Shown in `mesh peers` and the statistics.
    pub name: String,
    /// Holds the identity key, the blob store and the compiled-code cache.
    pub home: PathBuf,
    /// Worker threads, each running one task at a time.
    pub workers: u32,
    /// How to join the mesh; `None` runs on this machine only, with no network at all.
    pub network: Option<NetConfig>,
    /// Serve `<home>/control.sock`, so `mesh peers` and `mesh submit` reach this node.
    pub control: bool,
}

/// How a node joins the mesh.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub key: SharedKey,
    pub listen: Multiaddr,
    /// `--peer` addresses, dialed at start and every `STATIC_REDIAL` until connected.
    pub static_peers: Vec<Multiaddr>,
    /// Advertise and browse with mDNS.
    pub mdns: bool,
}
