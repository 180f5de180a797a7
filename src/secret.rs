//! The shared key: Parallel Python's `-s` secret, done properly.
//!
//! A passphrase (`--key`, `--key-file` or `MESH_KEY`) becomes a 32-byte libp2p pre-shared
//! key by blake3's key derivation, and every connection is encrypted with it before any
//! libp2p handshake (pnet). A node with another key cannot complete a connection at all.
//!
//! mDNS never carries the key. It carries a [`SharedKey::fingerprint`]: 8 hex digits of a
//! second derivation from the key. That lets nodes recognise a different key and say so,
//! instead of failing with a handshake error. Eight hex digits only tell meshes apart; they
//! do not help guess the key, which is 256 bits of derived material.

use std::fmt;

const PSK_CONTEXT: &str = "mesh 2026-11 pnet pre-shared key v1";
const FINGERPRINT_CONTEXT: &str = "mesh 2026-11 key fingerprint v1";

/// What nodes without a key advertise as their fingerprint.
pub const OPEN_FINGERPRINT: &str = "open";

/// A mesh's shared key, or none (an open mesh).
#[derive(Clone, PartialEq, Eq)]
pub struct SharedKey(Option<[u8; 32]>);

impl SharedKey {
    /// No key: any machine on the LAN can join.
    pub fn open() -> Self {
        Self(None)
    }

    /// Derives the key from a passphrase. Surrounding white space (a key file's trailing
    /// newline) is not part of it.
    pub fn from_passphrase(pass: &str) -> Result<Self, KeyError> {
        let pass = pass.trim();
        if pass.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self(Some(blake3::derive_key(PSK_CONTEXT, pass.as_bytes()))))
    }

    /// The pre-shared key bytes for libp2p pnet, if any.
    pub fn psk(&self) -> Option<[u8; 32]> {
        self.0
    }

    pub fn is_open(&self) -> bool {
        self.0.is_none()
    }

    /// A short public name of the key, safe to advertise.
    pub fn fingerprint(&self) -> String {
        match &self.0 {
            None => OPEN_FINGERPRINT.to_string(),
            Some(k) => {
                let d = blake3::derive_key(FINGERPRINT_CONTEXT, k);
                d[..4].iter().map(|b| format!("{b:02x}")).collect()
            }
        }
    }
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedKey({})", self.fingerprint()) // never the key itself
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the key is empty; give a passphrase with --key, --key-file or MESH_KEY")]
    Empty,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_passphrase_same_key_and_fingerprint() {
        let a = SharedKey::from_passphrase("lab secret").unwrap();
        let b = SharedKey::from_passphrase("lab secret\n").unwrap();
        let c = SharedKey::from_passphrase("other").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.fingerprint().len(), 8);
        assert_ne!(a.psk(), c.psk());
        assert_eq!(SharedKey::open().fingerprint(), OPEN_FINGERPRINT);
        assert!(!format!("{a:?}").contains("lab secret"));
        assert_eq!(SharedKey::from_passphrase("  "), Err(KeyError::Empty));
    }
}
