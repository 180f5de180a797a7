//! Every integration test of the `mesh` package, in one binary: each test binary links
//! libp2p and wasmtime, so one binary instead of twelve saves CI most of its link time.
//! Run one file's tests with `cargo test --test it strangers::`, one test by its name.
//!
//! * `cli`, `run_cli`: the `mesh` binary as users run it: outputs, exit codes, errors;
//! * `node`, `node_run`, `jobs`, `remote_jobs`, `journal`: real nodes over loopback (no root);
//! * `lan`, `lan_jobs`, `mesh_jobs`, `run_jobs`, `wasm_jobs`, `strangers`, `python`, `dashboard`: hosts
//!   in network namespaces on a bridge (root; `MESH_SKIP_LAN=1` skips them), the browser
//!   and `promtool` for the dashboard;
//! * `layout`, `house`: the shape of the source tree, and house rules read from it.
//!
//! `common/` holds what they share: loopback clusters, namespace LANs, the browser.

mod common;

mod cli;
mod dashboard;
mod house;
mod jobs;
mod journal;
mod lan;
mod lan_jobs;
mod layout;
mod mesh_jobs;
mod node;
mod node_run;
mod python;
mod remote_jobs;
mod run_cli;
mod run_jobs;
mod strangers;
mod wasm_jobs;
