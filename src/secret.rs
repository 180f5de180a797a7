//! The shared key: Parallel Python's `-s` secret, done properly.
//!
//! A key (`--key-file`, `MESH_KEY` or `--key`) becomes a 32-byte libp2p pre-shared key,
//! and every connection is encrypted with it before any libp2p handshake (pnet). A node
//! with another key cannot complete a connection at all.
//!
//! # Two kinds of key
//! * A **generated key** (`mesh key new`): [`GENERATED_PREFIX`] and 32 random bytes in
//!   base64url, 49 characters. Its 256 bits are the key material as they are: nothing is
//!   left to guess, so no slow derivation is needed.
//! * A **passphrase** (anything else). People choose passphrases a dictionary can guess, so
//!   the key material is argon2id of the passphrase with [`KDF_MEMORY_KIB`] KiB of memory
//!   and [`KDF_PASSES`] passes ([`kdf_params`]): every guess costs an attacker that much,
//!   once per guess, and a node pays it once at start (118 ms on a core of the machine in
//!   docs/benchmarks.md, `cargo bench --bench key`). The salt is fixed ([`KDF_SALT`]):
//!   nodes share nothing else before they connect. So a table of common passphrases, computed once, would
//!   serve against every mesh: use a generated key.
//!
//! From the material, blake3's key derivation makes the pnet key and, separately, the
//! [`SharedKey::fingerprint`].
//!
//! # What the fingerprint reveals
//! mDNS never carries the key; it carries the fingerprint, 8 hex digits, so that nodes can
//! tell a different key from a broken network and say so. Anyone on the LAN can read it.
//! From it an attacker can test guesses of a passphrase offline, each guess costing one
//! argon2id derivation as above (about 8.5 a second per core, where the two blake3 calls
//! of version 1 allowed 3.3 million in Rust, and 450,000 in Python). A generated key cannot be guessed at all. The fingerprint
//! does not reveal the key.
//!
//! # Versions
//! Version 1 (mesh up to 2026-12-05) derived the pnet key from the passphrase with one
//! blake3 call. Version 2 derives it as above, so a node of each cannot connect; the wire
//! protocol version went up with it (`protocol::membership::PROTOCOL_VERSION` 5), and a
//! node tells an older one on its LAN to upgrade instead of calling its key different.

use base64::Engine;
use std::fmt;
use std::sync::Mutex;

const PSK_CONTEXT: &str = "mesh 2026-12 pnet pre-shared key v2";
const FINGERPRINT_CONTEXT: &str = "mesh 2026-12 key fingerprint v2";

/// What a generated key starts with.
pub const GENERATED_PREFIX: &str = "mesh2-";
/// argon2id's memory cost for passphrases, in KiB: 64 MiB, which a 1 GB Pi affords once.
pub const KDF_MEMORY_KIB: u32 = 64 * 1024;
/// argon2id's passes over that memory.
pub const KDF_PASSES: u32 = 3;
/// argon2id's salt: fixed, since nodes can agree on nothing else before they connect.
pub const KDF_SALT: &[u8] = b"mesh network key, version 2";

/// What nodes without a key advertise as their fingerprint.
pub const OPEN_FINGERPRINT: &str = "open";

/// Passphrases derived by this process, by a fast hash of the passphrase: tests and
/// benches start many nodes with one key, and each would pay argon2id again. Bounded.
static DERIVED: Mutex<Vec<([u8; 32], [u8; 32])>> = Mutex::new(Vec::new());
const DERIVED_KEPT: usize = 8;

/// A mesh's shared key, or none (an open mesh).
#[derive(Clone, PartialEq, Eq)]
pub struct SharedKey(Option<[u8; 32]>);

/// How strong a key is, which the CLI tells its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// No key at all.
    Open,
    /// 256 random bits from `mesh key new`.
    Generated,
    /// A passphrase, as strong as its guessability under argon2id.
    Passphrase,
}

impl SharedKey {
    /// No key: any machine on the LAN can join.
    pub fn open() -> Self {
        Self(None)
    }

    /// A new random key, as `mesh key new` prints it.
    pub fn generate() -> String {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        format!("{GENERATED_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Derives the key from a generated key or a passphrase. Surrounding white space (a
    /// key file's trailing newline) is not part of it.
    pub fn from_passphrase(pass: &str) -> Result<Self, KeyError> {
        let pass = pass.trim();
        if pass.is_empty() {
            return Err(KeyError::Empty);
        }
        let material = match generated_bytes(pass) {
            Some(bytes) => bytes,
            None => stretch(pass)?,
        };
        Ok(Self(Some(material)))
    }

    /// What kind of key `pass` is.
    pub fn kind_of(pass: &str) -> KeyKind {
        match pass.trim() {
            "" => KeyKind::Open,
            p if generated_bytes(p).is_some() => KeyKind::Generated,
            _ => KeyKind::Passphrase,
        }
    }

    /// The pre-shared key bytes for libp2p pnet, if any.
    pub fn psk(&self) -> Option<[u8; 32]> {
        self.0.map(|m| blake3::derive_key(PSK_CONTEXT, &m))
    }

    pub fn is_open(&self) -> bool {
        self.0.is_none()
    }

    /// A short public name of the key, safe to advertise (see the module doc for what it
    /// reveals).
    pub fn fingerprint(&self) -> String {
        match &self.0 {
            None => OPEN_FINGERPRINT.to_string(),
            Some(m) => {
                let d = blake3::derive_key(FINGERPRINT_CONTEXT, m);
                d[..4].iter().map(|b| format!("{b:02x}")).collect()
            }
        }
    }
}

/// The 32 bytes of a generated key, or `None` for a passphrase.
fn generated_bytes(pass: &str) -> Option<[u8; 32]> {
    let b64 = pass.strip_prefix(GENERATED_PREFIX)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).ok()?;
    bytes.try_into().ok()
}

/// argon2id's parameters for passphrases.
pub fn kdf_params() -> argon2::Params {
    // The constants are within argon2's limits (memory ≥ 8 × lanes KiB, passes ≥ 1).
    argon2::Params::new(KDF_MEMORY_KIB, KDF_PASSES, 1, Some(32)).expect("valid argon2 parameters")
}

/// argon2id of a passphrase, remembered for this process.
fn stretch(pass: &str) -> Result<[u8; 32], KeyError> {
    let tag = *blake3::hash(pass.as_bytes()).as_bytes();
    // The list holds no invariant a panicking holder could break half-way.
    let remembered = |d: &Vec<([u8; 32], [u8; 32])>| d.iter().find(|(t, _)| *t == tag).map(|(_, m)| *m);
    if let Some(m) = remembered(&DERIVED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)) {
        return Ok(m);
    }
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, kdf_params());
    let mut out = [0u8; 32];
    argon.hash_password_into(pass.as_bytes(), KDF_SALT, &mut out).map_err(|e| KeyError::Kdf(e.to_string()))?;
    let mut derived = DERIVED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if derived.len() >= DERIVED_KEPT {
        derived.remove(0);
    }
    derived.push((tag, out));
    Ok(out)
}

/// Fills `buf` from the kernel's random source.
fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled rest of `buf`.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // getrandom(2) fails only on a kernel older than 3.17: Linux 4.x is the floor.
            panic!("getrandom failed: {}", std::io::Error::last_os_error());
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
    #[error("the key is empty; make one with `mesh key new` and give it with --key-file or MESH_KEY")]
    Empty,
    #[error("cannot derive the key from the passphrase: {0}")]
    Kdf(String),
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

    /// The fingerprint of a passphrase is reached only through argon2id with the documented
    /// cost: an attacker who reads it from mDNS pays that cost per guess. Version 1's
    /// fingerprint, one blake3 call away from the passphrase, fails this.
    #[test]
    fn a_passphrase_fingerprint_costs_an_argon2id_per_guess() {
        let pass = "sunshine";
        let params = argon2::Params::new(KDF_MEMORY_KIB, KDF_PASSES, 1, Some(32)).unwrap();
        assert!(params.m_cost() >= 19 * 1024 && params.t_cost() >= 2, "at least OWASP's argon2id minimum");
        let mut material = [0u8; 32];
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_into(pass.as_bytes(), KDF_SALT, &mut material)
            .unwrap();
        let want: String =
            blake3::derive_key(FINGERPRINT_CONTEXT, &material)[..4].iter().map(|b| format!("{b:02x}")).collect();
        let key = SharedKey::from_passphrase(pass).unwrap();
        assert_eq!(key.fingerprint(), want);
        assert_eq!(key.psk(), Some(blake3::derive_key(PSK_CONTEXT, &material)));
        // Nothing cheaper leads there: not the old chain, not a plain derivation.
        let v1 = blake3::derive_key(
            "mesh 2026-11 key fingerprint v1",
            &blake3::derive_key("mesh 2026-11 pnet pre-shared key v1", pass.as_bytes()),
        );
        let v1: String = v1[..4].iter().map(|b| format!("{b:02x}")).collect();
        assert_ne!(key.fingerprint(), v1);
    }

    #[test]
    fn generated_keys_are_random_and_used_as_they_are() {
        let (a, b) = (SharedKey::generate(), SharedKey::generate());
        assert_ne!(a, b);
        assert!(a.starts_with(GENERATED_PREFIX) && a.len() == GENERATED_PREFIX.len() + 43, "{a}");
        assert_eq!(SharedKey::kind_of(&a), KeyKind::Generated);
        assert_eq!(SharedKey::kind_of("our lab secret"), KeyKind::Passphrase);
        assert_eq!(SharedKey::kind_of(&format!("{GENERATED_PREFIX}short")), KeyKind::Passphrase);
        assert_eq!(SharedKey::kind_of(" "), KeyKind::Open);
        let bytes = generated_bytes(&a).unwrap();
        let key = SharedKey::from_passphrase(&format!("{a}\n")).unwrap();
        assert_eq!(key.psk(), Some(blake3::derive_key(PSK_CONTEXT, &bytes)));
        assert_ne!(key, SharedKey::from_passphrase(&b).unwrap());
    }
}
