//! Task kernels, and the [`Executor`] that worker threads call to run any task.
//!
//! * [`primes`]: the built-in primes sieve and trial division;
//! * [`wasm`]: users' WebAssembly modules, sandboxed;
//! * [`run`]: users' own programs (`mesh run`), where the node's owner allows them;
//! * [`fetch`]: the blobs a task needs, from the store or the mesh.

mod cache;
pub mod fetch;
pub mod primes;
pub mod run;
pub mod wasm;

use crate::id::JobId;
use crate::job::{JobSpec, TaskOutput};
use crate::store::BlobStore;
use fetch::{BlobFetcher, Blobs};
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
    /// The task's code panicked: a bug in mesh, caught so the worker lives on.
    #[error("task {task} panicked: {message}")]
    Panicked { task: u64, message: String },
    /// The worker or the job's spec was gone when the task was due to start.
    #[error("the task could not start")]
    NotStarted,
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
}

impl Executor {
    /// An executor for the node under `home`. Without a fetcher, blobs must already be in
    /// the store (a `--local` run). `runs` says whose programs it runs.
    pub fn new(home: PathBuf, store: Arc<BlobStore>, fetcher: Option<Arc<dyn BlobFetcher>>, runs: Permission) -> Self {
        let run = RunRuntime::new(&home, Blobs::new(store.clone(), fetcher.clone()), runs);
        Self { home, store, fetcher, wasm: OnceLock::new(), run }
    }

    /// The runtime of native tasks, to cancel a job's running programs.
    pub fn runs(&self) -> &RunRuntime {
        &self.run
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
            JobSpec::Primes(p) => Ok(TaskOutput::Sum(primes::run_task(p, task))),
            JobSpec::Wasm(w) => {
                let out = self.wasm().map_err(|e| TaskError::Engine(e.clone()))?.run(w, task, job.owner)?;
                Ok(TaskOutput::Bytes(serde_bytes::ByteBuf::from(out)))
            }
            JobSpec::Run(r) => Ok(TaskOutput::Run(Box::new(self.run.run(job, r, task, own)?))),
        }
    }
}
