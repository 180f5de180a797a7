//! Jobs that belong to their owner node, not to a connection (issue 26): raw JSON lines to
//! a real node's control socket over loopback, as any client would speak them.

use crate::cli::{mesh, stderr};
use crate::common::nodes::{Cluster, demo, expected};
use mesh::job::JobSpec;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// A connection to a node's control socket that writes one request and reads lines.
pub(crate) struct Line {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Line {
    pub(crate) fn open(home: &Path, request: &Value) -> Self {
        let mut stream = UnixStream::connect(home.join("control.sock")).unwrap();
        stream.set_read_timeout(Some(crate::common::nodes::LIMIT)).unwrap();
        writeln!(stream, "{request}").unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Self { stream, reader }
    }

    pub(crate) fn next(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the node closed the connection");
        serde_json::from_str(&line).unwrap()
    }

    /// Lines until the report (or an error), which is returned.
    pub(crate) fn until_end(&mut self) -> Value {
        loop {
            let v = self.next();
            if v.get("report").is_some() || v.get("error").is_some() {
                return v;
            }
        }
    }
}

/// One request, one answer line, on a blocking thread.
pub(crate) async fn ask(home: &Path, request: Value) -> Value {
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || Line::open(&home, &request).next()).await.unwrap()
}

/// Follows job `id` to its end with `wait`; the report (or error) line.
pub(crate) async fn wait(home: &Path, id: &str) -> Value {
    let (home, id) = (home.to_path_buf(), id.to_string());
    tokio::task::spawn_blocking(move || {
        let mut w = Line::open(&home, &json!({ "cmd": "wait", "job": id }));
        let first = w.next();
        if first.get("error").is_some() {
            return first;
        }
        assert_eq!(first["job"], json!(id));
        assert!(w.next().get("spec").is_some(), "the job's spec comes second");
        w.until_end()
    })
    .await
    .unwrap()
}

pub(crate) fn results(report: &Value) -> mesh::node::JobResults {
    serde_json::from_value(report["report"]["results"].clone()).unwrap()
}

/// Long enough to still run when the test looks: thousands of demo tasks on one worker.
pub(crate) fn long() -> JobSpec {
    demo(100_000, 104_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_job_runs_on_and_wait_gets_its_exact_results() {
    let (c, home) = one_node("jobs-detach").await;
    let first = ask(&home, json!({ "cmd": "submit", "job": demo(100, 140), "detach": true })).await;
    let id = first["job"].as_str().expect("a job line").to_string();
    let report = wait(&home, &id).await;
    assert_eq!(results(&report), expected(100, 140), "{report}");
    // After it ended, wait still has it, the same.
    assert_eq!(wait(&home, &id).await, report);
    c.stop_all().await;
}

/// A cluster of one node with a control socket, and that node's home.
async fn one_node(tag: &str) -> (Cluster, std::path::PathBuf) {
    let mut c = Cluster::new(tag);
    c.add("a", true).await;
    let home = c.home("a");
    (c, home)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_that_goes_away_leaves_its_job_running_and_cancel_ends_it() {
    let (c, home) = one_node("jobs-gone").await;
    // A submitter whose terminal closes: its connection goes after the job line.
    let id = {
        let h = home.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = Line::open(&h, &json!({ "cmd": "submit", "job": long() }));
            let id = s.next()["job"].as_str().unwrap().to_string();
            drop(s);
            id
        })
        .await
        .unwrap()
    };
    // A later client finds it running, and follows it.
    let h = home.clone();
    let followed = tokio::task::spawn_blocking({
        let id = id.clone();
        move || {
            let mut w = Line::open(&h, &json!({ "cmd": "wait", "job": id }));
            w.next();
            w.next();
            w.until_end()
        }
    });
    crate::common::nodes::until(|| {
        let home = home.clone();
        async move {
            let peers = ask(&home, json!({ "cmd": "peers" })).await;
            peers["peers"]["rows"][0]["jobs"][0]["done"].as_u64().unwrap_or(0) > 0
        }
    })
    .await;
    let cancelled = ask(&home, json!({ "cmd": "cancel", "job": id })).await;
    assert_eq!(cancelled, json!({ "ok": null }));
    let report = followed.await.unwrap();
    assert_eq!(report["report"]["cancelled"], json!(true), "the waiter hears it was cancelled: {report}");
    let tasks = report["report"]["tasks"].as_u64().unwrap();
    let done: u64 = report["report"]["nodes"].as_array().unwrap().iter().map(|n| n["tasks"].as_u64().unwrap()).sum();
    assert!(done < tasks, "cancelled before the end: {done} of {tasks}");
    let again = ask(&home, json!({ "cmd": "cancel", "job": id })).await;
    assert!(again["error"].as_str().is_some_and(|e| e.contains("already ended")), "{again}");
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitters_cancel_line_cancels_and_unknown_jobs_are_said_so() {
    let (c, home) = one_node("jobs-ctrl-c").await;
    let h = home.clone();
    let (id, report) = tokio::task::spawn_blocking(move || {
        let mut s = Line::open(&h, &json!({ "cmd": "submit", "job": long() }));
        let id = s.next()["job"].as_str().unwrap().to_string();
        writeln!(s.stream, "{}", json!({ "cmd": "cancel", "job": id })).unwrap();
        (id, s.until_end())
    })
    .await
    .unwrap();
    let ours = format!("{}-999999", &id[..8]);
    assert_eq!(report["report"]["cancelled"], json!(true), "Ctrl-C's line cancels: {report}");
    for (request, says) in [
        (json!({ "cmd": "wait", "job": ours }), format!("no job {ours} here").as_str()),
        (json!({ "cmd": "wait", "job": "00000000-1" }), "no member of the mesh owns job 00000000-1"),
        (json!({ "cmd": "cancel", "job": "00000000-1" }), "no member of the mesh owns job 00000000-1"),
        (json!({ "cmd": "wait", "job": "seven" }), "is not a job id"),
    ] {
        let answer = ask(&home, request.clone()).await;
        assert!(answer["error"].as_str().is_some_and(|e| e.contains(says)), "{request}: {answer}");
    }
    c.stop_all().await;
}

/// Another user of a group socket may not cancel a job, nor read its results: the node
/// refuses, and the job runs to its exact end. Root only (a second uid needs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_cancel_changes_nothing() {
    if !crate::common::nodes::root_for_a_second_uid() {
        return;
    }
    const OTHER: u32 = 65534; // nobody
    let mut c = Cluster::new("jobs-refused");
    let (_a, socket) = c.add_group_node("a", OTHER).await;
    let home = c.home("a");
    let (first, last) = (100_000, 101_500);
    let id = ask(&home, json!({ "cmd": "submit", "job": demo(first, last), "detach": true })).await["job"]
        .as_str()
        .unwrap()
        .to_string();
    refused_as(&socket, OTHER, &id, &["only they", "root@"]).await;
    let report = wait(&home, &id).await;
    assert_eq!(report["report"]["cancelled"], Value::Null, "not cancelled: {report}");
    assert_eq!(results(&report), expected(first, last), "and exact");
    c.stop_all().await;
}

/// User `uid`'s cancel and wait of job `id` through `socket` are refused, saying `says`.
pub(crate) async fn refused_as(socket: &Path, uid: u32, id: &str, says: &[&str]) {
    for cmd in ["cancel", "wait"] {
        let (socket, id) = (socket.to_path_buf(), id.to_string());
        let out = tokio::task::spawn_blocking(move || {
            crate::node_run::raw_request(&socket, uid, &json!({ "cmd": cmd, "job": id }))
        })
        .await
        .unwrap();
        let answer: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        let why = answer["error"].as_str().unwrap_or_default();
        assert!(says.iter().all(|s| why.contains(s)), "{cmd} as another user: {answer}");
    }
}

/// Jobs that outlive their terminal need a node to leave them with: without one, the
/// commands say so and exit 2; a job id that is not one is a usage error.
#[test]
fn job_commands_without_a_node_say_what_to_start() {
    // With MESH_HOME set, these never reach for the mesh service's node.
    let out = mesh("no-node").args(["submit", "primes", "1000", "--detach"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no node serves") && stderr(&out).contains("mesh join"), "{}", stderr(&out));
    for args in [["wait", "abcd0123-4"], ["cancel", "abcd0123-4"]] {
        let out = mesh("no-node").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("no node serves"), "{args:?}: {}", stderr(&out));
    }
    let out = mesh("no-node").args(["jobs"]).output().unwrap();
    assert!(stderr(&out).contains("no node serves"), "{}", stderr(&out));
    let out = mesh("no-node").args(["wait", "seven"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not a job id"), "{}", stderr(&out));
    let out = mesh("no-node").args(["submit", "primes", "1000", "--detach", "--local"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--local and --detach conflict");
}

/// A submit whose node stops mid-job exits 1, as the README says (the job failed, not the
/// arguments), and a node started again finds no job of the old one: `mesh wait` says so.
#[test]
fn a_submit_whose_node_stops_exits_1() {
    let home = std::env::temp_dir().join(format!("mesh-cli-stopped-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let bin = assert_cmd::cargo::cargo_bin("mesh");
    let join = || {
        std::process::Command::new(&bin)
            .args(["--home", home.to_str().unwrap(), "join", "--no-mdns", "--listen", "127.0.0.1:0", "-w", "1"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut node = join();
    let socket = home.join("control.sock");
    let up = |what: &str| {
        let t = std::time::Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(t.elapsed() < std::time::Duration::from_secs(60), "{what} never served its socket");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    up("the node");
    let submit = std::process::Command::new(&bin)
        .args(["--home", home.to_str().unwrap(), "submit", "primes", "100000..160000", "--algo", "trial"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SAFETY: kill has no memory preconditions; the pid is our child's, not reaped.
    unsafe { libc::kill(node.id() as i32, libc::SIGTERM) };
    node.wait().unwrap();
    let out = submit.wait_with_output().unwrap();
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("dropped the job"), "{said}");
    // It says which job, and that a journalled node resumes it: so it does.
    let id = said.split("before job ").nth(1).and_then(|s| s.split(' ').next()).expect("the job's id").to_string();
    assert!(said.contains(&format!("`mesh wait {id}` then follows it")), "{said}");
    let again = Killed(join());
    up("the node started again");
    let out = mesh("stopped").args(["cancel", &id]).env("MESH_HOME", &home).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "the restarted node resumed job {id}: {}", stderr(&out));
    let out = mesh("stopped").args(["wait", "abcd0123-4"]).env("MESH_HOME", &home).output().unwrap();
    assert!(stderr(&out).contains("no member of the mesh owns job abcd0123-4"), "{}", stderr(&out));
    drop(again);
    let _ = std::fs::remove_dir_all(&home);
}

/// A child process killed when the test ends, even by a failed assertion: a node left
/// running would hold the test's output open.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mesh run --detach` leaves nobody to write a job log: the two are refused together.
#[test]
fn a_detached_run_writes_no_joblog_and_says_so() {
    let out = mesh("no-node").args(["run", "--detach", "--joblog", "log", "--", "true", ":::", "a"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--joblog") && stderr(&out).contains("--detach"), "{}", stderr(&out));
}
