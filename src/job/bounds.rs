//! The bounds every job spec obeys, and the error that says a spec or its input breaks
//! one. Specs are checked against them at the edge (the CLI, the control socket, a peer's
//! grant), so the rest of the program never sees an unchecked bound.

/// Most tasks one job may have.
pub const MAX_TASKS: u64 = 1 << 24;

/// Most times a failed task may run again (`--retries`).
pub const MAX_RETRIES: u32 = 100;

/// Why a job spec or its input was refused, worded for the user.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    #[error("--tasks and --task-size split a single N; a range already makes one task per n")]
    SplitOfRange,
    #[error("--tasks must be between 1 and {MAX_TASKS}, not {0}")]
    TaskCount(u64),
    #[error("--task-size must be at least 1")]
    ZeroTaskSize,
    #[error("--task-size {0} makes more than {MAX_TASKS} tasks; use a larger size")]
    TaskSizeTooSmall(u64),
    /// A spec from elsewhere (a peer, the control socket) breaks a bound the CLI enforces.
    #[error("invalid {kind} job: {what}")]
    Invalid { kind: &'static str, what: String },
    #[error("the input has {0} lines; at most {MAX_TASKS} are allowed")]
    TooManyLines(u64),
    #[error("input line {line} is longer than {max} bytes")]
    LineTooLong { line: u64, max: usize },
    /// The task count a spec states is not the number of tasks its input or task list
    /// holds (`JobSpec::check_blobs`).
    #[error("the job states {stated} tasks, but its {what} holds {found}; the two must agree")]
    CountMismatch { what: &'static str, stated: u64, found: u64 },
    /// A job's input or task list is missing from the store, damaged or too large.
    #[error("the job's {what}: {why}")]
    Blob { what: &'static str, why: String },
    /// A job's task list does not decode or check.
    #[error("the job's {what}: {why}")]
    Malformed { what: &'static str, why: super::errors::Malformed },
}
