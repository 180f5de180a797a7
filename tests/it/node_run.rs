//! `mesh run` jobs across real nodes in one process (loopback, no root): who may run
//! what (`--allow-run`, labels, a submitter's own node), outputs and returned files that
//! come back from the node that ran the task, and a job no node can run, which says why.

use crate::common::nodes::{Cluster, LIMIT, members, until};
use mesh::core::{Needs, Requirement};
use mesh::job::JobSpec;
use mesh::job::run::{Captured, RunJob, RunOutput, RunTask, RunTasks};
use mesh::node::{Client, JobEvent, JobReport, TaskEvent};
use mesh::store::BlobStore;
use std::path::Path;

/// A run job of `command` over `args`, its task list stored under `home`.
fn job(home: &Path, command: &[&str], args: &[String], returns: &[&str], requirements: Vec<Requirement>) -> JobSpec {
    let tasks = RunTasks {
        tasks: args
            .iter()
            .enumerate()
            .map(|(i, a)| RunTask { seq: i as u64 + 1, arg: a.clone(), file: None })
            .collect(),
    };
    JobSpec::Run(Box::new(RunJob {
        command: command.iter().map(|c| c.to_string()).collect(),
        tasks: args.len() as u64,
        inputs: BlobStore::new(home).put(&tasks.encode()).unwrap(),
        files: None,
        returns: returns.iter().map(|r| r.to_string()).collect(),
        timeout: None,
        memory_mb: None,
        retries: 0,
        halt: None,
        needs: Needs::native(requirements),
    }))
}

/// Runs a job to its end: its report and every task event, in task order.
async fn run_all(client: &Client, spec: JobSpec) -> (JobReport, Vec<TaskEvent>) {
    let mut h = client.submit(spec).await.unwrap();
    let report = tokio::time::timeout(LIMIT, &mut h.done).await.expect("the job never finished").unwrap();
    let mut tasks = Vec::new();
    while let Ok(e) = h.events.try_recv() {
        if let JobEvent::Task(t) = e {
            tasks.push(*t);
        }
    }
    tasks.sort_by_key(|t| t.task);
    (report, tasks)
}

fn ok(t: &TaskEvent) -> &RunOutput {
    t.outcome.as_ref().unwrap_or_else(|e| panic!("task {} failed: {e}", t.task))
}

fn inline(c: &Captured) -> &[u8] {
    match c {
        Captured::Inline(b) => b,
        Captured::Blob { .. } => panic!("expected inline output"),
    }
}

#[tokio::test]
async fn only_nodes_that_allow_runs_and_the_submitter_run_programs() {
    let mut c = Cluster::new("allow");
    let a = c.add_with("a", |cfg| (cfg.allow_run, cfg.runs_own) = (false, true)).await;
    c.add_with("b", |cfg| cfg.allow_run = true).await;
    c.add_with("c", |cfg| (cfg.allow_run, cfg.runs_own) = (false, false)).await;
    until(|| async { members(&a).await == ["b", "c"] }).await;
    // The facts travel with the gossip: wait until a knows who allows runs.
    until(|| async { a.peers().await.unwrap().rows.iter().any(|r| r.facts.as_ref().is_some_and(|f| f.allow_run)) })
        .await;
    let args: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    let spec = job(&c.home("a"), &["sh", "-c", "sleep 0.05; echo task {}"], &args, &[], Vec::new());
    let (report, tasks) = run_all(&a, spec).await;
    assert_eq!(tasks.len(), 40);
    for (t, arg) in tasks.iter().zip(&args) {
        assert_eq!(inline(&ok(t).stdout), format!("task {arg}\n").as_bytes());
        assert_ne!(t.node, "c", "c does not allow runs, yet ran task {}", t.task);
    }
    assert!(report.nodes.iter().all(|n| n.name != "c"), "{:?}", report.nodes);
    assert!(tasks.iter().any(|t| t.node == "b"), "b allows runs and helped");
    c.stop_all().await;
}

#[tokio::test]
async fn requirements_pick_the_nodes_and_outputs_come_back_from_them() {
    let mut c = Cluster::new("require");
    let a = c.add_with("a", |cfg| cfg.allow_run = true).await;
    c.add_with("b", |cfg| cfg.labels = vec!["big".into()]).await;
    until(|| async { members(&a).await == ["b"] }).await;
    until(|| async {
        a.peers().await.unwrap().rows.iter().any(|r| r.facts.as_ref().is_some_and(|f| !f.labels.is_empty()))
    })
    .await;
    // 100 kB of stdout (more than travels inline) and a returned file, made on b only.
    let args: Vec<String> = (1..=4).map(|i| i.to_string()).collect();
    let script = "head -c 100000 /dev/zero | tr '\\0' {}; echo made {} > out-{}.txt";
    let spec = job(&c.home("a"), &["sh", "-c", script], &args, &["out-{}.txt"], vec![Requirement::Label("big".into())]);
    let (report, tasks) = run_all(&a, spec).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let store = BlobStore::new(&c.home("a"));
    for (t, arg) in tasks.iter().zip(&args) {
        assert_eq!(t.node, "b", "only b has the label");
        let out = ok(t);
        let Captured::Blob { id, len: 100_000 } = out.stdout else { panic!("{:?}", out.stdout) };
        let stdout = store.read(id).expect("the output came to the submitter's store");
        assert!(stdout.iter().all(|&b| b == arg.as_bytes()[0]));
        assert_eq!(out.returned.len(), 1);
        assert_eq!(store.read(out.returned[0].blob).unwrap(), format!("made {arg}\n").as_bytes());
    }
    c.stop_all().await;
}

#[tokio::test]
async fn a_job_no_node_can_run_says_why() {
    let mut c = Cluster::new("nobody");
    let a = c.add_with("a", |cfg| cfg.allow_run = true).await;
    c.add_with("b", |cfg| cfg.allow_run = false).await;
    until(|| async { members(&a).await == ["b"] }).await;
    let spec = job(&c.home("a"), &["true"], &["x".to_string()], &[], vec![Requirement::Label("gpu".into())]);
    let mut h = a.submit(spec).await.unwrap();
    let why = tokio::time::timeout(LIMIT, async {
        loop {
            if let Some(JobEvent::Waiting(why)) = h.events.recv().await {
                return why;
            }
        }
    })
    .await
    .expect("the owner never said why the job waits");
    assert_eq!(why, "of 2 nodes, 1 does not allow runs (mesh join --allow-run) and 1 lack the label gpu");
    drop(h); // the submitter gives up: the job is cancelled
    c.stop_all().await;
}

#[tokio::test]
async fn when_the_submitter_goes_its_programs_end_everywhere() {
    let mut c = Cluster::new("orphans");
    let a = c.add_with("a", |cfg| (cfg.allow_run, cfg.runs_own, cfg.workers) = (false, false, 1)).await;
    let b = c.add_with("b", |cfg| cfg.allow_run = true).await;
    until(|| async { members(&a).await == ["b"] }).await;
    until(|| async { a.peers().await.unwrap().rows.iter().any(|r| r.facts.as_ref().is_some_and(|f| f.allow_run)) })
        .await;
    let marker = c.dir.join("outlived");
    let script = format!("sleep 4; touch {}", marker.display());
    let spec = job(&c.home("a"), &["sh", "-c", &script], &["x".to_string()], &[], Vec::new());
    let h = a.submit(spec).await.unwrap();
    until(|| async { b.peers().await.unwrap().rows[0].busy == Some(1) }).await;
    c.stop("a").await; // the owner leaves: b drops its job and ends the program
    drop(h);
    until(|| async { b.peers().await.unwrap().rows[0].busy == Some(0) }).await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert!(!marker.exists(), "the program outlived its job's owner");
    c.stop_all().await;
}

/// `mesh run | less`, with the pager paused: the submitter stops reading its results for
/// longer than the node waits on a write to a client. The job must go on, and every line
/// come out whole once the reader resumes, rather than the node giving up on the
/// submitter and cancelling the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_reader_does_not_cancel_the_job() {
    let mut c = Cluster::new("paused");
    c.add("a", true).await;
    let home = c.home("a");
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mesh"))
            .env("MESH_HOME", &home)
            .args(["run", "--", "sh", "-c", "head -c 20000 /dev/zero | tr '\\0' x; echo", ":::"])
            .args((1..=40).map(|i| i.to_string()))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // 800 kB of results against a 64 kB pipe: the submitter blocks on its stdout.
        std::thread::sleep(mesh::node::control::IO_TIMEOUT + std::time::Duration::from_secs(2));
        let mut stdout = String::new();
        child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        (child.wait().unwrap(), stdout, stderr)
    })
    .await
    .unwrap();
    let (status, stdout, stderr) = out;
    assert!(status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 40, "{stderr}");
    assert!(lines.iter().all(|l| l.len() == 20_000 && l.bytes().all(|b| b == b'x')));
    c.stop_all().await;
}

/// Issue 30: a member of the service's group, who does not hold the key, must not run
/// programs through the node's 0660 control socket. A second uid speaks raw JSON to the
/// socket, as a probe would: its `mesh run` job is refused by the node (its program never
/// runs), `put` of a path is refused, so are reads of the store and pins (issue 25's
/// store requests), and a primes job, sandboxed, is served, as is an upload without a pin.
/// Root only (a second uid needs it); CI runs as root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_cannot_run_programs_through_the_socket() {
    if !crate::common::nodes::root_for_a_second_uid() {
        return;
    }
    const OTHER: u32 = 65534; // nobody, in group nogroup (65534)
    let mut c = Cluster::new("group-socket");
    let (a, socket) = c.add_group_node("a", OTHER).await;
    let home = c.home("a");
    let marker = c.dir.join("ran");
    let script = format!("id -u > {}", marker.display());
    let run = job(&home, &["sh", "-c", &script], &["x".to_string()], &[], Vec::new());
    let primes = crate::common::nodes::demo(100, 120);
    let ask = |request: serde_json::Value| {
        let socket = socket.clone();
        async move {
            let out = tokio::task::spawn_blocking(move || raw_request(&socket, OTHER, &request)).await.unwrap();
            out.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).collect::<Vec<_>>()
        }
    };
    let refused = ask(serde_json::json!({ "cmd": "submit", "job": run })).await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    let why = refused[0]["error"].as_str().expect("an error line");
    assert!(why.contains("only from its own user") && why.contains("uid 65534"), "{why}");
    assert!(!marker.exists(), "the program ran for a user without the key");
    let put = ask(serde_json::json!({ "cmd": "put", "path": "/etc/hostname" })).await;
    assert!(put[0]["error"].as_str().is_some_and(|e| e.contains("only the node's own user")), "{put:?}");
    let list = serde_json::to_value(&run).unwrap()["Run"]["inputs"].clone();
    for request in [
        serde_json::json!({ "cmd": "read", "id": list }),
        serde_json::json!({ "cmd": "unpin", "ids": [list] }),
        serde_json::json!({ "cmd": "upload", "len": 0, "pin": true }),
    ] {
        let answer = ask(request.clone()).await;
        let why = answer[0]["error"].as_str().unwrap_or_default();
        assert!(why.contains("only the node's own user"), "{request} was answered {answer:?}");
    }
    let empty = ask(serde_json::json!({ "cmd": "upload", "len": 0 })).await;
    assert_eq!(empty[0]["blob"].as_str().map(str::len), Some(64), "an upload without a pin is served: {empty:?}");
    let served = ask(serde_json::json!({ "cmd": "submit", "job": primes })).await;
    let report = served.last().and_then(|l| l.get("report")).expect("a report line");
    assert_eq!(report["failed"].as_array().map(Vec::len), Some(0), "{report}");
    // The node's own user may run the same program.
    let (report, _) = run_all(&a, run).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(marker.exists(), "the node's own user runs programs");
    c.stop_all().await;
}

/// Sends one request line to the control socket as `uid` (and its group), with a Python
/// client that knows nothing of mesh; returns every line the node answered.
pub(crate) fn raw_request(socket: &Path, uid: u32, request: &serde_json::Value) -> String {
    use std::os::unix::process::CommandExt;
    let client = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
    if b'"report"' in out or b'"error"' in out or b'"blob"' in out:
        break
sys.stdout.write(out.decode())
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", client, &socket.display().to_string(), &request.to_string()])
        .uid(uid)
        .gid(uid)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
