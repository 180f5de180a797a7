//! The owner's journal: each owned job's spec, accepted results and end, on disk under
//! the node's home, so that a node that restarts resumes its jobs (issue 26). The layout
//! is [`format`]'s spec.
//!
//! Why redb: an embedded database with atomic, checksummed commits is what this needs,
//! and redb is pure Rust with one dependency (libc): it builds in seconds, cross-builds
//! for the Pi's armv7 with no C toolchain, and adds about 1 MB to the binary. SQLite
//! through rusqlite would do the same job with a bundled C library to compile for every
//! target, and SQL the journal does not need.
//!
//! The event loop never waits for the disk. It hands the journal records ([`Journal`]),
//! which go to the journal's own thread over a bounded channel:
//! * a new job's entry at once; the submitter hears the job's id once it is on disk
//!   (the `then` callback), so a job whose id was printed survives a crash;
//! * accepted results in batches, each job's at most once a second ([`COMMIT_EVERY`]);
//! * a job's end at once, with its last results.
//!
//! When the channel is full (a slow SD card) the records wait in the loop, in order. When
//! the disk refuses a write (full, read-only), the thread keeps the records, says so once,
//! and tries again every second: the job runs on, undurable until there is room. The
//! records waiting are the results the job's collector holds in memory anyway.

pub(crate) mod disk;
pub(crate) mod format;

use crate::core::TaskReport;
use crate::id::{JobId, NodeId};
use crate::job::TaskOutput;
use disk::{Disk, Found};
use format::{EndEntry, JobEntry, ResultEntry};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// How often a job's accepted results are committed, at most.
pub(crate) const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// Batches in flight to the journal's thread.
const CHANNEL: usize = 64;
/// Node names remembered for results; forgotten all at once beyond this.
const NAMES_KEPT: usize = 1024;

/// How long ended jobs are kept, and how many bytes of them: `mesh join --keep-jobs`,
/// `--keep-jobs-size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    pub age: Duration,
    pub bytes: u64,
}

impl Default for Keep {
    fn default() -> Self {
        Self { age: Duration::from_secs(7 * 24 * 3600), bytes: 1 << 30 }
    }
}

/// Called once a new job's entry was written (or could not be).
pub(crate) type Then = Box<dyn FnOnce() + Send>;

enum Op {
    Begin { entry: Box<JobEntry>, then: Then },
    Write { seq: u32, results: Vec<ResultEntry>, end: Option<Box<EndEntry>> },
    Prune,
}

/// The loop's side of the journal.
pub(crate) struct Journal {
    tx: SyncSender<Op>,
    /// Accepted results not yet handed to the thread, per job.
    pending: BTreeMap<u32, Vec<ResultEntry>>,
    /// Records the channel had no room for, in order.
    backlog: VecDeque<Op>,
    /// The names of the nodes results came from, at most [`NAMES_KEPT`].
    names: HashMap<NodeId, Arc<str>>,
    next_commit: Instant,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("pending", &self.pending.len()).field("backlog", &self.backlog.len()).finish()
    }
}

impl Journal {
    /// Opens the journal under `home` and reads back what it kept; its thread starts.
    pub(crate) fn open(home: &Path, keep: Keep) -> Result<(Self, Found), disk::DiskError> {
        let (mut disk, found) = Disk::open(home)?;
        disk.prune(format::unix_now(), keep.age.as_secs(), keep.bytes);
        let (tx, rx) = sync_channel(CHANNEL);
        let thread = std::thread::Builder::new()
            .name("mesh-journal".into())
            .spawn(move || serve(disk, rx, keep))
            .map_err(|source| disk::DiskError::Io { path: home.to_path_buf(), source })?;
        let journal = Self {
            tx,
            pending: BTreeMap::new(),
            backlog: VecDeque::new(),
            names: HashMap::new(),
            next_commit: Instant::now() + COMMIT_EVERY,
            thread: Some(thread),
        };
        Ok((journal, found))
    }

    /// A new job: `then` runs once its entry is on disk.
    pub(crate) fn begin(&mut self, entry: JobEntry, then: Then) {
        self.send(Op::Begin { entry: Box::new(entry), then });
    }

    /// A task's accepted result, committed with the next batch. Called once per result:
    /// it costs a lookup and a push, and `name` runs only for a node not named before.
    pub(crate) fn accepted(
        &mut self,
        job: JobId,
        from: NodeId,
        attempts: u32,
        report: TaskReport<TaskOutput>,
        name: impl FnOnce() -> String,
    ) {
        if self.names.len() >= NAMES_KEPT && !self.names.contains_key(&from) {
            self.names.clear();
        }
        let node = self.names.entry(from).or_insert_with(|| name().into()).clone();
        self.pending.entry(job.seq).or_default().push(ResultEntry { from, node, attempts, report });
    }

    /// The job ended: its last results and its end, committed at once.
    pub(crate) fn end(&mut self, job: JobId, end: EndEntry) {
        let results = self.pending.remove(&job.seq).unwrap_or_default();
        self.send(Op::Write { seq: job.seq, results, end: Some(Box::new(end)) });
    }

    /// Asks the thread to prune ended jobs now.
    pub(crate) fn prune(&mut self) {
        self.send(Op::Prune);
    }

    /// Hands the batches due to the thread: call it often; it commits once a second.
    pub(crate) fn tick(&mut self, now: Instant) {
        if now >= self.next_commit {
            self.next_commit = now + COMMIT_EVERY;
            for (seq, results) in std::mem::take(&mut self.pending) {
                self.send(Op::Write { seq, results, end: None });
            }
        }
        self.drain();
    }

    fn send(&mut self, op: Op) {
        self.backlog.push_back(op);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(op) = self.backlog.pop_front() {
            match self.tx.try_send(op) {
                Ok(()) => {}
                Err(TrySendError::Full(op)) => {
                    self.backlog.push_front(op);
                    return;
                }
                // The thread is gone (it panicked): nothing more is journalled.
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
    }

    /// Hands everything to the thread and waits for it to write it: the node is leaving.
    pub(crate) fn close(mut self) {
        for (seq, results) in std::mem::take(&mut self.pending) {
            self.backlog.push_back(Op::Write { seq, results, end: None });
        }
        for op in std::mem::take(&mut self.backlog) {
            if self.tx.send(op).is_err() {
                break;
            }
        }
        let Self { tx, thread, .. } = self;
        drop(tx);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// The journal's thread: writes what comes, retrying what the disk refused.
fn serve(mut disk: Disk, rx: Receiver<Op>, keep: Keep) {
    let mut failed: VecDeque<Op> = VecDeque::new();
    let mut failing = false;
    loop {
        let op = match rx.recv_timeout(COMMIT_EVERY) {
            Ok(op) => Some(op),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) if failed.is_empty() => return,
            // Leaving with records the disk refused: one last try.
            Err(RecvTimeoutError::Disconnected) => {
                failed.into_iter().for_each(|op| _ = apply(&mut disk, op, keep));
                return;
            }
        };
        let mut todo: VecDeque<Op> = std::mem::take(&mut failed);
        todo.extend(op);
        while let Some(op) = todo.pop_front() {
            if let Err((op, e)) = apply(&mut disk, op, keep) {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(
                        "the job journal cannot write ({e}); jobs run on, but until it can, a restart loses what \
                         they did since"
                    );
                }
                failed.push_back(op);
                // Those behind it wait their turn, in order; a new job's submitter does
                // not wait for its entry to reach the disk.
                failed.extend(todo.drain(..).map(released));
                break;
            }
        }
        if failed.is_empty() && std::mem::replace(&mut failing, false) {
            tracing::info!("the job journal writes again");
        }
    }
}

/// `op`, with a new job's waiting submitter told its id now rather than once the entry
/// is on disk: it waits behind records the disk refused.
fn released(op: Op) -> Op {
    match op {
        Op::Begin { entry, then } => {
            tracing::warn!(job = entry.seq, "the job is not on disk yet: the journal waits for the disk");
            then();
            Op::Begin { entry, then: Box::new(|| {}) }
        }
        other => other,
    }
}

/// Does one record; a write the disk refused comes back to be tried again.
fn apply(disk: &mut Disk, op: Op, keep: Keep) -> Result<(), (Op, disk::DiskError)> {
    match op {
        Op::Begin { entry, then } => {
            let r = disk.begin(&entry);
            if let Err(e) = &r {
                tracing::warn!(job = entry.seq, "the job is not on disk yet: {e}");
            }
            then();
            // Tried again with an empty callback until it is written.
            r.map_err(|e| (Op::Begin { entry, then: Box::new(|| {}) }, e))
        }
        Op::Write { seq, results, end } => {
            disk.write(seq, &results, end.as_deref()).map_err(|e| (Op::Write { seq, results, end }, e))
        }
        Op::Prune => {
            let gone = disk.prune(format::unix_now(), keep.age.as_secs(), keep.bytes);
            if !gone.is_empty() {
                tracing::info!(jobs = gone.len(), "pruned ended jobs from the journal");
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
