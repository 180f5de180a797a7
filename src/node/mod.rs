//! The node: a scheduler core driven by a real clock, real worker threads and, unless it
//! runs `--local`, the network.
//!
//! [`Node::spawn`] is the only driver. `mesh join`, the short-lived node of a `mesh
//! submit` with no local node, a `--local` run and the in-process tests all start one
//! from a [`NodeConfig`] and talk to it through a [`Client`]. Inside, one event loop
//! (`event_loop`) owns the core, the workers and the Swarm, and only translates between
//! them; no scheduling policy lives here.
//!
//! By concern:
//! * `api`: what a user holds and sees: the config, the handle, the `Client` (submit a
//!   job, list the mesh), one job run to its report, and the display types;
//! * `net`: the libp2p stack and its limits, mDNS discovery, members and sightings;
//! * `host`: the machine: identity and the home's lock, health, lending, worker threads;
//! * `blobs`: fetching and serving blobs;
//! * `control`: `<home>/control.sock`, the same requests for other processes;
//! * `dashboard`: `mesh join --http`: the live web view, its JSON API and `/metrics`;
//! * `quota`: the bounded shares the two listeners give their clients;
//! * `event_loop`: the loop that ties them.
//!
//! Shutdown: one `CancellationToken` and one `TaskTracker` per node. Every task a node
//! spawns (its loop, its control server, blob transfers) is tracked, and [`Node::stop`]
//! waits for all of them.

mod api;
mod blobs;
pub mod control;
mod dashboard;
mod event_loop;
mod host;
pub(crate) mod journal;
pub(crate) mod net;
mod quota;

pub use api::client::{COMMAND_CAPACITY, Client, JobHandle, NodeError, NodeStopped, Submission};
pub use api::config::{Control, Http, NetConfig, NodeConfig};
pub use api::handle::{Node, shutdown_signal};
pub use api::report::{
    FailedTask, JobReport, JobResults, MEASURABLE, NodeStats, PrimesResult, TaskRecord, run_failure,
};
pub use api::submit::run_job;
pub use api::view::{
    BadJobRef, BlobStats, Health, JobAccessError, JobEvent, JobProgress, JobRef, JobSummary, JobUpdate, OnGone,
    PeerRow, PeerState, PeersReply, PyTaskEvent, Share, Submitter, TaskEvent, node_id_of,
};
pub use host::identity;
pub use host::identity::{default_home, hostname};
pub(crate) use net::sightings::{refusal, sighting_row};
