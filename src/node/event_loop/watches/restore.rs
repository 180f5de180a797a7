//! Watches rebuilt from the journal when a node restarts: a resumed job's results so
//! far, and the ended jobs that `mesh wait` may still ask for. Nobody waits for either
//! until a `mesh wait` attaches.

use super::{Ended, Watch, Watches};
use crate::id::JobId;
use crate::job::{Delivery, JobSpec};
use crate::node::api::report::Collector;
use crate::node::api::view::{JobEvent, OnGone, Submitter};
use crate::node::journal::format::{EndEntry, ResultEntry};
use std::sync::Arc;
use std::time::Instant;

impl Watches {
    /// A job resumed from the journal, with its results so far. It runs on detached: its
    /// submitter's terminal went with the old process.
    pub(in crate::node::event_loop) fn resume(
        &mut self,
        job: JobId,
        spec: Arc<JobSpec>,
        submitter: Submitter,
        started: Instant,
        results: Vec<ResultEntry>,
    ) {
        let (streams, kind) = (spec.delivery() == Delivery::Streamed, spec.kind());
        let mut collector = Collector::new(spec.clone(), started);
        let mut log = Vec::new();
        for r in results {
            if streams {
                log.push(JobEvent::finished(
                    kind,
                    r.report.task,
                    r.node.to_string(),
                    r.attempts,
                    r.report.took,
                    &r.report.outcome,
                ));
            }
            collector.add(r.from, r.report);
        }
        let on_gone = OnGone::Detach;
        let w = Watch { spec, collector, streams, kind, submitter, on_gone, log, listeners: Vec::new() };
        self.jobs.insert(job, w);
    }

    /// A job that had ended before the restart, for `mesh wait` and `mesh jobs`.
    pub(in crate::node::event_loop) fn restore_ended(
        &mut self,
        job: JobId,
        spec: Arc<JobSpec>,
        submitter: Submitter,
        at: Instant,
        end: EndEntry,
        results: Vec<ResultEntry>,
    ) {
        let EndEntry { summary, report, .. } = end;
        let (streams, kind) = (spec.delivery() == Delivery::Streamed, spec.kind());
        let event = |r: ResultEntry| {
            JobEvent::finished(kind, r.report.task, r.node.to_string(), r.attempts, r.report.took, &r.report.outcome)
        };
        let log = if streams { results.into_iter().map(event).collect() } else { Vec::new() };
        while self.ended.len() >= super::ENDED_KEPT {
            self.ended.pop_front();
        }
        self.ended.push_back(Ended { job, at, spec, submitter, summary, log, report });
    }
}
