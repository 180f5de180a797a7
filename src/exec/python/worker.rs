//! One warm Python worker process and the frames it speaks (`docs/python.md`, "The worker
//! frames"): one kind byte, a 4-byte big-endian length, that many bytes.
//!
//! The node sends `T` (a code id and a task's payload); the worker answers `R` (a status,
//! the result bytes, what the task printed), or `N` when it lacks the task's code, after
//! which the node sends `C` (the code) and the same `T` again. The worker runs in its own
//! process group, so that ending it ends whatever it started.

use super::error::PyError;
use crate::id::ContentId;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest frame a worker may send: a value of at most `store::MAX_BLOB`, plus its
/// output and header.
const MAX_FRAME: usize = (crate::store::MAX_BLOB as usize) + (1 << 20);
/// How often a wait for an answer looks whether the task was cancelled.
const POLL: Duration = Duration::from_millis(50);

/// What a worker answered for a task.
#[derive(Debug)]
pub(crate) enum Answer {
    Returned {
        value: Vec<u8>,
        output: Vec<u8>,
    },
    Raised {
        value: Vec<u8>,
        output: Vec<u8>,
    },
    /// It could not set the task up; a message for the user.
    Setup(String),
}

#[derive(Debug)]
pub(crate) struct Worker {
    child: Child,
    to: ChildStdin,
    from: ChildStdout,
    tasks_run: u32,
}

impl Worker {
    /// Starts `script` with the node's Python, in `dir`.
    pub(crate) fn start(script: &Path, dir: &Path) -> Result<Self, PyError> {
        // The worker's directory (its tasks' sent files) is the node's user's alone.
        crate::store::private::private_dir(dir).map_err(|e| PyError::Start(format!("{}: {e}", dir.display())))?;
        let startup = std::fs::File::create(dir.join("startup.log")).map_err(|e| PyError::Start(e.to_string()))?;
        let python = super::interpreter::interpreter();
        let mut child = Command::new(&python)
            .arg(script)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(startup)
            .process_group(0)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => PyError::NoPython(format!("{} not found", python.display())),
                _ => PyError::Start(format!("{}: {e}", python.display())),
            })?;
        let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(PyError::Start("no pipes to the worker".into()));
        };
        Ok(Self { child, to, from, tasks_run: 0 })
    }

    pub(crate) fn tasks_run(&self) -> u32 {
        self.tasks_run
    }

    /// Its resident memory in bytes (0 where it cannot tell).
    pub(crate) fn resident(&self) -> u64 {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.child.id())).unwrap_or_default();
        let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
        pages * page
    }

    /// Runs one task: `payload` of the job whose code is `code_id` (`code` loads it if
    /// the worker asks), within `timeout`, ending early if `stop` says so.
    pub(crate) fn call(
        &mut self,
        code_id: ContentId,
        payload: &[u8],
        code: impl FnOnce() -> Result<Arc<Vec<u8>>, PyError>,
        timeout: Option<Duration>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Answer, PyError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut code = Some(code);
        self.send(b'T', &[&code_id.0, payload])?;
        loop {
            let (kind, body) = self.receive(deadline, timeout, stop)?;
            match kind {
                b'N' => {
                    let Some(load) = code.take() else {
                        return Err(PyError::Protocol("it asked for the same code twice".into()));
                    };
                    let bytes = load()?;
                    self.send(b'C', &[&code_id.0, &bytes])?;
                    self.send(b'T', &[&code_id.0, payload])?;
                }
                b'R' => {
                    self.tasks_run += 1;
                    return parse_result(body);
                }
                other => return Err(PyError::Protocol(format!("a frame of kind {other}"))),
            }
        }
    }

    fn send(&mut self, kind: u8, parts: &[&[u8]]) -> Result<(), PyError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len).map_err(|_| PyError::Protocol(format!("a frame of {len} bytes")))?;
        let mut head = [0u8; 5];
        head[0] = kind;
        head[1..].copy_from_slice(&len.to_be_bytes());
        let mut write = || -> std::io::Result<()> {
            self.to.write_all(&head)?;
            for p in parts {
                self.to.write_all(p)?;
            }
            self.to.flush()
        };
        write().map_err(|e| self.died(&e.to_string()))
    }

    /// Waits for the next frame, within the deadline, while not stopped.
    fn receive(
        &mut self,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
        stop: &dyn Fn() -> bool,
    ) -> Result<(u8, Vec<u8>), PyError> {
        loop {
            if stop() {
                return Err(PyError::Cancelled);
            }
            if let (Some(d), Some(t)) = (deadline, timeout)
                && Instant::now() >= d
            {
                return Err(PyError::TimedOut(t));
            }
            if readable(self.from.as_raw_fd(), POLL) {
                break;
            }
        }
        let mut head = [0u8; 5];
        self.from.read_exact(&mut head).map_err(|e| self.died(&e.to_string()))?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME {
            return Err(PyError::Protocol(format!("a frame of {len} bytes")));
        }
        let mut body = vec![0u8; len];
        self.from.read_exact(&mut body).map_err(|e| self.died(&e.to_string()))?;
        Ok((head[0], body))
    }

    /// The worker is gone: how it ended, if it has.
    fn died(&mut self, io: &str) -> PyError {
        std::thread::sleep(Duration::from_millis(20)); // let it finish exiting
        match self.child.try_wait() {
            Ok(Some(status)) => PyError::Died(describe(status)),
            _ => PyError::Died(format!("its pipe failed: {io}")),
        }
    }
}

/// Dropping a worker ends it and whatever it started, and reaps it.
impl Drop for Worker {
    fn drop(&mut self) {
        signal_group(self.child.id(), libc::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `R`'s payload: a status byte, a 4-byte length, the result bytes, then the output.
fn parse_result(body: Vec<u8>) -> Result<Answer, PyError> {
    let bad = || PyError::Protocol("a result frame cut short".into());
    let status = *body.first().ok_or_else(bad)?;
    let len = body.get(1..5).ok_or_else(bad)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let value = body.get(5..5 + len).ok_or_else(bad)?.to_vec();
    let output = body[5 + len..].to_vec();
    match status {
        0 => Ok(Answer::Returned { value, output }),
        1 => Ok(Answer::Raised { value, output }),
        2 => Ok(Answer::Setup(String::from_utf8_lossy(&value).into_owned())),
        s => Err(PyError::Protocol(format!("a result of status {s}"))),
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => "unknown".into(),
    }
}

/// Whether `fd` has something to read (or has closed) within `wait`.
fn readable(fd: i32, wait: Duration) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, for a descriptor this worker owns.
    let n = unsafe { libc::poll(&mut p, 1, wait.as_millis() as i32) };
    n > 0 && p.revents != 0
}

fn signal_group(pid: u32, signal: i32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) on the worker's own process group; it started one with it.
        unsafe { libc::kill(-pid, signal) };
    }
}
