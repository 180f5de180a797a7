//! The machine a node runs on: its identity under `--home` (and the lock that keeps one
//! node per home), its health (temperature, throttling, load), when it lends its workers,
//! and the worker threads that run tasks.

pub(crate) mod health;
pub mod identity;
pub(crate) mod lending;
pub(crate) mod workers;
