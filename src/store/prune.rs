//! Trimming a store (or cache) directory to its budget, least recently used first, without
//! taking what is in use: files used within [`PRUNE_GRACE`], blobs pinned by a live
//! process, and another process's writes in progress.
//!
//! A prune keeps what live pins name ([`super::pins`]). It also removes the temporary files (names starting
//! with a dot, `.<…>.<pid>.<n>`) that a dead process left half-written.

use super::pins::{alive, live_pins};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Files used this recently are never pruned: a blob just fetched for a task that is about
/// to copy it out, an output the submitter is about to print.
pub const PRUNE_GRACE: Duration = Duration::from_secs(10 * 60);

/// Removes the least recently modified files of `dir` until the rest fit in `budget`
/// bytes, keeping the ones in use (see the module doc). Returns how many files and bytes
/// went. A missing directory is empty.
pub fn prune(dir: &Path, budget: u64) -> std::io::Result<(usize, u64)> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let pinned = live_pins(&dir.join(".pins"));
    let fresh = SystemTime::now() - PRUNE_GRACE;
    let mut total = 0;
    let mut candidates: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(m) = e.metadata().ok().filter(std::fs::Metadata::is_file) else { continue };
        if name.starts_with('.') {
            // Another process's write in progress, unless that process is gone.
            if writer(&name).is_some_and(|pid| !alive(pid)) {
                let _ = std::fs::remove_file(e.path());
            }
            continue;
        }
        total += m.len();
        let used = m.modified().unwrap_or(std::time::UNIX_EPOCH);
        if used < fresh && !pinned.contains(&name) {
            candidates.push((used, m.len(), e.path()));
        }
    }
    candidates.sort();
    let mut gone = (0, 0);
    for (_, len, path) in candidates {
        if total <= budget {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
            gone = (gone.0 + 1, gone.1 + len);
        }
    }
    Ok(gone)
}

/// The process writing a temporary file `.<…>.<pid>.<n>`.
fn writer(name: &str) -> Option<u32> {
    let mut parts = name.rsplit('.');
    parts.next()?;
    parts.next()?.parse().ok()
}
