//! mesh: turn the computers on one LAN into one compute pool.
//!
//! # Layout
//! The layers, each depending only on those below it (`tests/it/layout.rs` checks that no
//! two files or top-level modules depend on each other both ways):
//!
//! * [`cli`]: argument parsing into a node's configuration, and the only code that prints.
//! * [`node`]: [`node::Node::spawn`], the one driver: an event loop that owns the core, the
//!   worker threads and (unless `--local`) the libp2p Swarm, plus the control socket.
//! * `protocol`: one module per wire protocol, each with its spec, id and size limits.
//! * [`exec`]: running tasks: [`exec::primes`] (sieve and trial division),
//!   [`exec::wasm`] (users' WebAssembly modules, sandboxed, with the WASI shim),
//!   [`exec::run`] (users' programs) and [`exec::python`] (users' Python calls).
//! * [`job`]: job specs (primes, wasm, run, python), task splitting and inputs.
//! * [`core`]: the sans-IO scheduler, a pure state machine (queues, stealing, the owner's
//!   ledger, peers, timers), with [`id`] and the deterministic simulator: the `mesh-core`
//!   crate (`crates/mesh-core`), whose dependencies hold no I/O.
//! * `fuzzing` (tests, and the `fuzzing` feature for `fuzz/`): one entry point per decoder
//!   of outside bytes, for cargo-fuzz and the replay of its saved inputs.
//! * [`store`], [`secret`], [`id`]: content-addressed blobs under `--home`, the shared
//!   key, and node, job and content identifiers.
//!
//! What is `pub` here is what the binary, the integration tests and the benches use; the
//! rest is `pub(crate)`, so the `unreachable_pub` lint flags anything public by accident.

pub mod cli;
pub mod exec;
pub mod job;
pub mod node;
mod protocol;
pub mod secret;
pub mod store;

/// The sans-IO scheduler core and the identifiers, in their own crate (`crates/mesh-core`)
/// so that the compiler keeps them free of I/O.
pub use mesh_core as core;
pub use mesh_core::id;
#[cfg(feature = "sim")]
pub use mesh_core::sim;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
