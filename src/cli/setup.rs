//! What every command needs to start a node: a runtime, a worker count, the shared key,
//! and listen addresses.

use super::args::{KeyArgs, tcp_addr};
use super::exit::Exit;
use super::output;
use crate::secret::{KeyKind, SharedKey};
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
        (Some(p), _) => {
            if std::env::var("MESH_KEY").ok().as_deref() != Some(p.as_str()) {
                tracing::warn!(
                    "--key on the command line shows in `ps` to every user of this machine; put the key in a file \
                     (mode 0600) and pass --key-file, or set MESH_KEY"
                );
            }
            p.clone()
        }
        (None, Some(f)) => read_key_file(f)?,
        (None, None) => return Ok(SharedKey::open()),
    };
    if SharedKey::kind_of(&pass) == KeyKind::Passphrase {
        tracing::debug!(
            "the key is a passphrase: anyone on the LAN can test guesses against its mDNS fingerprint, at the cost \
             of argon2id per guess; `mesh key new` makes a key that cannot be guessed"
        );
    }
    SharedKey::from_passphrase(&pass).map_err(output::usage)
}

/// Reads a key file, warning when other users may read it too.
fn read_key_file(f: &std::path::Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let pass = std::fs::read_to_string(f).with_context(|| format!("cannot read --key-file {}", f.display()))?;
    if let Ok(meta) = std::fs::metadata(f)
        && meta.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(
            "the key file {} is readable by every user of this machine, and whoever holds the key may join the mesh \
             and run programs on its --allow-run nodes: chmod 600 {}",
            f.display(),
            f.display()
        );
    }
    Ok(pass)
}

/// `mesh key new`: prints a new random key.
pub(crate) fn new_key() -> Result<Exit> {
    use std::io::Write;
    let key = SharedKey::generate();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{key}").context("writing the key")?;
    Ok(Exit::Success)
}

/// Raises this process's soft limit on open files to its hard limit (the service's unit
/// sets both with `LimitNOFILE`): peers, transfers, task processes and the dashboard each
/// hold descriptors, and a desktop session's soft limit of 1,024 is low for a busy node.
/// Every listener bounds its own share besides, so no client can take them all.
pub(crate) fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write `lim`.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max && {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
        }
    };
    if raised {
        tracing::debug!(limit = lim.rlim_cur, "raised the open-file limit");
    }
}

/// Listen on any free port, as a short-lived node of `mesh submit` does.
pub(crate) fn any_port() -> Multiaddr {
    tcp_addr("0.0.0.0".parse().expect("a valid address"), 0)
}
