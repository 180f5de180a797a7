//! Task kernels.
pub mod primes;
