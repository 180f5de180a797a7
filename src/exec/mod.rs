//! Task kernels, and the [`Executor`] that worker threads call to run any task.
//!
//! * [`primes`]: the built-in primes sieve and trial division;
//! * [`wasm`]: users' WebAssembly modules, sandboxed;
//! * [`run`]: users' own programs (`mesh run`), where the node's owner allows them;
//! * [`python`]: users' Python calls (`mesh.pp`, `mesh.Executor`), likewise;
//! * [`fetch`]: the blobs a task needs, from the store or the mesh.

mod cache;
mod cancels;
pub mod fetch;
mod memory;
pub mod primes;
pub mod python;
pub mod run;
pub mod wasm;

use crate::core::Blame;
use crate::id::JobId;
use crate::job::{JobSpec, TaskOutput};
use crate::store::BlobStore;
use cancels::Cancels;
use fetch::{BlobFetcher, Blobs};
pub use memory::memory_mb;
use python::{PyError, PythonRuntime};
use run::{Permission, RunError, RunRuntime};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use wasm::{WasmError, WasmRuntime, WasmTaskError};

/// Why a task failed. It becomes text only in the task's report, which crosses the wire.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TaskError {
    /// The WebAssembly engine could not start on this node.
    #[error(transparent)]
    Engine(WasmError),
    #[error(transparent)]
    Wasm(#[from] WasmTaskError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Python(#[from] PyError),
    /// A primes task stopped: its job ended (cancelled, halted, finished, its owner gone)
    /// or the node is leaving. Its job is gone from the scheduler by then, so the report
    /// is dropped, not counted as a failure.
    #[error(transparent)]
    Cancelled(#[from] primes::Cancelled),
    /// The task's code panicked: a bug in mesh, caught so the worker lives on.
    #[error("task {task} panicked: {message}")]
    Panicked { task: u64, message: String },
    /// The worker or the job's spec was gone when the task was due to start.
    #[error("the task could not start")]
    NotStarted,
}

impl TaskError {
    /// Whose fault the failure is: the node's when it lacked something another node may
    /// well have (a blob it could not fetch or store, space, a worker, its engine, room in
    /// its wasm memory budget), so that the task runs again elsewhere without using a
    /// retry; else the task's.
    pub fn blame(&self) -> Blame {
        let node = match self {
            Self::Engine(_) | Self::NotStarted => true,
            Self::Wasm(w) => match w {
                WasmTaskError::Input(e) | WasmTaskError::Module { cause: e, .. } => {
                    matches!(e, WasmError::Engine(_) | WasmError::ModuleBlob(_) | WasmError::InputBlob(_))
                }
                WasmTaskError::Run { failure, .. } => matches!(failure, wasm::RunFailure::HostMemory { .. }),
                WasmTaskError::BeyondInput { .. } => false,
            },
            Self::Run(r) => matches!(
                r,
                RunError::NotAllowed
                    | RunError::Tasks(_)
                    | RunError::Files(_)
                    | RunError::Place { .. }
                    | RunError::WorkDir { .. }
                    | RunError::Store(_)
            ),
            Self::Python(p) => matches!(
                p,
                PyError::NotAllowed
                    | PyError::NoPython(_)
                    | PyError::Tasks(_)
                    | PyError::Code(_)
                    | PyError::Start(_)
                    | PyError::Store(_)
            ),
            Self::Cancelled(_) | Self::Panicked { .. } => false,
        };
        if node { Blame::Node } else { Blame::Task }
    }
}

/// Runs tasks of any job. Shared by all worker threads of a node; the WebAssembly engine
/// starts on the first WebAssembly task, so a node that only runs primes never pays for it.
#[derive(Debug)]
pub struct Executor {
    home: PathBuf,
    store: Arc<BlobStore>,
    fetcher: Option<Arc<dyn BlobFetcher>>,
    wasm: OnceLock<Result<WasmRuntime, WasmError>>,
    run: RunRuntime,
    python: PythonRuntime,
    cancels: Arc<Cancels>,
}

impl Executor {
    /// An executor for the node under `home`. Without a fetcher, blobs must already be in
    /// the store (a `--local` run). `runs` says whose programs it runs.
    pub fn new(home: PathBuf, store: Arc<BlobStore>, fetcher: Option<Arc<dyn BlobFetcher>>, runs: Permission) -> Self {
        let cancels = Arc::new(Cancels::default());
        let blobs = Blobs::new(store.clone(), fetcher.clone());
        let run = RunRuntime::new(&home, blobs.clone(), runs, cancels.clone());
        let python = PythonRuntime::new(&home, blobs, runs, cancels.clone(), python_memory_cap());
        Self { home, store, fetcher, wasm: OnceLock::new(), run, python, cancels }
    }

    /// Ends the running tasks of `job` (primes, WebAssembly, programs, Python calls),
    /// cancelled, halted or finished, and any it would start later.
    pub fn cancel(&self, job: JobId) {
        self.cancels.cancel(job);
    }

    /// Lets `job`'s tasks start again: dropped when its owner seemed gone, it is back.
    pub fn revive(&self, job: JobId) {
        self.cancels.revive(job);
    }

    /// Ends every running task: the node is leaving.
    pub fn cancel_all(&self) {
        self.cancels.cancel_all();
    }

    pub fn store(&self) -> &Arc<BlobStore> {
        &self.store
    }

    /// The WebAssembly runtime, started on first use.
    pub fn wasm(&self) -> Result<&WasmRuntime, WasmError> {
        self.wasm
            .get_or_init(|| WasmRuntime::new(&self.home, self.store.clone(), self.fetcher.clone()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Runs one task; `own` says the job was submitted on this node.
    pub fn run(&self, job: JobId, spec: &JobSpec, task: u64, own: bool) -> Result<TaskOutput, TaskError> {
        match spec {
            JobSpec::Primes(p) => {
                let stop = self.cancels.stop(job);
                Ok(TaskOutput::Sum(primes::run_task(p, task, || stop.now())?))
            }
            JobSpec::Wasm(w) => {
                let stop = self.cancels.stop(job);
                let wasm = self.wasm().map_err(|e| TaskError::Engine(e.clone()))?;
                let out = wasm.run_until(w, task, job.owner, move || stop.now())?;
                Ok(TaskOutput::Bytes(serde_bytes::ByteBuf::from(out)))
            }
            JobSpec::Run(r) => Ok(TaskOutput::Run(Box::new(self.run.run(job, r, task, own)?))),
            JobSpec::Python(p) => Ok(TaskOutput::Python(Box::new(self.python.run(job, p, task, own)?))),
        }
    }
}

/// A Python worker process's resident-memory cap: half of this machine's memory shared
/// among its cores, and at least 256 MiB.
fn python_memory_cap() -> u64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    ((memory_mb() << 20) / 2 / cores.max(1)).max(256 << 20)
}
