//! mesh: turn the computers on one LAN into one compute pool.
//!
//! # Layout
//! * [`core`]: the sans-IO scheduler, a pure state machine (queues, stealing, the owner's
//!   ledger, peers, timers). No I/O, no clock reads, seeded randomness.
//! * `sim` (tests, and the `sim` feature for benches): a deterministic N-node simulator that drives [`core`] on a virtual
//!   clock with latency, loss, node death and uneven speeds.
//! * [`node`]: the drivers: a local job runner with worker threads, and the `mesh join`
//!   event loop that owns the libp2p Swarm, plus its control socket and membership view.
//! * [`discovery`]: mDNS/DNS-SD announce and browse (`mdns-sd`), bridged into the loop.
//! * [`protocol`]: one module per wire protocol, each with its spec, id and size limits.
//! * [`secret`]: the shared key, its pnet derivation and its public fingerprint.
//! * [`store`]: the content-addressed blob store (modules, job inputs) under `--home`.
//! * [`exec`]: running tasks: [`exec::primes`] (sieve and trial division) and
//!   [`exec::wasm`] (users' WebAssembly modules, sandboxed, with the WASI shim).
//! * [`job`]: job specs (primes, wasm), task splitting and inputs.
//! * [`cli`]: argument parsing and the only code that prints.
//! * [`id`]: node, job and task identifiers.

pub mod cli;
pub mod core;
mod discovery;
pub mod exec;
pub mod id;
pub mod job;
pub mod node;
mod protocol;
pub mod secret;
pub mod store;

#[cfg(any(test, feature = "sim"))]
pub mod sim;
