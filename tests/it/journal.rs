//! A node that restarts resumes its jobs from its journal (issue 26): a real `mesh join`
//! killed with SIGKILL mid-job and started again on the same home, then `mesh wait`.

use crate::cli::stderr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const JOB: [&str; 5] = ["submit", "primes", "100000..104000", "--algo", "trial"];

fn join(bin: &Path, home: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(bin)
        .args([
            "--home",
            home.to_str().unwrap(),
            "join",
            "--no-mdns",
            "--no-http",
            "--listen",
            "127.0.0.1:0",
            "-w",
            "1",
        ])
        .env("RUST_LOG", "mesh=info")
        .stderr(log)
        .spawn()
        .unwrap()
}

/// An empty directory for a test's node.
fn fresh_home(tag: &str) -> std::path::PathBuf {
    let home = std::env::temp_dir().join(format!("mesh-journal-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    home
}

fn served(home: &Path) {
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(home.join("control.sock")).is_err() {
        assert!(t.elapsed() < Duration::from_secs(60), "the node never served its socket");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mesh(bin: &Path, home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin).arg("--home").arg(home).args(args).stdin(Stdio::null()).output().unwrap()
}

/// Tasks of the job done so far, from `mesh jobs --json`.
fn done(bin: &Path, home: &Path) -> u64 {
    let out = mesh(bin, home, &["jobs", "--json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    jobs.as_array().and_then(|a| a.first()).and_then(|j| j["done"].as_u64()).unwrap_or(0)
}

#[test]
fn a_node_killed_mid_job_resumes_it_and_wait_gets_the_exact_result() {
    let home = fresh_home("kill");
    let bin = assert_cmd::cargo::cargo_bin("mesh");
    let expected = mesh(&bin, &home.join("local"), &[&JOB[..], &["--local"]].concat());
    assert!(expected.status.success(), "{}", stderr(&expected));
    let id = killed_mid_jobs(&bin, &home, 1).remove(0);
    let log2 = home.join("node2.log");
    let mut again = join(&bin, &home, &log2);
    served(&home);
    let waited = mesh(&bin, &home, &["wait", &id]);
    let _ = again.kill();
    let _ = again.wait();
    let log = std::fs::read_to_string(&log2).unwrap();
    assert!(waited.status.success(), "{}\n{log}", stderr(&waited));
    assert_eq!(
        String::from_utf8_lossy(&waited.stdout),
        String::from_utf8_lossy(&expected.stdout),
        "the resumed job's results are the local run's"
    );
    let kept: u64 = log
        .lines()
        .find(|l| l.contains("resumed a job from the journal"))
        .and_then(|l| l.split("kept=").nth(1))
        .and_then(|k| k.split_whitespace().next())
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("the node said it resumed the job: {log}"));
    assert!(kept >= 20, "the journal kept the results done before the kill: {kept}\n{log}");
    let _ = std::fs::remove_dir_all(&home);
}

/// Starts a node on `home`, submits `n` detached copies of [`JOB`], and kills the node
/// once each has results committed: their ids.
fn killed_mid_jobs(bin: &Path, home: &Path, n: usize) -> Vec<String> {
    let mut node = join(bin, home, &home.join("node1.log"));
    served(home);
    let ids: Vec<String> = (0..n)
        .map(|_| {
            let out = mesh(bin, home, &[&JOB[..], &["--detach"]].concat());
            assert!(out.status.success(), "{}", stderr(&out));
            String::from_utf8(out.stdout).unwrap().split_whitespace().last().unwrap().to_string()
        })
        .collect();
    let t = Instant::now();
    while done(bin, home) < 20 {
        assert!(t.elapsed() < Duration::from_secs(120), "the jobs made no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    node.kill().unwrap();
    node.wait().unwrap();
    ids
}

/// A job file damaged while the node was down (here: cut to half its length): the node
/// starts, names the job it lost, sets the file aside, and resumes the other job.
#[test]
fn a_damaged_job_file_loses_that_job_only_and_says_so() {
    let home = fresh_home("damaged");
    let bin = assert_cmd::cargo::cargo_bin("mesh");
    let ids = killed_mid_jobs(&bin, &home, 2);
    let seq: u32 = ids[0].split('-').nth(1).unwrap().parse().unwrap();
    let file = home.join("jobs").join(format!("{seq:08x}.redb"));
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(len / 2).unwrap();
    let log2 = home.join("node2.log");
    let mut again = join(&bin, &home, &log2);
    served(&home);
    let second = mesh(&bin, &home, &["wait", &ids[1]]);
    let first = mesh(&bin, &home, &["wait", &ids[0]]);
    let _ = again.kill();
    let _ = again.wait();
    let log = std::fs::read_to_string(&log2).unwrap();
    assert!(second.status.success(), "the other job resumed and finished: {}\n{log}", stderr(&second));
    assert!(!first.status.success() && stderr(&first).contains("no job"), "{}", stderr(&first));
    assert!(log.contains(&format!("job {} is lost", ids[0])), "the log names the lost job: {log}");
    assert!(log.contains("1 lost"), "and counts it: {log}");
    assert!(file.with_extension("redb.lost").exists(), "the damaged file is set aside, not deleted");
    let _ = std::fs::remove_dir_all(&home);
}

/// A home on a disk too small for the journal: the node says the journal cannot write,
/// the jobs run on to their exact results, and the node keeps serving. Root only (a small
/// filesystem needs a mount).
#[test]
fn a_full_disk_pauses_the_journal_not_the_jobs() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let home = fresh_home("full");
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=400k", "mesh-test-full"]).arg(&home).status();
    assert!(mounted.unwrap().success(), "mounting a small tmpfs");
    let bin = assert_cmd::cargo::cargo_bin("mesh");
    let logs = std::env::temp_dir().join(format!("mesh-journal-full-{}.log", std::process::id()));
    let mut node = join(&bin, &home, &logs);
    served(&home);
    let job = ["submit", "primes", "10000", "--tasks", "10000"];
    // Each within two minutes, so that a submitter kept waiting fails the test, not CI.
    let run = || Command::new("timeout").arg("120").arg(&bin).arg("--home").arg(&home).args(job).output().unwrap();
    let runs: Vec<std::process::Output> = (0..3).map(|_| run()).collect();
    let _ = node.kill();
    let _ = node.wait();
    let _ = Command::new("umount").arg(&home).status();
    let log = std::fs::read_to_string(&logs).unwrap();
    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_file(&logs);
    for out in &runs {
        assert!(out.status.success(), "{}\n{log}", stderr(out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("is 5736396"),
            "exact: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(log.contains("the job journal cannot write"), "the node says so: {log}");
}
