//! Why a Python task did not give a result.

use crate::exec::fetch::BlobError;
use crate::job::Malformed;
use std::time::Duration;

/// Why a Python task did not give a result. (A function that raised gave one.)
#[derive(Debug, Clone, thiserror::Error)]
pub enum PyError {
    #[error("this node does not run programs for others (mesh join --allow-run)")]
    NotAllowed,
    #[error("this node has no Python 3 ({0}; set MESH_PYTHON to its interpreter)")]
    NoPython(String),
    #[error("the job's task list: {0}")]
    Tasks(BlobError),
    #[error("the job's code: {0}")]
    Code(BlobError),
    #[error("the job's task list is damaged: {0}")]
    Damaged(Malformed),
    #[error("task {task} is beyond the job's {tasks} tasks")]
    BeyondTasks { task: u64, tasks: usize },
    #[error("the Python worker could not start: {0}")]
    Start(String),
    #[error("the Python worker died while running the task ({0})")]
    Died(String),
    #[error("the Python worker broke the protocol: {0}")]
    Protocol(crate::protocol::worker::FrameError),
    #[error("timed out after {:.1} s; its worker was ended", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("the job was cancelled")]
    Cancelled,
    /// The worker could not set the task up: a module this node lacks, a pickle its
    /// Python cannot read. The message is the worker's.
    #[error("on this node's Python {python}: {message}")]
    Setup { python: String, message: String },
    #[error("storing its value: {0}")]
    Store(String),
}
