//! WebAssembly tasks: users' WASI command modules, compiled once and run sandboxed.
//!
//! A [`WasmRuntime`] serves every WebAssembly task of a process:
//!
//! * **Engine.** wasmtime with Cranelift. NaNs are canonicalised and relaxed SIMD is
//!   deterministic, so a module gives the same bits on x86-64 and ARM, and a retry on
//!   another node cannot change an answer.
//! * **Modules** are fetched by content id into the [`BlobStore`] (from the job's owner
//!   first, see [`BlobFetcher`]), compiled once, and the compiled code is cached under
//!   `<home>/cache/wasm/`, keyed by module and by the engine's compatibility hash, so a
//!   node of another CPU or mesh build never loads it. Each cached file carries the blake3
//!   hash of its contents, checked before wasmtime reads it. In memory, the last
//!   [`MODULE_CACHE`] modules stay ready to instantiate.
//! * **Limits.** Each task gets a fresh instance with at most `memory_mb` of linear memory
//!   and `timeout_ms` of run time. All the tasks of a runtime together hold at most its
//!   [`MemoryBudget`] (half the machine's memory, see [`limits`]), whatever `--memory` asks
//!   and however many workers run. The timeout holds in wall-clock time: a ticker thread,
//!   running only while tasks do, interrupts them every [`TICK`], and each interruption
//!   compares the clock with the task's deadline, so a task traps within a tick of it even
//!   when ticks come late (a loaded machine); one that returns after its deadline (the
//!   ticker starved) has timed out all the same, never succeeded. A trap, a timeout, a
//!   refused memory grow, a non-zero exit or too much output fails the task with an error
//!   naming its input.
//! * **Sandbox.** What a task can reach is [`wasi`]: its stdin, stdout and stderr, clocks
//!   and a deterministic random stream. No files, no network, no environment.

mod error;
pub mod limits;
mod refused;
pub mod wasi;

pub use error::{RunFailure, WasmError, WasmTaskError};
pub use limits::MemoryBudget;
pub use wasi::LinkError;

use super::cache::Cache;
use super::fetch::{BlobFetcher, Blobs};
use crate::id::{ContentId, NodeId};
use crate::job::{InputLines, WasmJob};
use crate::store::BlobStore;
use limits::{Denied, Limits};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use wasi::{Exit, OutputTooLarge, TaskCtx};
use wasmtime::{Engine, InstancePre, Module, Store, Trap};

/// Epoch length: how often a running task looks at the clock and at its job's end.
pub const TICK: Duration = Duration::from_millis(10);
/// Modules kept compiled in memory.
pub const MODULE_CACHE: usize = 8;
/// Inputs kept split into lines in memory.
pub const INPUT_CACHE: usize = 4;
/// How long the idle timeout ticker sleeps before it looks again (a task wakes it at once).
const IDLE_PARK: Duration = Duration::from_secs(1);
/// The most bytes of compiled code a node keeps between runs.
pub const COMPILED_BUDGET: u64 = 512 << 20;

/// A module ready to run: linked against the WASI shim.
struct Prepared {
    pre: InstancePre<TaskCtx>,
}

pub struct WasmRuntime {
    engine: Engine,
    blobs: Blobs,
    compiled_dir: PathBuf,
    modules: Cache<Prepared, WasmError>,
    inputs: Cache<InputLines, WasmError>,
    ticker: Arc<Ticker>,
    budget: Arc<MemoryBudget>,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime").field("compiled_dir", &self.compiled_dir).finish_non_exhaustive()
    }
}

impl WasmRuntime {
    /// A runtime that keeps its compiled code under `home` and its blobs in `store`, with
    /// this machine's memory budget ([`MemoryBudget::host`]).
    pub fn new(
        home: &std::path::Path,
        store: Arc<BlobStore>,
        fetcher: Option<Arc<dyn BlobFetcher>>,
    ) -> Result<Self, WasmError> {
        Self::with_budget(home, store, fetcher, MemoryBudget::host())
    }

    /// Like [`WasmRuntime::new`], with the tasks' memory drawn from `budget`.
    pub fn with_budget(
        home: &std::path::Path,
        store: Arc<BlobStore>,
        fetcher: Option<Arc<dyn BlobFetcher>>,
        budget: Arc<MemoryBudget>,
    ) -> Result<Self, WasmError> {
        let engine = Engine::new(&engine_config()).map_err(|e| WasmError::Engine(e.to_string()))?;
        let ticker = Ticker::start(engine.clone())
            .map_err(|e| WasmError::Engine(format!("starting the timeout ticker: {e}")))?;
        Ok(Self {
            engine,
            blobs: Blobs::new(store, fetcher),
            compiled_dir: home.join("cache").join("wasm"),
            modules: Cache::new(MODULE_CACHE),
            inputs: Cache::new(INPUT_CACHE),
            ticker,
            budget,
        })
    }

    /// Checks module bytes as a submitter would before shipping them: they must be valid
    /// WebAssembly, a WASI command (`_start` and `memory` exported) importing only WASI.
    /// Compiles them and caches the result, so a local node starts warm.
    pub fn check(&self, bytes: &[u8]) -> Result<ContentId, WasmError> {
        Module::validate(&self.engine, bytes).map_err(|e| WasmError::Invalid(root_cause(&e)))?;
        let id = self.blobs.store.put(bytes).map_err(|e| WasmError::ModuleBlob(e.into()))?;
        self.prepared(id, None)?;
        Ok(id)
    }

    /// Runs task `task` of `job`; `hint` is the node to fetch missing blobs from first.
    /// Returns what the task wrote to stdout, or an error that names its input line.
    pub fn run(&self, job: &WasmJob, task: u64, hint: NodeId) -> Result<Vec<u8>, WasmTaskError> {
        self.run_until(job, task, hint, || false)
    }

    /// Like [`WasmRuntime::run`], and the task stops within a [`TICK`] once `cancelled`
    /// says so (its job ended: a slow node's late task would only waste its worker until
    /// the timeout).
    pub fn run_until(
        &self,
        job: &WasmJob,
        task: u64,
        hint: NodeId,
        cancelled: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Result<Vec<u8>, WasmTaskError> {
        let input = self.input(job.input, hint).map_err(WasmTaskError::Input)?;
        let Some(line) = input.get(task) else {
            return Err(WasmTaskError::BeyondInput { task, lines: input.len() });
        };
        let prepared = self.prepared(job.module, Some(hint)).map_err(|cause| WasmTaskError::Module {
            line: task + 1,
            input: input.describe(task),
            cause,
        })?;
        let mut key = blake3::Hasher::new_derive_key("mesh 2026-11 wasi random_get v1");
        key.update(&job.module.0).update(&task.to_le_bytes()).update(line);
        let deadline = Instant::now() + job.timeout();
        let limits = Limits::new(job.memory_bytes(), self.budget.clone());
        let mut store = self.store(TaskCtx::new(line, key, deadline, limits), deadline, cancelled);
        let outcome = {
            let _ticking = self.ticker.running();
            prepared.pre.instantiate(&mut store).and_then(|instance| {
                let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                start.call(&mut store, ())
            })
        };
        // Past its deadline a task has timed out, even if no tick came to stop it.
        let overran = Instant::now() >= deadline;
        // The instance's memory goes here; the task's reservation when `ctx` does.
        let ctx = store.into_data();
        let failure = match outcome {
            Err(e) if e.downcast_ref::<Exit>().is_none_or(|x| x.0 != 0) => self.explain(&e, &ctx, job),
            _ if overran => RunFailure::TimedOut(job.timeout()),
            _ => return Ok(ctx.stdout),
        };
        Err(WasmTaskError::Run { line: task + 1, input: input.describe(task), failure, stderr: ctx.stderr_tail() })
    }

    /// A store for one task, interrupted every tick: it stops if `cancelled` says so, and
    /// traps (as a timeout) once the clock has reached `deadline`.
    fn store(
        &self,
        ctx: TaskCtx,
        deadline: Instant,
        cancelled: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Store<TaskCtx> {
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|cx| &mut cx.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if cancelled() {
                Err(wasmtime::Error::new(Cancelled))
            } else if Instant::now() >= deadline {
                Err(wasmtime::Error::new(Trap::Interrupt))
            } else {
                Ok(wasmtime::UpdateDeadline::Continue(1))
            }
        });
        store
    }

    /// Why a task's run failed.
    fn explain(&self, e: &wasmtime::Error, ctx: &TaskCtx, job: &WasmJob) -> RunFailure {
        let mib = |bytes: usize| bytes.div_ceil(1 << 20);
        if e.downcast_ref::<Cancelled>().is_some() {
            RunFailure::Cancelled
        } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            RunFailure::TimedOut(job.timeout())
        } else if let Some(Denied::Task { asked }) = ctx.limits.denied {
            RunFailure::OutOfMemory { asked_mib: mib(asked), limit_mib: job.memory_mb }
        } else if let Some(Denied::Host { asked, others }) = ctx.limits.denied {
            RunFailure::HostMemory {
                asked_mib: mib(asked),
                budget_mib: self.budget.limit() >> 20,
                others_mib: mib(others),
            }
        } else if let Some(x) = e.downcast_ref::<Exit>() {
            RunFailure::Exit(x.0)
        } else if e.downcast_ref::<OutputTooLarge>().is_some() {
            RunFailure::OutputTooLarge
        } else {
            RunFailure::Trapped(root_cause(e))
        }
    }

    fn input(&self, id: ContentId, hint: NodeId) -> Result<Arc<InputLines>, WasmError> {
        self.inputs.get(id, || {
            let bytes = self.blobs.read(id, Some(hint)).map_err(WasmError::InputBlob)?;
            InputLines::parse(bytes).map_err(WasmError::Input)
        })
    }

    fn prepared(&self, id: ContentId, hint: Option<NodeId>) -> Result<Arc<Prepared>, WasmError> {
        self.modules.get(id, || self.prepare(id, hint))
    }

    fn prepare(&self, id: ContentId, hint: Option<NodeId>) -> Result<Prepared, WasmError> {
        let module = match self.load_compiled(id) {
            Some(m) => m,
            None => {
                let bytes = self.blobs.read(id, hint).map_err(WasmError::ModuleBlob)?;
                let m = Module::from_binary(&self.engine, &bytes).map_err(|e| WasmError::Invalid(root_cause(&e)))?;
                self.save_compiled(id, &m);
                m
            }
        };
        for (name, what) in [("_start", "a _start function"), ("memory", "its memory")] {
            if module.get_export(name).is_none() {
                return Err(WasmError::NotACommand(what));
            }
        }
        let linker = wasi::linker(&self.engine, &module)?;
        let pre = linker.instantiate_pre(&module).map_err(|e| WasmError::Link(e.to_string()))?;
        Ok(Prepared { pre })
    }

    fn compiled_path(&self, id: ContentId) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        self.compiled_dir.join(format!("{id}-{:016x}.cwasm", h.finish()))
    }

    fn load_compiled(&self, id: ContentId) -> Option<Module> {
        let path = self.compiled_path(id);
        let bytes = std::fs::read(&path).ok()?;
        crate::store::touch(&path);
        let (sum, code) = bytes.split_at_checked(32)?;
        if blake3::hash(code).as_bytes() != sum {
            tracing::warn!(path = %path.display(), "damaged compiled-code cache entry; compiling again");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // SAFETY: wasmtime requires that serialized code come from a trusted source. This
        // file was written by `save_compiled` of this engine configuration (the file name
        // carries its compatibility hash, and wasmtime checks it again), lives in the
        // node's own home directory, and has just been checked against its hash.
        match unsafe { Module::deserialize(&self.engine, code) } {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::debug!(%e, "compiled code not loadable; compiling again");
                None
            }
        }
    }

    fn save_compiled(&self, id: ContentId, module: &Module) {
        let Ok(code) = module.serialize() else { return };
        let path = self.compiled_path(id);
        let tmp = path.with_extension(format!("tmp{}-{:?}", std::process::id(), std::thread::current().id()));
        let mut file = blake3::hash(&code).as_bytes().to_vec();
        file.extend_from_slice(&code);
        let saved = std::fs::create_dir_all(&self.compiled_dir)
            .and_then(|()| std::fs::write(&tmp, &file))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = saved {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(%e, "cannot cache compiled code");
        }
    }
}

/// Trims the home's blob store and compiled-code cache to their budgets, least recently
/// used first. A node calls it when it starts.
pub fn prune_caches(home: &std::path::Path) {
    let dirs = [
        (home.join(crate::store::DIR), crate::store::STORE_BUDGET),
        (home.join("cache").join("wasm"), COMPILED_BUDGET),
    ];
    for (dir, budget) in dirs {
        match crate::store::prune(&dir, budget) {
            Ok((0, _)) => {}
            Ok((files, bytes)) => tracing::debug!(dir = %dir.display(), files, bytes, "pruned the least recently used"),
            Err(e) => tracing::warn!(dir = %dir.display(), %e, "cannot prune"),
        }
    }
}

fn engine_config() -> wasmtime::Config {
    let mut c = wasmtime::Config::new();
    c.epoch_interruption(true);
    // One linear memory per module, so `--memory` bounds the whole task.
    c.wasm_multi_memory(false);
    // The same bits on every CPU: a retry elsewhere must not change a result.
    c.cranelift_nan_canonicalization(true);
    c.relaxed_simd_deterministic(true);
    c
}

/// A task stopped because its job ended.
#[derive(Debug)]
struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

fn root_cause(e: &wasmtime::Error) -> String {
    e.chain().last().map_or_else(|| e.to_string(), ToString::to_string)
}

/// Advances the engine's epoch every [`TICK`] while at least one task runs, and sleeps
/// otherwise, so an idle node pays nothing for timeouts.
struct Ticker {
    active: AtomicUsize,
    stop: AtomicBool,
    thread: OnceLock<std::thread::Thread>,
}

impl Ticker {
    fn start(engine: Engine) -> std::io::Result<Arc<Self>> {
        let t = Arc::new(Self { active: AtomicUsize::new(0), stop: AtomicBool::new(false), thread: OnceLock::new() });
        let me = Arc::downgrade(&t);
        let handle = std::thread::Builder::new().name("mesh-wasm-epoch".into()).spawn(move || {
            loop {
                let Some(t) = me.upgrade() else { return };
                if t.stop.load(Ordering::Relaxed) {
                    return;
                }
                let active = t.active.load(Ordering::Acquire) > 0;
                drop(t);
                if active {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                } else {
                    std::thread::park_timeout(IDLE_PARK);
                }
            }
        })?;
        let _ = t.thread.set(handle.thread().clone());
        Ok(t)
    }

    /// Keeps the ticker running while the guard lives.
    fn running(&self) -> TickGuard<'_> {
        if self.active.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
        TickGuard(self)
    }
}

struct TickGuard<'a>(&'a Ticker);

impl Drop for TickGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for WasmRuntime {
    fn drop(&mut self) {
        self.ticker.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.thread.get() {
            t.unpark();
        }
    }
}

#[cfg(test)]
mod tests;
