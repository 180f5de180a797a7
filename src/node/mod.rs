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
//! * `view`, `report`: what a node shows (peer rows, progress, a job's report);
//! * `dashboard`: `mesh join --http`: the live web view, its JSON API and `/metrics`.
//!
//! Shutdown: one `CancellationToken` and one `TaskTracker` per node. Every task a node
//! spawns (its loop, its control server, blob transfers) is tracked, and [`Node::stop`]
//! waits for all of them.

mod behaviour;
mod blobs;
mod client;
mod config;
pub mod control;
mod dashboard;
mod event_loop;
mod handle;
mod health;
pub mod identity;
mod lending;
mod limits;
mod members;
mod quota;
mod report;
mod sightings;
mod submit;
mod view;
mod workers;

pub use client::{COMMAND_CAPACITY, Client, JobHandle, NodeError, NodeStopped};
pub use config::{Control, Http, NetConfig, NodeConfig};
pub use handle::{Node, shutdown_signal};
pub use identity::{default_home, hostname};
pub use report::{FailedTask, JobReport, JobResults, MEASURABLE, NodeStats, PrimesResult, TaskRecord, run_failure};
pub(crate) use sightings::{refusal, sighting_row};
pub use submit::run_job;
pub use view::{
    BlobStats, Health, JobEvent, JobProgress, JobSummary, JobUpdate, PeerRow, PeerState, PeersReply, PyTaskEvent,
    Share, TaskEvent,
};
