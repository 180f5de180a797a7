#![no_main]
// See src/fuzzing.rs: mesh::fuzzing::primes_target must not panic, and round-trips what it accepts.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mesh::fuzzing::primes_target(data));
