//! WebAssembly tasks: the cost of one task once the module is warm, the demo kernel in
//! WebAssembly against native Rust, and compiling a module from scratch.
//!
//! Run: `cargo bench --bench wasm`

use criterion::{Criterion, criterion_group, criterion_main};
use mesh::exec::primes;
use mesh::exec::wasm::WasmRuntime;
use mesh::id::NodeId;
use mesh::job::WasmJob;
use mesh::store::BlobStore;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

fn home(tag: &str) -> PathBuf {
    let h = std::env::temp_dir().join(format!("mesh-bench-wasm-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&h);
    h
}

fn job(rt: &WasmRuntime, store: &BlobStore, module: &[u8], input: &str) -> WasmJob {
    let module = rt.check(module).unwrap();
    let lines = input.lines().count() as u64;
    let input = store.put(input.as_bytes()).unwrap();
    WasmJob { module, input, tasks: lines, timeout_ms: 60_000, memory_mb: 64, retries: 0, needs: Default::default() }
}

fn tasks(c: &mut Criterion) {
    let h = home("warm");
    let store = Arc::new(BlobStore::new(&h));
    let rt = WasmRuntime::new(&h, store.clone(), None).unwrap();
    let echo_wat = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wasm/echo.wat")).unwrap();
    let echo = job(&rt, &store, &wat::parse_str(&echo_wat).unwrap(), "hello\n");
    let demo_wat = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wasm/primes.wat")).unwrap();
    let demo = job(&rt, &store, &wat::parse_str(&demo_wat).unwrap(), "100000\n");
    assert_eq!(rt.run(&demo, 0, NodeId(0)).unwrap(), b"454396537\n");

    let mut g = c.benchmark_group("wasm");
    g.bench_function("trivial_task_warm", |b| b.iter(|| rt.run(black_box(&echo), 0, NodeId(0)).unwrap()));
    g.bench_function("demo_task_n100000_wasm", |b| b.iter(|| rt.run(black_box(&demo), 0, NodeId(0)).unwrap()));
    g.bench_function("demo_task_n100000_native", |b| b.iter(|| primes::trial(0, black_box(100_000))));
    g.sample_size(20);
    let bytes = wat::parse_str(&demo_wat).unwrap();
    g.bench_function("compile_demo_module_cold", |b| {
        b.iter(|| {
            let h = home("cold");
            let rt = WasmRuntime::new(&h, Arc::new(BlobStore::new(&h)), None).unwrap();
            rt.check(black_box(&bytes)).unwrap();
            let _ = std::fs::remove_dir_all(&h);
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&h);
}

criterion_group!(benches, tasks);
criterion_main!(benches);
