//! The runtime against small modules: outputs, the examples, limits, the sandbox, the
//! compiled-code cache. The node's memory budget and wall-clock timeouts are in `bounds`.

use super::*;

mod bounds;

struct Fixture {
    home: PathBuf,
    rt: WasmRuntime,
}

impl Fixture {
    fn new(tag: &str) -> Self {
        Self::with_budget(tag, MemoryBudget::host())
    }

    /// A runtime whose tasks draw their memory from `budget`.
    fn with_budget(tag: &str, budget: Arc<MemoryBudget>) -> Self {
        let home = std::env::temp_dir().join(format!("mesh-wasm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        let rt = WasmRuntime::with_budget(&home, Arc::new(BlobStore::new(&home)), None, budget).unwrap();
        Self { home, rt }
    }

    /// A job of `module` (text) over `input`, with small limits.
    fn job(&self, module: &str, input: &str) -> Result<WasmJob, WasmError> {
        let bytes = wat::parse_str(module).expect("the test's module text parses");
        let module = self.rt.check(&bytes)?;
        let lines = InputLines::parse(input.as_bytes().to_vec()).unwrap();
        let input = self.rt.blobs.store.put(input.as_bytes()).unwrap();
        Ok(WasmJob {
            module,
            input,
            tasks: lines.len(),
            timeout_ms: 2000,
            memory_mb: 16,
            retries: 0,
            needs: Default::default(),
        })
    }

    fn run(&self, job: &WasmJob, task: u64) -> Result<String, WasmTaskError> {
        self.rt.run(job, task, NodeId(0)).map(|o| String::from_utf8(o).unwrap())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn example(name: &str) -> String {
    std::fs::read_to_string(format!("{}/examples/wasm/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A module whose `_start` runs `body`, with `fd_write` of `len` bytes at `ptr` available
/// as `(call $print (i32.const ptr) (i32.const len))`, and `data` at 100.
fn module(imports: &str, body: &str, data: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  {imports}
  (memory (export "memory") 1)
  (data (i32.const 100) "{data}")
  (func $print (param i32 i32)
    (i32.store (i32.const 0) (local.get 0))
    (i32.store (i32.const 4) (local.get 1))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start") {body}))"#
    )
}

#[test]
fn the_primes_example_matches_the_native_kernel() {
    let f = Fixture::new("primes");
    let ns = [0u64, 1, 2, 3, 10, 1000, 100_999];
    let input: String = ns.iter().map(|n| format!("{n}\n")).collect();
    let job = f.job(&example("primes.wat"), &input).unwrap();
    for (task, &n) in ns.iter().enumerate() {
        let want = crate::exec::primes::sieve(0, n).sum;
        assert_eq!(f.run(&job, task as u64).unwrap(), format!("{want}\n"), "n = {n}");
    }
}

/// The example's generator, written again in Rust.
fn monte_carlo(seed: u64, samples: u64) -> u64 {
    let mut s = seed.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut hits = 0;
    for _ in 0..samples {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        let r = s.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let (x, y) = (r >> 33, (r >> 2) & 0x7fff_ffff);
        hits += u64::from(x * x + y * y < 1 << 62);
    }
    hits
}

#[test]
fn the_monte_carlo_example_is_exact_and_estimates_pi() {
    let f = Fixture::new("mc");
    let job = f.job(&example("montecarlo.wat"), "1 100000\n2 100000\n77 5\n").unwrap();
    let mut hits = 0;
    for (task, (seed, samples)) in [(1, 100_000), (2, 100_000), (77, 5)].into_iter().enumerate() {
        let want = monte_carlo(seed, samples);
        assert_eq!(f.run(&job, task as u64).unwrap(), format!("{want} {samples}\n"));
        hits += want;
    }
    let pi = 4.0 * hits as f64 / 200_005.0;
    assert!((pi - std::f64::consts::PI).abs() < 0.02, "estimate {pi}");
}

/// A task whose job ended stops at the next tick instead of running to its timeout.
#[test]
fn a_cancelled_task_stops_long_before_its_timeout() {
    let f = Fixture::new("cancel");
    let mut job = f.job(&module("", "(loop $l (br $l))", ""), "x\n").unwrap();
    job.timeout_ms = 600_000;
    let flag = Arc::new(AtomicBool::new(false));
    let setter = flag.clone();
    let later = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        setter.store(true, Ordering::Relaxed);
    });
    let err = f.rt.run_until(&job, 0, NodeId(0), move || flag.load(Ordering::Relaxed)).unwrap_err();
    later.join().unwrap();
    assert!(matches!(&err, WasmTaskError::Run { failure: RunFailure::Cancelled, .. }), "{err}");
    assert_eq!(f.run(&f.job(&module("", "", ""), "x\n").unwrap(), 0).unwrap(), "", "the runtime goes on");
}

#[test]
fn an_infinite_loop_times_out_and_the_runtime_goes_on() {
    let f = Fixture::new("loop");
    let mut job = f.job(&module("", "(loop $l (br $l))", ""), "x\n").unwrap();
    job.timeout_ms = 200;
    let err = f.run(&job, 0).unwrap_err().to_string();
    assert!(err.contains("input line 1 ('x')") && err.contains("timed out after 0.2 s"), "{err}");
    let ok = f.job(&module("", "(call $print (i32.const 100) (i32.const 2))", "ok"), "y\n").unwrap();
    assert_eq!(f.run(&ok, 0).unwrap(), "ok");
}

#[test]
fn a_memory_bomb_is_refused_more_memory() {
    let f = Fixture::new("bomb");
    // Grows memory a page at a time until refused, then traps.
    let body = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable";
    let job = f.job(&module("", body, ""), "x\n").unwrap();
    let err = f.run(&job, 0).unwrap_err().to_string();
    assert!(err.contains("ran out of memory") && err.contains("limit of 16 MiB"), "{err}");
    // A module that asks for more than the limit up front cannot even start.
    let big = module("", "", "").replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 1000)");
    let err = f.run(&f.job(&big, "x\n").unwrap(), 0).unwrap_err().to_string();
    assert!(err.contains("ran out of memory"), "{err}");
}

#[test]
fn exits_traps_and_floods_fail_the_task_with_reasons() {
    let f = Fixture::new("fail");
    let exit3 = f.job(&module("", "(call $proc_exit (i32.const 3))", ""), "a\n").unwrap();
    assert!(f.run(&exit3, 0).unwrap_err().to_string().contains("exited with code 3"));
    let exit0 =
        f.job(&module("", "(call $print (i32.const 100) (i32.const 1)) (call $proc_exit (i32.const 0))", "k"), "a\n");
    assert_eq!(f.run(&exit0.unwrap(), 0).unwrap(), "k");
    let trap = f.job(&module("", "unreachable", ""), "a\n").unwrap();
    assert!(f.run(&trap, 0).unwrap_err().to_string().contains("trapped"), "a trap is reported");
    let flood = "(loop $l (call $print (i32.const 0) (i32.const 4096)) (br $l))";
    let err = f.run(&f.job(&module("", flood, ""), "a\n").unwrap(), 0).unwrap_err().to_string();
    assert!(err.contains("more than 65536 bytes to stdout"), "{err}");
}

#[test]
fn bad_modules_get_clear_errors() {
    let f = Fixture::new("bad");
    let err = f.rt.check(b"\0asm\x01\0\0\0garbage").unwrap_err().to_string();
    assert!(err.contains("not valid WebAssembly"), "{err}");
    let err = f.rt.check(b"not wasm at all").unwrap_err().to_string();
    assert!(err.contains("not valid WebAssembly"), "{err}");
    let foreign =
        r#"(module (import "env" "system" (func (param i32))) (memory (export "memory") 1) (func (export "_start")))"#;
    let err = f.rt.check(&wat::parse_str(foreign).unwrap()).unwrap_err().to_string();
    assert!(err.contains("imports `env.system`"), "{err}");
    let library = r#"(module (memory (export "memory") 1) (func (export "run")))"#;
    let err = f.rt.check(&wat::parse_str(library).unwrap()).unwrap_err().to_string();
    assert!(err.contains("does not export a _start function"), "{err}");
}

#[test]
fn the_sandbox_has_no_files_network_or_environment() {
    let f = Fixture::new("sandbox");
    // Each call's errno is printed as one byte, 'A' + errno.
    let imports = r#"
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_raise" (func $raise (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread" (func $pread (param i32 i32 i32 i64 i32) (result i32)))"#;
    let body = r#"
    (i32.store8 (i32.const 200) (i32.add (i32.const 65) (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 4) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 40))))
    (i32.store8 (i32.const 201) (i32.add (i32.const 65) (call $sock_accept (i32.const 1) (i32.const 0) (i32.const 40))))
    (i32.store8 (i32.const 202) (i32.add (i32.const 65) (call $prestat (i32.const 3) (i32.const 40))))
    (i32.store8 (i32.const 203) (i32.add (i32.const 65) (call $env (i32.const 40) (i32.const 44))))
    (i32.store8 (i32.const 204) (i32.add (i32.const 65) (i32.load (i32.const 40))))
    (i32.store8 (i32.const 205) (i32.add (i32.const 65) (call $raise (i32.const 9))))
    (i32.store8 (i32.const 206) (i32.add (i32.const 65) (call $pread (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 40))))
    (call $print (i32.const 200) (i32.const 7))"#;
    let job = f.job(&module(imports, body, "/etc"), "x\n").unwrap();
    let out = f.rt.run(&job, 0, NodeId(0)).unwrap();
    let errnos: Vec<i32> = out.iter().map(|&b| i32::from(b) - 65).collect();
    // No preopened fd 3 (EBADF); stdout is no socket (ENOTSOCK); an empty environment;
    // no signals (ENOTSUP); stdin cannot seek (ESPIPE).
    assert_eq!(errnos, [8, 57, 8, 0, 0, 58, 70]);
    // A name that WASI preview 1 does not have is refused before anything runs.
    let bogus = r#"(import "wasi_snapshot_preview1" "path_teleport" (func (param i32) (result i32)))"#;
    let err = f.job(&module(bogus, "", ""), "x\n").unwrap_err().to_string();
    assert!(err.contains("`wasi_snapshot_preview1.path_teleport`, which WASI preview 1 does not have"), "{err}");
}

/// Where mesh's shim answers differently from wasmtime-wasi, on purpose: wasmtime traps
/// on a clock id outside the enum; mesh never traps on a call, and says `EINVAL`.
const PROBE_DEVIATIONS: &[(&str, &str)] = &[
    ("clock_res_get(4)", "exit 28"),
    ("clock_res_get(-1)", "exit 28"),
    ("clock_time_get(4)", "exit 28"),
    ("clock_time_get(-1)", "exit 28"),
];

/// Every WASI preview 1 call, on stdio, a closed descriptor and no descriptor, answers
/// as wasmtime-wasi does (tests/wasm/wasi_probe.expect, written by tools/wasi-ref).
#[test]
fn every_wasi_call_answers_as_wasmtime_does() {
    let f = Fixture::new("probe");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wasm");
    let probe = std::fs::read_to_string(format!("{dir}/wasi_probe.wat")).unwrap();
    let expect = std::fs::read_to_string(format!("{dir}/wasi_probe.expect")).unwrap();
    let cases: Vec<Vec<&str>> =
        expect.lines().filter(|l| !l.starts_with('#')).map(|l| l.split('\t').collect()).collect();
    let input: String = (0..cases.len()).map(|n| format!("{n}\n")).collect();
    let job = f.job(&probe, &input).unwrap();
    let mut calls = std::collections::BTreeSet::new();
    let mut wrong = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let [number, label, outcome, stdout] = case[..] else { panic!("bad expect line {n}: {case:?}") };
        assert_eq!(number, n.to_string());
        calls.insert(label.split('(').next().unwrap());
        let got = record(f.rt.run(&job, n as u64, NodeId(0)));
        let recorded = format!("{outcome}\t{stdout}");
        let want = match PROBE_DEVIATIONS.iter().find(|(l, _)| *l == label) {
            Some((_, mesh)) => mesh.to_string(),
            None => comparable(&recorded).to_string(),
        };
        if got != want {
            wrong.push(format!("{label}: mesh {got:?}, wasmtime-wasi {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{} of {} calls differ:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
    assert_eq!(calls.len(), 46, "the probe covers all 46 calls of WASI preview 1: {calls:?}");
}

/// How a task ended, written as tools/wasi-ref records it: `exit CODE` or `trap`, then
/// (for code 0, the only case where mesh keeps stdout) a tab and stdout with `\\`, tab and
/// newline escaped.
fn record(result: Result<Vec<u8>, WasmTaskError>) -> String {
    match result {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out).replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n");
            format!("exit 0\t{text}")
        }
        Err(WasmTaskError::Run { failure: RunFailure::Exit(code), .. }) => format!("exit {code}"),
        Err(WasmTaskError::Run { failure: RunFailure::Trapped(_) | RunFailure::OutOfMemory { .. }, .. }) => {
            "trap".into()
        }
        Err(e) => format!("failed: {e}"),
    }
}

/// What wasi-ref recorded, cut to what mesh can be compared on: a non-zero exit's stdout
/// is not kept by mesh.
fn comparable(recorded: &str) -> &str {
    if recorded.starts_with("exit 0\t") { recorded } else { recorded.split('\t').next().unwrap() }
}

/// Programs built by real toolchains (wasi-libc C and Rust std for wasm32-wasip1) that
/// probe files, directories, the environment, stdio, clocks and sockets print under mesh
/// what they print under wasmtime-wasi (tests/wasm/probes, recorded by tools/wasi-ref).
#[test]
fn toolchain_probes_see_what_they_see_under_wasmtime() {
    let f = Fixture::new("probes");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wasm/probes");
    let input = std::fs::read(format!("{dir}/input.txt")).unwrap();
    let lines = InputLines::parse(input.clone()).unwrap();
    for probe in ["probe_c", "probe_rust"] {
        let module = f.rt.check(&std::fs::read(format!("{dir}/{probe}.wasm")).unwrap()).unwrap();
        let job = WasmJob {
            module,
            input: f.rt.blobs.store.put(&input).unwrap(),
            tasks: lines.len(),
            timeout_ms: 10_000,
            memory_mb: 64,
            retries: 0,
            needs: Default::default(),
        };
        let expect = std::fs::read_to_string(format!("{dir}/{probe}.expect")).unwrap();
        assert_eq!(expect.lines().count() as u64, lines.len());
        for (task, want) in expect.lines().enumerate() {
            assert_eq!(record(f.rt.run(&job, task as u64, NodeId(0))), comparable(want), "{probe}, line {}", task + 1);
        }
    }
}

/// Modules generated by wasm-smith, calling WASI with whatever arguments they make up,
/// end as they do under wasmtime-wasi: the same exit status, trap or not, and the same
/// stdout (tests/wasm/smith, recorded by `wasi-ref smith`).
#[test]
fn generated_modules_end_as_under_wasmtime() {
    let f = Fixture::new("smith");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wasm/smith");
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    names.retain(|p| p.extension().is_some_and(|e| e == "wasm"));
    names.sort();
    assert!(names.len() >= 50, "the generated corpus is there: {}", names.len());
    let mut wrong = Vec::new();
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for path in &names {
        let module = f.rt.check(&std::fs::read(path).unwrap()).unwrap();
        let job = WasmJob {
            module,
            input: f.rt.blobs.store.put(b"7 seven").unwrap(),
            tasks: 1,
            timeout_ms: 10_000,
            memory_mb: 16,
            retries: 0,
            needs: Default::default(),
        };
        let want = std::fs::read_to_string(path.with_extension("expect")).unwrap();
        let want = comparable(want.trim_end_matches('\n'));
        let got = record(f.rt.run(&job, 0, NodeId(0)));
        *outcomes.entry(want.split('\t').next().unwrap().to_string()).or_default() += 1;
        if got != want {
            wrong.push(format!("{}: mesh {got:?}, wasmtime-wasi {want:?}", path.display()));
        }
    }
    assert!(wrong.is_empty(), "{} of {} differ:\n{}", wrong.len(), names.len(), wrong.join("\n"));
    assert!(outcomes.len() >= 2, "the corpus has more than one kind of ending: {outcomes:?}");
}

#[test]
fn random_get_is_deterministic_per_task() {
    let f = Fixture::new("random");
    let imports = r#"(import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))"#;
    let body = "(drop (call $random (i32.const 200) (i32.const 16))) (call $print (i32.const 200) (i32.const 16))";
    let job = f.job(&module(imports, body, ""), "same\nsame\n").unwrap();
    let run = |task, hint| f.rt.run(&job, task, NodeId(hint)).unwrap();
    let (a, again, b) = (run(0, 1), run(0, 2), run(1, 1));
    assert_eq!(a, again, "a rerun of a task sees the same random bytes");
    assert_ne!(a, b, "another task sees other bytes");
}

#[test]
fn stdin_is_the_line_and_compiled_code_is_cached() {
    let f = Fixture::new("cache");
    let echo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wasm/echo.wat")).unwrap();
    let job = f.job(&echo, "hello\r\nworld").unwrap();
    assert_eq!(f.run(&job, 0).unwrap(), "hello\n");
    assert_eq!(f.run(&job, 1).unwrap(), "world\n");
    let cached: Vec<_> = std::fs::read_dir(&f.rt.compiled_dir).unwrap().flatten().collect();
    assert_eq!(cached.len(), 1, "one compiled module on disk");
    // A new runtime (a restarted node) loads the cached code, and a damaged cache file
    // is compiled again rather than trusted.
    let again = WasmRuntime::new(&f.home, Arc::new(BlobStore::new(&f.home)), None).unwrap();
    assert!(again.load_compiled(job.module).is_some());
    let path = cached[0].path();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert!(again.load_compiled(job.module).is_none());
    assert!(!path.exists(), "the damaged entry is removed");
    assert_eq!(again.run(&job, 1, NodeId(0)).unwrap(), b"world\n");
    assert!(path.exists(), "and written again");
}

#[test]
fn the_c_example_runs_on_wasi_libc_and_matches_sha256() {
    let f = Fixture::new("c");
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wasm/c/sha256.wasm")).unwrap();
    let module = f.rt.check(&bytes).unwrap();
    let input = "abc 1\nhello 2\nmesh 100000\nno-rounds\n";
    let lines = InputLines::parse(input.as_bytes().to_vec()).unwrap();
    let input = f.rt.blobs.store.put(input.as_bytes()).unwrap();
    let job = WasmJob {
        module,
        input,
        tasks: lines.len(),
        timeout_ms: 20_000,
        memory_mb: 16,
        retries: 0,
        needs: Default::default(),
    };
    // FIPS 180-2's "abc" vector; the others from Python's hashlib (sha256 applied again
    // to the 32-byte digest, ROUNDS times in all).
    assert_eq!(f.run(&job, 0).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n");
    assert_eq!(f.run(&job, 1).unwrap(), "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50\n");
    assert_eq!(f.run(&job, 2).unwrap(), "4af7f79786014faceb87a507612a4e9266a32ecb4b4e0995023cebfdb22cf3de\n");
    let err = f.run(&job, 3).unwrap_err().to_string();
    assert!(err.contains("exited with code 2") && err.contains("expected \"TEXT ROUNDS\""), "stderr explains: {err}");
}

#[test]
fn nans_are_canonical_so_every_cpu_prints_the_same_bits() {
    let f = Fixture::new("nan");
    let nan = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wasm/nan.wat")).unwrap();
    let job = f.job(&nan, "x\n").unwrap();
    // x86-64 would make fff8000000000000 without canonicalisation, ARM 7ff8000000000000.
    assert_eq!(f.run(&job, 0).unwrap(), "7ff8000000000000\n");
}

#[test]
fn one_memory_only_and_bounded_host_calls() {
    let f = Fixture::new("bounds");
    // A second memory would double what --memory allows, so it is refused.
    let two = r#"(module (memory (export "memory") 1) (memory 1) (func (export "_start")))"#;
    let err = f.rt.check(&wat::parse_str(two).unwrap()).unwrap_err().to_string();
    assert!(err.contains("not valid WebAssembly"), "{err}");
    // Host calls do bounded work: too many iovecs is EINVAL, not a long copy.
    let body = "(i32.store8 (i32.const 200) (i32.add (i32.const 65) \
                (call $fd_write (i32.const 2) (i32.const 0) (i32.const 100000) (i32.const 8)))) \
                (call $print (i32.const 200) (i32.const 1))";
    let job = f.job(&module("", body, ""), "x\n").unwrap();
    let out = f.rt.run(&job, 0, NodeId(0)).unwrap();
    assert_eq!(out, [65 + 28], "EINVAL");
}
