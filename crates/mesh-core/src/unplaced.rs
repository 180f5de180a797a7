//! How long each owned job has had queued tasks that no live node can run, and what the
//! owner does about it: nothing at first (the mesh may still be forming, or a matching
//! node rebooting), then say why after `place_grace`, and again every `wait_notice`. A
//! job that halts on failures fails instead of waiting. A job never waits silently.

use super::Config;
use super::needs::Unplaceable;
use crate::id::JobId;
use std::collections::BTreeMap;
use std::time::Instant;

/// What the owner does about one job now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Some node can run it, or it has not waited long enough to say so.
    Wait,
    /// Say why it waits.
    Tell(Unplaceable),
    /// Say why, and halt the job: its halt rule counts failures.
    Fail(Unplaceable),
}

/// Since when a job has been unplaceable, and when the owner last said so.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    since: Instant,
    told: Option<Instant>,
}

#[derive(Debug, Default)]
pub(crate) struct Placement {
    waiting: BTreeMap<JobId, Waiting>,
}

impl Placement {
    /// Looks at `job` at `now`: `why` is `None` when some node can run it.
    pub(crate) fn observe(
        &mut self,
        job: JobId,
        now: Instant,
        why: Option<Unplaceable>,
        halts_on_failure: bool,
        cfg: &Config,
    ) -> Verdict {
        let Some(why) = why else {
            self.waiting.remove(&job);
            return Verdict::Wait;
        };
        let w = self.waiting.entry(job).or_insert(Waiting { since: now, told: None });
        if now.saturating_duration_since(w.since) < cfg.place_grace {
            return Verdict::Wait;
        }
        if halts_on_failure {
            self.waiting.remove(&job);
            return Verdict::Fail(why);
        }
        if w.told.is_some_and(|t| now.saturating_duration_since(t) < cfg.wait_notice) {
            return Verdict::Wait;
        }
        w.told = Some(now);
        Verdict::Tell(why)
    }

    /// Keeps only the jobs for which `keep` holds.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&JobId) -> bool) {
        self.waiting.retain(|j, _| keep(j));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;
    use std::time::Duration;

    fn why() -> Unplaceable {
        Unplaceable { nodes: 2, no_runs: 2, no_python: 0, lacking: Vec::new(), not_lending: 0 }
    }

    #[test]
    fn says_why_after_the_grace_then_every_notice_interval() {
        let cfg = Config::default();
        let (job, t0) = (JobId { owner: NodeId(1), seq: 1 }, Instant::now());
        let mut p = Placement::default();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(p.observe(job, at(0), Some(why()), false, &cfg), Verdict::Wait, "the mesh may be forming");
        assert_eq!(p.observe(job, at(4), Some(why()), false, &cfg), Verdict::Wait);
        assert_eq!(p.observe(job, at(5), Some(why()), false, &cfg), Verdict::Tell(why()));
        assert_eq!(p.observe(job, at(10), Some(why()), false, &cfg), Verdict::Wait, "not too often");
        assert_eq!(p.observe(job, at(15), Some(why()), false, &cfg), Verdict::Tell(why()));
        assert_eq!(p.observe(job, at(16), None, false, &cfg), Verdict::Wait, "a node came");
        assert_eq!(p.observe(job, at(17), Some(why()), false, &cfg), Verdict::Wait, "the grace starts again");
    }

    #[test]
    fn a_job_that_halts_on_failures_fails_instead() {
        let cfg = Config::default();
        let (job, t0) = (JobId { owner: NodeId(1), seq: 2 }, Instant::now());
        let mut p = Placement::default();
        assert_eq!(p.observe(job, t0, Some(why()), true, &cfg), Verdict::Wait);
        assert_eq!(p.observe(job, t0 + cfg.place_grace, Some(why()), true, &cfg), Verdict::Fail(why()));
        p.retain(|_| false);
        assert!(p.waiting.is_empty());
    }
}
