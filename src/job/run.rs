//! The `mesh run` job: a user's own program, run once per input, the way GNU parallel
//! runs it, on whichever nodes allow runs.
//!
//! The spec is small whatever the job's size: the command template, limits and
//! requirements, and content ids of two blobs that nodes fetch once:
//! * [`RunTasks`]: per task, its input (the argument `{}` stands for), its sequence number
//!   `{#}` (kept across `--resume`) and, with `--send-inputs`, the file it names;
//! * [`Manifest`]: the files sent with `--send`, by relative path.
//!
//! [`expand`] fills the replacement strings `{}`, `{.}`, `{/}`, `{//}`, `{/.}` and `{#}`
//! as GNU parallel does; a command without any gets the input as its last argument. The
//! command runs directly (exec), never through a shell. Paths that travel (sent files,
//! inputs sent as files, returned files) are relative and stay inside the task's
//! directory: [`check_path`].

use super::bounds::{JobError, MAX_RETRIES, MAX_TASKS};
pub use super::errors::PathError;
use super::errors::{Malformed, Unfit};
use crate::core::{Halt, Needs};
use crate::id::ContentId;
use crate::store::{MAX_BLOB, MAX_FILE};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::time::Duration;

/// Arguments a command may have, and bytes in all of them.
pub const MAX_ARGS: usize = 4096;
pub const MAX_COMMAND_BYTES: usize = 256 * 1024;
/// `--return` patterns a job may have.
pub const MAX_RETURNS: usize = 64;
/// The longest path that travels, in bytes.
pub const MAX_PATH: usize = 4096;
/// Files one `--send` set may hold.
pub const MAX_SENT_FILES: usize = 100_000;
/// `--timeout` bounds: seconds, and a percentage of the median task time.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MAX_TIMEOUT_PERCENT: u32 = 100_000;
/// `--memory` bound, in MiB.
pub const MAX_MEMORY_MB: u32 = 1 << 20;

/// How long a task may run: GNU parallel's `--timeout SECS` or `--timeout N%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunTimeout {
    Fixed {
        ms: u64,
    },
    /// N% of the median time of this job's tasks that succeeded on the running node,
    /// once it has seen three.
    PercentOfMedian {
        percent: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJob {
    /// The command and its arguments, with replacement strings.
    pub command: Vec<String>,
    pub tasks: u64,
    /// A [`RunTasks`] blob.
    pub inputs: ContentId,
    /// A [`Manifest`] blob of the `--send` files, if any.
    pub files: Option<ContentId>,
    /// `--return` patterns (replacement strings allowed): files each task must leave in
    /// its directory, brought back to the submitter.
    pub returns: Vec<String>,
    pub timeout: Option<RunTimeout>,
    /// The address-space limit of each task's processes (`--memory`), in MiB.
    pub memory_mb: Option<u32>,
    pub retries: u32,
    pub halt: Option<Halt>,
    /// Always `native`; plus the job's `--require`ments.
    pub needs: Needs,
}

impl RunJob {
    pub fn validate(&self) -> Result<(), JobError> {
        let bad = |what: String| Err(JobError::Invalid { kind: "run", what });
        let bytes: usize = self.command.iter().map(String::len).sum();
        if self.command.is_empty() || self.command.len() > MAX_ARGS || bytes > MAX_COMMAND_BYTES {
            return bad(format!("a command of {} arguments and {bytes} bytes", self.command.len()));
        }
        if self.tasks > MAX_TASKS {
            return bad(format!("{} tasks; at most {MAX_TASKS}", self.tasks));
        }
        if self.returns.len() > MAX_RETURNS {
            return bad(format!("{} --return patterns; at most {MAX_RETURNS}", self.returns.len()));
        }
        if let Some(p) = self.returns.iter().find(|p| check_path(p).is_err()) {
            return bad(format!("--return {p} leaves the task's directory"));
        }
        match self.timeout {
            Some(RunTimeout::Fixed { ms }) if ms == 0 || ms > MAX_TIMEOUT.as_millis() as u64 => {
                return bad(format!("timeout {ms} ms"));
            }
            Some(RunTimeout::PercentOfMedian { percent }) if percent == 0 || percent > MAX_TIMEOUT_PERCENT => {
                return bad(format!("timeout {percent}%"));
            }
            _ => {}
        }
        if self.memory_mb.is_some_and(|m| m == 0 || m > MAX_MEMORY_MB) {
            return bad("memory limit".into());
        }
        if self.retries > MAX_RETRIES || !self.needs.native || !self.needs.is_valid() {
            return bad("retries or requirements".into());
        }
        Ok(())
    }
}

/// Every task of a run job: its argument, its sequence number and its sent input file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTasks {
    pub tasks: Vec<RunTask>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTask {
    /// `{#}`: the task's number among all inputs, from 1, as GNU parallel counts.
    pub seq: u64,
    /// The input line: what `{}` stands for.
    pub arg: String,
    /// With `--send-inputs`: the file the input names, placed at that (relative) path.
    pub file: Option<SentFile>,
}

/// A file sent to the nodes: where it goes in the task's directory, and its blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentFile {
    pub path: String,
    pub blob: ContentId,
    pub len: u64,
    pub executable: bool,
}

/// The `--send` files of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: Vec<SentFile>,
}

impl Manifest {
    /// The manifest as the blob the job names (CBOR).
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }

    /// A manifest from its blob, checked: bounded, and every path stays inside.
    pub fn decode(bytes: &[u8]) -> Result<Self, Malformed> {
        let m: Self = ciborium::from_reader(bytes).map_err(|e| Malformed::cbor("file list", e))?;
        m.check()?;
        Ok(m)
    }

    /// Checks a manifest that came from a blob: bounded, and every path stays inside.
    pub fn check(&self) -> Result<(), PathError> {
        if self.files.len() > MAX_SENT_FILES {
            return Err(PathError::TooMany { count: self.files.len(), max: MAX_SENT_FILES });
        }
        self.files.iter().try_for_each(|f| check_path(&f.path))
    }
}

impl RunTasks {
    /// The task list as the blob the job names (CBOR).
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }

    /// A task list from its blob, checked: every sent input stays inside.
    pub fn decode(bytes: &[u8]) -> Result<Self, Malformed> {
        let t: Self = ciborium::from_reader(bytes).map_err(|e| Malformed::cbor("task list", e))?;
        t.check()?;
        Ok(t)
    }

    /// Checks task lists that came from a blob: every sent input stays inside.
    pub fn check(&self) -> Result<(), PathError> {
        self.tasks.iter().filter_map(|t| t.file.as_ref()).try_for_each(|f| check_path(&f.path))
    }
}

/// How a task's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ended {
    Exit(i32),
    /// Killed by this signal (mesh's timeout, a crash, an outside kill).
    Signal(i32),
}

/// Which of a task's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Why mesh failed a task whose program it started, or could not start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RunProblem {
    #[error("command `{0}` was not found on this node")]
    NotFound(String),
    #[error("command `{command}` could not start: {reason}")]
    CannotStart { command: String, reason: String },
    /// It could not start for want of something this node lacks now (file descriptors,
    /// processes, memory, space): the node's fault, not the task's (`core::Blame::Node`).
    #[error("command `{command}` could not start on this node: {reason}")]
    NodeResources { command: String, reason: String },
    #[error("timed out after {:.1} s (--timeout); its processes were ended", *.ms as f64 / 1000.0)]
    TimedOut { ms: u64 },
    #[error("wrote more than {cap} bytes to {}; its processes were ended", if *.stream == Stream::Stdout { "stdout" } else { "stderr" })]
    TooMuchOutput { stream: Stream, cap: u64 },
    #[error("did not produce {0}, which --return promises")]
    MissingReturn(String),
    #[error("cannot return {path}: {why}")]
    BadReturn { path: String, why: String },
    /// Its job was cancelled or halted, or its node is leaving: mesh ended it.
    #[error("ended because its job was cancelled or its node left")]
    Cancelled,
}

/// A task's stdout or stderr: in the report itself, or stored as a blob when large.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Captured {
    Inline(ByteBuf),
    Blob { id: ContentId, len: u64 },
}

impl Captured {
    pub fn len(&self) -> u64 {
        match self {
            Self::Inline(b) => b.len() as u64,
            Self::Blob { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The blob this output is stored in, if it is.
    pub fn blob(&self) -> Option<ContentId> {
        match self {
            Self::Inline(_) => None,
            Self::Blob { id, .. } => Some(*id),
        }
    }
}

/// A file a task produced and `--return` brings back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Returned {
    pub path: String,
    pub blob: ContentId,
    pub len: u64,
}

/// What one run task did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutput {
    pub ended: Ended,
    /// Why mesh failed it, if it did.
    pub problem: Option<RunProblem>,
    pub stdout: Captured,
    pub stderr: Captured,
    pub returned: Vec<Returned>,
    /// When it started, in milliseconds since the Unix epoch (the runner's clock).
    pub started_ms: u64,
}

impl RunOutput {
    /// Whether it failed by its node's fault rather than its own.
    pub fn node_fault(&self) -> bool {
        matches!(self.problem, Some(RunProblem::NodeResources { .. }))
    }

    /// Exit status 0, and nothing mesh had to fail it for.
    pub fn succeeded(&self) -> bool {
        self.ended == Ended::Exit(0) && self.problem.is_none()
    }

    /// Whether this output is one a task of `job` could have produced: output blobs within
    /// [`MAX_BLOB`], no more returned files than the job's `--return` patterns, each path
    /// travelling-safe, named once and within [`MAX_FILE`]. The submitter's node screens
    /// results with this before it fetches anything, so a peer cannot make it fetch (or
    /// write) more than the job asked for. (Which pattern a path fills for a task is
    /// checked where the task's input is known: the submitter's CLI.)
    pub fn fits(&self, job: &RunJob) -> Result<(), Unfit> {
        for c in [&self.stdout, &self.stderr] {
            if c.blob().is_some() && c.len() > MAX_BLOB {
                return Err(Unfit::OutputTooLarge { len: c.len(), max: MAX_BLOB });
            }
        }
        if self.returned.len() > job.returns.len() {
            return Err(Unfit::TooManyReturns { got: self.returned.len(), patterns: job.returns.len() });
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.returned {
            check_path(&r.path)?;
            if !seen.insert(r.path.as_str()) {
                return Err(Unfit::ReturnedTwice(r.path.clone()));
            }
            if r.len > MAX_FILE {
                return Err(Unfit::ReturnTooLarge { path: r.path.clone(), len: r.len, max: MAX_FILE });
            }
        }
        Ok(())
    }

    /// Blobs the submitter must fetch before the task counts: large outputs, returned files.
    pub fn blobs(&self) -> Vec<ContentId> {
        let outputs = [self.stdout.blob(), self.stderr.blob()].into_iter().flatten();
        outputs.chain(self.returned.iter().map(|r| r.blob)).collect()
    }
}

fn to_cbor(v: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    // Invariant: writing to a Vec cannot fail, and these types always serialize.
    ciborium::into_writer(v, &mut out).expect("CBOR encoding into a Vec");
    out
}

/// A path relative to a task's directory that cannot leave it: not absolute, no `..`, not
/// empty. (`.` parts are harmless.)
pub fn check_path(p: &str) -> Result<(), PathError> {
    if p.is_empty() || p.len() > MAX_PATH || p.contains('\0') {
        return Err(PathError::Length { path: p.into(), max: MAX_PATH });
    }
    if p.starts_with('/') {
        return Err(PathError::Absolute(p.into()));
    }
    if p.split('/').any(|part| part == "..") {
        return Err(PathError::Parent(p.into()));
    }
    Ok(())
}

/// The replacement strings, longest first so `{/.}` is not read as `{/}` and `.}`.
const REPLACEMENTS: [&str; 6] = ["{//}", "{/.}", "{/}", "{.}", "{#}", "{}"];

/// Whether `command` uses any replacement string.
pub fn has_replacements(command: &[String]) -> bool {
    command.iter().any(|a| REPLACEMENTS.iter().any(|r| a.contains(r)))
}

/// The argv of one task: each replacement string filled from `input` and `seq`; the input
/// appended as the last argument when the command has none.
pub fn expand(command: &[String], input: &str, seq: u64) -> Vec<String> {
    let mut out: Vec<String> = command.iter().map(|a| fill(a, input, seq)).collect();
    if !has_replacements(command) {
        out.push(input.to_string());
    }
    out
}

/// Fills the replacement strings of one word.
pub fn fill(word: &str, input: &str, seq: u64) -> String {
    let mut out = String::with_capacity(word.len() + input.len());
    let mut rest = word;
    'outer: while !rest.is_empty() {
        if rest.starts_with('{') {
            for r in REPLACEMENTS {
                if let Some(after) = rest.strip_prefix(r) {
                    out.push_str(&replacement(r, input, seq));
                    rest = after;
                    continue 'outer;
                }
            }
        }
        let mut chars = rest.chars();
        out.extend(chars.next());
        rest = chars.as_str();
    }
    out
}

fn replacement(r: &str, input: &str, seq: u64) -> String {
    match r {
        "{}" => input.to_string(),
        "{.}" => strip_ext(input).to_string(),
        "{/}" => basename(input).to_string(),
        "{//}" => dirname(input),
        "{/.}" => strip_ext(basename(input)).to_string(),
        "{#}" => seq.to_string(),
        _ => unreachable!("only the strings of REPLACEMENTS are passed"),
    }
}

/// GNU parallel's `s:\.[^/.]*$::`: a last extension goes, dot and all.
fn strip_ext(s: &str) -> &str {
    match s.rfind('.') {
        Some(i) if !s[i + 1..].contains('/') => &s[..i],
        _ => s,
    }
}

/// Everything after the last `/`.
fn basename(s: &str) -> &str {
    s.rfind('/').map_or(s, |i| &s[i + 1..])
}

/// Perl's `File::Basename::dirname`, which GNU parallel uses: `.` for a bare name, `/`
/// at the root, trailing slashes ignored.
fn dirname(s: &str) -> String {
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        return if s.is_empty() { ".".into() } else { "/".into() };
    }
    match trimmed.rfind('/') {
        None => ".".into(),
        Some(i) => {
            let d = trimmed[..i].trim_end_matches('/');
            if d.is_empty() { "/".into() } else { d.into() }
        }
    }
}

#[cfg(test)]
mod tests;
