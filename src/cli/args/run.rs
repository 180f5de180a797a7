//! `mesh run`'s arguments: GNU parallel's conventions, and mesh's own for programs.

use super::common::SubmitOpts;
use crate::job::wasm::MAX_RETRIES;
use clap::Args;
use std::path::PathBuf;

/// `mesh run`: see `cli::run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Send a file or a directory (relative path, repeatable) to every node that runs a
    /// task; it appears in each task's directory under the same path.
    #[arg(long = "send", value_name = "FILE|DIR")]
    pub send: Vec<PathBuf>,

    /// Send each task's input, a relative path to a file, with the task.
    #[arg(long)]
    pub send_inputs: bool,

    /// Bring back a file each task leaves in its directory (repeatable; replacement strings
    /// allowed, e.g. '{.}.flac'). A task that does not produce it fails.
    #[arg(long = "return", value_name = "PATTERN")]
    pub returns: Vec<String>,

    /// Where returned files go [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,

    /// Write GNU parallel's job log to FILE, a line per task as it finishes (not with
    /// --detach: nobody is there to write it).
    #[arg(long, value_name = "FILE", conflicts_with = "detach")]
    pub joblog: Option<PathBuf>,

    /// Skip the tasks the --joblog records as run, and append to it.
    #[arg(long, requires = "joblog")]
    pub resume: bool,

    /// Like --resume, but run again the tasks the --joblog records as failed.
    #[arg(long, requires = "joblog", conflicts_with = "resume")]
    pub resume_failed: bool,

    /// Time allowed per task: SECS, or N% of the median time of the tasks that
    /// succeeded so far on the node. Its whole process group is ended (SIGTERM, then
    /// SIGKILL).
    #[arg(long, value_name = "SECS|N%", value_parser = parse_run_timeout)]
    pub timeout: Option<crate::job::run::RunTimeout>,

    /// Times a failed task (a non-zero exit) is run again, on another node when there is one.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_RETRIES)))]
    pub retries: u32,

    /// Stop the whole job early: never, now,fail=N[%] or now,success=N[%].
    #[arg(long, value_name = "WHEN", default_value = "never", value_parser = parse_halt)]
    pub halt: HaltArg,

    /// Address-space limit of each task's processes, in MiB.
    #[arg(long, value_name = "MB",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::job::run::MAX_MEMORY_MB)))]
    pub memory: Option<u32>,

    /// A requirement of the nodes that run its tasks (repeatable): label=NAME,
    /// arch=NAME, os=NAME, mem>=MIB or cores>=N.
    #[arg(long = "require", value_name = "REQ")]
    pub require: Vec<crate::core::Requirement>,

    #[command(flatten)]
    pub common: SubmitOpts,

    /// The command, its arguments, then `::: INPUT...` or `:::: FILE`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub words: Vec<String>,
}

/// `--halt`: `never` is no halt rule at all.
#[derive(Debug, Clone, Copy)]
pub struct HaltArg(pub Option<crate::core::Halt>);

fn parse_halt(s: &str) -> Result<HaltArg, String> {
    crate::core::parse_halt(s).map(HaltArg).map_err(|e| e.to_string())
}

/// Parses `--timeout` of `mesh run`: seconds, or a percentage of the median task time.
fn parse_run_timeout(s: &str) -> Result<crate::job::run::RunTimeout, String> {
    use crate::job::run::{MAX_TIMEOUT_PERCENT, RunTimeout};
    if let Some(p) = s.strip_suffix('%') {
        return match p.parse::<u32>() {
            Ok(p) if p > 0 && p <= MAX_TIMEOUT_PERCENT => Ok(RunTimeout::PercentOfMedian { percent: p }),
            _ => Err(format!("'{s}' is not a timeout; give N% with N from 1 to {MAX_TIMEOUT_PERCENT}")),
        };
    }
    let max = crate::job::run::MAX_TIMEOUT.as_secs_f64();
    match s.parse::<f64>() {
        Ok(t) if t > 0.0 && t <= max => Ok(RunTimeout::Fixed { ms: (t * 1000.0).ceil() as u64 }),
        _ => Err(format!("'{s}' is not a timeout; give seconds (more than 0, at most {max}) or N%")),
    }
}
