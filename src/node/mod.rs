//! The node: a scheduler core driven by a real clock, real worker threads and, unless it
//! runs `--local`, the network.
//!
//! [`Node::spawn`] is the only driver. `mesh join`, the short-lived node of a `mesh
//! submit` with no local node, a `--local` run and the in-process tests all start one
//! from a [`NodeConfig`] and talk to it through a [`Client`]. Inside, one event loop
//! (`event_loop`) owns the core, the workers and the Swarm, and only translates between
//! them; no scheduling policy lives here.
//!
//! * `client`: the user's handle: submit a job, list the mesh;
//! * `control`: `<home>/control.sock`, the same requests for other processes;
//! * `submit`: running one job, through the home's node or a node of this process;
//! * `membership`, `behaviour`, `blobs`, `workers`, `identity`: the parts the loop drives;
//! * `view`, `report`: what a node shows (peer rows, progress, a job's report).
//!
//! Shutdown: one `CancellationToken` and one `TaskTracker` per node. Every task a node
//! spawns (its loop, its control server, blob transfers) is tracked, and [`Node::stop`]
//! waits for all of them.

mod behaviour;
mod blobs;
mod client;
pub mod control;
mod event_loop;
pub mod identity;
mod membership;
mod report;
mod submit;
mod view;
mod workers;

pub use client::{COMMAND_CAPACITY, Client, JobHandle, NodeStopped};
pub use identity::{default_home, hostname};
pub use membership::sighting_row;
pub use report::{FailedTask, JobReport, JobResults, NodeStats, PrimesResult, TaskRecord};
pub use submit::run_job;
pub use view::{BlobStats, JobProgress, PeerRow, PeerState, PeersReply};

use crate::secret::SharedKey;
use anyhow::Result;
use event_loop::EventLoop;
use identity::Identity;
use libp2p::Multiaddr;
use std::path::PathBuf;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The release of this build, as nodes announce it.
pub const VERSION: &str = event_loop::VERSION;

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

/// Why a job did not come back from a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("interrupted; the job's partial results are lost")]
    Interrupted,
    #[error(transparent)]
    Stopped(#[from] NodeStopped),
    #[error("the node dropped the job before it finished")]
    JobDropped,
}

/// A running node. Dropping it does not stop it; [`Node::stop`] does.
#[derive(Debug)]
pub struct Node {
    shutdown: CancellationToken,
    tracker: TaskTracker,
    main: JoinHandle<Result<()>>,
}

impl Node {
    /// Starts a node: loads or creates its identity under `home`, binds the control
    /// socket if asked (failing if another node serves that home), starts the workers and
    /// the network. Must be called inside a tokio runtime.
    pub async fn spawn(cfg: NodeConfig) -> Result<(Client, Self)> {
        let identity = Identity::load_or_create(&cfg.home, cfg.name.clone())?;
        let listener = if cfg.control { Some(control::bind(&cfg.home).await?) } else { None };
        let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
        let (client, commands) = Client::new();
        let home = cfg.home.clone();
        let event_loop = EventLoop::new(identity, cfg, commands, tracker.clone(), shutdown.clone())?;
        if let Some(listener) = listener {
            tracker.spawn(control::serve(listener, home, client.clone(), shutdown.clone()));
        }
        let token = shutdown.clone();
        let main = tracker.spawn(async move {
            let result = event_loop.run(token.clone()).await;
            token.cancel(); // a loop that ended on an error takes the control server along
            result
        });
        Ok((client, Self { shutdown, tracker, main }))
    }

    /// Stops the node: it leaves the mesh, its workers finish their runs (or are left to
    /// the process after a grace), and every task it spawned ends.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.main.await?
    }

    /// Runs until `signal` or until the node stops on its own (an error), then stops.
    pub async fn stop_on(self, signal: impl Future<Output = ()>) -> Result<()> {
        tokio::select! {
            () = signal => {}
            () = self.shutdown.cancelled() => {}
        }
        self.stop().await
    }
}

/// SIGINT or SIGTERM, as a terminal or systemd sends them.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A seed for the scheduler's victim choice; it needs variety between nodes, not secrecy.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    nanos.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
}
