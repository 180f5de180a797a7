//! Why a WebAssembly task, its module or its input failed. These stay typed inside the
//! node; a task's failure becomes text only when its report crosses the wire
//! (`core::TaskReport`) or reaches the terminal.

use super::wasi::{LinkError, MAX_STDOUT};
use crate::exec::fetch::BlobError;
use crate::job::JobError;
use std::time::Duration;

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
    /// The node's budget for all its WebAssembly tasks could not cover the growth.
    #[error(
        "ran out of memory: it asked for {asked_mib} MiB, but this node's WebAssembly memory budget of {budget_mib} \
         MiB has {others_mib} MiB in use by other tasks; it may run later or elsewhere (--retries)"
    )]
    HostMemory { asked_mib: usize, budget_mib: usize, others_mib: usize },
    #[error("exited with code {0}")]
    Exit(i32),
    #[error("wrote more than {MAX_STDOUT} bytes to stdout")]
    OutputTooLarge,
    #[error("trapped: {0}")]
    Trapped(String),
    #[error("stopped: its job ended, or the node is leaving")]
    Cancelled,
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
