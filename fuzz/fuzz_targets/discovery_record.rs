#![no_main]
// See src/fuzzing.rs: mesh::fuzzing::discovery_record must not panic, and round-trips what it accepts.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mesh::fuzzing::discovery_record(data));
