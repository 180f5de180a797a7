//! Trimming a store (or cache) directory to its budget, least recently used first, without
//! taking what is in use: files used within [`PRUNE_GRACE`], blobs pinned by a live
//! process, and another process's writes in progress.
//!
//! Pins live on disk, so that they hold across the processes sharing a home: a pinning
//! [`BlobStore`](super::BlobStore) writes the ids it pins, one hex id per line, to
//! `<store>/.pins/<pid>.<n>` and removes the file when dropped. A pin file whose process
//! is gone (killed, say) is removed by the next prune, as are the temporary files (names
//! starting with a dot, `.<…>.<pid>.<n>`) a dead process left half-written.

use super::{ContentId, StoreError, unique};
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

    pub(super) fn add(&mut self, id: ContentId) -> Result<(), StoreError> {
        if self.ids.contains(&id) {
            return Ok(());
        }
        let io = |source| StoreError::Io { path: self.path.clone(), source };
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            self.file = Some(std::fs::File::create(&self.path).map_err(io)?);
        }
        if let Some(f) = &mut self.file {
            writeln!(f, "{id}").map_err(io)?;
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

fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::super::BlobStore;
    use super::*;

    fn temp_home(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mesh-prune-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn age(path: &Path, secs: u64) {
        let f = std::fs::File::options().append(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs)).unwrap();
    }

    const HOUR: u64 = 3600;

    #[test]
    fn prune_keeps_the_most_recently_used_within_budget() {
        let home = temp_home("lru");
        let s = BlobStore::new(&home);
        let old = s.put(&[1u8; 100]).unwrap();
        let mid = s.put(&[2u8; 100]).unwrap();
        let new = s.put(&[3u8; 100]).unwrap();
        for (id, hours) in [(old, 3), (mid, 2), (new, 1)] {
            age(&s.path(id), hours * HOUR);
        }
        s.read(old).unwrap(); // reading makes it the most recently used
        assert_eq!(prune(&home.join("blobs"), 250).unwrap(), (1, 100));
        assert!(!s.contains(mid), "the least recently used went");
        assert!(s.contains(old) && s.contains(new));
        assert_eq!(prune(&home.join("blobs"), 250).unwrap(), (0, 0));
        assert_eq!(prune(&home.join("nothing-here"), 0).unwrap(), (0, 0));
        std::fs::remove_dir_all(&home).unwrap();
    }

    #[test]
    fn pinned_and_recently_used_blobs_stay_beyond_the_budget() {
        let home = temp_home("pins");
        let dir = home.join("blobs");
        let pinning = BlobStore::pinning(&home);
        let sent = pinning.put(&[1u8; 100]).unwrap();
        let plain = BlobStore::new(&home);
        let fetched = plain.put(&[2u8; 100]).unwrap();
        let waiting = plain.put(&[3u8; 100]).unwrap();
        let stale = plain.put(&[4u8; 100]).unwrap();
        pinning.pin(waiting).unwrap();
        for id in [sent, waiting, stale] {
            age(&plain.path(id), 5 * HOUR);
        }
        // A budget of nothing: only the stale blob may go. The pinned ones are old, the
        // fetched one is new.
        assert_eq!(prune(&dir, 0).unwrap(), (1, 100));
        assert!(!plain.contains(stale));
        assert!(plain.contains(sent) && plain.contains(waiting) && plain.contains(fetched));
        drop(pinning);
        assert_eq!(std::fs::read_dir(dir.join(".pins")).unwrap().count(), 0, "its pins went with it");
        assert_eq!(prune(&dir, 0).unwrap(), (2, 200), "unpinned, the old ones go");
        assert!(plain.contains(fetched), "still within the grace");
        std::fs::remove_dir_all(&home).unwrap();
    }

    #[test]
    fn what_a_dead_process_left_is_cleared() {
        let home = temp_home("dead");
        let dir = home.join("blobs");
        let s = BlobStore::new(&home);
        let id = s.put(b"pinned by the dead").unwrap();
        age(&s.path(id), 5 * HOUR);
        // No process has pid 4194305 (above Linux's largest, 2^22).
        let dead = 4_194_305;
        std::fs::create_dir_all(dir.join(".pins")).unwrap();
        std::fs::write(dir.join(".pins").join(format!("{dead}.0")), format!("{id}\n")).unwrap();
        std::fs::write(dir.join(format!(".in.{dead}.3")), b"half a fetch").unwrap();
        let mine = dir.join(format!(".in.{}.3", std::process::id()));
        std::fs::write(&mine, b"a fetch in progress").unwrap();
        assert_eq!(prune(&dir, 0).unwrap(), (1, 18), "the dead's pin holds nothing");
        assert!(!dir.join(format!(".in.{dead}.3")).exists(), "its half-written fetch went");
        assert!(mine.exists(), "a live process's write stays");
        assert_eq!(std::fs::read_dir(dir.join(".pins")).unwrap().count(), 0);
        std::fs::remove_dir_all(&home).unwrap();
    }
}
