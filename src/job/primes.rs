//! The primes job: what it computes, how it splits into tasks, and how task outputs add up.
//!
//! A primes job has one of two targets:
//! * `Below(n)`: one result, the sum of the primes below `n`. The numbers `0..n` are cut into
//!   `tasks` spans; each task sums its span and the results add up.
//! * `Each { first, last }`: one result per `n` in `first..=last` (inclusive, like the
//!   shell's `{a..b}`), one task per `n`. This is the Parallel Python demo: 1001
//!   independent jobs.
//!
//! Everything is parsed into these types at the edge (`parse_target`, `Split`), so the rest
//! of the program never sees an unchecked bound.

use super::bounds::{JobError, MAX_TASKS};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest N a primes job accepts: the kernels (`exec::primes`) are exact up to here.
/// It keeps every product `p * q` inside `u64` and the base-prime table (primes up to
/// sqrt(MAX_N) = 10^7) small, and is well past the 10^12 users asked for.
pub const MAX_N: u64 = 100_000_000_000_000;

/// The most results one range job may ask for. It bounds the owner's memory and output; the
/// demo asks for 1001.
pub const MAX_RANGE_ITEMS: u64 = 1_000_000;

/// Tasks per worker the automatic split aims for: enough for stealing to even out uneven
/// tasks and nodes, few enough that per-task overhead stays invisible.
const TASKS_PER_WORKER: u64 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// Segmented sieve of Eratosthenes: fast and exact.
    Sieve,
    /// The demo's trial division of every x by 2..=ceil(sqrt(x)): slow on purpose.
    Trial,
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sieve => "sieve",
            Self::Trial => "trial",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Below(u64),
    Each { first: u64, last: u64 },
}

/// How the user asked to split a single-`n` job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Pick a size from the number of workers.
    Auto {
        workers: u32,
    },
    Tasks(u64),
    Size(u64),
}

/// A primes job, fully validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimesJob {
    pub target: Target,
    pub algo: Algo,
    /// Numbers per task for `Below`; 1 for `Each`.
    pub span: u64,
}

impl PrimesJob {
    pub fn new(target: Target, algo: Algo, split: Split) -> Result<Self, JobError> {
        let span = match (target, split) {
            (Target::Each { .. }, Split::Auto { .. }) => 1,
            (Target::Each { .. }, _) => return Err(JobError::SplitOfRange),
            (Target::Below(n), Split::Tasks(t)) => {
                if t == 0 || t > MAX_TASKS {
                    return Err(JobError::TaskCount(t));
                }
                n.div_ceil(t).max(1)
            }
            (Target::Below(n), Split::Size(s)) => {
                if s == 0 {
                    return Err(JobError::ZeroTaskSize);
                }
                if n.div_ceil(s) > MAX_TASKS {
                    return Err(JobError::TaskSizeTooSmall(s));
                }
                s
            }
            (Target::Below(n), Split::Auto { workers }) => auto_span(n, algo, workers),
        };
        Ok(Self { target, algo, span })
    }

    /// Checks a spec that came from elsewhere (a peer, the control socket) against the
    /// same bounds the CLI enforces.
    pub fn validate(&self) -> Result<(), JobError> {
        let ok = match self.target {
            Target::Below(n) => n <= MAX_N && self.span >= 1 && n.div_ceil(self.span) <= MAX_TASKS,
            Target::Each { first, last } => {
                first <= last && last <= MAX_N && last - first < MAX_RANGE_ITEMS && self.span == 1
            }
        };
        if ok { Ok(()) } else { Err(JobError::Invalid { kind: "primes", what: format!("{self:?}") }) }
    }

    pub fn tasks(&self) -> u64 {
        match self.target {
            Target::Below(n) => n.div_ceil(self.span),
            Target::Each { first, last } => last - first + 1,
        }
    }

    /// The numbers task `task` covers: `lo..hi`.
    pub fn span_of(&self, task: u64) -> (u64, u64) {
        match self.target {
            Target::Below(n) => (task * self.span, ((task + 1) * self.span).min(n)),
            Target::Each { first, .. } => (0, first + task),
        }
    }

    /// The `n` each result is for, in output order.
    pub fn result_ns(&self) -> Vec<u64> {
        match self.target {
            Target::Below(n) => vec![n],
            Target::Each { first, last } => (first..=last).collect(),
        }
    }

    /// Folds task outputs (indexed by task) into the job's results, one per `n`.
    pub fn assemble(&self, outputs: &[u128]) -> Vec<u128> {
        match self.target {
            Target::Below(_) => vec![outputs.iter().sum()],
            Target::Each { .. } => outputs.to_vec(),
        }
    }
}

/// Numbers per task for `Below(n)`: about [`TASKS_PER_WORKER`] tasks per worker, within a
/// band that keeps each task between "worth a message" and "short enough to steal".
fn auto_span(n: u64, algo: Algo, workers: u32) -> u64 {
    // Trial division costs ~sqrt(x) per number, so its spans are much shorter.
    let (min, max) = match algo {
        Algo::Sieve => (1 << 12, 1 << 30),
        Algo::Trial => (1 << 10, 1 << 20),
    };
    let want = n / (u64::from(workers.max(1)) * TASKS_PER_WORKER);
    want.clamp(min, max).max(n.div_ceil(MAX_TASKS))
}

/// Why a `N|A..B` argument was refused; each message names what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("range '{0}' needs both ends, like 100000..100999")]
    OpenRange(String),
    #[error("range '{range}' is reversed; write {last}..{first}")]
    Reversed { range: String, first: u64, last: u64 },
    #[error("range '{range}' has {count} values; at most {MAX_RANGE_ITEMS} are allowed")]
    TooManyValues { range: String, count: u64 },
    #[error("'{0}' is negative; N must be a whole number from 0 to {MAX_N}")]
    Negative(String),
    #[error("'{0}' is not a whole number; write N like 100999, 1_000_000 or 1e9, or a range like 100000..100999")]
    NotANumber(String),
    #[error("{0} is beyond the supported bound of {MAX_N} (1e14)")]
    TooLarge(String),
}

/// Parses `N` or `A..B` (inclusive).
pub fn parse_target(s: &str) -> Result<Target, TargetError> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once("..") {
        let b = b.strip_prefix('=').unwrap_or(b);
        if a.is_empty() || b.is_empty() {
            return Err(TargetError::OpenRange(s.into()));
        }
        let (first, last) = (parse_n(a)?, parse_n(b)?);
        if first > last {
            return Err(TargetError::Reversed { range: s.into(), first, last });
        }
        if last - first + 1 > MAX_RANGE_ITEMS {
            return Err(TargetError::TooManyValues { range: s.into(), count: last - first + 1 });
        }
        return Ok(Target::Each { first, last });
    }
    Ok(Target::Below(parse_n(s)?))
}

fn parse_n(s: &str) -> Result<u64, TargetError> {
    let s = s.trim();
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    if clean.starts_with('-') {
        return Err(TargetError::Negative(s.into()));
    }
    let n = parse_number(&clean).ok_or_else(|| TargetError::NotANumber(s.into()))?;
    if n > MAX_N {
        return Err(TargetError::TooLarge(s.into()));
    }
    Ok(n)
}

/// Plain digits, or `AeB` for A * 10^B.
fn parse_number(s: &str) -> Option<u64> {
    if let Some((m, e)) = s.split_once(['e', 'E']) {
        let m: u64 = m.parse().ok()?;
        let e: u32 = e.parse().ok()?;
        return m.checked_mul(10u64.checked_pow(e)?);
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().or(Some(u64::MAX)) // only overflow can fail here: beyond any bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_reject_with_reasons() {
        assert_eq!(parse_target("100999"), Ok(Target::Below(100_999)));
        assert_eq!(parse_target("1e9"), Ok(Target::Below(1_000_000_000)));
        assert_eq!(parse_target("1_000"), Ok(Target::Below(1000)));
        assert_eq!(parse_target("100000..100999"), Ok(Target::Each { first: 100_000, last: 100_999 }));
        assert_eq!(parse_target("5..=5"), Ok(Target::Each { first: 5, last: 5 }));
        for (bad, why) in [
            ("abc", "not a whole number"),
            ("-5", "negative"),
            ("1.5", "not a whole number"),
            ("9..3", "reversed"),
            ("..3", "both ends"),
            ("3..", "both ends"),
            ("1e15", "beyond the supported bound"),
            ("99999999999999999999999", "beyond the supported bound"),
            ("0..2000000", "at most"),
            ("", "not a whole number"),
        ] {
            let err = parse_target(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn auto_split_uses_every_worker_on_the_demo() {
        let job = PrimesJob::new(Target::Below(100_999), Algo::Sieve, Split::Auto { workers: 2 }).unwrap();
        assert!(job.tasks() >= 2);
        let big = PrimesJob::new(Target::Below(MAX_N), Algo::Sieve, Split::Auto { workers: 2 }).unwrap();
        assert!(big.tasks() <= MAX_TASKS);
    }

    #[test]
    fn range_jobs_make_one_task_per_n() {
        let job =
            PrimesJob::new(Target::Each { first: 10, last: 12 }, Algo::Trial, Split::Auto { workers: 4 }).unwrap();
        assert_eq!(job.tasks(), 3);
        assert_eq!((0..3).map(|t| job.span_of(t)).collect::<Vec<_>>(), [(0, 10), (0, 11), (0, 12)]);
        assert_eq!(job.assemble(&[17, 17, 28]), vec![17, 17, 28]);
        assert_eq!(job.result_ns(), vec![10, 11, 12]);
        assert_eq!(
            PrimesJob::new(Target::Each { first: 1, last: 2 }, Algo::Sieve, Split::Tasks(2)),
            Err(JobError::SplitOfRange)
        );
    }

    #[test]
    fn spans_of_a_single_n_cover_every_number_once() {
        for (n, split) in [(10, Split::Tasks(3)), (1000, Split::Size(7)), (0, Split::Auto { workers: 1 })] {
            let job = PrimesJob::new(Target::Below(n), Algo::Sieve, split).unwrap();
            let mut next = 0;
            for t in 0..job.tasks() {
                let (lo, hi) = job.span_of(t);
                assert_eq!(lo, next, "n={n} {split:?}");
                next = hi;
            }
            assert_eq!(next, n, "n={n} {split:?}");
        }
    }
}
