//! The jobs this node owns, each with whoever waits for it: a collector that builds the
//! report, the events streamed so far (a run or Python job's tasks as they finish), and
//! the handles of those waiting ([`JobHandle`]s: the submitter's, and any `mesh wait`).
//!
//! A job belongs to its owner node, not to a terminal. When every handle of a job has
//! gone (Ctrl-C on an in-process node, a closed control connection), the job's
//! [`OnGone`] decides: a job nobody can use the results of is *abandoned*, and the loop
//! cancels it mesh-wide; any other runs on, detached. A handle attached later gets the
//! job's progress and every event so far, then the rest as it comes. A job that ended
//! stays here with its report for [`ENDED_KEPT`] more jobs, so `mesh wait` still finds it.
//!
//! Who may attach or cancel: the submitter's user (their uid on this node), this node's
//! own user, or root ([`Watches::may`]).
//!
//! The event channels are unbounded on purpose: each carries a job's results once, so it
//! holds at most one job's results, the bound the collector of a wasm job has too; a slow
//! reader must not stall the loop. The events kept for later handles are that bound again.

use crate::core::{Progress, TaskReport};
use crate::id::{JobId, NodeId};
use crate::job::{Delivery, JobKind, JobSpec, TaskOutput};
use crate::node::api::client::{JobHandle, Submission, handle_channels};
use crate::node::api::report::{Collector, Describe, JobReport};
use crate::node::api::view::{JobAccessError, JobEvent, JobProgress, JobRef, OnGone, Submitter};
use crate::protocol::membership::{FINISHED_SHOWN, JobSummary};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};

/// An owned job and whoever waits for it.
#[derive(Debug)]
struct Watch {
    spec: Arc<JobSpec>,
    collector: Collector,
    /// Each task goes to the waiting handles as it finishes ([`Delivery::Streamed`]).
    streams: bool,
    kind: JobKind,
    submitter: Submitter,
    on_gone: OnGone,
    /// The streamed events so far, for a handle that attaches later.
    log: Vec<JobEvent>,
    listeners: Vec<Listener>,
}

/// Where one handle hears of its job: progress, events and, at the end, the report.
#[derive(Debug)]
struct Listener {
    progress: watch::Sender<JobProgress>,
    events: mpsc::UnboundedSender<JobEvent>,
    done: oneshot::Sender<JobReport>,
}

/// An owned job that ended, kept for `mesh wait` and the announce.
#[derive(Debug)]
pub(super) struct Ended {
    job: JobId,
    at: Instant,
    spec: Arc<JobSpec>,
    pub(super) submitter: Submitter,
    pub(super) summary: JobSummary,
    log: Vec<JobEvent>,
    pub(super) report: JobReport,
}

/// Ended jobs kept, with their reports, newest last.
pub(crate) const ENDED_KEPT: usize = 64;

#[derive(Debug, Default)]
pub(super) struct Watches {
    jobs: HashMap<JobId, Watch>,
    ended: VecDeque<Ended>,
}

impl Watches {
    /// A new owned job, and its submitter's handle.
    pub(super) fn add(&mut self, job: JobId, spec: Arc<JobSpec>, now: Instant, how: Submission) -> JobHandle {
        let (streams, kind) = (spec.delivery() == Delivery::Streamed, spec.kind());
        let collector = Collector::new(spec.clone(), now);
        let (handle, progress, events, done) = handle_channels(job, collector.progress());
        let Submission { submitter, on_gone } = how;
        let listeners = vec![Listener { progress, events, done }];
        let w = Watch { spec, collector, streams, kind, submitter, on_gone, log: Vec::new(), listeners };
        self.jobs.insert(job, w);
        handle
    }

    /// Whether user `uid` may wait for or cancel a job of `submitter`'s: they submitted
    /// it, or they are this node's own user, or root.
    fn may(submitter: &Submitter, uid: u32) -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        uid == submitter.uid || uid == me || uid == 0
    }

    /// The running job `r` names, if user `uid` may reach it.
    pub(super) fn running(&self, r: JobRef, uid: u32) -> Result<JobId, JobAccessError> {
        match self.jobs.iter().find(|(id, _)| r.names(**id)) {
            Some((id, w)) if Self::may(&w.submitter, uid) => Ok(*id),
            Some((_, w)) => Err(JobAccessError::NotYours { job: r, submitter: w.submitter.to_string() }),
            None if self.ended.iter().any(|e| r.names(e.job)) => Err(JobAccessError::Ended(r)),
            None => Err(JobAccessError::Unknown(r)),
        }
    }

    /// A new handle on job `r` for user `uid`: a running job's progress and events so
    /// far, then the rest as they come; an ended job's events and report at once.
    pub(super) fn attach(&mut self, r: JobRef, uid: u32) -> Result<(JobHandle, Arc<JobSpec>), JobAccessError> {
        let running = self.running(r, uid);
        if let Err(e @ JobAccessError::NotYours { .. }) = running {
            return Err(e);
        }
        if let Ok(id) = running
            && let Some(w) = self.jobs.get_mut(&id)
        {
            let (handle, progress, events, done) = handle_channels(id, w.collector.progress());
            w.log.iter().for_each(|e| {
                let _ = events.send(e.clone());
            });
            w.listeners.push(Listener { progress, events, done });
            return Ok((handle, w.spec.clone()));
        }
        let e = self.ended.iter().rev().find(|e| r.names(e.job)).ok_or(JobAccessError::Unknown(r))?;
        if !Self::may(&e.submitter, uid) {
            return Err(JobAccessError::NotYours { job: r, submitter: e.submitter.to_string() });
        }
        let total = e.report.tasks;
        let (handle, _progress, events, done) = handle_channels(e.job, JobProgress { done: total, total });
        e.log.iter().for_each(|ev| {
            let _ = events.send(ev.clone());
        });
        let _ = done.send(e.report.clone());
        Ok((handle, e.spec.clone()))
    }

    /// A task's first (final) result; a streamed job's goes to its handles at once.
    pub(super) fn accepted(
        &mut self,
        job: JobId,
        from: NodeId,
        report: TaskReport<TaskOutput>,
        describe: Describe<'_>,
    ) {
        let Some(w) = self.jobs.get_mut(&job) else { return };
        if w.streams {
            let (node, attempts) = (describe(from).name, w.collector.attempts(report.task));
            let event = JobEvent::finished(w.kind, report.task, node, attempts, report.took, &report.outcome);
            w.listeners.iter().for_each(|l| {
                let _ = l.events.send(event.clone());
            });
            w.log.push(event);
        }
        w.collector.add(from, report);
        let progress = w.collector.progress();
        w.listeners.iter().for_each(|l| {
            let _ = l.progress.send(progress);
        });
    }

    /// No live node can run the job's queued tasks: those waiting hear why.
    pub(super) fn waiting(&mut self, job: JobId, why: String) {
        if let Some(w) = self.jobs.get(&job) {
            w.listeners.iter().for_each(|l| {
                let _ = l.events.send(JobEvent::Waiting(why.clone()));
            });
        }
    }

    /// A failed attempt that will run again.
    pub(super) fn retrying(&mut self, job: JobId, from: NodeId, report: &TaskReport<TaskOutput>) {
        if let Some(w) = self.jobs.get_mut(&job) {
            w.collector.retrying(from, report);
        }
    }

    pub(super) fn stolen(&mut self, job: JobId, by: NodeId) {
        if let Some(w) = self.jobs.get_mut(&job) {
            w.collector.stolen(by);
        }
    }

    /// The job is complete: its report goes to every handle, and is kept.
    pub(super) fn finish(&mut self, job: JobId, progress: Progress, describe: Describe<'_>) {
        self.end(job, progress, false, describe);
    }

    /// The job was cancelled (`progress`: how far it came): its handles get a report of
    /// what it did, marked cancelled, and it is kept like a finished one.
    pub(super) fn cancelled(&mut self, job: JobId, progress: Option<Progress>, describe: Describe<'_>) {
        let Some(w) = self.jobs.get(&job) else { return };
        let p = w.collector.progress();
        let progress = progress.unwrap_or(Progress { total: p.total, done: p.done, ..Progress::default() });
        self.end(job, Progress { halted: true, ..progress }, true, describe);
    }

    fn end(&mut self, job: JobId, progress: Progress, cancelled: bool, describe: Describe<'_>) {
        let Some(w) = self.jobs.remove(&job) else { return };
        let now = Instant::now();
        let mut summary = w.collector.summary(job.seq, now, true);
        summary.submitter = Some(w.submitter.to_string());
        let mut report = w.collector.finish(progress, describe);
        report.cancelled = cancelled;
        for l in w.listeners {
            let _ = l.done.send(report.clone());
        }
        while self.ended.len() >= ENDED_KEPT {
            self.ended.pop_front();
        }
        let Watch { spec, submitter, log, .. } = w;
        self.ended.push_back(Ended { job, at: now, spec, submitter, summary, log, report });
    }

    /// Job `job` as it ended, if it is kept.
    pub(super) fn ended(&self, job: JobId) -> Option<&Ended> {
        self.ended.iter().rev().find(|e| e.job == job)
    }

    /// How many times a task of an owned job has run so far, this one included.
    pub(super) fn attempts(&self, job: JobId, task: u64) -> u32 {
        self.jobs.get(&job).map_or(1, |w| w.collector.attempts(task))
    }

    /// The owned jobs as the announce and the dashboard tell of them: the running ones,
    /// oldest first, then those ended in the last `FINISHED_SHOWN`, newest first.
    pub(super) fn summaries(&self, now: Instant) -> Vec<JobSummary> {
        let mut running: Vec<(&JobId, &Watch)> = self.jobs.iter().collect();
        running.sort_by_key(|(id, _)| id.seq);
        let running = running.into_iter().map(|(id, w)| JobSummary {
            submitter: Some(w.submitter.to_string()),
            ..w.collector.summary(id.seq, now, false)
        });
        let shown = self.ended.iter().rev().filter(|e| now.saturating_duration_since(e.at) <= FINISHED_SHOWN);
        running.chain(shown.map(|e| e.summary.clone())).collect()
    }

    /// The job is gone without a report; those waiting see the reply dropped.
    pub(super) fn drop_job(&mut self, job: JobId) {
        self.jobs.remove(&job);
    }

    /// The jobs nobody waits for any more whose [`OnGone`] is to cancel them (the loop
    /// cancels each, which ends its watch); a detached job forgets its closed handles and
    /// runs on.
    pub(super) fn abandoned(&mut self) -> Vec<JobId> {
        let mut gone = Vec::new();
        for (id, w) in &mut self.jobs {
            w.listeners.retain(|l| !l.done.is_closed());
            if w.listeners.is_empty() && w.on_gone == OnGone::Cancel {
                gone.push(*id);
            }
        }
        gone
    }

    /// Drops every watch: the node is leaving, and those waiting see the reply dropped.
    pub(super) fn clear(&mut self) {
        self.jobs.clear();
    }
}

mod peek;
mod restore;
#[cfg(test)]
mod tests;
