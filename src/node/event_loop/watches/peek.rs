//! Owned jobs as another node sees them (`protocol::job`): a follower's view of one job
//! from where it left off, and whether the user it asks for may have it.
//!
//! Across nodes the only word on who asks is the asking node's: the user name it gives
//! its caller. It must be the submitter's. A key holder can lie about it, so this guards
//! against mistakes, not against the key's holders (docs/robustness.md).

use super::Watches;
use crate::id::JobId;
use crate::job::JobSpec;
use crate::node::api::report::JobReport;
use crate::node::api::view::{JobAccessError, JobEvent, JobRef, Submitter};
use crate::protocol::job::{EVENTS_BYTES, MAX_EVENTS};
use std::sync::Arc;

/// One answer's worth of a job.
#[derive(Debug)]
pub(in crate::node::event_loop) struct Peek {
    pub spec: Option<Arc<JobSpec>>,
    pub done: u64,
    pub total: u64,
    pub events: Vec<JobEvent>,
    pub next: u32,
    pub more: bool,
    pub report: Option<JobReport>,
}

impl Watches {
    /// Job `r` for `user` of another node: its spec if `spec`, its progress, its events
    /// from `from` on (at most [`EVENTS_BYTES`] of them, at least one), and its report once
    /// it ended and no event is left.
    pub(in crate::node::event_loop) fn peek(
        &self,
        r: JobRef,
        user: &str,
        from: u32,
        spec: bool,
    ) -> Result<Peek, JobAccessError> {
        let (submitter, job_spec, log, done, total, report) = match self.jobs.iter().find(|(id, _)| r.names(**id)) {
            Some((_, w)) => {
                let p = w.collector.progress();
                (&w.submitter, &w.spec, &w.log, p.done, p.total, None)
            }
            None => {
                let e = self.ended.iter().rev().find(|e| r.names(e.job)).ok_or(JobAccessError::Unknown(r))?;
                (&e.submitter, &e.spec, &e.log, e.report.tasks, e.report.tasks, Some(&e.report))
            }
        };
        Self::may_remote(submitter, user, r)?;
        let (events, next) = page(log, from as usize);
        let more = next < log.len();
        Ok(Peek {
            spec: spec.then(|| job_spec.clone()),
            done,
            total,
            events,
            next: next as u32,
            more,
            report: report.filter(|_| !more).cloned(),
        })
    }

    /// The running job `r` names, for `user` of another node to cancel.
    pub(in crate::node::event_loop) fn running_for(&self, r: JobRef, user: &str) -> Result<JobId, JobAccessError> {
        match self.jobs.iter().find(|(id, _)| r.names(**id)) {
            Some((id, w)) => Self::may_remote(&w.submitter, user, r).map(|()| *id),
            None if self.ended.iter().any(|e| r.names(e.job)) => Err(JobAccessError::Ended(r)),
            None => Err(JobAccessError::Unknown(r)),
        }
    }

    fn may_remote(submitter: &Submitter, user: &str, r: JobRef) -> Result<(), JobAccessError> {
        if submitter.user == user {
            return Ok(());
        }
        Err(JobAccessError::NotYoursThere { job: r, submitter: submitter.to_string() })
    }
}

/// The events of `log` from `from` on that fit one answer, and the index after them.
fn page(log: &[JobEvent], from: usize) -> (Vec<JobEvent>, usize) {
    let mut bytes = 0;
    let mut out = Vec::new();
    for e in log.iter().skip(from) {
        let len = crate::protocol::encode(e).len();
        if !out.is_empty() && (bytes + len > EVENTS_BYTES || out.len() >= MAX_EVENTS) {
            break;
        }
        bytes += len;
        out.push(e.clone());
    }
    let next = from.min(log.len()) + out.len();
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(n: usize) -> Vec<JobEvent> {
        (0..n).map(|i| JobEvent::Waiting(format!("{i:0>1000}"))).collect()
    }

    #[test]
    fn pages_hold_at_most_their_bytes_and_at_least_one_event() {
        let log = waiting(3000);
        let (mut from, mut pages, mut got) = (0, 0, Vec::new());
        while from < log.len() {
            let (events, next) = page(&log, from);
            let bytes: usize = events.iter().map(|e| crate::protocol::encode(e).len()).sum();
            assert!(bytes <= EVENTS_BYTES && next == from + events.len(), "{bytes} bytes, {from}..{next}");
            got.extend(events);
            (from, pages) = (next, pages + 1);
        }
        assert_eq!(got, log, "every event once, in order");
        assert_eq!(pages, 3, "about 1 MiB a page");
        assert_eq!(page(&log, 3000), (Vec::new(), 3000));
        assert_eq!(page(&log, 5000).1, 3000, "past the end is the end");
        let huge = vec![JobEvent::Waiting("x".repeat(EVENTS_BYTES * 2)); 2];
        assert_eq!(page(&huge, 0).0.len(), 1, "one event however big");
    }
}
