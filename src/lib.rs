//! mesh: turn the computers on one LAN into one compute pool.
//!
//! # Layout
//! * [`core`]: the sans-IO scheduler, a pure state machine (queues, stealing, the owner's
//!   ledger, peers, timers). No I/O, no clock reads, seeded randomness.
//! * `sim` (tests only): a deterministic N-node simulator that drives [`core`] on a virtual
//!   clock with latency, loss, node death and uneven speeds.
//! * [`node`]: the driver that runs a scheduler with real worker threads and a clock.
//! * [`exec`]: task kernels; [`exec::primes`] holds the primes sieve and trial division.
//! * [`job`]: job specs, task splitting and result assembly.
//! * [`cli`]: argument parsing and the only code that prints.
//! * [`id`]: node, job and task identifiers.

pub mod cli;
pub mod core;
pub mod exec;
pub mod id;
pub mod job;
pub mod node;

#[cfg(test)]
mod sim;
