//! Python jobs (`mesh.pp`, `mesh.Executor`): calls of a user's Python function, one per
//! task, run by warm Python workers on nodes that allow runs (and on the submitter's own
//! node). The node never looks into a pickle: the job's code and each task's arguments are
//! opaque bytes that the `mesh` Python package writes and its `_worker.py` reads. What the
//! node checks is their framing and their size. `docs/python.md` is the specification.

use super::bounds::{JobError, MAX_RETRIES, MAX_TASKS};
use super::errors::{Malformed, Unfit};
use super::run::Captured;
use crate::core::Needs;
use crate::id::ContentId;
use crate::store::MAX_BLOB;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest `timeout_ms` a job may set.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most a task's captured output (what it printed) may hold.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// A job of Python calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonJob {
    pub tasks: u64,
    /// A [`PyTasks`] blob: each task's payload.
    pub inputs: ContentId,
    /// The job's code, as the package's `_worker.py` loads it.
    pub code: ContentId,
    /// A task running longer is ended, its worker process killed and replaced.
    pub timeout_ms: Option<u64>,
    /// Failed runs (a crash, a timeout, code this node cannot load) a task may have.
    pub retries: u32,
    /// Always `native` and `python`; plus the job's requirements.
    pub needs: Needs,
}

impl PythonJob {
    pub fn validate(&self) -> Result<(), JobError> {
        let bad = |what: String| Err(JobError::Invalid { kind: "python", what });
        if self.tasks > MAX_TASKS {
            return bad(format!("{} tasks; at most {MAX_TASKS}", self.tasks));
        }
        if self.retries > MAX_RETRIES {
            return bad(format!("{} retries; at most {MAX_RETRIES}", self.retries));
        }
        if let Some(ms) = self.timeout_ms
            && (ms == 0 || ms > MAX_TIMEOUT.as_millis() as u64)
        {
            return bad(format!("a timeout of {ms} ms; from 1 ms to {} s", MAX_TIMEOUT.as_secs()));
        }
        if !self.needs.native || !self.needs.python {
            return bad("needs that are not native Python (needs.native and needs.python must be true)".into());
        }
        if !self.needs.is_valid() {
            return bad("requirements out of bounds".into());
        }
        Ok(())
    }

    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms.map(Duration::from_millis)
    }
}

/// A job's task list: for each task, a 4-byte big-endian length and that many bytes.
#[derive(Debug)]
pub struct PyTasks {
    bytes: Vec<u8>,
    /// Where each task's payload starts and ends in `bytes`.
    spans: Vec<(usize, usize)>,
}

impl PyTasks {
    /// Splits a task list that must hold exactly `tasks` payloads.
    pub fn parse(bytes: Vec<u8>, tasks: u64) -> Result<Self, Malformed> {
        let mut spans = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let Some(len) = bytes.get(at..at + 4) else {
                return Err(Malformed::LengthCut { at: at as u64 });
            };
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let (start, end) = (at + 4, at + 4 + len);
            if end > bytes.len() {
                return Err(Malformed::PastEnd { task: spans.len() as u64, len: len as u64 });
            }
            spans.push((start, end));
            at = end;
        }
        if spans.len() as u64 != tasks {
            return Err(Malformed::Count { found: spans.len() as u64, tasks });
        }
        Ok(Self { bytes, spans })
    }

    /// Task `i`'s payload.
    pub fn get(&self, i: u64) -> Option<&[u8]> {
        let &(start, end) = self.spans.get(usize::try_from(i).ok()?)?;
        Some(&self.bytes[start..end])
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// A task list of these payloads (the package writes the same in Python).
    pub fn encode<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            // Invariant: payloads come from a blob of at most MAX_BLOB bytes.
            out.extend_from_slice(&u32::try_from(p.len()).expect("a payload under 4 GiB").to_be_bytes());
            out.extend_from_slice(p);
        }
        out
    }
}

/// What a Python task did: returned a value or raised (both pickled by the worker), and
/// what it printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PyOutput {
    /// The function raised: `value` holds the exception and its traceback.
    pub raised: bool,
    pub value: Captured,
    /// What the task printed (stdout and stderr), at most [`OUTPUT_CAP`] bytes.
    pub output: String,
}

impl PyOutput {
    /// Whether this output is one a Python task could have produced: a value blob of at
    /// most [`MAX_BLOB`] bytes, output within [`OUTPUT_CAP`]. The submitter's node screens
    /// results with this before it fetches anything.
    pub fn fits(&self) -> Result<(), Unfit> {
        if self.value.blob().is_some() && self.value.len() > MAX_BLOB {
            return Err(Unfit::ValueTooLarge { len: self.value.len(), max: MAX_BLOB });
        }
        if self.output.len() > OUTPUT_CAP + 64 {
            return Err(Unfit::PrintedTooMuch { len: self.output.len(), max: OUTPUT_CAP });
        }
        Ok(())
    }

    /// Blobs the submitter must fetch before the task counts: a large value.
    pub fn blobs(&self) -> Vec<ContentId> {
        self.value.blob().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_list_splits_into_its_payloads_or_says_what_is_wrong() {
        let list = PyTasks::encode([&b"abc"[..], b"", b"\x00\x01"]);
        let t = PyTasks::parse(list.clone(), 3).unwrap();
        assert_eq!(
            (t.get(0), t.get(1), t.get(2), t.get(3)),
            (Some(&b"abc"[..]), Some(&b""[..]), Some(&b"\x00\x01"[..]), None)
        );
        assert_eq!(t.len(), 3);
        assert_eq!(PyTasks::parse(list.clone(), 2).unwrap_err(), Malformed::Count { found: 3, tasks: 2 });
        assert_eq!(
            PyTasks::parse(list[..list.len() - 1].to_vec(), 3).unwrap_err(),
            Malformed::PastEnd { task: 2, len: 2 }
        );
        assert_eq!(PyTasks::parse(vec![0, 0, 1], 1).unwrap_err(), Malformed::LengthCut { at: 0 });
        assert!(PyTasks::parse(Vec::new(), 0).unwrap().is_empty());
    }

    #[test]
    fn a_job_must_be_native_python_within_bounds() {
        let job = PythonJob {
            tasks: 3,
            inputs: ContentId::of(b"i"),
            code: ContentId::of(b"c"),
            timeout_ms: Some(1000),
            retries: 1,
            needs: Needs::python(Vec::new()),
        };
        assert!(job.validate().is_ok());
        for (broken, why) in [
            (PythonJob { needs: Needs::native(Vec::new()), ..job.clone() }, "native Python"),
            (PythonJob { timeout_ms: Some(0), ..job.clone() }, "timeout"),
            (PythonJob { retries: MAX_RETRIES + 1, ..job.clone() }, "retries"),
            (PythonJob { tasks: MAX_TASKS + 1, ..job.clone() }, "tasks"),
        ] {
            assert!(broken.validate().unwrap_err().to_string().contains(why), "{why}");
        }
    }
}
