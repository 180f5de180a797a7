//! Job specs: what a job computes, how it splits into tasks, and what a task returns.
//!
//! Four kinds of job travel through the same scheduler:
//! * [`PrimesJob`] ([`primes`]): the built-in demo, sums of primes;
//! * [`WasmJob`] ([`wasm`]): a user's WebAssembly module run once per input line;
//! * [`RunJob`] ([`run`]): a user's own program run once per input, as GNU parallel does;
//! * [`PythonJob`] ([`python`]): calls of a user's Python function (`mesh.pp`,
//!   `mesh.Executor`), run by warm Python workers.
//!
//! Everything is parsed and checked into these types at the edge (the CLI, the control
//! socket, a peer's grant), so the rest of the program never sees an unchecked bound.
//! Where a job is submitted, its task count is also checked against the tasks its input
//! or task list holds ([`JobSpec::check_blobs`]).

mod blobs;
mod bounds;
mod errors;
pub mod primes;
pub mod python;
pub mod run;
pub mod wasm;

pub use bounds::{JobError, MAX_RETRIES, MAX_TASKS};
pub use errors::{Malformed, Unfit};

pub use primes::{Algo, MAX_RANGE_ITEMS, PrimesJob, Split, Target, parse_target};
pub use python::{PyOutput, PythonJob};
pub use run::{RunJob, RunOutput};
pub use wasm::{InputLines, WasmJob};

use crate::core::{Halt, Needs, Spec};
use crate::store::BlobStore;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Any job mesh can run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobSpec {
    Primes(PrimesJob),
    Wasm(WasmJob),
    Run(Box<RunJob>),
    Python(Box<PythonJob>),
}

impl JobSpec {
    /// Screens a result from the mesh before its owner acts on it: a result this job's
    /// tasks could not have produced ([`RunOutput::fits`]) becomes a failure, retried
    /// like any other, and nothing it names is fetched.
    pub fn screen(&self, report: &mut crate::core::TaskReport<TaskOutput>) {
        let fits = match (self, &report.outcome) {
            (_, Err(_)) => Ok(()),
            (Self::Run(job), Ok(TaskOutput::Run(out))) => out.fits(job),
            (Self::Python(_), Ok(TaskOutput::Python(out))) => out.fits(),
            (Self::Primes(_), Ok(TaskOutput::Sum(_))) | (Self::Wasm(_), Ok(TaskOutput::Bytes(_))) => Ok(()),
            _ => Err(Unfit::OtherKind),
        };
        if let Err(why) = fits {
            report.outcome = Err(format!("its result was refused: {why}"));
        }
    }

    pub fn tasks(&self) -> u64 {
        match self {
            Self::Primes(p) => p.tasks(),
            Self::Wasm(w) => w.tasks,
            Self::Run(r) => r.tasks,
            Self::Python(p) => p.tasks,
        }
    }

    /// How many times a failed task runs again before it fails for good. A primes task
    /// fails only on a bug, which a second run would repeat.
    pub fn retries(&self) -> u32 {
        match self {
            Self::Primes(_) => 0,
            Self::Wasm(w) => w.retries,
            Self::Run(r) => r.retries,
            Self::Python(p) => p.retries,
        }
    }

    /// Checks a spec that came from elsewhere (a peer, the control socket) against the
    /// bounds the CLI enforces.
    pub fn validate(&self) -> Result<(), JobError> {
        match self {
            Self::Primes(p) => p.validate(),
            Self::Wasm(w) => w.validate(),
            Self::Run(r) => r.validate(),
            Self::Python(p) => p.validate(),
        }
    }

    /// Checks the job's input (wasm) or task list (run, Python) in `store` against the
    /// spec: it must be there, sound, within its bounds, and hold exactly the tasks the
    /// spec states ([`JobError::CountMismatch`] otherwise). Called where a job is
    /// submitted, after [`validate`](Self::validate); it streams the blob (at most
    /// [`MAX_BLOB`](crate::store::MAX_BLOB) bytes) twice, to hash it and to count, so
    /// call it off an async runtime's threads.
    pub fn check_blobs(&self, store: &BlobStore) -> Result<(), JobError> {
        let (id, what, stated, layout) = match self {
            Self::Primes(_) => return Ok(()),
            Self::Wasm(w) => (w.input, "input", w.tasks, blobs::Layout::Lines),
            Self::Run(r) => (r.inputs, "task list", r.tasks, blobs::Layout::RunTasks),
            Self::Python(p) => (p.inputs, "task list", p.tasks, blobs::Layout::PyTasks),
        };
        let found = blobs::count(store, id, what, layout)?;
        if found != stated {
            return Err(JobError::CountMismatch { what, stated, found });
        }
        Ok(())
    }

    /// How the job's results reach its submitter.
    pub fn delivery(&self) -> Delivery {
        match self {
            Self::Primes(_) | Self::Wasm(_) => Delivery::InReport,
            Self::Run(_) | Self::Python(_) => Delivery::Streamed,
        }
    }

    /// The blobs the spec itself names, each with what it is. A wasm job's are all the
    /// files its tasks read; a run or Python job's task list names more
    /// ([`self_contained`](Self::self_contained)).
    pub fn named_blobs(&self) -> Vec<NamedBlob> {
        let named = |id, what| NamedBlob { id, what };
        match self {
            Self::Primes(_) => Vec::new(),
            Self::Wasm(w) => vec![named(w.module, "module"), named(w.input, "input")],
            Self::Run(r) => vec![named(r.inputs, "task list")],
            Self::Python(p) => vec![named(p.code, "code"), named(p.inputs, "task list")],
        }
    }

    /// Whether the job is worth running on when its submitter has gone: any but a Python
    /// job, whose results only the script that submitted it can use.
    pub fn outlives_submitter(&self) -> bool {
        !matches!(self, Self::Python(_))
    }

    /// Whether [`named_blobs`](Self::named_blobs) are every file the job's tasks read, so
    /// that copying them into another node's store is enough to run the job from there.
    pub fn self_contained(&self) -> bool {
        matches!(self, Self::Primes(_) | Self::Wasm(_))
    }

    pub fn kind(&self) -> JobKind {
        match self {
            Self::Primes(_) => JobKind::Primes,
            Self::Wasm(_) => JobKind::Wasm,
            Self::Run(_) => JobKind::Run,
            Self::Python(_) => JobKind::Python,
        }
    }
}

/// How a job's results reach its submitter: what the node's loop, its control socket and
/// the report ask of a job instead of matching on its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The owner keeps each task's result and hands them over in the job's report (primes
    /// sums, wasm outputs: small, and printed in input order).
    InReport,
    /// Each task's result goes to the submitter as it finishes, and the report keeps only
    /// the statistics (`mesh run`'s and Python's results: large, and wanted as they come).
    Streamed,
}

/// A blob a job's spec names, and what it is to the job ("module", "task list").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedBlob {
    pub id: crate::id::ContentId,
    pub what: &'static str,
}

/// What kind of work a job is; gossiped with a job's progress and used as the one label
/// of the task-duration metric, so there are only ever these four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Primes,
    Wasm,
    Run,
    Python,
}

impl JobKind {
    pub const ALL: [Self; 4] = [Self::Primes, Self::Wasm, Self::Run, Self::Python];

    /// Whether its tasks run sandboxed (mesh's own kernel, or WebAssembly without access
    /// to the host), so that anyone may submit them; the others run programs with the
    /// rights of each `--allow-run` node's user.
    pub fn sandboxed(self) -> bool {
        matches!(self, Self::Primes | Self::Wasm)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primes => "primes",
            Self::Wasm => "wasm",
            Self::Run => "run",
            Self::Python => "python",
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Spec for JobSpec {
    fn needs(&self) -> &Needs {
        static NONE: Needs = Needs::NONE;
        match self {
            Self::Primes(_) => &NONE,
            Self::Wasm(w) => &w.needs,
            Self::Run(r) => &r.needs,
            Self::Python(p) => &p.needs,
        }
    }

    fn halt(&self) -> Option<Halt> {
        match self {
            Self::Run(r) => r.halt,
            Self::Primes(_) | Self::Wasm(_) | Self::Python(_) => None,
        }
    }
}

/// What one task returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskOutput {
    /// A primes task: a partial or complete sum.
    Sum(u128),
    /// A WebAssembly task: what it wrote to stdout.
    Bytes(ByteBuf),
    /// A run task: how its program ended, its output and its returned files.
    Run(Box<RunOutput>),
    /// A Python task: what its function returned or raised, and what it printed.
    Python(Box<PyOutput>),
}

impl TaskOutput {
    /// The blobs the result refers to, which its owner fetches before it counts: a run
    /// task's large outputs and returned files, a Python task's large value.
    pub fn blobs(&self) -> Vec<crate::id::ContentId> {
        match self {
            Self::Run(o) => o.blobs(),
            Self::Python(o) => o.blobs(),
            Self::Sum(_) | Self::Bytes(_) => Vec::new(),
        }
    }

    pub fn sum(&self) -> Option<u128> {
        match self {
            Self::Sum(s) => Some(*s),
            Self::Bytes(_) | Self::Run(_) | Self::Python(_) => None,
        }
    }
}

impl crate::core::Payload for TaskOutput {
    fn size_hint(&self) -> usize {
        match self {
            Self::Sum(_) => 17,
            Self::Bytes(b) => b.len() + 9,
            Self::Run(r) => {
                let inline = |c: &run::Captured| if c.blob().is_some() { 48 } else { c.len() as usize + 4 };
                64 + inline(&r.stdout) + inline(&r.stderr) + r.returned.iter().map(|f| f.path.len() + 48).sum::<usize>()
            }
            Self::Python(p) => {
                let value = if p.value.blob().is_some() { 48 } else { p.value.len() as usize + 4 };
                16 + value + p.output.len()
            }
        }
    }

    fn succeeded(&self) -> bool {
        match self {
            Self::Run(r) => r.succeeded(),
            // A raised exception is a result too: the same call would raise again.
            Self::Sum(_) | Self::Bytes(_) | Self::Python(_) => true,
        }
    }
}
