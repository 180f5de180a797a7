//! The dashboard: `mesh join --http ADDR` (127.0.0.1:4880 by default) serves a live
//! view of the whole mesh, a JSON API and Prometheus metrics. Any node serves the mesh's
//! view: peers and their load come by gossip, and every owner tells of its jobs in its
//! announce (`protocol::membership`, `jobs`).
//!
//! # Spec
//! Read-only: no route takes a job or changes anything, and nothing shown is key material
//! (the key's public fingerprint is not shown either). All routes answer `GET`:
//!
//! | route | type | what |
//! |---|---|---|
//! | `/` | `text/html` | the page: HTML, CSS and script in one file in the binary; no CDN, no framework |
//! | `/api/peers` | JSON array | the rows of `mesh peers --json`, this node first; each member's own jobs in `jobs` |
//! | `/api/jobs` | JSON object | `running` (oldest first) and `recent` (newest first, at most 20, `board::RECENT`) jobs: `id`, `owner`, `kind`, `done`, `failed`, `total`, `elapsed_s`, `tasks_per_s`, `eta_s`, `finished`, `lost`, `nodes` (the statistics table: `name`, `workers`, `tasks`, `share`, `task_time_s`, `time_per_task_s`), `other_tasks`, `task_time_s`, `speedup`, `efficiency` |
//! | `/api/throughput` | JSON array | tasks per second per node, one sample a second, the last 300 (`board::HISTORY`: `at_s`, `total`, `nodes: [{name, per_s}]`) |
//! | `/api/events` | `text/event-stream` | server-sent events: one `data:` line of JSON per snapshot (every 500 ms), the first at once: `node`, `version`, `seq`, `uptime_s`, `peers`, `jobs`, `rate` (the latest throughput sample); at most 64 at once (`server::MAX_STREAMS`), then 503 |
//! | `/metrics` | `text/plain; version=0.0.4` | Prometheus text format (see `metrics`) |
//!
//! The event loop publishes a snapshot every housekeeping tick (`Board`); handlers only
//! read the latest one, so a page costs the loop nothing and the loop never waits on a
//! browser.

mod board;
mod metrics;
mod server;
mod snapshot;

pub(crate) use board::{Board, Inputs};
pub(crate) use server::{bind, serve};
pub(crate) use snapshot::Snapshot;
