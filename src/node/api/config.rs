//! What a node is: its name, home and workers, and how (or whether) it joins a network.
//! The CLI fills these in from its arguments; nothing else about a node is configured.

use crate::core::{Availability, Facts};
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
    /// Whether, and for whom, to serve `<home>/control.sock`, so that `mesh peers` and
    /// `mesh submit` reach this node.
    pub control: Control,
    /// Run native programs (`mesh run`) for anyone holding the key: `--allow-run`.
    pub allow_run: bool,
    /// Run the native programs of this node's own jobs: the node of a submitter, which
    /// runs its own user's work. Others' still need `allow_run`.
    pub runs_own: bool,
    /// `--label`s, for `--require label=…`.
    pub labels: Vec<String>,
    /// When it lends its workers: `--hours`, `--when-idle` (always, by default).
    pub lending: Availability,
    /// Added to the worker threads' niceness, and so to the programs they start: `mesh
    /// join --nice` (10 by default, so a machine's owner does not notice the mesh's work).
    pub worker_nice: i32,
    /// Where to serve the dashboard and `/metrics` (`mesh join --http`); none for the
    /// nodes of `mesh submit`, sessions and tests.
    pub http: Option<Http>,
    /// Journal owned jobs under `<home>/jobs` and resume them after a restart, keeping
    /// ended ones this long (`mesh join`); none for `mesh submit`'s own node and sessions.
    pub journal: Option<crate::node::journal::Keep>,
}

/// Where the dashboard listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    pub addr: std::net::SocketAddr,
    /// Given on the command line: a node that cannot bind it stops with an error. The
    /// default address, if taken (another node on this machine), only costs the dashboard.
    pub required: bool,
    /// The host names it answers for, besides IP addresses and `localhost`.
    pub names: Vec<String>,
}

impl NodeConfig {
    /// A node of `name` under `home` with `workers`, as every command starts from: on this
    /// machine only (no network), with no control socket and no dashboard, running its
    /// own jobs' programs and nobody else's, lending always, at its own priority. Callers
    /// change what differs: `NodeConfig { network, ..NodeConfig::new(…) }`.
    pub fn new(name: String, home: PathBuf, workers: u32) -> Self {
        Self {
            name,
            home,
            workers,
            network: None,
            control: Control::Off,
            allow_run: false,
            runs_own: true,
            labels: Vec::new(),
            lending: Availability::default(),
            worker_nice: 0,
            http: None,
            journal: None,
        }
    }

    /// What this node offers, as it gossips it: this machine's CPU, OS, cores and memory,
    /// with the node's labels, whether it allows runs, and its Python 3. Python is looked
    /// for (a process start) only where Python tasks may run: a node that allows runs, or
    /// a session node serving its own user's jobs; not the short-lived node of every
    /// `mesh submit`.
    pub fn facts(&self) -> Facts {
        let native = self.allow_run || (self.runs_own && self.control != Control::Off);
        Facts {
            arch: std::env::consts::ARCH.into(),
            os: std::env::consts::OS.into(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            mem_mb: crate::exec::memory_mb(),
            allow_run: self.allow_run,
            labels: self.labels.clone(),
            python: if native { crate::exec::python::detect() } else { None },
        }
    }
}

/// Who may use a node's control socket, `<home>/control.sock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// No socket: the short-lived node of one `mesh submit`.
    Off,
    /// Mode 0600: the node's own user only.
    Owner,
    /// Mode 0660: the members of the node process's group too (`mesh join
    /// --control-group`, as the mesh service runs). Their jobs are not the node user's
    /// own, and they give files as bytes (`upload`), never as paths the node would open.
    Group,
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
