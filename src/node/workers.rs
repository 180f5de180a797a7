//! The worker pool: one OS thread per worker slot, so compute never blocks the event loop.
//!
//! Each worker has a one-slot inbox (the scheduler gives a worker a task only when it is
//! idle, so one slot is all it ever needs) and all workers share one bounded outbox back to
//! the driver. A panicking task becomes a failed task, not a dead worker.

use crate::core::TaskReport;
use crate::exec::Executor;
use crate::id::JobId;
use crate::job::{JobSpec, TaskOutput};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::mpsc;

/// A finished task, from a worker to the driver.
#[derive(Debug)]
pub struct Finished {
    pub worker: usize,
    pub job: JobId,
    pub report: TaskReport<TaskOutput>,
}

struct Work {
    job: JobId,
    task: u64,
    spec: Arc<JobSpec>,
}

#[derive(Debug)]
pub struct WorkerPool {
    inboxes: Vec<SyncSender<Work>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Work({}, {})", self.job, self.task)
    }
}

impl WorkerPool {
    /// Starts `n` workers running tasks with `exec`; finished tasks arrive on the returned
    /// receiver.
    pub fn start(n: usize, exec: Arc<Executor>) -> std::io::Result<(Self, mpsc::Receiver<Finished>)> {
        let (done_tx, done_rx) = mpsc::channel(n.max(1) * 2);
        let mut inboxes = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for worker in 0..n {
            let (tx, rx) = sync_channel::<Work>(1);
            let done = done_tx.clone();
            let exec = exec.clone();
            let t = std::thread::Builder::new().name(format!("mesh-worker-{worker}")).spawn(move || {
                while let Ok(w) = rx.recv() {
                    let _span = tracing::debug_span!("task", job = %w.job, task = w.task).entered();
                    let started = Instant::now();
                    let outcome = catch_unwind(AssertUnwindSafe(|| exec.run(w.job, &w.spec, w.task)))
                        .unwrap_or_else(|p| Err(format!("task {} panicked: {}", w.task, panic_message(&p))));
                    let report = TaskReport { task: w.task, outcome, took: started.elapsed() };
                    if done.blocking_send(Finished { worker, job: w.job, report }).is_err() {
                        break; // the driver is gone
                    }
                }
            })?;
            inboxes.push(tx);
            threads.push(t);
        }
        Ok((Self { inboxes, threads }, done_rx))
    }

    /// Hands a task to an idle worker. Returns false if the worker is gone.
    pub fn run(&self, worker: usize, job: JobId, task: u64, spec: Arc<JobSpec>) -> bool {
        self.inboxes.get(worker).is_some_and(|tx| tx.send(Work { job, task, spec }).is_ok())
    }

    /// Closes the inboxes and waits for the workers to finish their current task.
    pub fn shutdown(self) {
        drop(self.inboxes);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
