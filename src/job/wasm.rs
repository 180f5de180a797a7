//! The WebAssembly job: a user's WASI command module, run once per line of an input.
//!
//! The spec names the module and the input by content id; nodes fetch both by that id
//! (`protocol::blob`) and check their hashes, so a spec is a few hundred bytes whatever
//! the module's size or the number of inputs. Task `i` runs the module with line `i` of
//! the input on its stdin.

use super::bounds::{JobError, MAX_TASKS};
use crate::core::Needs;
use crate::id::ContentId;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Bounds users can set, and their defaults.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_MEMORY_MB: u32 = 256;
pub const MAX_MEMORY_MB: u32 = 4096;
pub const DEFAULT_RETRIES: u32 = 2;
pub use super::bounds::MAX_RETRIES;
/// The longest input line, in bytes.
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WasmJob {
    /// The module's bytes (always binary WebAssembly; text is converted by the submitter).
    pub module: ContentId,
    /// The input: one task per line.
    pub input: ContentId,
    pub tasks: u64,
    /// Run time allowed per task.
    pub timeout_ms: u64,
    /// Linear memory allowed per task.
    pub memory_mb: u32,
    pub retries: u32,
    /// `--require`ments of the nodes that run it (never `native`).
    #[serde(default)]
    pub needs: Needs,
}

impl WasmJob {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn memory_bytes(&self) -> usize {
        (self.memory_mb as usize).saturating_mul(1 << 20)
    }

    pub fn validate(&self) -> Result<(), JobError> {
        let bad = |what: String| Err(JobError::Invalid { kind: "wasm", what });
        if self.tasks > MAX_TASKS {
            return bad(format!("{} tasks; at most {MAX_TASKS}", self.tasks));
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT.as_millis() as u64 {
            return bad(format!("timeout {} ms", self.timeout_ms));
        }
        if self.memory_mb == 0 || self.memory_mb > MAX_MEMORY_MB {
            return bad(format!("memory {} MiB", self.memory_mb));
        }
        if self.retries > MAX_RETRIES {
            return bad(format!("{} retries", self.retries));
        }
        if self.needs.native || !self.needs.is_valid() {
            return bad("requirements".into());
        }
        Ok(())
    }
}

/// A job's input split into lines: task `i` gets line `i`. Lines end at `\n`; a `\r`
/// before it is dropped, and a final newline does not start another task.
#[derive(Debug)]
pub struct InputLines {
    bytes: Vec<u8>,
    /// Where each line starts; one more entry marks the end of the last line.
    starts: Vec<usize>,
}

impl InputLines {
    pub fn parse(bytes: Vec<u8>) -> Result<Self, JobError> {
        let mut starts = vec![0];
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' {
                starts.push(i + 1);
            }
        }
        if starts.last() != Some(&bytes.len()) {
            starts.push(bytes.len() + 1); // an unterminated last line
        }
        let lines = Self { bytes, starts };
        if lines.len() > MAX_TASKS {
            return Err(JobError::TooManyLines(lines.len()));
        }
        if let Some(i) = (0..lines.len()).find(|&i| lines.get(i).is_some_and(|l| l.len() > MAX_LINE)) {
            return Err(JobError::LineTooLong { line: i + 1, max: MAX_LINE });
        }
        Ok(lines)
    }

    pub fn len(&self) -> u64 {
        self.starts.len() as u64 - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Line `i`, without its line ending.
    pub fn get(&self, i: u64) -> Option<&[u8]> {
        let i = usize::try_from(i).ok()?;
        let (start, next) = (*self.starts.get(i)?, *self.starts.get(i + 1)?);
        let end = (next - 1).min(self.bytes.len());
        let line = &self.bytes[start..end];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// Line `i` as text for messages: lossy UTF-8, cut to about 60 characters.
    pub fn describe(&self, i: u64) -> String {
        let text = String::from_utf8_lossy(self.get(i).unwrap_or_default()).into_owned();
        match text.char_indices().nth(60) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        let l = InputLines::parse(s.as_bytes().to_vec()).unwrap();
        (0..l.len()).map(|i| String::from_utf8(l.get(i).unwrap().to_vec()).unwrap()).collect()
    }

    #[test]
    fn lines_split_like_a_text_file() {
        assert_eq!(lines(""), Vec::<String>::new());
        assert_eq!(lines("a"), ["a"]);
        assert_eq!(lines("a\n"), ["a"]);
        assert_eq!(lines("a\nb"), ["a", "b"]);
        assert_eq!(lines("a\r\nb\r\n"), ["a", "b"]);
        assert_eq!(lines("\n\nx\n"), ["", "", "x"]);
        let l = InputLines::parse(b"x\n".to_vec()).unwrap();
        assert_eq!(l.get(1), None);
        assert_eq!(l.describe(0), "x");
        let long = InputLines::parse("é".repeat(100).into_bytes()).unwrap();
        assert_eq!(long.describe(0).chars().count(), 61);
    }

    #[test]
    fn specs_are_bounded() {
        let ok = WasmJob {
            module: ContentId::of(b"m"),
            input: ContentId::of(b"i"),
            tasks: 3,
            timeout_ms: 1000,
            memory_mb: 64,
            retries: 2,
            needs: Default::default(),
        };
        assert!(ok.validate().is_ok());
        for bad in [
            WasmJob { tasks: MAX_TASKS + 1, ..ok.clone() },
            WasmJob { timeout_ms: 0, ..ok.clone() },
            WasmJob { memory_mb: MAX_MEMORY_MB + 1, ..ok.clone() },
            WasmJob { retries: MAX_RETRIES + 1, ..ok.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
