//! Why a WebAssembly task, its module or its input failed. These stay typed inside the
//! node; a task's failure becomes text only when its report crosses the wire
//! (`core::TaskReport`) or reaches the terminal.

use super::wasi::{LinkError, MAX_STDOUT};
use crate::id::ContentId;
use crate::job::JobError;
use crate::store::StoreError;
use std::sync::Arc;
use std::time::Duration;

/// Why a blob could not be fetched from the mesh. Shared by every worker waiting for the
/// same fetch, hence `Clone`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Every round over every candidate failed; `last` is the last peer's answer.
    #[error("cannot fetch blob {} from {peers} peer(s): {last}", .blob.fmt_short())]
    Exhausted { blob: ContentId, peers: usize, last: PeerAnswer },
    #[error("fetching blob {} took over {limit:?}", .blob.fmt_short())]
    Deadline { blob: ContentId, limit: Duration },
    /// The blob arrived whole and checked, but could not be stored.
    #[error("storing the fetched blob: {0}")]
    Store(Arc<StoreError>),
    #[error("the node stopped during the fetch")]
    NodeStopped,
    /// A bug: the fetch itself panicked. Its waiters still hear of it.
    #[error("the fetch of blob {} broke: {message}", .blob.fmt_short())]
    Panicked { blob: ContentId, message: String },
}

/// What the last peer asked for a blob answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerAnswer {
    #[error("no peer has it")]
    NobodyHasIt,
    #[error("the copy from {peer} did not match its hash")]
    Mismatch { peer: String },
    #[error("{peer} sent a chunk that does not fit a {total}-byte blob")]
    BadChunk { peer: String, total: u64 },
    /// The request itself failed (timeout, connection closed, unsupported protocol).
    #[error("{0}")]
    Transfer(String),
    /// This node runs without a network: there is nobody to ask.
    #[error("this node has no network")]
    NoNetwork,
}

/// Why a blob a task needs is not to be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlobError {
    /// Not in the store, and this node has no peers to ask (a `--local` run).
    #[error("blob {} is not on this node", .0.fmt_short())]
    NotHere(ContentId),
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

impl From<StoreError> for BlobError {
    fn from(e: StoreError) -> Self {
        Self::Store(Arc::new(e))
    }
}

/// Why a module or an input cannot be used on this node.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WasmError {
    #[error("starting the WebAssembly engine: {0}")]
    Engine(String),
    #[error("the module: {0}")]
    ModuleBlob(BlobError),
    #[error("the job's input: {0}")]
    InputBlob(BlobError),
    #[error(transparent)]
    Input(JobError),
    #[error("the module is not valid WebAssembly: {0}")]
    Invalid(String),
    #[error(
        "the module does not export {0}: it must be a WASI command module (built for wasm32-wasip1 as a program, not a library)"
    )]
    NotACommand(&'static str),
    #[error("the module cannot run: {0}")]
    Imports(#[from] LinkError),
    #[error("the module cannot be linked: {0}")]
    Link(String),
}

/// How a task's run on its input line went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunFailure {
    #[error("timed out after {:.1} s (--timeout)", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("ran out of memory: it asked for {asked_mib} MiB, over its limit of {limit_mib} MiB (--memory)")]
    OutOfMemory { asked_mib: usize, limit_mib: u32 },
    #[error("exited with code {0}")]
    Exit(i32),
    #[error("wrote more than {MAX_STDOUT} bytes to stdout")]
    OutputTooLarge,
    #[error("trapped: {0}")]
    Trapped(String),
}

/// Why a task of a WebAssembly job failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WasmTaskError {
    /// The job's input could not be had or split: no line ran.
    #[error(transparent)]
    Input(WasmError),
    #[error("task {task} is beyond the input's {lines} lines")]
    BeyondInput { task: u64, lines: u64 },
    /// The module could not be prepared for this line.
    #[error("input line {line} ('{input}'): {cause}")]
    Module { line: u64, input: String, cause: WasmError },
    /// The module ran on this line and failed; `stderr` is the tail it wrote.
    #[error("input line {line} ('{input}'): {failure}{}", stderr_note(.stderr))]
    Run { line: u64, input: String, failure: RunFailure, stderr: String },
}

fn stderr_note(tail: &str) -> String {
    if tail.is_empty() { String::new() } else { format!("; stderr: {tail}") }
}
