//! The loop's side of the job journal (`node::journal`): what a restarted node takes
//! back, and the records each owned job leaves as it runs. A node without a journal
//! (`mesh submit`'s own node, `--no-journal`) skips all of it.

use super::{EventLoop, describe};
use crate::core::{DoneTask, TaskReport};
use crate::id::{JobId, NodeId};
use crate::job::TaskOutput;
use crate::node::journal::Then;
use crate::node::journal::disk::{Found, Kept};
use crate::node::journal::format::{EndEntry, JobEntry, VERSION, unix_now};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl EventLoop {
    /// Takes back what the journal kept: unfinished jobs run again from where their
    /// results stop, ended ones wait for `mesh wait`. A Python job ends as cancelled: its
    /// script went with the old process.
    pub(super) fn recover(&mut self, found: Found) {
        let (now, unix, me) = (Instant::now(), unix_now(), self.me.identity.node_id);
        let ago = |secs: u64| now.checked_sub(Duration::from_secs(unix.saturating_sub(secs))).unwrap_or(now);
        self.sched.set_next_seq(found.next_seq);
        let (mut resumed, lost) = (0, found.lost.len());
        for lost in &found.lost {
            let job = JobId { owner: me, seq: lost.seq };
            tracing::warn!("job {job} is lost: its journal could not be read ({}); it was set aside", lost.why);
        }
        let mut ended: Vec<Kept> = Vec::new();
        for kept in found.jobs {
            if kept.end.is_some() {
                ended.push(kept);
                continue;
            }
            let Kept { entry, results, .. } = kept;
            let job = JobId { owner: me, seq: entry.seq };
            let spec = Arc::new(entry.spec);
            let done: Vec<DoneTask> =
                results.iter().map(|r| DoneTask { task: r.report.task, ok: r.report.succeeded() }).collect();
            let started = ago(entry.submitted);
            if !entry.outlives_submitter {
                self.watches.resume(job, spec, entry.submitter, started, results);
                let (me, net) = (&self.me, &self.net);
                self.watches.cancelled(job, None, &|n| describe(me, net.as_ref(), n));
                self.journal_end(job);
                continue;
            }
            let (tasks, retries) = (spec.tasks(), spec.retries());
            match self.sched.resume_job(now, job, spec.clone(), tasks, retries, done) {
                Ok(()) => {
                    tracing::info!(%job, tasks, kept = results.len(), "resumed a job from the journal");
                    self.watches.resume(job, spec, entry.submitter, started, results);
                    resumed += 1;
                }
                Err(e) => tracing::warn!("job {job} could not be resumed: {e}"),
            }
        }
        // The newest last, as they ended.
        ended.sort_by_key(|k| k.end.as_ref().map_or(0, |e| e.at));
        let kept = ended.len();
        for Kept { entry, results, end, .. } in ended {
            let Some(end) = end else { continue };
            let job = JobId { owner: me, seq: entry.seq };
            self.watches.restore_ended(job, Arc::new(entry.spec), entry.submitter, ago(end.at), end, results);
        }
        tracing::info!("the job journal gave back {resumed} running jobs (resumed), {kept} ended ones, {lost} lost");
    }

    /// A new owned job's entry; `then` runs once it is on disk (at once without a journal).
    pub(super) fn journal_begin(&mut self, entry: JobEntry, then: Then) {
        match &mut self.journal {
            Some(j) => j.begin(entry, then),
            None => then(),
        }
    }

    /// A task's accepted result, for the next batch.
    pub(super) fn journal_accepted(&mut self, job: JobId, from: NodeId, report: &TaskReport<TaskOutput>) {
        let Some(j) = &mut self.journal else { return };
        let attempts = self.watches.attempts(job, report.task);
        let (me, net) = (&self.me, self.net.as_ref());
        j.accepted(job, from, attempts, report.clone(), || super::name_of(me, net, from));
    }

    /// A job's entry as the journal keeps it.
    pub(super) fn job_entry(
        seq: u32,
        how: &crate::node::api::client::Submission,
        spec: &crate::job::JobSpec,
    ) -> JobEntry {
        JobEntry {
            version: VERSION,
            seq,
            submitter: how.submitter.clone(),
            outlives_submitter: how.on_gone == crate::node::api::view::OnGone::Detach,
            submitted: unix_now(),
            spec: spec.clone(),
        }
    }

    /// The job just ended: its end, as its watch keeps it, goes to the journal at once.
    pub(super) fn journal_end(&mut self, job: JobId) {
        if let (Some(j), Some(e)) = (&mut self.journal, self.watches.ended(job)) {
            let end =
                EndEntry { version: VERSION, at: unix_now(), report: e.report.clone(), summary: e.summary.clone() };
            j.end(job, end);
        }
    }
}
