//! Pins: blobs a live process keeps from [`prune`](super::prune), whatever the budget.
//!
//! Pins live on disk, so that they hold across the processes sharing a home
//! ([`crate::protocol::store`] is the layout): each pinning process has its own files
//! `<store>/.pins/<pid>.<n>`, one hex id per line. A file whose process is gone (killed,
//! say) is removed by the next prune, and its pins with it.
//!
//! Two kinds of process pin:
//! * a [`BlobStore::pinning`](super::BlobStore::pinning) (`mesh run` in the CLI) pins what
//!   it stores until it is dropped, in files named by its own pid;
//! * a node pins blobs for its control socket's clients ([`ClientPins`]: the `mesh` Python
//!   package uploads a job's code and task list with `"pin": true`), in files named by the
//!   client's pid (`SO_PEERCRED`), until the client unpins them or its process ends. No
//!   client writes the store's files itself.

use crate::id::ContentId;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Processes a node pins blobs for at once ([`ClientPins`]); a pin for one more is refused
/// until one of them ends.
pub const MAX_PINNING_CLIENTS: usize = 256;

/// The directory of pin files inside the store.
pub(crate) const PINS_DIR: &str = ".pins";

/// Why a node could not pin for a client, or unpin.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("the node pins blobs for {0} processes already; try again when one has ended")]
    TooMany(usize),
    #[error("pins {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Blob ids pinned by one process, in one file of `<store>/.pins/`.
#[derive(Debug)]
pub(super) struct Pins {
    path: PathBuf,
    file: Option<std::fs::File>,
    ids: HashSet<ContentId>,
    /// This process's own pins, whose file goes when they are dropped; a client's stay
    /// until it unpins them or a prune finds its process gone.
    ours: bool,
}

impl Pins {
    /// Pins of this process.
    pub(super) fn new(store: &Path) -> Self {
        let mut pins = Self::of_process(store, std::process::id());
        pins.ours = true;
        pins
    }

    /// Pins held on behalf of process `pid`: they hold while it lives.
    fn of_process(store: &Path, pid: u32) -> Self {
        let path = store.join(PINS_DIR).join(format!("{pid}.{}", super::private::unique()));
        Self { path, file: None, ids: HashSet::new(), ours: false }
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

    /// Unpins `ids`: the file is written anew without them (and removed when none remain).
    fn remove(&mut self, ids: &[ContentId]) -> std::io::Result<()> {
        let before = self.ids.len();
        ids.iter().for_each(|id| {
            self.ids.remove(id);
        });
        if self.ids.len() == before {
            return Ok(());
        }
        self.file = None;
        let _ = std::fs::remove_file(&self.path);
        let kept: Vec<ContentId> = std::mem::take(&mut self.ids).into_iter().collect();
        kept.into_iter().try_for_each(|id| self.add(id))
    }

    /// Whether this file still stands for a live process: a prune removes the file of a
    /// dead one, and the pid may since have been given to another.
    fn current(&self, pid: u32) -> bool {
        alive(pid) && (self.file.is_none() || self.path.exists())
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        if self.file.take().is_some() && self.ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The pins a node holds for its control clients' processes, by pid: at most
/// [`MAX_PINNING_CLIENTS`] processes.
#[derive(Debug)]
pub struct ClientPins {
    store: PathBuf,
    by_pid: Mutex<HashMap<u32, Pins>>,
}

impl ClientPins {
    /// The client pins of the store in directory `store`.
    pub(super) fn new(store: PathBuf) -> Self {
        Self { store, by_pid: Mutex::new(HashMap::new()) }
    }

    /// Keeps `id` from pruning while process `pid` lives, or until it unpins it.
    pub fn pin(&self, pid: u32, id: ContentId) -> Result<(), PinError> {
        let mut by_pid = self.by_pid.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if by_pid.get(&pid).is_some_and(|p| !p.current(pid)) {
            by_pid.remove(&pid);
        }
        if !by_pid.contains_key(&pid) && by_pid.len() >= MAX_PINNING_CLIENTS {
            by_pid.retain(|&p, pins| pins.current(p));
            if by_pid.len() >= MAX_PINNING_CLIENTS {
                return Err(PinError::TooMany(MAX_PINNING_CLIENTS));
            }
        }
        let pins = by_pid.entry(pid).or_insert_with(|| Pins::of_process(&self.store, pid));
        pins.add(id).map_err(|source| PinError::Io { path: pins.path().to_path_buf(), source })
    }

    /// Lets pruning have `ids` again, as far as process `pid`'s pins go.
    pub fn unpin(&self, pid: u32, ids: &[ContentId]) -> Result<(), PinError> {
        let mut by_pid = self.by_pid.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(pins) = by_pid.get_mut(&pid) else { return Ok(()) };
        let path = pins.path().to_path_buf();
        pins.remove(ids).map_err(|source| PinError::Io { path, source })?;
        if pins.ids.is_empty() {
            by_pid.remove(&pid);
        }
        Ok(())
    }

    /// Processes pinned for now (dead ones included until they are noticed).
    pub fn processes(&self) -> usize {
        self.by_pid.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

/// The names (hex ids) pinned by live processes; pin files of dead ones are removed.
pub(super) fn live_pins(dir: &Path) -> HashSet<String> {
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

pub(super) fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}
