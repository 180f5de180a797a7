//! A job's input or task list, counted where the job is submitted.
//!
//! A spec states how many tasks its job has, and the scheduler splits that count; the
//! tasks themselves are in a blob the spec names: a wasm job's input (one task per line,
//! as [`InputLines`](super::InputLines) splits it), a run job's [`RunTasks`](super::run::RunTasks),
//! a Python job's [`PyTasks`](super::python::PyTasks). A count beyond the blob's would make
//! every extra task fail on each node that takes it, and its owner keep every failure; a
//! count short of it would drop tasks without a word. So a spec whose count is not its
//! blob's is refused before it runs ([`JobSpec::check_blobs`](super::JobSpec::check_blobs)).
//!
//! The blob is streamed from the store, never read whole, so a check costs a buffer
//! whatever its size: first its length (at most [`MAX_BLOB`]) and its hash, then its
//! tasks, each checked as a node will check it and then dropped.

use super::bounds::{JobError, MAX_TASKS};
use super::errors::Malformed;
use super::run::{RunTask, check_path};
use super::wasm::MAX_LINE;
use crate::id::ContentId;
use crate::store::{BlobStore, MAX_BLOB, StoreError};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};

/// How a kind of job's blob holds its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// A wasm job's input: one task per line.
    Lines,
    /// A run job's task list (CBOR).
    RunTasks,
    /// A Python job's task list: length-prefixed payloads.
    PyTasks,
}

/// The tasks blob `id` (the job's `what`) holds, as `layout` counts them. A blob that is
/// missing, damaged, too large or malformed is an error that says so.
pub(super) fn count(store: &BlobStore, id: ContentId, what: &'static str, layout: Layout) -> Result<u64, JobError> {
    let bad = |why: String| JobError::Blob { what, why };
    let path = store.path(id);
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(bad(StoreError::Missing(id).to_string())),
        Err(e) => return Err(bad(format!("{}: {e}", path.display()))),
    };
    if len > MAX_BLOB {
        return Err(bad(StoreError::TooLarge { id, len }.to_string()));
    }
    store.check(id).map_err(|e| bad(e.to_string()))?;
    let file = std::fs::File::open(&path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let reader = BufReader::with_capacity(64 * 1024, file.take(MAX_BLOB));
    match layout {
        Layout::Lines => count_lines(reader),
        Layout::RunTasks => count_run_tasks(reader).map_err(|why| JobError::Malformed { what, why }),
        Layout::PyTasks => count_payloads(reader).map_err(|why| JobError::Malformed { what, why }),
    }
}

/// The lines of a wasm job's input, counted as [`InputLines::parse`](super::InputLines::parse)
/// splits them, and within the same bounds: at most [`MAX_TASKS`] lines of at most
/// [`MAX_LINE`] bytes.
pub(crate) fn count_lines(mut r: impl BufRead) -> Result<u64, JobError> {
    let io = |e: std::io::Error| JobError::Blob { what: "input", why: e.to_string() };
    // The current line's bytes so far, and whether the last of them was a `\r`.
    let (mut lines, mut len, mut cr, mut longest) = (0u64, 0usize, false, None);
    loop {
        let buf = r.fill_buf().map_err(io)?;
        if buf.is_empty() {
            break;
        }
        for &b in buf {
            if b == b'\n' {
                if len - usize::from(cr) > MAX_LINE && longest.is_none() {
                    longest = Some(lines + 1);
                }
                (lines, len, cr) = (lines + 1, 0, false);
            } else {
                (len, cr) = (len + 1, b == b'\r');
            }
        }
        let n = buf.len();
        r.consume(n);
    }
    if len > 0 {
        // An unterminated last line.
        if len - usize::from(cr) > MAX_LINE && longest.is_none() {
            longest = Some(lines + 1);
        }
        lines += 1;
    }
    if lines > MAX_TASKS {
        return Err(JobError::TooManyLines(lines));
    }
    match longest {
        Some(line) => Err(JobError::LineTooLong { line, max: MAX_LINE }),
        None => Ok(lines),
    }
}

/// The payloads of a Python job's task list, as [`PyTasks::parse`](super::python::PyTasks::parse)
/// splits it: a 4-byte big-endian length and that many bytes, each.
pub(crate) fn count_payloads(mut r: impl Read) -> Result<u64, Malformed> {
    let (mut tasks, mut at) = (0u64, 0u64);
    let read = |e: std::io::Error| Malformed::Read(e.to_string());
    loop {
        let mut len = [0u8; 4];
        match read_full(&mut r, &mut len).map_err(read)? {
            0 => return Ok(tasks),
            4 => {}
            _ => return Err(Malformed::LengthCut { at }),
        }
        let len = u64::from(u32::from_be_bytes(len));
        let skipped = std::io::copy(&mut (&mut r).take(len), &mut std::io::sink()).map_err(read)?;
        if skipped < len {
            return Err(Malformed::PastEnd { task: tasks, len });
        }
        (tasks, at) = (tasks + 1, at + 4 + len);
    }
}

/// Reads until `buf` is full or the stream ends; how many bytes came.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The tasks of a run job's task list, each decoded and checked as
/// [`RunTasks::decode`](super::run::RunTasks::decode) checks it, one at a time.
pub(crate) fn count_run_tasks(r: impl Read) -> Result<u64, Malformed> {
    let counted: Counted = ciborium::from_reader(r).map_err(|e| Malformed::cbor("task list", e))?;
    Ok(counted.tasks.0)
}

/// A [`RunTasks`](super::run::RunTasks) blob, with its tasks counted rather than kept.
#[derive(Deserialize)]
struct Counted {
    tasks: Tally,
}

/// How many tasks a list held; each was checked and dropped.
struct Tally(u64);

impl<'de> Deserialize<'de> for Tally {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(TallyVisitor)
    }
}

struct TallyVisitor;

impl<'de> serde::de::Visitor<'de> for TallyVisitor {
    type Value = Tally;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of tasks")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Tally, A::Error> {
        let mut n = 0u64;
        while let Some(task) = seq.next_element::<RunTask>()? {
            if let Some(file) = &task.file {
                check_path(&file.path).map_err(serde::de::Error::custom)?;
            }
            n += 1;
        }
        Ok(Tally(n))
    }
}

#[cfg(test)]
mod tests;
