//! One warm Python worker process, spoken to in the frames of [`crate::protocol::worker`].
//! The worker runs in its own process group, so that ending it ends whatever it started.

use super::error::PyError;
use crate::id::ContentId;
pub(crate) use crate::protocol::worker::Answer;
use crate::protocol::worker::{CODE, FrameError, NO_CODE, RESULT, TASK, head, parse_head, parse_result};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a wait for an answer looks whether the task was cancelled.
const POLL: Duration = Duration::from_millis(50);

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
        self.send(TASK, &[&code_id.0, payload])?;
        loop {
            let (kind, body) = self.receive(deadline, timeout, stop)?;
            match kind {
                NO_CODE => {
                    let Some(load) = code.take() else {
                        return Err(PyError::Protocol(FrameError::CodeTwice));
                    };
                    let bytes = load()?;
                    self.send(CODE, &[&code_id.0, &bytes])?;
                    self.send(TASK, &[&code_id.0, payload])?;
                }
                RESULT => {
                    self.tasks_run += 1;
                    return parse_result(&body).map_err(PyError::Protocol);
                }
                other => return Err(PyError::Protocol(FrameError::UnknownKind(other))),
            }
        }
    }

    fn send(&mut self, kind: u8, parts: &[&[u8]]) -> Result<(), PyError> {
        let head = head(kind, parts.iter().map(|p| p.len()).sum()).map_err(PyError::Protocol)?;
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
        let (kind, len) = parse_head(head).map_err(PyError::Protocol)?;
        let mut body = vec![0u8; len];
        self.from.read_exact(&mut body).map_err(|e| self.died(&e.to_string()))?;
        Ok((kind, body))
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
