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
    let home = std::env::temp_dir().join(format!("mesh-journal-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("mesh");
    let expected = mesh(&bin, &home.join("local"), &[&JOB[..], &["--local"]].concat());
    assert!(expected.status.success(), "{}", stderr(&expected));
    let (log1, log2) = (home.join("node1.log"), home.join("node2.log"));
    let mut node = join(&bin, &home, &log1);
    served(&home);
    let out = mesh(&bin, &home, &[&JOB[..], &["--detach"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let id = String::from_utf8(out.stdout).unwrap().split_whitespace().last().unwrap().to_string();
    let t = Instant::now();
    while done(&bin, &home) < 20 {
        assert!(t.elapsed() < Duration::from_secs(120), "the job made no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A commit a second: let one happen, then kill the node as a power cut would.
    std::thread::sleep(Duration::from_millis(1500));
    node.kill().unwrap();
    node.wait().unwrap();
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
