//! Python tasks (`mesh.pp`, `mesh.Executor`): calls of a user's function, run by warm
//! Python worker processes, one per worker thread, as Parallel Python's ppworkers are.
//!
//! For each task the runtime:
//! 1. refuses it unless the node allows runs or the job is its own ([`Permission`], the
//!    same rule as `mesh run`);
//! 2. loads the job's task list and code (fetched once per node, hash-checked, kept parsed
//!    for the last few jobs);
//! 3. hands the task's payload to this thread's warm worker ([`worker`]), starting one if
//!    there is none, and sending the job's code when the worker asks for it;
//! 4. waits for the answer within the job's timeout, polling for a cancel;
//! 5. keeps the value inline when small, else stores it as a blob for the submitter.
//!
//! A worker that dies, times out, is cancelled, answers out of turn, has run
//! [`MAX_TASKS_PER_WORKER`] tasks or holds more than its memory cap is ended (its whole
//! process group) and replaced at the next task. Its task fails; the scheduler retries it
//! elsewhere if the job allows.

mod error;
mod interpreter;
pub(crate) mod worker;

pub use error::PyError;
pub use interpreter::{detect, interpreter};

use super::cache::Cache;
use super::cancels::Cancels;
use super::fetch::Blobs;
use super::run::Permission;
use crate::id::{ContentId, JobId, NodeId};
use crate::job::PyOutput;
use crate::job::python::{OUTPUT_CAP, PyTasks, PythonJob};
use crate::job::run::Captured;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use worker::{Answer, Worker};

/// A value up to this many bytes travels inside the task's result; more goes as a blob.
pub const INLINE_VALUE: u64 = 64 * 1024;
/// Tasks a worker process runs before it is replaced by a fresh one.
pub const MAX_TASKS_PER_WORKER: u32 = 10_000;
/// Parsed task lists and code blobs kept in memory.
const PARSED_CACHE: usize = 4;
/// The worker script, the package's own (`python/mesh/_worker.py`).
const WORKER_SCRIPT: &str = include_str!("../../../python/mesh/_worker.py");

thread_local! {
    /// This worker thread's Python process, once it has one.
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

#[derive(Debug)]
pub struct PythonRuntime {
    /// Working directories of this process's workers: `<home>/run/<pid>/py-<thread>`.
    runs: PathBuf,
    /// `<home>/python`, where the worker script is written.
    scripts: PathBuf,
    script: OnceLock<Result<PathBuf, String>>,
    blobs: Blobs,
    permission: Permission,
    cancels: Arc<Cancels>,
    tasks: Cache<PyTasks, PyError>,
    codes: Cache<Vec<u8>, PyError>,
    /// The cap on a worker's resident memory, in bytes.
    memory_cap: u64,
}

impl PythonRuntime {
    /// `memory_cap`: a worker process's resident memory, in bytes, past which it is
    /// replaced.
    pub(crate) fn new(
        home: &Path,
        blobs: Blobs,
        permission: Permission,
        cancels: Arc<Cancels>,
        memory_cap: u64,
    ) -> Self {
        Self {
            runs: home.join("run").join(std::process::id().to_string()),
            scripts: home.join("python"),
            script: OnceLock::new(),
            blobs,
            permission,
            cancels,
            tasks: Cache::new(PARSED_CACHE),
            codes: Cache::new(PARSED_CACHE),
            memory_cap,
        }
    }

    /// Runs task `task` of `job`; `own` says the job was submitted on this node.
    pub fn run(&self, id: JobId, job: &PythonJob, task: u64, own: bool) -> Result<PyOutput, PyError> {
        let p = self.permission;
        if !(p.allow_run || (p.runs_own && own)) {
            return Err(PyError::NotAllowed);
        }
        let stop = self.cancels.stop(id);
        if stop.now() {
            return Err(PyError::Cancelled);
        }
        let hint = Some(id.owner);
        let tasks = self.tasks.get(job.inputs, || self.load_tasks(job, hint))?;
        let payload = tasks.get(task).ok_or(PyError::BeyondTasks { task, tasks: tasks.len() })?;
        let code = || self.codes.get(job.code, || self.blobs.read(job.code, hint).map_err(PyError::Code));
        let script = self.script()?;
        let answer = WORKER.with(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.is_none() {
                *slot = Some(Worker::start(&script, &self.worker_dir())?);
            }
            let Some(w) = slot.as_mut() else { return Err(PyError::Start("no worker".into())) };
            let answer = w.call(job.code, payload, code, job.timeout(), &|| stop.now());
            // A worker that failed, or has done its share, is not used again.
            if answer.is_err() || w.tasks_run() >= MAX_TASKS_PER_WORKER || w.resident() > self.memory_cap {
                drop(slot.take()); // ends it
            }
            answer
        })?;
        match answer {
            Answer::Returned { value, output } => self.output(false, value, output),
            Answer::Raised { value, output } => self.output(true, value, output),
            Answer::Setup(message) => Err(PyError::Setup { python: interpreter::version_text(), message }),
        }
    }

    fn load_tasks(&self, job: &PythonJob, hint: Option<NodeId>) -> Result<PyTasks, PyError> {
        let bytes = self.blobs.read(job.inputs, hint).map_err(PyError::Tasks)?;
        PyTasks::parse(bytes, job.tasks).map_err(PyError::Damaged)
    }

    /// The worker script, written under the home once per version of it.
    fn script(&self) -> Result<PathBuf, PyError> {
        self.script
            .get_or_init(|| write_script(&self.scripts).map_err(|e| e.to_string()))
            .clone()
            .map_err(PyError::Start)
    }

    fn worker_dir(&self) -> PathBuf {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("worker").rsplit('-').next().unwrap_or("0").to_string();
        self.runs.join(format!("py-{name}"))
    }

    fn output(&self, raised: bool, value: Vec<u8>, output: Vec<u8>) -> Result<PyOutput, PyError> {
        let value = if value.len() as u64 <= INLINE_VALUE {
            Captured::Inline(serde_bytes::ByteBuf::from(value))
        } else {
            let len = value.len() as u64;
            let id = self.blobs.store.put(&value).map_err(|e| PyError::Store(e.to_string()))?;
            Captured::Blob { id, len }
        };
        let mut output = String::from_utf8_lossy(&output).into_owned();
        if output.len() > OUTPUT_CAP {
            let mut cut = OUTPUT_CAP;
            while !output.is_char_boundary(cut) {
                cut -= 1;
            }
            output.truncate(cut);
        }
        Ok(PyOutput { raised, value, output })
    }
}

/// Writes the worker script to `<dir>/worker-<hash>.py` unless it is there.
fn write_script(dir: &Path) -> std::io::Result<PathBuf> {
    let id = ContentId::of(WORKER_SCRIPT.as_bytes());
    let path = dir.join(format!("worker-{}.py", id.fmt_short()));
    if !path.is_file() {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".worker-{}.{}", std::process::id(), crate::store::unique()));
        std::fs::write(&tmp, WORKER_SCRIPT)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}
