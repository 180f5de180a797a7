//! Trimming a store (or cache) directory to its budget, least recently used first, without
//! taking what is in use: files used within [`PRUNE_GRACE`], blobs pinned by a live
//! process, and another process's writes in progress.
//!
//! Pins live on disk, so that they hold across the processes sharing a home: a pinning
//! [`BlobStore`](super::BlobStore) writes the ids it pins, one hex id per line, to
//! `<store>/.pins/<pid>.<n>` and removes the file when dropped. A pin file whose process
//! is gone (killed, say) is removed by the next prune, as are the temporary files (names
//! starting with a dot, `.<…>.<pid>.<n>`) a dead process left half-written.

use crate::id::ContentId;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Files used this recently are never pruned: a blob just fetched for a task that is about
/// to copy it out, an output the submitter is about to print.
pub const PRUNE_GRACE: Duration = Duration::from_secs(10 * 60);

/// The pins of one store instance.
#[derive(Debug)]
pub(super) struct Pins {
    path: PathBuf,
    file: Option<std::fs::File>,
    ids: HashSet<ContentId>,
}

impl Pins {
    pub(super) fn new(store: &Path) -> Self {
        let path = store.join(".pins").join(format!("{}.{}", std::process::id(), unique()));
        Self { path, file: None, ids: HashSet::new() }
    }

    /// The file the pins are written to.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn add(&mut self, id: ContentId) -> std::io::Result<()> {
        if self.ids.contains(&id) {
            return Ok(());
        }
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                super::private::private_dir(dir)?;
            }
            self.file = Some(super::private::private_file(&self.path)?);
        }
        if let Some(f) = &mut self.file {
            writeln!(f, "{id}")?;
        }
        self.ids.insert(id);
        Ok(())
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

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

/// The names (hex ids) pinned by live processes; pin files of dead ones are removed.
fn live_pins(dir: &Path) -> HashSet<String> {
    let mut pinned = HashSet::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.split('.').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_none_or(|p| !alive(p)) {
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(e.path()) {
            pinned.extend(text.lines().map(str::to_string));
        }
    }
    pinned
}

/// The process writing a temporary file `.<…>.<pid>.<n>`.
fn writer(name: &str) -> Option<u32> {
    let mut parts = name.rsplit('.');
    parts.next()?;
    parts.next()?.parse().ok()
}

/// A number not handed out before in this process, for temporary names.
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}
