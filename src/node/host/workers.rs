//! The worker pool: one OS thread per worker slot, so compute never blocks the event loop.
//!
//! Each worker has a one-slot inbox (the scheduler gives a worker a run of tasks only when
//! it is idle, so one slot is all it ever needs) and all workers share one bounded outbox
//! back to the event loop. A run of tiny tasks comes back as one message. A panicking task
//! becomes a failed task, not a dead worker.

use crate::core::{Blame, TaskRange, TaskReport};
use crate::exec::{Executor, TaskError};
use crate::id::JobId;
use crate::job::{JobKind, JobSpec, TaskOutput};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Runs a worker's inbox holds: the scheduler hands a worker a run only when it is idle.
pub(crate) const INBOX: usize = 1;
/// Finished runs queued to the event loop, per worker; a worker waits beyond that.
pub(crate) const OUTBOX_PER_WORKER: usize = 2;
/// How often a stopping pool looks whether its workers have finished.
const SHUTDOWN_POLL: Duration = Duration::from_millis(5);

/// A finished run of tasks, from a worker to the driver, in task order.
#[derive(Debug)]
pub(crate) struct Finished {
    pub worker: usize,
    pub kind: JobKind,
    pub reports: Vec<TaskReport<TaskOutput>>,
}

/// A run of tasks for one worker.
pub(crate) struct Work {
    pub job: JobId,
    pub tasks: TaskRange,
    pub spec: Arc<JobSpec>,
    /// The job was submitted on this node (see `Action::Start`).
    pub own: bool,
}

#[derive(Debug)]
pub(crate) struct WorkerPool {
    inboxes: Vec<SyncSender<Work>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Work({}, {}..{})", self.job, self.tasks.start, self.tasks.end)
    }
}

impl WorkerPool {
    /// Starts `n` workers running tasks with `exec`, each thread at niceness `nice` (the
    /// programs a task starts inherit it; 0 leaves the priority as it is); finished tasks
    /// arrive on the returned receiver.
    pub(crate) fn start(n: usize, exec: Arc<Executor>, nice: i32) -> std::io::Result<(Self, mpsc::Receiver<Finished>)> {
        let (done_tx, done_rx) = mpsc::channel(n.max(1) * OUTBOX_PER_WORKER);
        let mut inboxes = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for worker in 0..n {
            let (tx, rx) = sync_channel::<Work>(INBOX);
            let done = done_tx.clone();
            let exec = exec.clone();
            let t = std::thread::Builder::new().name(format!("mesh-worker-{worker}")).spawn(move || {
                if nice != 0 {
                    lower_priority(nice);
                }
                while let Ok(w) = rx.recv() {
                    let reports = (w.tasks.start..w.tasks.end).map(|task| run_one(&exec, &w, task)).collect();
                    if done.blocking_send(Finished { worker, kind: w.spec.kind(), reports }).is_err() {
                        break; // the driver is gone
                    }
                }
            })?;
            inboxes.push(tx);
            threads.push(t);
        }
        Ok((Self { inboxes, threads }, done_rx))
    }

    /// Hands a run of tasks to an idle worker. Returns false if the worker is gone.
    pub(crate) fn run(&self, worker: usize, work: Work) -> bool {
        self.inboxes.get(worker).is_some_and(|tx| tx.send(work).is_ok())
    }

    /// Closes the inboxes and waits up to `grace` for the workers to finish their current
    /// run. A worker still busy after that (a long WebAssembly task) is left to end with
    /// the process rather than hold up a node that is leaving.
    pub(crate) fn shutdown(self, grace: Duration) {
        drop(self.inboxes);
        let deadline = Instant::now() + grace;
        for t in self.threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(SHUTDOWN_POLL);
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Adds `nice` to the calling thread's niceness (on Linux, setpriority with `who` 0 is
/// per thread). A failure (a limit on niceness) leaves the thread as it is, and says so.
fn lower_priority(nice: i32) {
    // SAFETY: getpriority and setpriority have no memory preconditions. (A failed
    // getpriority returns -1, which only makes the thread a little less nice than asked.)
    let now = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let want = (now + nice).clamp(-20, 19);
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, want) } != 0 {
        tracing::debug!(nice, error = %std::io::Error::last_os_error(), "could not lower a worker's priority");
    }
}

fn run_one(exec: &Executor, w: &Work, task: u64) -> TaskReport<TaskOutput> {
    let _span = tracing::debug_span!("task", job = %w.job, task).entered();
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| exec.run(w.job, &w.spec, task, w.own)))
        .unwrap_or_else(|p| Err(TaskError::Panicked { task, message: panic_message(&p) }));
    let blame = match &outcome {
        Err(e) => e.blame(),
        Ok(TaskOutput::Run(o)) if o.node_fault() => Blame::Node,
        Ok(_) => Blame::Task,
    };
    // The report crosses the wire to the job's owner: its error travels as text.
    TaskReport { task, outcome: outcome.map_err(|e| e.to_string()), took: started.elapsed(), blame }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
