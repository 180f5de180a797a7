//! Native tasks (`mesh run`): a user's program, run on this node if its owner allows it.
//!
//! For each task the runtime:
//! 1. refuses it unless the node allows runs (`mesh join --allow-run`) or the job is its
//!    own and it runs its own user's programs ([`Permission`]): the scheduler never sends
//!    such a task here, and this check makes sure;
//! 2. makes a fresh working directory, `<home>/run/<pid>/<job>-<task>-<n>`, and places the
//!    job's `--send` files and the task's `--send-inputs` file in it, copied out of the
//!    blob store (fetched once per node, checked by hash);
//! 3. runs the command there ([`process`]), with `MESH_SEQ` and `PARALLEL_SEQ` set to the
//!    task's number, within its timeout, memory limit and output caps;
//! 4. stores the `--return` files (plain files inside the directory only) and any output
//!    over [`INLINE_OUTPUT`] as blobs for the submitter to fetch;
//! 5. removes the directory, whatever happened. Directories left by a node that was killed
//!    are removed when a node starts on the same home.
//!
//! Caps: stdout [`STDOUT_CAP`], stderr [`STDERR_CAP`]; a task that writes more fails.

pub(crate) mod process;

use super::cache::Cache;
use super::cancels::Cancels;
use super::fetch::{BlobError, Blobs};
use crate::id::{ContentId, JobId, NodeId};
use crate::job::Malformed;
use crate::job::run::{
    Captured, Ended, Manifest, Returned, RunJob, RunOutput, RunProblem, RunTasks, RunTimeout, SentFile,
};
use crate::job::run::{check_path, expand, fill};
use crate::store::{MAX_BLOB, MAX_FILE};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Output up to this many bytes travels inside the task's result; more goes as a blob.
pub const INLINE_OUTPUT: u64 = 64 * 1024;
/// The most a task may write to stdout.
pub const STDOUT_CAP: u64 = MAX_BLOB;
/// The most a task may write to stderr.
pub const STDERR_CAP: u64 = 1 << 20;
/// Task lists and manifests kept parsed in memory.
const PARSED_CACHE: usize = 4;
/// Jobs whose task times a node remembers for `--timeout N%`, and times per job.
const MEDIAN_JOBS: usize = 16;
const MEDIAN_SAMPLES: usize = 1001;
/// Tasks of a job that must succeed before `--timeout N%` applies.
const MEDIAN_MIN: usize = 3;

/// Whose native tasks this node runs.
#[derive(Debug, Clone, Copy)]
pub struct Permission {
    /// `mesh join --allow-run`: anyone's who holds the key.
    pub allow_run: bool,
    /// Its own jobs' (a submitter's node runs its user's programs). A job is its own only
    /// if it was submitted on this node, which the scheduler knows and says with each run;
    /// a job id naming this node as owner proves nothing, as any key holder can forge one.
    pub runs_own: bool,
}

/// Why a run task could not be set up. (A program that ran and failed is not an error:
/// its [`RunOutput`] says how it ended.)
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    #[error("this node does not run programs for others (mesh join --allow-run)")]
    NotAllowed,
    #[error("the job was cancelled before this task started")]
    Cancelled,
    #[error("the job's task list: {0}")]
    Tasks(BlobError),
    #[error("the job's {what} is damaged: {why}")]
    Damaged { what: &'static str, why: Malformed },
    #[error("the job's files: {0}")]
    Files(BlobError),
    #[error("task {task} is beyond the job's {tasks} tasks")]
    BeyondTasks { task: u64, tasks: usize },
    #[error("sent file {path}: {cause}")]
    Place { path: String, cause: String },
    #[error("the task's directory {}: {cause}", .path.display())]
    WorkDir { path: PathBuf, cause: String },
    #[error("storing its output: {0}")]
    Store(String),
}

#[derive(Debug)]
pub struct RunRuntime {
    /// This process's working directories: `<home>/run/<pid>`.
    runs: PathBuf,
    blobs: Blobs,
    permission: Permission,
    tasks: Cache<RunTasks, RunError>,
    manifests: Cache<Manifest, RunError>,
    medians: Mutex<VecDeque<(JobId, Vec<Duration>)>>,
    cancels: Arc<Cancels>,
    next_dir: AtomicU64,
}

impl RunRuntime {
    /// The runtime of the node under `home`; removes directories that killed nodes left.
    pub(crate) fn new(home: &Path, blobs: Blobs, permission: Permission, cancels: Arc<Cancels>) -> Self {
        let root = home.join("run");
        remove_stale(&root);
        Self {
            runs: root.join(std::process::id().to_string()),
            blobs,
            permission,
            tasks: Cache::new(PARSED_CACHE),
            manifests: Cache::new(PARSED_CACHE),
            medians: Mutex::new(VecDeque::new()),
            cancels,
            next_dir: AtomicU64::new(0),
        }
    }

    /// Runs task `task` of `job`; `own` says the job was submitted on this node.
    pub fn run(&self, id: JobId, job: &RunJob, task: u64, own: bool) -> Result<RunOutput, RunError> {
        let p = self.permission;
        if !(p.allow_run || (p.runs_own && own)) {
            return Err(RunError::NotAllowed);
        }
        // A worker runs a range of tasks one after another: once the job is cancelled or
        // halted (or the node leaves), the rest must not start at all.
        let stop = self.cancels.stop(id);
        let stop = || stop.now();
        if stop() {
            return Err(RunError::Cancelled);
        }
        let hint = Some(id.owner);
        let tasks = self.tasks.get(job.inputs, || self.load_tasks(job.inputs, hint))?;
        let t = tasks.tasks.get(task as usize).ok_or(RunError::BeyondTasks { task, tasks: tasks.tasks.len() })?;
        let manifest = job.files.map(|m| self.manifests.get(m, || self.load_manifest(m, hint))).transpose()?;
        let dir = WorkDir::create(&self.runs, id, task, self.next_dir.fetch_add(1, Ordering::Relaxed))?;
        for f in manifest.iter().flat_map(|m| m.files.iter()).chain(&t.file) {
            self.place(f, dir.path(), hint)?;
        }
        let argv = expand(&job.command, &t.arg, t.seq);
        let limits = process::Limits {
            timeout: self.timeout(id, job.timeout),
            memory_mb: job.memory_mb,
            stdout_cap: STDOUT_CAP,
            stderr_cap: STDERR_CAP,
        };
        let seq = t.seq.to_string();
        let env = [("MESH_SEQ", seq.clone()), ("PARALLEL_SEQ", seq)];
        let started_ms = unix_ms();
        let clock = Instant::now();
        let done = process::run(&argv, dir.path(), &env, limits, &stop);
        let took = clock.elapsed();
        let mut problem = done.problem;
        let mut returned = Vec::new();
        if problem.is_none() && done.ended == Ended::Exit(0) {
            for pattern in &job.returns {
                match self.collect(dir.path(), &fill(pattern, &t.arg, t.seq)) {
                    Ok(r) => returned.push(r),
                    Err(p) => {
                        problem = Some(p);
                        break;
                    }
                }
            }
        }
        if problem.is_none() && done.ended == Ended::Exit(0) {
            self.record(id, took);
        }
        let stdout = self.capture(done.stdout)?;
        let stderr = self.capture(done.stderr)?;
        Ok(RunOutput { ended: done.ended, problem, stdout, stderr, returned, started_ms })
    }

    fn load_tasks(&self, id: ContentId, hint: Option<NodeId>) -> Result<RunTasks, RunError> {
        let bytes = self.blobs.read(id, hint).map_err(RunError::Tasks)?;
        RunTasks::decode(&bytes).map_err(|why| RunError::Damaged { what: "task list", why })
    }

    fn load_manifest(&self, id: ContentId, hint: Option<NodeId>) -> Result<Manifest, RunError> {
        let bytes = self.blobs.read(id, hint).map_err(RunError::Files)?;
        Manifest::decode(&bytes).map_err(|why| RunError::Damaged { what: "file list", why })
    }

    /// Copies a sent file into the task's directory.
    fn place(&self, f: &SentFile, dir: &Path, hint: Option<NodeId>) -> Result<(), RunError> {
        let err = |cause: String| RunError::Place { path: f.path.clone(), cause };
        check_path(&f.path).map_err(|e| err(e.to_string()))?;
        self.blobs.ensure(f.blob, f.len, hint).map_err(|e| err(e.to_string()))?;
        let dest = dir.join(&f.path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
        }
        self.blobs.store.copy_out(f.blob, &dest).map_err(|e| err(e.to_string()))?;
        let mode = if f.executable { 0o755 } else { 0o644 };
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).map_err(|e| err(e.to_string()))
    }

    /// A `--return` file: a plain file inside the directory, stored as a blob.
    fn collect(&self, dir: &Path, path: &str) -> Result<Returned, RunProblem> {
        let bad = |why: &str| RunProblem::BadReturn { path: path.to_string(), why: why.to_string() };
        check_path(path).map_err(|e| bad(&e.to_string()))?;
        let full = dir.join(path);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(RunProblem::MissingReturn(path.into())),
            Err(e) => return Err(bad(&e.to_string())),
        };
        // No symlinks, and nothing reached through a symlinked directory either.
        let inside = full.canonicalize().ok().zip(dir.canonicalize().ok()).is_some_and(|(f, d)| f.starts_with(d));
        if meta.file_type().is_symlink() {
            return Err(bad("it is a symbolic link; only plain files inside the task's directory come back"));
        }
        if !meta.is_file() {
            return Err(bad("it is not a plain file (a directory or a device?); return the files inside it"));
        }
        if !inside {
            return Err(bad("it is reached through a symbolic link out of the task's directory"));
        }
        if meta.len() > MAX_FILE {
            return Err(bad(&format!("it has {} bytes, more than the {MAX_FILE} a returned file may", meta.len())));
        }
        let (blob, len) = self.blobs.store.put_file(&full).map_err(|e| bad(&format!("storing it: {e}")))?;
        Ok(Returned { path: path.to_string(), blob, len })
    }

    /// Output inline when small, else stored as a blob.
    fn capture(&self, bytes: Vec<u8>) -> Result<Captured, RunError> {
        if bytes.len() as u64 <= INLINE_OUTPUT {
            return Ok(Captured::Inline(serde_bytes::ByteBuf::from(bytes)));
        }
        let len = bytes.len() as u64;
        let id = self.blobs.store.put(&bytes).map_err(|e| RunError::Store(e.to_string()))?;
        Ok(Captured::Blob { id, len })
    }

    fn timeout(&self, job: JobId, t: Option<RunTimeout>) -> Option<Duration> {
        match t? {
            RunTimeout::Fixed { ms } => Some(Duration::from_millis(ms)),
            RunTimeout::PercentOfMedian { percent } => {
                let medians = lock(&self.medians);
                let times = &medians.iter().find(|(j, _)| *j == job)?.1;
                if times.len() < MEDIAN_MIN {
                    return None;
                }
                let mut sorted = times.clone();
                sorted.sort();
                Some(sorted[sorted.len() / 2] * percent / 100)
            }
        }
    }

    /// Remembers how long a task of `job` took that succeeded.
    fn record(&self, job: JobId, took: Duration) {
        let mut medians = lock(&self.medians);
        if !medians.iter().any(|(j, _)| *j == job) {
            if medians.len() >= MEDIAN_JOBS {
                medians.pop_front();
            }
            medians.push_back((job, Vec::new()));
        }
        if let Some((_, times)) = medians.iter_mut().find(|(j, _)| *j == job) {
            if times.len() >= MEDIAN_SAMPLES {
                times.remove(0);
            }
            times.push(took);
        }
    }
}

/// A task's working directory, removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(runs: &Path, job: JobId, task: u64, n: u64) -> Result<Self, RunError> {
        let path = runs.join(format!("{job}-{task}-{n}"));
        let err = |e: std::io::Error| RunError::WorkDir { path: path.clone(), cause: e.to_string() };
        let _ = std::fs::remove_dir_all(&path);
        // This process's directory is its user's alone, as the store is: tasks' sent files
        // and outputs are other users' data.
        crate::store::private::private_dir(runs).map_err(err)?;
        std::fs::create_dir_all(&path).map_err(err)?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = remove_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), %e, "cannot remove a task's directory");
        }
    }
}

/// Removes a directory tree, first making writable any directory a task locked.
fn remove_all(dir: &Path) -> std::io::Result<()> {
    if std::fs::remove_dir_all(dir).is_ok() || !dir.exists() {
        return Ok(());
    }
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    std::fs::remove_dir_all(dir)
}

/// Removes the working directories of node processes that no longer run, after ending
/// the programs still running in them (a node killed with `kill -9` leaves them behind).
fn remove_stale(root: &Path) {
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let alive = e
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|pid| pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists());
        if alive {
            continue;
        }
        let ended = end_programs_in(&e.path());
        if ended > 0 {
            tracing::info!(dir = %e.path().display(), ended, "ended the programs a stopped node left running");
        }
        match remove_all(&e.path()) {
            Ok(()) => tracing::info!(dir = %e.path().display(), "removed the task directories of a node that stopped"),
            Err(err) => tracing::warn!(dir = %e.path().display(), %err, "cannot remove old task directories"),
        }
    }
}

/// Sends SIGKILL to the process groups of the processes whose working directory is under
/// `dir`; returns how many processes it found.
fn end_programs_in(dir: &Path) -> usize {
    let Ok(dir) = dir.canonicalize() else { return 0 };
    let mut found = 0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<libc::pid_t>().ok()) else { continue };
        let Ok(cwd) = std::fs::read_link(e.path().join("cwd")) else { continue };
        if cwd.starts_with(&dir) {
            found += 1;
            // SAFETY: getpgid and kill take plain integers and touch no memory of ours.
            unsafe {
                let group = libc::getpgid(pid);
                if group > 1 {
                    libc::kill(-group, libc::SIGKILL);
                }
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    found
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // These lists hold no invariant a panicking holder could break half-way.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
