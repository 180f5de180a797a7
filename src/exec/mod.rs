//! Task kernels, and the [`Executor`] that worker threads call to run any task.
//!
//! * [`primes`]: the built-in primes sieve and trial division;
//! * [`wasm`]: users' WebAssembly modules, sandboxed.

pub mod primes;
pub mod wasm;

use crate::id::JobId;
use crate::job::{JobSpec, TaskOutput};
use crate::store::BlobStore;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use wasm::{BlobFetcher, WasmError, WasmRuntime, WasmTaskError};

/// Why a task failed. It becomes text only in the task's report, which crosses the wire.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TaskError {
    /// The WebAssembly engine could not start on this node.
    #[error(transparent)]
    Engine(WasmError),
    #[error(transparent)]
    Wasm(#[from] WasmTaskError),
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
}

impl Executor {
    /// An executor for the node under `home`. Without a fetcher, blobs must already be in
    /// the store (a `--local` run).
    pub fn new(home: PathBuf, store: Arc<BlobStore>, fetcher: Option<Arc<dyn BlobFetcher>>) -> Self {
        Self { home, store, fetcher, wasm: OnceLock::new() }
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

    /// Runs one task.
    pub fn run(&self, job: JobId, spec: &JobSpec, task: u64) -> Result<TaskOutput, TaskError> {
        match spec {
            JobSpec::Primes(p) => Ok(TaskOutput::Sum(primes::run_task(p, task))),
            JobSpec::Wasm(w) => {
                let out = self.wasm().map_err(|e| TaskError::Engine(e.clone()))?.run(w, task, job.owner)?;
                Ok(TaskOutput::Bytes(serde_bytes::ByteBuf::from(out)))
            }
        }
    }
}
