//! Running one program as a task, on Linux: exec'd directly (no shell) in its own process
//! group, with stdin empty, stdout and stderr captured up to their caps, an optional
//! address-space limit, a deadline and a cancel flag.
//!
//! The worker thread waits with `poll(2)` on the two pipes and a pidfd of the child, so a
//! task that ends at once costs no more than its fork and exec, and a task that hangs
//! costs nothing until its deadline. The whole process group ends with the task: on a
//! timeout, an output over its cap or a cancel it gets SIGTERM, then SIGKILL after
//! [`KILL_GRACE`]; once the program itself exits, whatever it left running in its group
//! gets SIGKILL. A process that leaves the group on purpose (`setsid`) is beyond reach.
//! If the node itself is killed (`kill -9`), its programs are ended when a node next
//! starts on the same home (`super::remove_stale`), which systemd's restart makes soon.

use crate::job::run::{Ended, RunProblem, Stream};
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process group has between SIGTERM and SIGKILL.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(2);
/// How often a waiting worker looks at its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(100);
/// How long the pipes may stay open after the program exited and its group was killed.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What bounds one task's processes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) timeout: Option<Duration>,
    pub(crate) memory_mb: Option<u32>,
    pub(crate) stdout_cap: u64,
    pub(crate) stderr_cap: u64,
}

/// How a program ran.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) ended: Ended,
    pub(crate) problem: Option<RunProblem>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

/// Runs `argv` in `dir` with `env` added, within `limits`, until it ends or `cancelled()`
/// says so.
pub(crate) fn run(
    argv: &[String],
    dir: &Path,
    env: &[(&str, String)],
    limits: Limits,
    cancelled: &dyn Fn() -> bool,
) -> Finished {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // Without a closure to run between fork and exec, std starts the program with
    // posix_spawn (vfork), which does not copy this big process's page tables: 1.4x the
    // tasks per second of fork (docs/benchmarks.md). So only a memory limit, which must be
    // set in the child before exec, pays for a fork.
    if let Some(bytes) = limits.memory_mb.map(|mb| u64::from(mb) << 20) {
        // SAFETY: the closure runs in the child between fork and exec, and calls only
        // setrlimit64, which is async-signal-safe, on a value copied in before the fork.
        // The 64-bit call, so that a limit past 4 GiB means the same on 32-bit ARM.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit64 { rlim_cur: bytes, rlim_max: bytes };
                if libc::setrlimit64(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    match cmd.spawn() {
        Ok(child) => supervise(child, limits, cancelled),
        Err(e) => {
            let command = argv[0].clone();
            let scarce = [libc::EMFILE, libc::ENFILE, libc::ENOMEM, libc::EAGAIN, libc::ENOSPC];
            let problem = if e.kind() == std::io::ErrorKind::NotFound {
                RunProblem::NotFound(command)
            } else if e.raw_os_error().is_some_and(|n| scarce.contains(&n)) {
                RunProblem::NodeResources { command, reason: e.to_string() }
            } else {
                RunProblem::CannotStart { command, reason: e.to_string() }
            };
            let code = if matches!(problem, RunProblem::NotFound(_)) { 127 } else { 126 };
            Finished { ended: Ended::Exit(code), problem: Some(problem), stdout: Vec::new(), stderr: Vec::new() }
        }
    }
}

/// One captured stream: its pipe until EOF, what it said, and its cap.
struct Pipe {
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    cap: u64,
    stream: Stream,
}

impl Pipe {
    fn new(fd: Option<impl Into<std::os::fd::OwnedFd>>, cap: u64, stream: Stream) -> Self {
        let file = fd.map(|fd| std::fs::File::from(fd.into()));
        if let Some(f) = &file {
            set_nonblocking(f.as_raw_fd());
        }
        Self { file, buf: Vec::new(), cap, stream }
    }

    fn raw(&self) -> Option<RawFd> {
        self.file.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Reads what is there, until EOF closes the pipe; sets `over` when the cap is passed
    /// (what is over the cap is read and dropped, so the writer never blocks on it).
    fn read(&mut self, over: &mut Option<RunProblem>) {
        let mut chunk = [0u8; 64 * 1024];
        while let Some(f) = &mut self.file {
            match f.read(&mut chunk) {
                Ok(0) => self.file = None,
                Ok(n) => {
                    let room = (self.cap as usize).saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&chunk[..n.min(room)]);
                    if n > room && over.is_none() {
                        *over = Some(RunProblem::TooMuchOutput { stream: self.stream, cap: self.cap });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.file = None,
            }
        }
    }
}

fn supervise(mut child: Child, limits: Limits, cancelled: &dyn Fn() -> bool) -> Finished {
    let pid = child.id() as libc::pid_t;
    let pidfd = pidfd_open(pid);
    let mut out = Pipe::new(child.stdout.take(), limits.stdout_cap, Stream::Stdout);
    let mut err = Pipe::new(child.stderr.take(), limits.stderr_cap, Stream::Stderr);
    let started = Instant::now();
    let deadline = limits.timeout.map(|t| started + t);
    let mut problem: Option<RunProblem> = None;
    let mut killing: Option<Instant> = None; // when SIGTERM went to the group
    let mut exited: Option<(std::process::ExitStatus, Instant)> = None;
    loop {
        if exited.is_none() {
            let status = child.try_wait().unwrap_or_else(|e| {
                // Not ours to wait for any more (never expected): count it as killed
                // rather than poll a readable pidfd for ever.
                tracing::warn!(pid, %e, "cannot wait for a task's process; ending it");
                Some(std::process::ExitStatus::from_raw(libc::SIGKILL))
            });
            if let Some(status) = status {
                // The program is done: what it left in its group goes too.
                signal_group(pid, libc::SIGKILL);
                exited = Some((status, Instant::now()));
            }
        }
        let pipes_open = out.raw().is_some() || err.raw().is_some();
        if let Some((status, at)) = exited
            && (!pipes_open || at.elapsed() >= DRAIN_GRACE)
        {
            let ended = match status.code() {
                Some(c) => Ended::Exit(c),
                None => Ended::Signal(status.signal().unwrap_or(0)),
            };
            return Finished { ended, problem, stdout: out.buf, stderr: err.buf };
        }
        if problem.is_none() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                problem = Some(RunProblem::TimedOut { ms: limits.timeout.unwrap_or_default().as_millis() as u64 });
            } else if cancelled() {
                problem = Some(RunProblem::Cancelled);
            }
        }
        if problem.is_some() && exited.is_none() {
            match killing {
                None => {
                    signal_group(pid, libc::SIGTERM);
                    killing = Some(Instant::now());
                }
                Some(t) if t.elapsed() >= KILL_GRACE => signal_group(pid, libc::SIGKILL),
                Some(_) => {}
            }
        }
        let wait = next_wait(deadline, killing, exited.map(|e| e.1), problem.is_some());
        poll(
            &[out.raw(), err.raw(), if exited.is_none() { pidfd.as_ref().map(AsRawFd::as_raw_fd) } else { None }],
            wait,
        );
        out.read(&mut problem);
        err.read(&mut problem);
    }
}

/// How long to sleep in `poll`: until the next thing that needs a look.
fn next_wait(deadline: Option<Instant>, killing: Option<Instant>, exited: Option<Instant>, stopping: bool) -> Duration {
    let now = Instant::now();
    let mut wait = CANCEL_POLL;
    if let Some(d) = deadline.filter(|_| !stopping) {
        wait = wait.min(d.saturating_duration_since(now));
    }
    if let Some(k) = killing {
        wait = wait.min((k + KILL_GRACE).saturating_duration_since(now));
    }
    if let Some(e) = exited {
        wait = wait.min((e + DRAIN_GRACE).saturating_duration_since(now));
    }
    wait
}

fn poll(fds: &[Option<RawFd>], wait: Duration) {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().flatten().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    let ms = wait.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs for the whole call.
    unsafe {
        libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms);
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: `fd` is an open pipe owned by this function's caller for the whole call.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// A pidfd for `pid`, readable once it exits; `None` on kernels before 5.3, where the
/// worker polls the child every `CANCEL_POLL` instead.
fn pidfd_open(pid: libc::pid_t) -> Option<std::os::fd::OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative result is a fresh descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as RawFd) })
}

/// Sends `sig` to the task's process group (its leader's pid); a group already gone is fine.
fn signal_group(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill with a negative pid signals that process group; it has no memory effects.
    unsafe {
        libc::kill(-pid, sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { timeout: None, memory_mb: None, stdout_cap: 1 << 20, stderr_cap: 1 << 20 }
    }

    fn sh(script: &str, limits: Limits) -> Finished {
        let argv = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
        run(&argv, &std::env::temp_dir(), &[("MESH_SEQ", "3".into())], limits, &|| false)
    }

    #[test]
    fn output_exit_code_and_environment() {
        let f = sh("echo out $MESH_SEQ; echo err >&2; exit 4", limits());
        assert_eq!(
            (f.ended, f.problem, &f.stdout[..], &f.stderr[..]),
            (Ended::Exit(4), None, &b"out 3\n"[..], &b"err\n"[..])
        );
        let f = run(&["no-such-program-here".into()], &std::env::temp_dir(), &[], limits(), &|| false);
        assert_eq!(f.ended, Ended::Exit(127));
        assert!(matches!(f.problem, Some(RunProblem::NotFound(_))));
    }

    #[test]
    fn a_timeout_ends_the_whole_group_even_a_child_that_ignores_sigterm() {
        let marker = std::env::temp_dir().join(format!("mesh-run-orphan-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let script = format!("(trap '' TERM; sleep 3; touch {}) & sleep 30", marker.display());
        let f = sh(&script, Limits { timeout: Some(Duration::from_millis(300)), ..limits() });
        assert!(matches!(f.problem, Some(RunProblem::TimedOut { ms: 300 })), "{:?}", f.problem);
        assert_eq!(f.ended, Ended::Signal(libc::SIGTERM));
        // The stubborn child got SIGKILL after the grace: it never lives to touch the file.
        std::thread::sleep(Duration::from_secs(4));
        assert!(!marker.exists(), "a child outlived its task");
    }

    #[test]
    fn leftovers_die_with_the_task_and_output_over_its_cap_fails_it() {
        let marker = std::env::temp_dir().join(format!("mesh-run-left-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let f = sh(&format!("(sleep 1; touch {}) >/dev/null 2>&1 & echo done", marker.display()), limits());
        assert_eq!((f.ended, &f.stdout[..]), (Ended::Exit(0), &b"done\n"[..]));
        std::thread::sleep(Duration::from_secs(2));
        assert!(!marker.exists(), "a background process outlived its task");
        let f = sh("yes", Limits { stdout_cap: 1000, ..limits() });
        assert!(matches!(f.problem, Some(RunProblem::TooMuchOutput { stream: Stream::Stdout, cap: 1000 })));
        assert_eq!(f.stdout.len(), 1000);
    }

    #[test]
    fn a_memory_limit_and_a_cancel_hold() {
        let f = sh("exec python3 -c 'x = bytearray(400 << 20)'", Limits { memory_mb: Some(200), ..limits() });
        assert_ne!(f.ended, Ended::Exit(0), "a 400 MiB allocation under a 200 MiB limit fails");
        let argv = vec!["sleep".to_string(), "30".to_string()];
        let f = run(&argv, &std::env::temp_dir(), &[], limits(), &|| true);
        assert_eq!((f.ended, f.problem), (Ended::Signal(libc::SIGTERM), Some(RunProblem::Cancelled)));
    }
}
