//! The blob store's layout on disk: a contract between the processes of one user that
//! share a home (a node, `mesh submit`, `mesh run`). This is version 1 of the layout.
//!
//! # Spec
//! Under a home directory `<home>`:
//!
//! | path | what |
//! |---|---|
//! | `<home>/blobs/` ([`BLOBS`]) | the store: mode 0700, its files 0600 |
//! | `<home>/blobs/<id>` | a blob: its bytes, named by the 64 lowercase hex digits of their blake3 hash |
//! | `<home>/blobs/.<name>.<pid>.<n>` | a write in progress by process `pid`, renamed to `<id>` when complete |
//! | `<home>/blobs/.pins/<pid>.<n>` ([`PINS`]) | blobs pinned while process `pid` lives: one hex id per line |
//!
//! * A blob file is complete and its name is its hash: a reader that finds otherwise
//!   deletes it (and fetches it again from a peer, or reports it missing).
//! * A file's modification time is when it was last used; a prune removes the least
//!   recently used blobs beyond the store's budget, except those used in the last ten
//!   minutes, those a live pin file names, and writes in progress of live processes.
//! * Names starting with a dot are never blobs.
//!
//! Only `crate::store` reads and writes these files; the `mesh` binary's commands use it.
//! Other programs, the `mesh` Python package among them, reach the store only through the
//! node's control socket (`upload`, `read`, `unpin`: [`crate::node::control`]), which
//! enforces who may store and read what. A later version of this layout that older
//! binaries could misread must use another directory name than `blobs`.
//!
//! The names live with the code that writes them (`store::DIR`, `store::PINS_DIR`); the
//! tests below hold the store to this page.

#[cfg(test)]
mod tests {
    use crate::id::ContentId;
    use crate::store::BlobStore;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_store_writes_the_layout_this_page_specifies() {
        let home = std::env::temp_dir().join(format!("mesh-layout-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        let store = BlobStore::pinning(&home);
        let id = store.put(b"the bytes").unwrap();
        let blobs = home.join("blobs");
        let name = blobs.join(format!("{id}"));
        assert_eq!(std::fs::read(&name).unwrap(), b"the bytes", "a blob is its bytes under <home>/blobs/<id>");
        assert_eq!(id, ContentId(*blake3::hash(b"the bytes").as_bytes()), "named by its blake3 hash");
        assert_eq!(format!("{id}").len(), 64, "64 hex digits");
        assert!(format!("{id}").chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "lowercase hex");
        assert_eq!((mode(&blobs), mode(&name)), (0o700, 0o600));
        let pins: Vec<_> = std::fs::read_dir(blobs.join(".pins")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(pins.len(), 1, "one pin file for this process");
        let file = pins[0].file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(file.split('.').next(), Some(std::process::id().to_string().as_str()), "named <pid>.<n>");
        assert_eq!(std::fs::read_to_string(&pins[0]).unwrap(), format!("{id}\n"), "one hex id per line");
        assert_eq!(mode(&pins[0]), 0o600);
        drop(store);
        assert!(!pins[0].exists(), "a process's pins go with it");
        let _ = std::fs::remove_dir_all(&home);
    }
}
