//! The sandbox's whole interface to the world: the WASI preview 1 calls a task may make.
//!
//! mesh implements WASI itself instead of linking a general WASI library, so that the list
//! of what a task can do is this file and nothing else:
//!
//! * **stdin** is the task's input line followed by `\n`; **stdout** is captured as the
//!   task's output (at most [`MAX_STDOUT`] bytes, or the task fails); **stderr** is kept
//!   (its last [`STDERR_TAIL`] bytes) to explain a failure.
//! * **args** are just `task`; the **environment** is empty.
//! * **clocks** read the host's clocks; `poll_oneoff` can sleep on them, but never past the
//!   task's deadline.
//! * **random_get** is a deterministic stream keyed by (module, task, input line), so a
//!   task that runs twice (a retry, a backup run, another node) gives the same output.
//! * **no filesystem, no network**: there are no preopened directories and file
//!   descriptors other than 0–2 do not exist. Every call that would need them answers
//!   with the errno wasmtime's own WASI gives in the same place (`EBADF`, `ENOTSOCK`,
//!   `ESPIPE`, …; the table is in `refused`), and never traps. Stdio can be closed.
//! * `proc_exit` ends the task: code 0 is success, anything else a failure.
//!
//! Where it differs from wasmtime-wasi: a clock id outside the enum gets `EINVAL` here
//! where wasmtime traps (measured). The CPU-time clocks give `EBADF`, as there.
//! `tests/wasm/wasi_probe.expect` pins every call; `tools/wasi-ref` measures it.
//!
//! Memory passed by the module is bounds-checked: a bad pointer gets `EFAULT`, never a
//! host crash. Only imports from `wasi_snapshot_preview1` can be linked; a module that
//! imports anything else is refused before it runs.

use super::limits::Limits;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::{Caller, Engine, Extern, ExternType, Linker, Module, Trap, Val, ValType};

pub const WASI_MODULE: &str = "wasi_snapshot_preview1";
/// Most bytes a task may write to stdout.
pub const MAX_STDOUT: usize = 64 * 1024;
/// How much of stderr is kept for error messages.
pub const STDERR_TAIL: usize = 2048;
/// The most iovecs one `fd_read` or `fd_write` may pass (Linux's `IOV_MAX`): host calls
/// are not interrupted by the task's timeout, so each must do bounded work.
pub const MAX_IOVECS: i32 = 1024;

const ARGS: &[&str] = &["task"];

use super::refused::Refusal;
use super::refused::errno::*;

/// Why a module's imports cannot be linked against the WASI shim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("it imports `{module}.{name}`; mesh provides only WASI preview 1 ({WASI_MODULE}) to tasks")]
    Foreign { module: String, name: String },
    #[error("it imports `{module}.{name}`, which is not a function")]
    NotAFunction { module: String, name: String },
    #[error("it imports `{WASI_MODULE}.{0}`, which WASI preview 1 does not have")]
    NotWasi(String),
    #[error("linking `{name}`: {cause}")]
    Wasmtime { name: String, cause: String },
}

/// The task ended itself with `proc_exit`.
#[derive(Debug, thiserror::Error)]
#[error("exited with code {0}")]
pub struct Exit(pub i32);

/// The task wrote more than [`MAX_STDOUT`] bytes.
#[derive(Debug, thiserror::Error)]
#[error("wrote more than {MAX_STDOUT} bytes to stdout")]
pub struct OutputTooLarge;

/// The state of one running task.
#[derive(Debug)]
pub struct TaskCtx {
    stdin: Vec<u8>,
    stdin_pos: usize,
    pub stdout: Vec<u8>,
    stderr: Vec<u8>,
    random: blake3::OutputReader,
    deadline: Instant,
    pub limits: Limits,
    /// Stdio descriptors the task closed.
    closed: [bool; 3],
}

impl TaskCtx {
    pub fn new(line: &[u8], random_key: blake3::Hasher, deadline: Instant, limits: Limits) -> Self {
        let mut stdin = Vec::with_capacity(line.len() + 1);
        stdin.extend_from_slice(line);
        stdin.push(b'\n');
        Self {
            stdin,
            stdin_pos: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            random: random_key.finalize_xof(),
            deadline,
            limits,
            closed: [false; 3],
        }
    }

    /// Whether `fd` is a stdio descriptor the task has not closed.
    fn open(&self, fd: i32) -> bool {
        usize::try_from(fd).ok().and_then(|i| self.closed.get(i)).is_some_and(|closed| !closed)
    }

    /// The end of what the task wrote to stderr, as text.
    pub fn stderr_tail(&self) -> String {
        let start = self.stderr.len().saturating_sub(STDERR_TAIL);
        String::from_utf8_lossy(&self.stderr[start..]).trim().to_string()
    }
}

/// A linker with every import `module` needs, or why it cannot run under mesh.
pub fn linker(engine: &Engine, module: &Module) -> Result<Linker<TaskCtx>, LinkError> {
    let mut l = Linker::new(engine);
    define(&mut l).map_err(|e| LinkError::Wasmtime { name: "WASI".into(), cause: e.to_string() })?;
    for import in module.imports() {
        let (m, name) = (import.module(), import.name());
        if m != WASI_MODULE {
            return Err(LinkError::Foreign { module: m.into(), name: name.into() });
        }
        let ExternType::Func(ty) = import.ty() else {
            return Err(LinkError::NotAFunction { module: m.into(), name: name.into() });
        };
        if IMPLEMENTED.contains(&name) {
            continue;
        }
        let Some(refusal) = Refusal::of(name) else {
            return Err(LinkError::NotWasi(name.into()));
        };
        let returns_errno = ty.results().len() == 1 && matches!(ty.results().next(), Some(ValType::I32));
        let call = name.to_string();
        l.func_new(m, name, ty.clone(), move |c: Caller<'_, TaskCtx>, params, results| {
            if returns_errno {
                let fd = params.first().and_then(Val::i32);
                results[0] = Val::I32(refusal.errno(fd, |fd| c.data().open(fd)));
                Ok(())
            } else {
                Err(wasmtime::format_err!("the task imported `{call}` with a type WASI preview 1 does not give it"))
            }
        })
        .map_err(|e| LinkError::Wasmtime { name: name.into(), cause: e.to_string() })?;
    }
    Ok(l)
}

const IMPLEMENTED: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "fd_close",
    "fd_fdstat_get",
    "fd_filestat_get",
    "fd_prestat_get",
    "fd_read",
    "fd_write",
    "fd_seek",
    "poll_oneoff",
    "proc_exit",
    "random_get",
    "sched_yield",
];

type Cx<'a> = Caller<'a, TaskCtx>;

fn define(l: &mut Linker<TaskCtx>) -> wasmtime::Result<()> {
    let m = WASI_MODULE;
    l.func_wrap(m, "args_sizes_get", |mut c: Cx<'_>, argc: i32, size: i32| {
        let bytes: usize = ARGS.iter().map(|a| a.len() + 1).sum();
        with_mem(&mut c, |mem, _| {
            put_u32(mem, argc, ARGS.len() as u32)?;
            put_u32(mem, size, bytes as u32)
        })
    })?;
    l.func_wrap(m, "args_get", |mut c: Cx<'_>, argv: i32, buf: i32| {
        with_mem(&mut c, |mem, _| {
            let mut next = buf as u32;
            for (i, a) in ARGS.iter().enumerate() {
                slice(mem, at(argv, 4 * i as u64), 4)?.copy_from_slice(&next.to_le_bytes());
                let dst = slice(mem, u64::from(next), a.len() as u32 + 1)?;
                dst[..a.len()].copy_from_slice(a.as_bytes());
                dst[a.len()] = 0;
                next = next.checked_add(a.len() as u32 + 1).ok_or(EFAULT)?;
            }
            Ok(())
        })
    })?;
    l.func_wrap(m, "environ_sizes_get", |mut c: Cx<'_>, count: i32, size: i32| {
        with_mem(&mut c, |mem, _| {
            put_u32(mem, count, 0)?;
            put_u32(mem, size, 0)
        })
    })?;
    l.func_wrap(m, "environ_get", |_: Cx<'_>, _: i32, _: i32| SUCCESS)?;
    l.func_wrap(m, "clock_res_get", |mut c: Cx<'_>, id: i32, out: i32| match clock_ns(id) {
        Ok(_) => with_mem(&mut c, |mem, _| put_u64(mem, out, 1_000)),
        Err(errno) => errno,
    })?;
    l.func_wrap(m, "clock_time_get", |mut c: Cx<'_>, id: i32, _precision: i64, out: i32| match clock_ns(id) {
        Ok(now) => with_mem(&mut c, |mem, _| put_u64(mem, out, now)),
        Err(errno) => errno,
    })?;
    l.func_wrap(m, "fd_close", |mut c: Cx<'_>, fd: i32| {
        if !c.data().open(fd) {
            return EBADF;
        }
        c.data_mut().closed[fd as usize] = true;
        SUCCESS
    })?;
    l.func_wrap(m, "fd_fdstat_get", |mut c: Cx<'_>, fd: i32, out: i32| {
        if !c.data().open(fd) {
            return EBADF;
        }
        const RIGHT_READ: u64 = 1 << 1;
        const RIGHT_WRITE: u64 = 1 << 6;
        with_mem(&mut c, |mem, _| {
            // Stdio is a pipe: file type "unknown", as wasmtime says.
            let stat = slice(mem, out, 24)?;
            stat.fill(0);
            let rights = if fd == 0 { RIGHT_READ } else { RIGHT_WRITE };
            stat[8..16].copy_from_slice(&rights.to_le_bytes());
            stat[16..24].copy_from_slice(&rights.to_le_bytes());
            Ok(())
        })
    })?;
    l.func_wrap(m, "fd_filestat_get", |mut c: Cx<'_>, fd: i32, out: i32| {
        if !c.data().open(fd) {
            return EBADF;
        }
        with_mem(&mut c, |mem, _| {
            slice(mem, out, 64)?.fill(0);
            Ok(())
        })
    })?;
    // No preopened directories: this is what keeps the filesystem out of reach.
    l.func_wrap(m, "fd_prestat_get", |_: Cx<'_>, _: i32, _: i32| EBADF)?;
    l.func_wrap(
        m,
        "fd_seek",
        |c: Cx<'_>, fd: i32, _: i64, _: i32, _: i32| {
            if c.data().open(fd) { ESPIPE } else { EBADF }
        },
    )?;
    l.func_wrap(m, "fd_read", fd_read)?;
    l.func_wrap(m, "fd_write", fd_write)?;
    l.func_wrap(m, "poll_oneoff", poll_oneoff)?;
    l.func_wrap(m, "proc_exit", |_: Cx<'_>, code: i32| -> wasmtime::Result<()> { Err(Exit(code).into()) })?;
    l.func_wrap(m, "random_get", |mut c: Cx<'_>, buf: i32, len: i32| {
        with_mem(&mut c, |mem, cx| {
            let dst = slice(mem, buf, len as u32)?;
            cx.random.fill(dst);
            Ok(())
        })
    })?;
    l.func_wrap(m, "sched_yield", |_: Cx<'_>| SUCCESS)?;
    Ok(())
}

fn fd_read(mut c: Cx<'_>, fd: i32, iovs: i32, n: i32, nread: i32) -> i32 {
    if fd != 0 || !c.data().open(fd) {
        return EBADF;
    }
    if !(0..=MAX_IOVECS).contains(&n) {
        return EINVAL;
    }
    with_mem(&mut c, |mem, cx| {
        let mut total = 0u32;
        for i in 0..n {
            let (ptr, len) = iovec(mem, iovs, i)?;
            let left = &cx.stdin[cx.stdin_pos..];
            let k = left.len().min(len as usize);
            slice(mem, ptr, k as u32)?.copy_from_slice(&left[..k]);
            cx.stdin_pos += k;
            total += k as u32;
            if k < len as usize {
                break;
            }
        }
        put_u32(mem, nread, total)
    })
}

fn fd_write(mut c: Cx<'_>, fd: i32, iovs: i32, n: i32, nwritten: i32) -> wasmtime::Result<i32> {
    if !(fd == 1 || fd == 2) || !c.data().open(fd) {
        return Ok(EBADF);
    }
    if !(0..=MAX_IOVECS).contains(&n) {
        return Ok(EINVAL);
    }
    let mut overflow = false;
    let errno = with_mem(&mut c, |mem, cx| {
        let mut total = 0u32;
        for i in 0..n {
            let (ptr, len) = iovec(mem, iovs, i)?;
            let data = slice(mem, ptr, len)?;
            if fd == 1 {
                if cx.stdout.len() + data.len() > MAX_STDOUT {
                    overflow = true;
                    return Ok(());
                }
                cx.stdout.extend_from_slice(data);
            } else {
                // Only the tail is kept, so only the tail is copied.
                cx.stderr.extend_from_slice(&data[data.len().saturating_sub(STDERR_TAIL)..]);
                if cx.stderr.len() > 2 * STDERR_TAIL {
                    cx.stderr.drain(..cx.stderr.len() - STDERR_TAIL);
                }
            }
            total = total.saturating_add(len);
        }
        put_u32(mem, nwritten, total)
    });
    if overflow { Err(OutputTooLarge.into()) } else { Ok(errno) }
}

/// Waits for clocks (sleeping, but never past the task's deadline) or reports stdio ready.
fn poll_oneoff(mut c: Cx<'_>, subs: i32, events: i32, n: i32, nevents: i32) -> wasmtime::Result<i32> {
    if n <= 0 || n > MAX_IOVECS {
        return Ok(EINVAL);
    }
    let deadline = c.data().deadline;
    // First pass: read the subscriptions; stdio is always ready.
    let mut clocks: Vec<(u64, Duration)> = Vec::new();
    let mut ready: Vec<[u8; 32]> = Vec::new();
    let errno = with_mem(&mut c, |mem, cx| {
        for i in 0..n {
            let sub = slice(mem, at(subs, 48 * i as u64), 48)?;
            let userdata = u64::from_le_bytes(sub[0..8].try_into().expect("8 bytes"));
            let tag = sub[8];
            let mut ev = [0u8; 32];
            ev[0..8].copy_from_slice(&userdata.to_le_bytes());
            ev[10] = tag;
            let id_or_fd = i32::from_le_bytes(sub[16..20].try_into().expect("4 bytes"));
            let errno = match tag {
                0 => match clock_ns(id_or_fd) {
                    Ok(now) => {
                        let timeout = u64::from_le_bytes(sub[24..32].try_into().expect("8 bytes"));
                        let absolute = sub[40] & 1 == 1;
                        let wait = if absolute { timeout.saturating_sub(now) } else { timeout };
                        clocks.push((userdata, Duration::from_nanos(wait)));
                        continue;
                    }
                    Err(errno) => errno,
                },
                1 if id_or_fd == 0 && cx.open(0) => {
                    let nbytes = (cx.stdin.len() - cx.stdin_pos) as u64;
                    ev[16..24].copy_from_slice(&nbytes.to_le_bytes());
                    SUCCESS
                }
                2 if (id_or_fd == 1 || id_or_fd == 2) && cx.open(id_or_fd) => SUCCESS,
                1 | 2 => EBADF,
                _ => EINVAL,
            };
            ev[8..10].copy_from_slice(&(errno as u16).to_le_bytes());
            ready.push(ev);
        }
        Ok(())
    });
    if errno != SUCCESS {
        return Ok(errno);
    }
    if ready.is_empty() {
        let wait = clocks.iter().map(|&(_, d)| d).min().unwrap_or_default();
        let left = deadline.saturating_duration_since(Instant::now());
        if wait >= left {
            std::thread::sleep(left);
            return Err(Trap::Interrupt.into());
        }
        std::thread::sleep(wait);
        for &(userdata, d) in &clocks {
            if d <= wait {
                let mut ev = [0u8; 32];
                ev[0..8].copy_from_slice(&userdata.to_le_bytes());
                ready.push(ev); // type 0: clock
            }
        }
    }
    Ok(with_mem(&mut c, |mem, _| {
        for (i, ev) in ready.iter().enumerate() {
            slice(mem, at(events, 32 * i as u64), 32)?.copy_from_slice(ev);
        }
        put_u32(mem, nevents, ready.len() as u32)
    }))
}

/// Nanoseconds on a WASI clock: 0 realtime, 1 monotonic. The CPU-time clocks (2, 3)
/// are `EBADF`, as in wasmtime; any other id is `EINVAL`.
fn clock_ns(id: i32) -> Result<u64, i32> {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    match id {
        0 => Ok(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64),
        1 => Ok(START.get_or_init(Instant::now).elapsed().as_nanos() as u64),
        2 | 3 => Err(EBADF),
        _ => Err(EINVAL),
    }
}

/// Runs `f` on the task's memory; an out-of-bounds pointer becomes `EFAULT`.
fn with_mem(c: &mut Cx<'_>, f: impl FnOnce(&mut [u8], &mut TaskCtx) -> Result<(), i32>) -> i32 {
    let Some(Extern::Memory(memory)) = c.get_export("memory") else { return EFAULT };
    let (mem, cx) = memory.data_and_store_mut(c);
    match f(mem, cx) {
        Ok(()) => SUCCESS,
        Err(errno) => errno,
    }
}

/// A guest address: the module's 32-bit pointer (unsigned) plus an offset, in 64 bits so
/// that nothing wraps.
fn at(ptr: i32, offset: u64) -> u64 {
    u64::from(ptr as u32) + offset
}

fn slice(mem: &mut [u8], addr: impl Into<Addr>, len: u32) -> Result<&mut [u8], i32> {
    let start = usize::try_from(addr.into().0).map_err(|_| EFAULT)?;
    let end = start.checked_add(len as usize).ok_or(EFAULT)?;
    mem.get_mut(start..end).ok_or(EFAULT)
}

/// A guest address, from a module's `i32` pointer or from [`at`].
struct Addr(u64);

impl From<i32> for Addr {
    fn from(ptr: i32) -> Self {
        Self(at(ptr, 0))
    }
}

impl From<u64> for Addr {
    fn from(addr: u64) -> Self {
        Self(addr)
    }
}

/// The `i`th iovec of the array at `iovs`: (buffer address, length).
fn iovec(mem: &mut [u8], iovs: i32, i: i32) -> Result<(u64, u32), i32> {
    let base = at(iovs, 8 * i as u64);
    let ptr = u32::from_le_bytes(slice(mem, base, 4)?.try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(slice(mem, base + 4, 4)?.try_into().expect("4 bytes"));
    Ok((u64::from(ptr), len))
}

fn put_u32(mem: &mut [u8], ptr: i32, v: u32) -> Result<(), i32> {
    slice(mem, ptr, 4)?.copy_from_slice(&v.to_le_bytes());
    Ok(())
}

fn put_u64(mem: &mut [u8], ptr: i32, v: u64) -> Result<(), i32> {
    slice(mem, ptr, 8)?.copy_from_slice(&v.to_le_bytes());
    Ok(())
}
