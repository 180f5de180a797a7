#![no_main]
// See src/fuzzing.rs: modules that wasm-smith makes from the fuzzer's bytes, importing WASI
// calls and exporting `_start` and `memory` as a mesh task must, run through the real
// runtime under the task limits; each must end with a result or a clear failure. The
// generator's settings are shared with tools/wasi-ref's `smith` (its differential corpus).
use libfuzzer_sys::arbitrary::Unstructured;

const IMPORTS: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv" (func (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))))"#;
include!("../../tools/wasi-ref/src/smith_config.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(m) = wasm_smith::Module::new(smith_config(IMPORTS), &mut Unstructured::new(data)) {
        mesh::fuzzing::wasm_module(&m.to_bytes());
    }
});
