//! The WASI preview 1 calls a task may import but that give it nothing: files, sockets,
//! signals, the filesystem side of descriptors. Each answers with the errno wasmtime's
//! own WASI (wasmtime-wasi 48) gives for a command with no preopened directories and
//! stdio on pipes, as `tools/wasi-ref` measured it call by call
//! (`tests/wasm/wasi_probe.expect`, replayed by `exec::wasm::tests`):
//!
//! | call | on fd 0–2 (open) | on any other fd |
//! |---|---|---|
//! | `path_*` | `EBADF` (stdio is not a directory) | `EBADF` |
//! | `sock_*` | `ENOTSOCK` | `EBADF` |
//! | `fd_pread` | `ESPIPE` on 0, `EBADF` on 1–2 | `EBADF` |
//! | `fd_pwrite` | `ESPIPE` on 1–2, `EBADF` on 0 | `EBADF` |
//! | `fd_tell` | `ESPIPE` | `EBADF` |
//! | `fd_prestat_dir_name` | `ENOTDIR` | `EBADF` |
//! | other `fd_*` (advise, allocate, datasync, sync, readdir, renumber, `*_set_*`) | `EBADF` | `EBADF` |
//! | `proc_raise` | `ENOTSUP` | |
//!
//! None of them traps. A name that WASI preview 1 does not have is refused when the
//! module is checked, as wasmtime refuses to link it.

/// WASI errno values (the `errno` enum of `wasi_snapshot_preview1.witx`).
pub(super) mod errno {
    pub(crate) const SUCCESS: i32 = 0;
    pub(crate) const EBADF: i32 = 8;
    pub(crate) const EFAULT: i32 = 21;
    pub(crate) const EINVAL: i32 = 28;
    pub(crate) const ENOTDIR: i32 = 54;
    pub(crate) const ENOTSOCK: i32 = 57;
    pub(crate) const ENOTSUP: i32 = 58;
    pub(crate) const ESPIPE: i32 = 70;
}

use errno::*;

/// How a refused call answers, by the descriptor it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `EBADF` whatever the descriptor.
    BadFd,
    /// Needs a socket: `ENOTSOCK` on open stdio.
    Socket,
    /// Positioned I/O on stdio in its own direction: `ESPIPE`; the other way `EBADF`.
    Seek { readable: bool },
    /// Needs a seekable file: `ESPIPE` on open stdio.
    Tell,
    /// Needs a preopened directory: `ENOTDIR` on open stdio.
    Directory,
    /// `ENOTSUP` (raising a signal).
    Unsupported,
}

impl Refusal {
    /// The refusal of WASI preview 1 call `name`, if it is one mesh refuses.
    pub(super) fn of(name: &str) -> Option<Self> {
        Some(match name {
            "fd_advise"
            | "fd_allocate"
            | "fd_datasync"
            | "fd_sync"
            | "fd_readdir"
            | "fd_renumber"
            | "fd_fdstat_set_flags"
            | "fd_fdstat_set_rights"
            | "fd_filestat_set_size"
            | "fd_filestat_set_times" => Self::BadFd,
            "path_create_directory"
            | "path_filestat_get"
            | "path_filestat_set_times"
            | "path_link"
            | "path_open"
            | "path_readlink"
            | "path_remove_directory"
            | "path_rename"
            | "path_symlink"
            | "path_unlink_file" => Self::BadFd,
            "sock_accept" | "sock_recv" | "sock_send" | "sock_shutdown" => Self::Socket,
            "fd_pread" => Self::Seek { readable: true },
            "fd_pwrite" => Self::Seek { readable: false },
            "fd_tell" => Self::Tell,
            "fd_prestat_dir_name" => Self::Directory,
            "proc_raise" => Self::Unsupported,
            _ => return None,
        })
    }

    /// The errno for a call naming `fd` (the call's first argument), given which stdio
    /// descriptors the task still has open.
    pub(super) fn errno(self, fd: Option<i32>, open: impl Fn(i32) -> bool) -> i32 {
        let stdio = fd.is_some_and(&open);
        match self {
            Self::BadFd => EBADF,
            Self::Unsupported => ENOTSUP,
            _ if !stdio => EBADF,
            Self::Socket => ENOTSOCK,
            Self::Tell => ESPIPE,
            Self::Directory => ENOTDIR,
            Self::Seek { readable } => {
                if (fd == Some(0)) == readable {
                    ESPIPE
                } else {
                    EBADF
                }
            }
        }
    }
}
