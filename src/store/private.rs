//! The store's privacy: it belongs to the node's user alone.
//!
//! A blob may be anything a user sent or a task returned (a file `mesh run --send` took,
//! a result), so no other user of the machine may read it, whatever the umask or the
//! source file's mode. Other users reach the store only through the control socket, which
//! hands back only what their own job produced. So:
//! * the store's directories (`blobs/`, `blobs/.pins/`) are made mode 0700, whatever the
//!   umask ([`private_dir`]);
//! * every file the store writes (a blob, a write in progress, a pin file) is created
//!   mode 0600 ([`private_file`]); a blob keeps that mode when renamed into place;
//! * a store that an older mesh left readable by others is made private when it is
//!   opened ([`secure`]): its files and directories lose every group and other bit, the
//!   store's directory last, so an open that was cut short is redone.
//!
//! The directory's mode is what keeps others out (a file in a 0700 directory cannot be
//! reached by another user whatever its own mode); the files' modes keep them private if
//! they are copied or linked elsewhere with their modes.

use std::fs::{File, OpenOptions, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of the store's directories.
pub(crate) const DIR_MODE: u32 = 0o700;
/// The mode of the store's files.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates `dir` mode 0700 if it is not there (its parents as `create_dir_all` does).
/// One that is there is left as it is: [`secure`] fixes an older store's when it opens.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        // The umask can only have taken bits away; set exactly 0700.
        Ok(()) => std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()), // a racer made it
        Err(e) => Err(e),
    }
}

/// Opens a new file at `path` for writing, mode 0600 (less if the umask says so): never
/// an existing one.
pub(crate) fn private_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path)
}

/// Makes the store in `dir` private if it is not (see the module doc). Returns how many
/// entries were changed; a store that is already private costs one `stat`. A missing
/// directory is left to be created private on first write.
pub(crate) fn secure(dir: &Path) -> std::io::Result<u64> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() || meta.permissions().mode() & 0o077 == 0 {
        return Ok(0);
    }
    let mut changed = 0;
    // Directories in the order they were found: the store's own first.
    let mut dirs = vec![dir.to_path_buf()];
    let mut next = 0;
    while let Some(d) = dirs.get(next).cloned() {
        next += 1;
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            // Symlinks are never followed: chmod would change their target.
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                changed += u64::from(restrict(&entry.path())?);
            }
        }
    }
    // The store's own directory last: while it is still open to others, the next open
    // does all this again.
    for d in dirs.iter().rev() {
        changed += u64::from(restrict(d)?);
    }
    Ok(changed)
}

/// Takes every group and other bit off `path`'s mode; whether it had any.
fn restrict(path: &Path) -> std::io::Result<bool> {
    let mode = match std::fs::symlink_metadata(path) {
        Ok(m) => m.permissions().mode(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false), // pruned meanwhile
        Err(e) => return Err(e),
    };
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    match std::fs::set_permissions(path, Permissions::from_mode(mode & 0o7700)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// A number not handed out before in this process, for temporary names.
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
