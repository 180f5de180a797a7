//! The run runtime against real programs (`sh`, `cat`): sent files, returned files, large
//! output, permissions, clean directories.

use super::*;
use crate::core::Needs;
use crate::job::run::{RunTask, Stream};
use crate::store::BlobStore;

struct Fixture {
    home: PathBuf,
    rt: RunRuntime,
    store: Arc<BlobStore>,
}

const ME: NodeId = NodeId(1);

impl Fixture {
    fn new(tag: &str, allow_run: bool) -> Self {
        let home = std::env::temp_dir().join(format!("mesh-run-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        let store = Arc::new(BlobStore::new(&home));
        let permission = Permission { allow_run, runs_own: true };
        let rt = RunRuntime::new(&home, Blobs::new(store.clone(), None), permission, Arc::default());
        Self { home, rt, store }
    }

    /// A job of `command` over `args`, with `files` sent as (path, contents, executable).
    fn job(&self, command: &[&str], args: &[&str], files: &[(&str, &[u8], bool)], returns: &[&str]) -> RunJob {
        let sent = files
            .iter()
            .map(|(path, bytes, executable)| SentFile {
                path: path.to_string(),
                blob: self.store.put(bytes).unwrap(),
                len: bytes.len() as u64,
                executable: *executable,
            })
            .collect::<Vec<_>>();
        let manifest = (!sent.is_empty()).then(|| self.store.put(&Manifest { files: sent }.encode()).unwrap());
        let tasks = RunTasks {
            tasks: args
                .iter()
                .enumerate()
                .map(|(i, a)| RunTask { seq: i as u64 + 1, arg: a.to_string(), file: None })
                .collect(),
        };
        RunJob {
            command: command.iter().map(|c| c.to_string()).collect(),
            tasks: args.len() as u64,
            inputs: self.store.put(&tasks.encode()).unwrap(),
            files: manifest,
            returns: returns.iter().map(|r| r.to_string()).collect(),
            timeout: None,
            memory_mb: None,
            retries: 0,
            halt: None,
            needs: Needs::native(Vec::new()),
        }
    }

    fn id(&self, owner: NodeId) -> JobId {
        JobId { owner, seq: 1 }
    }

    fn dirs_left(&self) -> usize {
        let runs = self.home.join("run").join(std::process::id().to_string());
        std::fs::read_dir(runs).map_or(0, |d| d.count())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn inline(c: &Captured) -> &[u8] {
    match c {
        Captured::Inline(b) => b,
        Captured::Blob { .. } => panic!("expected inline output"),
    }
}

#[test]
fn a_sent_script_runs_in_its_own_directory_and_returns_a_file() {
    let f = Fixture::new("script", true);
    let script: &[u8] = b"#!/bin/sh\necho \"$1 $MESH_SEQ\" | tee \"$1.out\"\npwd >&2\n";
    let job = f.job(&["./tool/work.sh", "{}"], &["alpha", "beta"], &[("tool/work.sh", script, true)], &["{}.out"]);
    let out = f.rt.run(f.id(ME), &job, 1, true).unwrap();
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(inline(&out.stdout), b"beta 2\n");
    let dir = String::from_utf8_lossy(inline(&out.stderr)).trim().to_string();
    assert!(dir.contains("/run/") && !Path::new(&dir).exists(), "ran in {dir}, removed after");
    assert_eq!(out.returned.len(), 1);
    assert_eq!((out.returned[0].path.as_str(), out.returned[0].len), ("beta.out", 7));
    assert_eq!(f.store.read(out.returned[0].blob).unwrap(), b"beta 2\n");
    assert_eq!(f.dirs_left(), 0);
}

/// Issue 30: a task's directory, with the files sent to it, is the node's user's alone
/// whatever the umask: the directory above each task's is 0700.
#[test]
fn task_directories_are_private_to_the_nodes_user() {
    let f = Fixture::new("private", true);
    // SAFETY: umask only swaps the process's mask; the test restores it.
    let old = unsafe { libc::umask(0o022) };
    let job = f.job(&["sh", "-c", "stat -c %a .."], &["x"], &[("data.csv", b"secret", false)], &[]);
    let out = f.rt.run(f.id(ME), &job, 0, true);
    unsafe { libc::umask(old) };
    let out = out.unwrap();
    assert!(out.succeeded(), "{out:?}");
    assert_eq!(inline(&out.stdout), b"700\n");
}

#[test]
fn failures_keep_their_output_and_say_why() {
    let f = Fixture::new("fail", true);
    let job = f.job(&["sh", "-c", "echo partial; exit 3"], &["x"], &[], &[]);
    let out = f.rt.run(f.id(ME), &job, 0, true).unwrap();
    assert_eq!((out.ended, out.problem.as_ref(), inline(&out.stdout)), (Ended::Exit(3), None, &b"partial\n"[..]));
    assert!(!out.succeeded());
    let job = f.job(&["true"], &["x"], &[], &["{}.png"]);
    let out = f.rt.run(f.id(ME), &job, 0, true).unwrap();
    assert_eq!(out.problem, Some(RunProblem::MissingReturn("x.png".into())));
    let job = f.job(&["ln", "-s", "/etc/passwd", "{}"], &["link"], &[], &["{}"]);
    let out = f.rt.run(f.id(ME), &job, 0, true).unwrap();
    assert!(matches!(out.problem, Some(RunProblem::BadReturn { .. })), "a symlink is never returned: {out:?}");
    let job = f.job(&["definitely-not-a-command"], &["x"], &[], &[]);
    let out = f.rt.run(f.id(ME), &job, 0, true).unwrap();
    assert_eq!(out.problem, Some(RunProblem::NotFound("definitely-not-a-command".into())));
    assert_eq!(f.dirs_left(), 0);
}

#[test]
fn large_output_goes_as_a_blob_and_too_much_fails() {
    let f = Fixture::new("big", true);
    let job = f.job(&["sh", "-c", "head -c 200000 /dev/zero"], &["x"], &[], &[]);
    let out = f.rt.run(f.id(ME), &job, 0, true).unwrap();
    let Captured::Blob { id, len: 200_000 } = out.stdout else { panic!("{:?}", out.stdout) };
    assert_eq!(f.store.read(id).unwrap().len(), 200_000);
    let job = f.job(&["sh", "-c", "yes >&2"], &["x"], &[], &[]);
    let out = f.rt.run(f.id(ME), &job, 0, true).unwrap();
    assert_eq!(out.problem, Some(RunProblem::TooMuchOutput { stream: Stream::Stderr, cap: STDERR_CAP }));
}

#[test]
fn only_nodes_that_allow_runs_run_others_programs() {
    let f = Fixture::new("perm", false);
    let job = f.job(&["true"], &["x"], &[], &[]);
    assert!(f.rt.run(f.id(ME), &job, 0, true).is_ok(), "its own job");
    assert!(matches!(f.rt.run(f.id(NodeId(2)), &job, 0, false), Err(RunError::NotAllowed)), "another node's");
    // A job whose id names this node but that was not submitted here is someone else's.
    assert!(matches!(f.rt.run(f.id(ME), &job, 0, false), Err(RunError::NotAllowed)), "a forged id");
    assert!(matches!(f.rt.run(f.id(ME), &job, 5, true), Err(RunError::BeyondTasks { task: 5, tasks: 1 })));
}

#[test]
fn a_cancelled_job_ends_its_tasks_and_stale_directories_go() {
    let f = Fixture::new("cancel", true);
    let stale = f.home.join("run").join("999999999");
    std::fs::create_dir_all(stale.join("old-task")).unwrap();
    // A program a killed node left running in its task's directory, in its own group.
    let mut orphan = std::process::Command::new("sleep");
    orphan.arg("300").current_dir(stale.join("old-task"));
    std::os::unix::process::CommandExt::process_group(&mut orphan, 0);
    let mut orphan = orphan.spawn().unwrap();
    let cancels = Arc::new(Cancels::default());
    let permission = Permission { allow_run: true, runs_own: true };
    let rt = RunRuntime::new(&f.home, Blobs::new(f.store.clone(), None), permission, cancels.clone());
    assert!(!stale.exists(), "a dead node's directories are removed at start");
    let status = orphan.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL), "its program was ended");
    // A running task ends when its job is cancelled...
    let job = f.job(&["sleep"], &["30"], &[], &[]);
    let out = std::thread::scope(|s| {
        let running = s.spawn(|| rt.run(f.id(ME), &job, 0, true));
        while std::fs::read_dir(f.home.join("run")).map_or(0, |d| d.flatten().count()) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        cancels.cancel(f.id(ME));
        running.join().unwrap()
    });
    let out = out.unwrap();
    assert_eq!(out.problem, Some(RunProblem::Cancelled), "{out:?}");
    // ...and a later task of it does not start at all.
    let marker = f.home.join("started");
    let later = f.job(&["touch", marker.to_str().unwrap()], &["x"], &[], &[]);
    assert!(matches!(rt.run(f.id(ME), &later, 0, true), Err(RunError::Cancelled)));
    assert!(!marker.exists(), "the program never ran");
}

#[test]
fn a_percent_timeout_follows_the_median_of_successes() {
    let f = Fixture::new("median", true);
    let mut job = f.job(&["sh", "-c", "sleep {}"], &["0.05", "0.05", "0.05", "5"], &[], &[]);
    job.timeout = Some(RunTimeout::PercentOfMedian { percent: 300 });
    for task in 0..3 {
        assert!(f.rt.run(f.id(ME), &job, task, true).unwrap().succeeded());
    }
    let out = f.rt.run(f.id(ME), &job, 3, true).unwrap();
    assert!(matches!(out.problem, Some(RunProblem::TimedOut { .. })), "5 s is far over 300% of 50 ms: {out:?}");
}
