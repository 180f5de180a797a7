//! What every command needs to start a node: a runtime, a worker count, the shared key,
//! and listen addresses.

use super::args::{KeyArgs, tcp_addr};
use super::output;
use crate::secret::SharedKey;
use anyhow::{Context, Result};
use libp2p::Multiaddr;

/// The port mesh listens on unless told otherwise; open it in a firewall.
pub(crate) const DEFAULT_PORT: u16 = 4877;

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")
}

/// The runtime of a command that submits a job and prints its results as they come: the
/// node (or the control connection) runs on two threads of its own, so that printing,
/// which may block on a slow terminal or a paused pager, never stops the node from
/// answering its peers, nor the connection from being read.
pub(crate) fn job_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mesh-io")
        .enable_all()
        .build()
        .context("starting the runtime")
}

pub(crate) fn default_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// The default listen address: the well-known port, or any free one if it is taken (a
/// second node on the same machine, say).
pub(crate) fn default_listen() -> Multiaddr {
    let ip = "0.0.0.0".parse().expect("a valid address");
    match std::net::TcpListener::bind(("0.0.0.0", DEFAULT_PORT)) {
        Ok(_) => tcp_addr(ip, DEFAULT_PORT),
        Err(e) => {
            tracing::warn!(%e, "port {DEFAULT_PORT} is taken; listening on a free port instead");
            tcp_addr(ip, 0)
        }
    }
}

pub(crate) fn shared_key(k: &KeyArgs) -> Result<SharedKey> {
    let pass = match (&k.key, &k.key_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read --key-file {}", f.display()))?
        }
        (None, None) => return Ok(SharedKey::open()),
    };
    SharedKey::from_passphrase(&pass).map_err(output::usage)
}

/// Listen on any free port, as a short-lived node of `mesh submit` does.
pub(crate) fn any_port() -> Multiaddr {
    tcp_addr("0.0.0.0".parse().expect("a valid address"), 0)
}
