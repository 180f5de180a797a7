//! A node that restarts takes back the jobs it owned, from its journal. More of
//! [`Scheduler`]'s methods; its state is in `mod.rs`.
//!
//! The journal is the driver's (the node keeps it on disk); the core only says what it
//! needs: a job's id, spec, task count and retries, and the tasks that had a final result.
//! A resumed job queues only the others. Results of the old run that peers still hold are
//! accepted as usual, once: the ledger counts each task once whatever its source, so a
//! task whose result was accepted but not yet journalled when the node died simply runs
//! again. Peers that dropped the job when its owner seemed gone take it up again at the
//! owner's first status (`Tombstones::forgive`).

use super::Scheduler;
use crate::id::JobId;
use crate::ledger::Ledger;
use crate::local_job::Job;
use crate::timer::Timer;
use crate::{Payload, Spec};
use std::time::Instant;

/// Why a job could not be resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error("job {0} belongs to another node")]
    NotOurs(JobId),
    #[error("job {0} is already known here")]
    Known(JobId),
    #[error("job {job} has {tasks} tasks; its journal names task {task}")]
    NoSuchTask { job: JobId, tasks: u64, task: u64 },
}

/// A journalled task result, as [`Scheduler::resume_job`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoneTask {
    pub task: u64,
    /// It succeeded; otherwise it failed for good (its retries used up).
    pub ok: bool,
}

impl<S: Spec, R: Payload> Scheduler<S, R> {
    /// The sequence number the next submitted job gets.
    pub fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Sets the next job's sequence number: a node with a journal counts its jobs from
    /// where it left off, so ids stay short and are never reused. (Without one, the first
    /// is random, so a restarted short-lived node does not reuse ids its peers remember.)
    pub fn set_next_seq(&mut self, seq: u32) {
        self.next_seq = seq;
    }

    /// Takes back job `job`, owned by this node before it restarted: `done` lists the
    /// tasks whose final result its journal kept. The rest queue again; a job with
    /// nothing left (or past its halt rule) finishes at once. The next submitted job's
    /// sequence number moves past `job`'s.
    pub fn resume_job(
        &mut self,
        now: Instant,
        job: JobId,
        spec: S,
        tasks: u64,
        retries: u32,
        done: impl IntoIterator<Item = DoneTask>,
    ) -> Result<(), ResumeError> {
        if job.owner != self.id {
            return Err(ResumeError::NotOurs(job));
        }
        if self.jobs.contains_key(&job) || self.ended.contains(&job) {
            return Err(ResumeError::Known(job));
        }
        let mut ledger = Ledger::new(tasks, retries);
        for d in done {
            if d.task >= tasks {
                return Err(ResumeError::NoSuchTask { job, tasks, task: d.task });
            }
            ledger.restore(d.task, d.ok);
        }
        let complete = ledger.is_complete();
        let (failed, total) = (ledger.failed(), ledger.total());
        let halts = spec.halt().is_some_and(|h| h.reached(ledger.done_count() - failed, failed, total));
        let mut j = Job::new(spec, Some(ledger));
        for r in j.ledger.as_ref().map(Ledger::undone_ranges).unwrap_or_default() {
            j.queue.push(r);
        }
        self.jobs.insert(job, j);
        self.rr.push_back(job);
        if job.seq >= self.next_seq {
            self.next_seq = job.seq.wrapping_add(1);
        }
        if complete || halts {
            self.finish(now, job, halts && !complete);
        } else {
            self.timers.set(Timer::Gossip, now);
        }
        self.pump(now);
        Ok(())
    }
}
