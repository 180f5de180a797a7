//! `wasi-ref`: runs WebAssembly tasks the way mesh does, but under wasmtime's own WASI
//! preview 1 (wasmtime-wasi), and records what they do. mesh's tests replay the records
//! against mesh's WASI shim (`src/exec/wasm/wasi.rs`), so the shim is held to wasmtime's
//! behaviour without wasmtime-wasi in mesh's build.
//!
//! A task here gets what a mesh task gets: its input line and `\n` on stdin, the argument
//! `task`, an empty environment, no preopened directories, a 16 MiB memory limit.
//!
//! ```text
//! wasi-ref probe DIR          write DIR/wasi_probe.wat and its answers, DIR/wasi_probe.expect
//! wasi-ref run MODULE LINE    run one task; print its outcome and stdout
//! wasi-ref expect MODULE INPUT   one record per input line (for the toolchain probes)
//! wasi-ref smith COUNT DIR    generate modules with wasm-smith; keep those that end, with records
//! ```
//!
//! A record is one line: `exit CODE` or `trap`, a tab, and the task's stdout with `\`,
//! tab and newline escaped.

mod probe;

use std::path::{Path, PathBuf};
use wasmtime::{Config, Engine, Linker, Module, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime::{Result, format_err};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};

/// The memory limit of mesh's tests (`--memory 16`).
const MEMORY: usize = 16 << 20;
/// mesh's stdout limit.
const MAX_STDOUT: usize = 64 * 1024;
/// Work a generated module may do before it counts as one that does not end.
const FUEL: u64 = 20_000_000;

struct Host {
    wasi: WasiP1Ctx,
    limits: StoreLimits,
}

/// How a task ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    Exit(i32),
    Trap,
    /// Ran out of fuel: a module that does not end (only with `smith`).
    Endless,
}

fn engine(fuel: bool) -> Result<Engine> {
    let mut c = Config::new();
    // As mesh's engine (src/exec/wasm/mod.rs, engine_config).
    c.wasm_multi_memory(false);
    c.cranelift_nan_canonicalization(true);
    c.relaxed_simd_deterministic(true);
    c.consume_fuel(fuel);
    Engine::new(&c)
}

fn run(engine: &Engine, module: &Module, line: &[u8], fuel: Option<u64>) -> Result<(Outcome, Vec<u8>)> {
    let mut stdin = line.to_vec();
    stdin.push(b'\n');
    let stdout = MemoryOutputPipe::new(MAX_STDOUT);
    let wasi =
        WasiCtxBuilder::new().stdin(MemoryInputPipe::new(stdin)).stdout(stdout.clone()).args(&["task"]).build_p1();
    let limits = StoreLimitsBuilder::new().memory_size(MEMORY).instances(1).memories(1).tables(4).build();
    let mut store = Store::new(engine, Host { wasi, limits });
    store.limiter(|h| &mut h.limits);
    if let Some(f) = fuel {
        store.set_fuel(f)?;
    }
    let mut linker: Linker<Host> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut Host| &mut h.wasi)?;
    let result = linker.instantiate(&mut store, module).and_then(|instance| {
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        start.call(&mut store, ())
    });
    let outcome = match result {
        Ok(()) => Outcome::Exit(0),
        Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(x) => Outcome::Exit(x.0),
            None if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel) => Outcome::Endless,
            None => Outcome::Trap,
        },
    };
    drop(store);
    Ok((outcome, stdout.contents().to_vec()))
}

fn record(outcome: &Outcome, stdout: &[u8]) -> String {
    let head = match outcome {
        Outcome::Exit(c) => format!("exit {c}"),
        Outcome::Trap => "trap".into(),
        Outcome::Endless => "endless".into(),
    };
    let mut text = String::new();
    for ch in String::from_utf8_lossy(stdout).chars() {
        match ch {
            '\\' => text.push_str("\\\\"),
            '\t' => text.push_str("\\t"),
            '\n' => text.push_str("\\n"),
            c => text.push(c),
        }
    }
    format!("{head}\t{text}")
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["probe", dir] => write_probe(Path::new(dir)),
        ["run", module, line] => {
            let engine = engine(false)?;
            let m = Module::from_file(&engine, module)?;
            let (outcome, stdout) = run(&engine, &m, line.as_bytes(), None)?;
            println!("{}", record(&outcome, &stdout));
            Ok(())
        }
        ["expect", module, input] => {
            let engine = engine(false)?;
            let m = Module::from_file(&engine, module)?;
            let text = std::fs::read_to_string(input).map_err(|e| format_err!("reading {input}: {e}"))?;
            for line in text.lines() {
                let (outcome, stdout) = run(&engine, &m, line.as_bytes(), None)?;
                println!("{}", record(&outcome, &stdout));
            }
            Ok(())
        }
        ["smith", count, dir] => smith(count.parse().map_err(|e| format_err!("COUNT: {e}"))?, Path::new(dir)),
        _ => Err(format_err!("usage: wasi-ref probe DIR | run MODULE LINE | expect MODULE INPUT | smith COUNT DIR")),
    }
}

fn write_probe(dir: &Path) -> Result<()> {
    let wat = probe::module();
    std::fs::write(dir.join("wasi_probe.wat"), &wat)?;
    let engine = engine(false)?;
    let module = Module::new(&engine, wat::parse_str(&wat)?)?;
    let mut expect = String::from(
        "# What wasmtime-wasi 48 answers to each case of wasi_probe.wat (case, call, outcome, stdout).\n\
         # Written by tools/wasi-ref; replayed against mesh's shim by src/exec/wasm/tests.rs.\n",
    );
    for (n, case) in probe::cases().iter().enumerate() {
        let (outcome, stdout) = run(&engine, &module, n.to_string().as_bytes(), None)?;
        expect.push_str(&format!("{n}\t{}\t{}\n", case.label, record(&outcome, &stdout)));
    }
    std::fs::write(dir.join("wasi_probe.expect"), expect)?;
    println!("wrote {} cases to {}", probe::cases().len(), dir.display());
    Ok(())
}

/// The WASI calls generated modules may import: all but those whose answers depend on the
/// time or on randomness.
const SMITH_IMPORTS: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))))"#;

include!("smith_config.rs");

/// Generates `count` modules from fixed seeds and keeps those that end under wasmtime-wasi,
/// each as `DIR/NNNN.wasm` with its record in `DIR/NNNN.expect`.
fn smith(count: u64, dir: &Path) -> Result<()> {
    use arbitrary::Unstructured;
    std::fs::create_dir_all(dir)?;
    let engine = engine(true)?;
    let config = smith_config(SMITH_IMPORTS);
    let (mut kept, mut endless, mut invalid) = (0u64, 0u64, 0u64);
    for seed in 0..count {
        let mut bytes = vec![0u8; 4096];
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let m = match wasm_smith::Module::new(config.clone(), &mut Unstructured::new(&bytes)) {
            Ok(m) => m,
            Err(e) => {
                invalid += 1;
                eprintln!("seed {seed}: wasm-smith: {e}");
                continue;
            }
        };
        let wasm = m.to_bytes();
        let module = match Module::new(&engine, &wasm) {
            Ok(m) => m,
            Err(e) => {
                invalid += 1;
                eprintln!("seed {seed}: {e:?}");
                continue;
            }
        };
        let (outcome, stdout) = run(&engine, &module, b"7 seven", Some(FUEL))?;
        if outcome == Outcome::Endless || stdout.len() >= MAX_STDOUT {
            endless += 1;
            continue;
        }
        let base: PathBuf = dir.join(format!("{seed:04}"));
        std::fs::write(base.with_extension("wasm"), &wasm)?;
        std::fs::write(base.with_extension("expect"), record(&outcome, &stdout) + "\n")?;
        kept += 1;
    }
    println!("{count} seeds: kept {kept}, {endless} did not end within the fuel, {invalid} not valid here");
    Ok(())
}
