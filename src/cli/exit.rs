//! How a command ends: its exit status, and the error a job with failed tasks ends with.

use crate::node::{JobReport, NodeError};
use anyhow::Result;

/// How a command ended: the process's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// A job ran, but tasks failed for good (or the node running it stopped).
    Failed,
    /// Bad arguments, or a set-up error (a home, a key file, a port).
    Usage,
    /// Ctrl-C or SIGTERM during a job.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failed => 1,
            Self::Usage => 2,
            Self::Interrupted => 130,
        }
    }

    /// The status of a command that ended with `e`: a job's failure or an interruption
    /// by its type; anything else is a usage or set-up error.
    pub fn of_error(e: &anyhow::Error) -> Self {
        match (e.downcast_ref::<NodeError>(), e.downcast_ref::<JobFailed>()) {
            (Some(NodeError::Interrupted), _) => Self::Interrupted,
            (Some(NodeError::Stopped(_) | NodeError::JobDropped), _) | (None, Some(_)) => Self::Failed,
            (None, None) => Self::Usage,
        }
    }
}

/// A job ran to its end but some tasks failed: exit status 1.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {tasks} tasks failed")]
pub struct JobFailed {
    pub failed: u64,
    pub tasks: u64,
}

/// Success, or [`JobFailed`] when tasks failed for good.
pub(crate) fn exit_of(report: &JobReport) -> Result<Exit> {
    if report.failed.is_empty() {
        Ok(Exit::Success)
    } else {
        Err(JobFailed { failed: report.failures(), tasks: report.tasks }.into())
    }
}
