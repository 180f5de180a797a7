//! The node's home directory and persistent identity.
//!
//! `--home` (or `MESH_HOME`, default `~/.mesh`) holds the node's ed25519 identity key, so
//! its libp2p peer id, and with it its [`NodeId`], survive restarts. The key file is
//! written once with mode 0600 and never rewritten.

use crate::id::NodeId;
use anyhow::{Context, Result};
use libp2p::PeerId;
use libp2p::identity::Keypair;
use std::path::{Path, PathBuf};

const KEY_FILE: &str = "identity.key";

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
        std::fs::create_dir_all(home)
            .with_context(|| format!("cannot create the mesh home {}; pick another with --home", home.display()))?;
        let path = home.join(KEY_FILE);
        let keypair = match std::fs::read(&path) {
            Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).with_context(|| {
                format!("{} is not a mesh identity key; move it away to make a new one", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let kp = Keypair::generate_ed25519();
                write_private(&path, &kp.to_protobuf_encoding().context("encoding the new identity key")?)?;
                kp
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let peer_id = keypair.public().to_peer_id();
        let node_id = NodeId::from_peer_bytes(&peer_id.to_bytes());
        Ok(Self { keypair, peer_id, node_id, name })
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

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("mesh-id-test-{}", std::process::id()));
        let a = Identity::load_or_create(&dir, "a".into()).unwrap();
        let b = Identity::load_or_create(&dir, "a".into()).unwrap();
        assert_eq!(a.peer_id, b.peer_id);
        std::fs::write(dir.join(KEY_FILE), b"garbage").unwrap();
        let err = Identity::load_or_create(&dir, "a".into()).unwrap_err();
        assert!(format!("{err:#}").contains("not a mesh identity key"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
