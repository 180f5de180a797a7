//! Why a job's blob or a task's result cannot be used: typed, so that callers branch on the
//! cause and a path's own error ([`PathError`]) is kept, not flattened into text.
//!
//! * [`PathError`]: a path that may not travel (it would leave a task's directory).
//! * [`Malformed`]: a task list or a manifest, as read from a blob (a peer's, a file's).
//! * [`Unfit`]: a result that the job's tasks could not have produced (the owner screens
//!   results from the mesh with it before it fetches anything they name).

/// A path that may not travel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("'{0}' is absolute; give a path relative to the current directory")]
    Absolute(String),
    #[error("'{0}' goes up with '..'; give a path inside the current directory")]
    Parent(String),
    #[error("'{path}' is empty or longer than {max} bytes")]
    Length { path: String, max: usize },
    #[error("{count} files to send; at most {max}")]
    TooMany { count: usize, max: usize },
}

/// A task list or a manifest that does not decode or does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Not the CBOR this blob must be; the decoder's message.
    #[error("not a valid {what}: {cause}")]
    Cbor { what: &'static str, cause: String },
    /// A path in it would leave a task's directory, or there are too many.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A Python task list's 4-byte length stops before its end.
    #[error("a length cut short at byte {at}")]
    LengthCut { at: u64 },
    /// A Python task list's payload runs past its end.
    #[error("task {task} claims {len} bytes past the end")]
    PastEnd { task: u64, len: u64 },
    /// The task list holds another number of tasks than the job says.
    #[error("{found} payloads for {tasks} tasks")]
    Count { found: u64, tasks: u64 },
    /// Reading the blob failed.
    #[error("reading it: {0}")]
    Read(String),
}

impl Malformed {
    /// A CBOR decoder's error, for a blob holding `what`.
    pub(crate) fn cbor(what: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Cbor { what, cause: e.to_string() }
    }
}

/// A task's result that its job could not have produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unfit {
    #[error("an output of {len} bytes; at most {max}")]
    OutputTooLarge { len: u64, max: u64 },
    #[error("{got} returned files for {patterns} --return patterns")]
    TooManyReturns { got: usize, patterns: usize },
    #[error("a returned file: {0}")]
    ReturnPath(#[from] PathError),
    #[error("'{0}' returned twice")]
    ReturnedTwice(String),
    #[error("'{path}' is {len} bytes; at most {max}")]
    ReturnTooLarge { path: String, len: u64, max: u64 },
    #[error("a value of {len} bytes; at most {max}")]
    ValueTooLarge { len: u64, max: u64 },
    #[error("{len} bytes of output; at most {max}")]
    PrintedTooMuch { len: usize, max: usize },
    #[error("a result of another kind of job")]
    OtherKind,
}
