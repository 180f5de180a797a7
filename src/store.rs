//! The content-addressed blob store under `<home>/blobs/`: WebAssembly modules and job
//! inputs, each stored once under the hex of its blake3 hash.
//!
//! Invariants:
//! * a blob file is complete and matches its name: writes go to a temporary file that is
//!   renamed into place, and [`BlobStore::read`] checks the hash of what it reads (once per
//!   process per blob), so a truncated or corrupted file is deleted and fetched again rather
//!   than used;
//! * blobs read whole into memory (modules, inputs, task lists) are at most [`MAX_BLOB`]
//!   bytes; files that `mesh run` sends and returns are streamed to and from disk and may
//!   be up to [`MAX_FILE`] bytes;
//! * a node trims its blobs to [`STORE_BUDGET`] bytes: [`prune`] removes the least
//!   recently used when a node starts, and every `PRUNE_EVERY` while it runs. Reading a
//!   blob marks it used. Blobs used within [`PRUNE_GRACE`], and blobs *pinned* by a live
//!   process (a `mesh run` keeps its sent files, task list and waiting outputs pinned
//!   until it ends, [`BlobStore::pinning`]), are kept even beyond the budget: the budget
//!   bounds what stays between jobs, not a job in progress.
//!
//! The store is shared by every process of the user that uses the same home: `mesh
//! submit` writes a job's module and input here, and the `mesh join` node under that home
//! reads them. It is private to that user ([`private`]): its directories are mode 0700 and
//! its files 0600 whatever the umask, and an older store is made so when it is opened.
//! Other users reach it only through the node's control socket.

use crate::id::ContentId;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod pins;
pub(crate) mod private;
mod prune;
pub use pins::{ClientPins, MAX_PINNING_CLIENTS, PinError};
pub(crate) use private::unique;
pub use prune::{PRUNE_GRACE, prune};

/// The store's directory under a home (the layout: [`crate::protocol::store`]).
pub const DIR: &str = "blobs";

/// The largest blob read whole into memory (a module, an input, a task list).
pub const MAX_BLOB: u64 = 64 << 20;

/// The largest file blob (`mesh run --send`, `--return`), streamed through disk.
pub const MAX_FILE: u64 = 16 << 30;

/// Bytes copied or hashed at a time when streaming a file.
const STREAM_BUF: usize = 256 * 1024;

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

/// What [`BlobStore::check_all`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StoreCheck {
    pub sound: u64,
    pub bytes: u64,
    /// Damaged blobs, removed.
    pub removed: Vec<ContentId>,
}

#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    /// Blobs whose file this process has read and checked.
    verified: Mutex<HashSet<ContentId>>,
    /// With [`BlobStore::pinning`]: what this store keeps from [`prune`] while it lives.
    pins: Option<Mutex<pins::Pins>>,
}

impl BlobStore {
    /// The store of a home directory; the directory is created on first write. A store an
    /// older mesh left readable by others is made private now ([`private::secure`]).
    pub fn new(home: &Path) -> Self {
        let dir = home.join(DIR);
        secure_at_open(&dir);
        Self { dir, verified: Mutex::new(HashSet::new()), pins: None }
    }

    /// The store of a home directory that pins every blob it stores, and any it is asked
    /// to [`pin`](Self::pin), until it is dropped (or its process dies): [`prune`], in this
    /// process or a node sharing the home, leaves them alone.
    pub fn pinning(home: &Path) -> Self {
        let dir = home.join(DIR);
        secure_at_open(&dir);
        let pins = Some(Mutex::new(pins::Pins::new(&dir)));
        Self { dir, verified: Mutex::new(HashSet::new()), pins }
    }

    /// The pins a node keeps for its control clients' processes in the store of `home`.
    pub fn client_pins(home: &Path) -> ClientPins {
        ClientPins::new(home.join(DIR))
    }

    /// Keeps `id` from [`prune`] while this store lives, if it pins.
    pub fn pin(&self, id: ContentId) -> Result<(), StoreError> {
        let Some(pins) = &self.pins else { return Ok(()) };
        let mut pins = pins.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pins.add(id).map_err(|source| StoreError::Io { path: pins.path().to_path_buf(), source })
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
            private::private_dir(&self.dir).map_err(io)?;
            let tmp = self.dir.join(format!(".{id}.{}.{}", std::process::id(), unique()));
            let written = private::private_file(&tmp).and_then(|mut f| {
                f.write_all(bytes)?;
                f.sync_all()
            });
            if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(e));
            }
        }
        self.lock().insert(id);
        self.pin(id)
    }

    /// Reads a whole blob, checking its hash the first time this process reads it.
    /// Blobs larger than [`MAX_BLOB`] (files for `mesh run`) are refused, not read.
    pub fn read(&self, id: ContentId) -> Result<Vec<u8>, StoreError> {
        use std::io::Read;
        let path = self.path(id);
        let opened = std::fs::File::open(&path).and_then(|f| Ok((f.metadata()?.len(), f)));
        let (len, f) = match opened {
            Ok(found) => found,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::Missing(id)),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        if len > MAX_BLOB {
            return Err(StoreError::TooLarge { id, len });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        if let Err(source) = f.take(MAX_BLOB + 1).read_to_end(&mut bytes) {
            return Err(StoreError::Io { path, source });
        }
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

    /// Checks that a blob of any size is whole and sound (streaming its hash, once per
    /// process), and returns its size. A damaged copy is removed. The blob counts as used
    /// (for [`prune`]).
    pub fn check(&self, id: ContentId) -> Result<u64, StoreError> {
        touch(&self.path(id));
        self.verify(id)
    }

    /// [`check`](Self::check) without marking the blob used.
    fn verify(&self, id: ContentId) -> Result<u64, StoreError> {
        let path = self.path(id);
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::Missing(id)),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        if self.lock().contains(&id) {
            return Ok(len);
        }
        let io = |source| StoreError::Io { path: path.clone(), source };
        let mut f = std::fs::File::open(&path).map_err(io)?;
        let mut h = blake3::Hasher::new();
        std::io::copy(&mut f, &mut HashWriter(&mut h)).map_err(io)?;
        if ContentId(*h.finalize().as_bytes()) != id {
            let _ = std::fs::remove_file(&path);
            return Err(StoreError::Corrupt(id));
        }
        self.lock().insert(id);
        Ok(len)
    }

    /// Checks every blob against its hash (`mesh store check`), as [`check`](Self::check)
    /// does one: a damaged copy is removed, and fetched again when a task needs it. It
    /// leaves the blobs' last use as it was, so [`prune`] still trims the least recently
    /// used first. Files that are not blobs (writes in progress, pins) are left alone.
    pub fn check_all(&self) -> Result<StoreCheck, StoreError> {
        let mut out = StoreCheck::default();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(source) => return Err(StoreError::Io { path: self.dir.clone(), source }),
        };
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<ContentId>().ok()) else { continue };
            match self.verify(id) {
                Ok(len) => {
                    out.sound += 1;
                    out.bytes += len;
                }
                Err(StoreError::Corrupt(id)) => out.removed.push(id),
                Err(StoreError::Missing(_)) => {} // pruned meanwhile
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Stores a file of at most [`MAX_FILE`] bytes, streaming it, and returns its id and
    /// size.
    pub fn put_file(&self, src: &Path) -> Result<(ContentId, u64), StoreError> {
        let io = |source| StoreError::Io { path: src.to_path_buf(), source };
        let mut f = std::fs::File::open(src).map_err(io)?;
        let mut w = self.incoming()?;
        let mut buf = vec![0u8; STREAM_BUF];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n])?;
        }
        let (id, len) = (w.id(), w.len);
        w.finish(self, id)?;
        Ok((id, len))
    }

    /// Copies a sound blob out of the store to a new file `dest`. Anything already at
    /// `dest`, a symlink included, is an error rather than followed or overwritten.
    pub fn copy_out(&self, id: ContentId, dest: &Path) -> Result<u64, StoreError> {
        self.check(id)?;
        let io = |source| StoreError::Io { path: dest.to_path_buf(), source };
        let mut from =
            std::fs::File::open(self.path(id)).map_err(|source| StoreError::Io { path: self.path(id), source })?;
        let mut to = std::fs::OpenOptions::new().write(true).create_new(true).open(dest).map_err(io)?;
        std::io::copy(&mut from, &mut to).map_err(io)
    }

    /// A writer for a blob arriving in pieces (a fetch, a file being stored): it goes to a
    /// temporary file, hashed on the way, and enters the store only if its hash is right.
    pub fn incoming(&self) -> Result<Incoming, StoreError> {
        let io = |source| StoreError::Io { path: self.dir.clone(), source };
        private::private_dir(&self.dir).map_err(io)?;
        let tmp = self.dir.join(format!(".in.{}.{}", std::process::id(), unique()));
        let file = private::private_file(&tmp).map_err(io)?;
        let file = Some(std::io::BufWriter::with_capacity(STREAM_BUF, file));
        Ok(Incoming { tmp, file, hasher: blake3::Hasher::new(), len: 0 })
    }

    /// Reads up to `len` bytes at `offset`, and the blob's total size, for serving a chunk
    /// to a peer. The peer checks the hash of the whole.
    pub fn read_chunk(&self, id: ContentId, offset: u64, len: u32) -> Result<(u64, Vec<u8>), StoreError> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.path(id);
        if offset == 0 {
            touch(&path); // a peer is fetching it: in use
        }
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

/// A blob being written; see [`BlobStore::incoming`]. Dropped unfinished, it leaves
/// nothing behind.
#[derive(Debug)]
pub struct Incoming {
    tmp: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    hasher: blake3::Hasher,
    /// Bytes written so far.
    pub len: u64,
}

impl Incoming {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.len += bytes.len() as u64;
        if self.len > MAX_FILE {
            return Err(StoreError::TooLarge { id: self.id(), len: self.len });
        }
        self.hasher.update(bytes);
        let io = |source| StoreError::Io { path: self.tmp.clone(), source };
        self.file.as_mut().map_or(Ok(()), |f| f.write_all(bytes)).map_err(io)
    }

    /// The id of what was written so far.
    pub fn id(&self) -> ContentId {
        ContentId(*self.hasher.finalize().as_bytes())
    }

    /// Enters the blob into `store` if it is `want`; otherwise discards it and says so.
    pub fn finish(mut self, store: &BlobStore, want: ContentId) -> Result<(), StoreError> {
        if self.id() != want {
            return Err(StoreError::Corrupt(want));
        }
        let path = store.path(want);
        let io = |source| StoreError::Io { path: path.clone(), source };
        if let Some(f) = self.file.take() {
            let f = f.into_inner().map_err(|e| io(e.into_error()))?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&self.tmp, &path).map_err(io)?;
        store.lock().insert(want);
        store.pin(want)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // Unfinished, or finished and renamed away: either way nothing is left here.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Feeds what is written to a hasher.
struct HashWriter<'a>(&'a mut blake3::Hasher);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Makes the store in `dir` private if an older mesh left it open to others; a store that
/// cannot be made so is said in the log and used as it is.
fn secure_at_open(dir: &Path) {
    match private::secure(dir) {
        Ok(0) => {}
        Ok(entries) => {
            tracing::info!(dir = %dir.display(), entries, "the blob store was readable by others; made it private");
        }
        Err(e) => tracing::warn!(dir = %dir.display(), %e, "cannot make the blob store private to its user"),
    }
}

/// Marks a file as the most recently used, for [`prune`].
pub fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

#[cfg(test)]
mod tests;
