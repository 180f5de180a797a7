//! When a job stops early, as GNU parallel's `--halt now,fail=N` and `now,success=N` do:
//! once enough tasks failed for good (or succeeded), the owner ends the job at once, every
//! node drops its remaining work, and the report lists the tasks that never ran.
//!
//! Only `now` is offered. Parallel's `soon` lets running tasks finish while starting no new
//! ones; on a mesh the owner cannot know which granted tasks have started, so `soon` is
//! refused with a message rather than approximated.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a halt counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HaltOn {
    /// Tasks that failed for good (after their retries).
    Failures,
    /// Tasks that succeeded.
    Successes,
}

/// How many of them halt the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HaltLimit {
    Count(u64),
    /// A percentage (1–100) of the job's tasks.
    Percent(u8),
}

/// `--halt now,fail=N|N%` or `now,success=N|N%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    pub on: HaltOn,
    pub limit: HaltLimit,
}

impl Halt {
    /// Whether `ok` successes and `failed` final failures out of `total` tasks halt the job.
    pub fn reached(&self, ok: u64, failed: u64, total: u64) -> bool {
        let n = match self.on {
            HaltOn::Failures => failed,
            HaltOn::Successes => ok,
        };
        match self.limit {
            HaltLimit::Count(c) => n >= c,
            HaltLimit::Percent(p) => n * 100 >= u64::from(p) * total && n > 0,
        }
    }

    /// Whether it stops a job on failures: such a job also fails the tasks that no live
    /// node can run, instead of waiting for one.
    pub fn on_failure(&self) -> bool {
        self.on == HaltOn::Failures
    }
}

/// A `--halt` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadHalt {
    #[error("'{0}' is not a halt; use never, now,fail=N, now,fail=N%, now,success=N or now,success=N%")]
    Syntax(String),
    #[error(
        "--halt soon is not offered: a mesh cannot tell which granted tasks have started; use now (running tasks are ended)"
    )]
    Soon,
}

/// Parses `--halt`: `never` (no halt) or `now,fail=N[%]` / `now,success=N[%]`.
pub fn parse_halt(s: &str) -> Result<Option<Halt>, BadHalt> {
    let bad = || BadHalt::Syntax(s.to_string());
    if s == "never" {
        return Ok(None);
    }
    let (when, rule) = s.split_once(',').ok_or_else(bad)?;
    match when {
        "now" => {}
        "soon" => return Err(BadHalt::Soon),
        _ => return Err(bad()),
    }
    let (what, n) = rule.split_once('=').ok_or_else(bad)?;
    let on = match what {
        "fail" => HaltOn::Failures,
        "success" => HaltOn::Successes,
        _ => return Err(bad()),
    };
    let limit = match n.strip_suffix('%') {
        Some(p) => match p.parse::<u8>() {
            Ok(p @ 1..=100) => HaltLimit::Percent(p),
            _ => return Err(bad()),
        },
        None => match n.parse::<u64>() {
            Ok(c @ 1..) => HaltLimit::Count(c),
            _ => return Err(bad()),
        },
    };
    Ok(Some(Halt { on, limit }))
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.on_failure() { "fail" } else { "success" };
        match self.limit {
            HaltLimit::Count(c) => write!(f, "now,{what}={c}"),
            HaltLimit::Percent(p) => write!(f, "now,{what}={p}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halts_parse_print_and_refuse() {
        assert_eq!(parse_halt("never"), Ok(None));
        for s in ["now,fail=1", "now,fail=10%", "now,success=3", "now,success=100%"] {
            assert_eq!(parse_halt(s).unwrap().unwrap().to_string(), s);
        }
        assert_eq!(parse_halt("soon,fail=1"), Err(BadHalt::Soon));
        for bad in ["now", "now,fail", "now,fail=0", "now,fail=101%", "now,fail=x", "later,fail=1", "now,oops=1"] {
            assert!(matches!(parse_halt(bad), Err(BadHalt::Syntax(_))), "{bad}");
        }
    }

    #[test]
    fn counts_and_percentages_of_the_job() {
        let one_failure = parse_halt("now,fail=1").unwrap().unwrap();
        assert!(!one_failure.reached(10, 0, 20) && one_failure.reached(0, 1, 20));
        let half = parse_halt("now,success=50%").unwrap().unwrap();
        assert!(!half.reached(9, 5, 20) && half.reached(10, 0, 20));
        assert!(!parse_halt("now,fail=1%").unwrap().unwrap().reached(0, 0, 0), "nothing failed, nothing halts");
    }
}
