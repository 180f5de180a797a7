//! Which jobs' tasks must end: a job cancelled, halted or finished, or the node leaving.
//! Shared by every runtime: the primes kernels ask a task's [`Stop`] per sieve segment or
//! run of trial divisions, WebAssembly tasks every epoch tick, and the waits of native
//! tasks (programs, Python) poll it while they run and before they start.
//!
//! Bounded: at most [`CANCELS`] jobs are remembered. When full, the oldest flag that no
//! running task holds is forgotten, so a running task's flag always stays reachable.

use crate::id::JobId;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Jobs whose flags a node remembers, so their late tasks end at once.
pub(crate) const CANCELS: usize = 256;

#[derive(Debug, Default)]
pub(crate) struct Cancels {
    flags: Mutex<VecDeque<(JobId, Arc<AtomicBool>)>>,
    leaving: Arc<AtomicBool>,
}

/// Whether one task must stop: its job's flag or the node's.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    job: Arc<AtomicBool>,
    leaving: Arc<AtomicBool>,
}

impl Stop {
    pub(crate) fn now(&self) -> bool {
        self.job.load(Ordering::Relaxed) || self.leaving.load(Ordering::Relaxed)
    }
}

impl Cancels {
    /// Ends the running tasks of `job` and any it starts later.
    pub(crate) fn cancel(&self, job: JobId) {
        self.flag(job).store(true, Ordering::Relaxed);
    }

    /// Tasks of `job` that start from now on run: the job was dropped here because its
    /// owner seemed gone, and the owner is back. Tasks stopped before stay stopped.
    pub(crate) fn revive(&self, job: JobId) {
        let mut flags = self.flags.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        flags.retain(|(j, _)| *j != job);
    }

    /// Ends every running task: the node is leaving.
    pub(crate) fn cancel_all(&self) {
        self.leaving.store(true, Ordering::Relaxed);
    }

    /// What a task of `job` watches while it runs.
    pub(crate) fn stop(&self, job: JobId) -> Stop {
        Stop { job: self.flag(job), leaving: self.leaving.clone() }
    }

    fn flag(&self, job: JobId) -> Arc<AtomicBool> {
        // The list holds no invariant a panicking holder could break half-way.
        let mut flags = self.flags.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, f)) = flags.iter().find(|(j, _)| *j == job) {
            return f.clone();
        }
        if flags.len() >= CANCELS {
            let idle = flags.iter().position(|(_, f)| Arc::strong_count(f) == 1).unwrap_or(0);
            flags.remove(idle);
        }
        let flag = Arc::new(AtomicBool::new(false));
        flags.push_back((job, flag.clone()));
        flag
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    #[test]
    fn a_held_flag_outlives_the_bound() {
        let c = Cancels::default();
        let job = |seq| JobId { owner: NodeId(1), seq };
        let running = c.stop(job(0));
        for seq in 1..=CANCELS as u32 * 2 {
            let _ = c.stop(job(seq));
        }
        c.cancel(job(0));
        assert!(running.now(), "the running task's flag was still the one a cancel reaches");
        assert!(!c.stop(job(5)).now());
        c.cancel_all();
        assert!(c.stop(job(5)).now(), "the node is leaving");
    }

    #[test]
    fn a_revived_job_starts_tasks_again_and_its_stopped_ones_stay_stopped() {
        let c = Cancels::default();
        let job = JobId { owner: NodeId(1), seq: 7 };
        let before = c.stop(job);
        c.cancel(job);
        assert!(c.stop(job).now(), "a dropped job's later tasks do not start");
        c.revive(job);
        assert!(!c.stop(job).now(), "its owner is back: new tasks run");
        assert!(before.now(), "a task stopped by the drop stays stopped");
        c.cancel(job);
        assert!(c.stop(job).now(), "and a later cancel reaches the new tasks");
    }
}
