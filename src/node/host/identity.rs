//! The node's home directory: its lock and its persistent identity.
//!
//! `--home` (or `MESH_HOME`, default `~/.mesh`) holds the node's ed25519 identity key, so
//! its libp2p peer id, and with it its [`NodeId`], survive restarts.
//!
//! Invariants:
//! * one node at a time serves a home on the mesh: a node that joins a network or binds
//!   the control socket first takes [`HomeLock`], an exclusive `flock` on `<home>/lock`,
//!   and holds it for its life (the kernel lets go when the process dies, however it
//!   dies). A second node on that home fails with [`HomeError::InUse`], before it binds a
//!   socket or announces the peer id the first one has. A node with neither (`mesh submit
//!   --local`) takes no lock: it shares the home's store with the node, as any process of
//!   the user does, and shows its id to nobody;
//! * the key file is whole or absent: it is written under a temporary name in the home
//!   (mode 0600, synced) and linked to `identity.key`, which never replaces a key there.
//!   Of two processes creating it at once, one links its key and the other reads that
//!   one, so both end with the same identity. The file is never rewritten.

use crate::id::NodeId;
use anyhow::{Context, Result};
use libp2p::PeerId;
use libp2p::identity::Keypair;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const KEY_FILE: &str = "identity.key";
const LOCK_FILE: &str = "lock";

#[derive(Debug, Clone)]
pub struct Identity {
    pub keypair: Keypair,
    pub peer_id: PeerId,
    pub node_id: NodeId,
    pub name: String,
}

impl Identity {
    /// Loads the identity under `home`, creating the directory and key on first use.
    pub fn load_or_create(home: &Path, name: String) -> Result<Self> {
        create_home(home).map_err(|source| HomeError::Io { path: home.to_path_buf(), source })?;
        let path = home.join(KEY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(&path)?,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let keypair = Keypair::from_protobuf_encoding(&bytes).with_context(|| {
            format!("{} is not a mesh identity key; move it away to make a new one", path.display())
        })?;
        let peer_id = keypair.public().to_peer_id();
        let node_id = NodeId::from_peer_bytes(&peer_id.to_bytes());
        Ok(Self { keypair, peer_id, node_id, name })
    }
}

/// Why a home cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("a mesh node already runs with home {0}; stop it or use another --home")]
    InUse(PathBuf),
    #[error("cannot use the mesh home {}: {source}; pick another with --home", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// The exclusive hold of a home by one node, for as long as this value lives; see the
/// module doc. Dropping it (or the process ending) lets go.
#[derive(Debug)]
pub struct HomeLock {
    /// Holds the `flock`; opened close-on-exec, so the programs a node runs never hold it.
    _file: std::fs::File,
}

impl HomeLock {
    /// Takes the lock of `home`, creating the directory if need be; fails at once with
    /// [`HomeError::InUse`] if another process holds it.
    pub fn acquire(home: &Path) -> Result<Self, HomeError> {
        let io = |source| HomeError::Io { path: home.to_path_buf(), source };
        create_home(home).map_err(io)?;
        // The file is never removed: a process that removed it could leave two others
        // each holding a lock, on the old file and on a new one.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(home.join(LOCK_FILE))
            .map_err(io)?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock is called on a descriptor that `file` owns and keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.kind() {
                std::io::ErrorKind::WouldBlock => HomeError::InUse(home.to_path_buf()),
                _ => io(e),
            });
        }
        Ok(Self { _file: file })
    }
}

/// `$MESH_HOME` is handled by clap; this is the fallback.
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from(".mesh"), |h| PathBuf::from(h).join(".mesh"))
}

/// The machine's host name, the default node name.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

fn create_home(home: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(home)
}

/// Makes a new key and writes it to `path` unless another process did first; returns
/// the key that is there now, the new one or the other's.
fn create_key(path: &Path) -> Result<Vec<u8>> {
    let kp = Keypair::generate_ed25519();
    let bytes = kp.to_protobuf_encoding().context("encoding the new identity key")?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{KEY_FILE}.{}.{}", std::process::id(), crate::store::unique()));
    let linked = write_private(&tmp, &bytes).and_then(|()| {
        match std::fs::hard_link(&tmp, path) {
            // A filesystem without hard links (FAT): a rename, which would replace a racer's
            // key; nodes are kept apart by the home's lock anyway.
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists && !path.exists() => std::fs::rename(&tmp, path),
            linked => linked,
        }
        .with_context(|| format!("cannot create {}", path.display()))
    });
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            // The new name is durable once its directory is.
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
            Ok(bytes)
        }
        // Another process linked its key first: that one is the home's.
        Err(_) if path.exists() => std::fs::read(path).with_context(|| format!("cannot read {}", path.display())),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to a new file at `path`, mode 0600, and syncs it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_home(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mesh-id-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn identity_survives_a_restart() {
        let dir = temp_home("restart");
        let a = Identity::load_or_create(&dir, "a".into()).unwrap();
        let b = Identity::load_or_create(&dir, "a".into()).unwrap();
        assert_eq!(a.peer_id, b.peer_id);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.join(KEY_FILE), b"garbage").unwrap();
        let err = Identity::load_or_create(&dir, "a".into()).unwrap_err();
        assert!(format!("{err:#}").contains("not a mesh identity key"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn racers_creating_an_identity_end_with_the_same_one() {
        for round in 0..20 {
            let dir = temp_home(&format!("race{round}"));
            let start = std::sync::Barrier::new(4);
            let ids: Vec<PeerId> = std::thread::scope(|s| {
                let racers: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            Identity::load_or_create(&dir, "a".into()).unwrap().peer_id
                        })
                    })
                    .collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            assert!(ids.iter().all(|id| *id == ids[0]), "round {round}: {ids:?}");
            assert_eq!(Identity::load_or_create(&dir, "a".into()).unwrap().peer_id, ids[0], "the one on disk");
            let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names, [KEY_FILE], "no temporary file is left");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn a_held_home_is_refused_until_its_holder_lets_go() {
        let dir = temp_home("lock");
        let held = HomeLock::acquire(&dir).unwrap();
        let err = HomeLock::acquire(&dir).unwrap_err();
        assert!(matches!(err, HomeError::InUse(ref h) if *h == dir), "{err}");
        assert!(err.to_string().contains("already runs with home"), "{err}");
        drop(held);
        let again = HomeLock::acquire(&dir).expect("free once its holder is gone");
        drop(again);
        let file = dir.join("a-file");
        std::fs::write(&file, b"").unwrap();
        let err = HomeLock::acquire(&file).unwrap_err();
        assert!(matches!(err, HomeError::Io { .. }) && err.to_string().contains("--home"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
