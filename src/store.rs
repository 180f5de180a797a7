//! The content-addressed blob store under `<home>/blobs/`: WebAssembly modules and job
//! inputs, each stored once under the hex of its blake3 hash.
//!
//! Invariants:
//! * a blob file is complete and matches its name: writes go to a temporary file that is
//!   renamed into place, and [`BlobStore::read`] checks the hash of what it reads (once per
//!   process per blob), so a truncated or corrupted file is deleted and fetched again rather
//!   than used;
//! * blobs are at most [`MAX_BLOB`] bytes, and a node keeps at most [`STORE_BUDGET`] bytes
//!   of them: [`prune`] removes the least recently used when a node starts. Reading a blob
//!   marks it used.
//!
//! The store is shared by every process that uses the same home: `mesh submit` writes a
//! job's module and input here, and the `mesh join` node under that home reads them.

use crate::id::ContentId;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The largest blob (module or input) the store accepts.
pub const MAX_BLOB: u64 = 64 << 20;

/// The most bytes of blobs a node keeps between runs.
pub const STORE_BUDGET: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("blob {0} is not in the store")]
    Missing(ContentId),
    #[error("blob {id} is {len} bytes; at most {MAX_BLOB} are allowed")]
    TooLarge { id: ContentId, len: u64 },
    #[error("blob {0} on disk does not match its hash; it was removed")]
    Corrupt(ContentId),
    #[error("blob store {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    /// Blobs whose file this process has read and checked.
    verified: Mutex<HashSet<ContentId>>,
}

impl BlobStore {
    /// The store of a home directory; the directory is created on first write.
    pub fn new(home: &Path) -> Self {
        Self { dir: home.join("blobs"), verified: Mutex::new(HashSet::new()) }
    }

    pub fn path(&self, id: ContentId) -> PathBuf {
        self.dir.join(id.to_string())
    }

    pub fn contains(&self, id: ContentId) -> bool {
        self.path(id).is_file()
    }

    /// Stores `bytes` and returns their id. Storing a blob that is already there is cheap.
    pub fn put(&self, bytes: &[u8]) -> Result<ContentId, StoreError> {
        let id = ContentId::of(bytes);
        self.put_verified(id, bytes)?;
        Ok(id)
    }

    /// Stores bytes whose hash the caller has already checked to be `id`.
    pub fn put_verified(&self, id: ContentId, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.len() as u64 > MAX_BLOB {
            return Err(StoreError::TooLarge { id, len: bytes.len() as u64 });
        }
        let path = self.path(id);
        // A file already there is kept only if it is sound; a damaged one is replaced.
        let sound = path.is_file() && (self.lock().contains(&id) || self.read(id).is_ok());
        if sound {
            touch(&path);
        } else {
            let io = |source| StoreError::Io { path: path.clone(), source };
            std::fs::create_dir_all(&self.dir).map_err(io)?;
            let tmp = self.dir.join(format!(".{id}.{}.{}", std::process::id(), unique()));
            let written = std::fs::File::create(&tmp).and_then(|mut f| {
                f.write_all(bytes)?;
                f.sync_all()
            });
            if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(e));
            }
        }
        self.lock().insert(id);
        Ok(())
    }

    /// Reads a whole blob, checking its hash the first time this process reads it.
    pub fn read(&self, id: ContentId) -> Result<Vec<u8>, StoreError> {
        let path = self.path(id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::Missing(id)),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        touch(&path);
        if !self.lock().contains(&id) {
            if ContentId::of(&bytes) != id {
                let _ = std::fs::remove_file(&path);
                return Err(StoreError::Corrupt(id));
            }
            self.lock().insert(id);
        }
        Ok(bytes)
    }

    /// Reads up to `len` bytes at `offset`, and the blob's total size, for serving a chunk
    /// to a peer. The peer checks the hash of the whole.
    pub fn read_chunk(&self, id: ContentId, offset: u64, len: u32) -> Result<(u64, Vec<u8>), StoreError> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.path(id);
        let io = |source| StoreError::Io { path: path.clone(), source };
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::Missing(id)),
            Err(e) => return Err(io(e)),
        };
        let total = f.metadata().map_err(io)?.len();
        let mut buf = Vec::with_capacity(len.min(1 << 20) as usize);
        f.seek(SeekFrom::Start(offset.min(total))).map_err(io)?;
        f.take(u64::from(len)).read_to_end(&mut buf).map_err(io)?;
        Ok((total, buf))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<ContentId>> {
        // A panic while holding this lock cannot leave the set inconsistent: recover it.
        self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Removes the least recently modified files of `dir` until the rest fit in `budget`
/// bytes. Returns how many files and bytes went. A missing directory is empty.
pub fn prune(dir: &Path, budget: u64) -> std::io::Result<(usize, u64)> {
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| {
                // Names starting with a dot are other processes' writes in progress.
                if e.file_name().to_string_lossy().starts_with('.') {
                    return None;
                }
                let m = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
                Some((m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len(), e.path()))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    let mut gone = (0, 0);
    for (_, len, path) in files {
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

/// Marks a file as the most recently used, for [`prune`].
pub fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_home(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mesh-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn put_read_and_chunks() {
        let home = temp_home("rw");
        let s = BlobStore::new(&home);
        let id = s.put(b"hello world").unwrap();
        assert_eq!(id, ContentId::of(b"hello world"));
        assert!(s.contains(id));
        assert_eq!(s.read(id).unwrap(), b"hello world");
        assert_eq!(s.read_chunk(id, 6, 100).unwrap(), (11, b"world".to_vec()));
        assert_eq!(s.read_chunk(id, 50, 4).unwrap(), (11, Vec::new()));
        let other = ContentId::of(b"nope");
        assert!(matches!(s.read(other), Err(StoreError::Missing(_))));
        std::fs::remove_dir_all(&home).unwrap();
    }

    #[test]
    fn prune_keeps_the_most_recently_used_within_budget() {
        let home = temp_home("prune");
        let s = BlobStore::new(&home);
        let old = s.put(&[1u8; 100]).unwrap();
        let mid = s.put(&[2u8; 100]).unwrap();
        let new = s.put(&[3u8; 100]).unwrap();
        let t = std::time::SystemTime::now();
        for (id, age) in [(old, 300), (mid, 200), (new, 100)] {
            let f = std::fs::File::options().append(true).open(s.path(id)).unwrap();
            f.set_modified(t - std::time::Duration::from_secs(age)).unwrap();
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
    fn a_corrupted_file_is_detected_and_removed() {
        let home = temp_home("bad");
        let id = BlobStore::new(&home).put(b"precious").unwrap();
        std::fs::write(BlobStore::new(&home).path(id), b"tampered").unwrap();
        let fresh = BlobStore::new(&home); // a new process checks again
        assert!(matches!(fresh.read(id), Err(StoreError::Corrupt(_))));
        assert!(!fresh.contains(id), "the bad file is gone, so it will be fetched again");
        // Storing the blob again over a damaged copy replaces the copy.
        std::fs::write(fresh.path(id), b"tampered").unwrap();
        assert_eq!(BlobStore::new(&home).put(b"precious").unwrap(), id);
        assert_eq!(BlobStore::new(&home).read(id).unwrap(), b"precious");
        std::fs::remove_dir_all(&home).unwrap();
    }
}
