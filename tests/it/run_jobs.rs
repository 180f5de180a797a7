//! `mesh run` across a namespaced LAN with real programs (`sh`, `sha256sum`): files sent
//! once per node, returned files exact, a node without `--allow-run` never running a task,
//! `--require` honoured, a host killed mid-job, a timeout that ends a whole process tree,
//! and `--resume`. See tests/it/common/lan.rs for the network.

use crate::common::lan::{Lan, eventually, lan_tests_enabled};
use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

const FIND: Duration = Duration::from_secs(30);

/// `n` hosts with key "run"; `flags[i]` are host i+1's extra `mesh join` flags.
fn mesh_of(flags: &[&[&str]]) -> Lan {
    let mut lan = Lan::new(flags.len());
    for (i, f) in flags.iter().enumerate() {
        let mut args = vec!["--key", "run"];
        args.extend_from_slice(f);
        lan.join(&format!("h{}", i + 1), &args);
    }
    let want: Vec<String> = (2..=flags.len()).map(|i| format!("h{i}")).collect();
    assert!(eventually(FIND, || lan.members("h1") == want), "mesh did not form");
    // The facts (allow-run, labels) ride on the gossip: wait until h1 has them all.
    assert!(eventually(FIND, || lan.peers("h1").iter().filter(|r| r["facts"].is_object()).count() == flags.len()));
    lan
}

/// `mesh run --json --key run ARGS` on `host`, in `dir` (its working directory).
fn run(lan: &mut Lan, host: &str, dir: &std::path::Path, args: &[&str]) -> (Output, serde_json::Value) {
    let mut all = vec!["run", "--json", "--key", "run"];
    all.extend_from_slice(args);
    let out = lan.mesh_in(host, dir, &all);
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, doc)
}

/// Tasks per node name.
fn by_node(doc: &serde_json::Value) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in doc["results"].as_array().unwrap() {
        *m.entry(r["node"].as_str().unwrap_or("").to_string()).or_default() += 1;
    }
    m
}

fn outputs(doc: &serde_json::Value) -> Vec<String> {
    doc["results"].as_array().unwrap().iter().map(|r| r["output"].as_str().unwrap().to_string()).collect()
}

fn blobs_fetched(lan: &mut Lan, host: &str) -> u64 {
    let me = lan.peers(host).into_iter().find(|r| r["self"] == true).unwrap();
    me["blobs"]["fetched"].as_u64().unwrap()
}

#[test]
fn files_go_once_per_node_and_returned_files_are_exact() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(&[&["--allow-run"], &["--allow-run"], &["--allow-run"]]);
    let dir = lan.dir().join("work");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("sum.sh"), "#!/bin/sh\nsleep 0.2\nsha256sum \"$1\" | cut -c1-64 | tee \"$1.sha\"\n")
        .unwrap();
    std::fs::set_permissions(dir.join("sum.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut inputs = Vec::new();
    let mut want = Vec::new();
    for i in 0..30 {
        let name = format!("data/f{i}.bin");
        let bytes: Vec<u8> = (0..10_000u32).map(|j| (j.wrapping_mul(31) ^ i) as u8).collect();
        std::fs::write(dir.join(&name), &bytes).unwrap();
        want.push(sha256_of(&dir.join(&name)));
        inputs.push(name);
    }
    let mut args = vec![
        "--send",
        "sum.sh",
        "--send-inputs",
        "--return",
        "{}.sha",
        "--results",
        "back",
        "--",
        "./sum.sh",
        "{}",
        ":::",
    ];
    args.extend(inputs.iter().map(String::as_str));
    let mut ran: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..2 {
        let (out, doc) = run(&mut lan, "h1", &dir, &args);
        assert_eq!(out.status.code(), Some(0), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        let got: Vec<String> = outputs(&doc).iter().map(|o| o.trim().to_string()).collect();
        assert_eq!(got, want, "round {round}: each task's output is its file's hash");
        for (i, name) in inputs.iter().enumerate() {
            let back = std::fs::read_to_string(dir.join("back").join(format!("{name}.sha"))).unwrap();
            assert_eq!(back.trim(), want[i], "returned {name}.sha");
        }
        for (n, c) in by_node(&doc) {
            *ran.entry(n).or_default() += c;
        }
    }
    assert!(["h2", "h3"].iter().all(|h| ran.get(*h).is_some_and(|&c| c > 0)), "every host ran tasks: {ran:?}");
    // Over both jobs a helper fetched the script, the file list and the task list once
    // each, plus the input files of the tasks it ran, never one twice.
    for h in ["h2", "h3"] {
        let fetched = blobs_fetched(&mut lan, h);
        assert!((4..=3 + 30).contains(&fetched), "{h} fetched {fetched} blobs");
    }
}

/// The SHA-256 of a file, by the system's sha256sum, as the tasks compute it.
fn sha256_of(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)[..64].to_string()
}

#[test]
fn only_allowed_and_matching_nodes_run_tasks() {
    if !lan_tests_enabled() {
        return;
    }
    // h1 submits; h2 allows runs with the label; h3 allows runs without it; h4 has the
    // label but does not allow runs.
    let mut lan = mesh_of(&[&[], &["--allow-run", "--label", "fast"], &["--allow-run"], &["--label", "fast"]]);
    let dir = lan.dir().to_path_buf();
    let inputs: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    let mut args = vec!["--require", "label=fast", "--", "sh", "-c", "sleep 0.1; echo {}", ":::"];
    args.extend(inputs.iter().map(String::as_str));
    let (out, doc) = run(&mut lan, "h1", &dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(outputs(&doc), inputs.iter().map(|i| format!("{i}\n")).collect::<Vec<_>>());
    let nodes = by_node(&doc);
    assert!(nodes.keys().all(|n| n == "h1" || n == "h2"), "only the submitter and h2 may run them: {nodes:?}");
    assert!(nodes.get("h2").is_some_and(|&c| c > 0), "{nodes:?}");
    // h4's own node has the label but no --allow-run: a job submitted elsewhere never
    // lands there, and the `mesh peers` columns say why.
    let table = String::from_utf8_lossy(&lan.mesh("h1", &["peers"]).stdout).into_owned();
    assert!(table.contains("fast") && table.contains("runs"), "{table}");
}

#[test]
fn a_killed_host_loses_nothing_and_a_timeout_ends_a_whole_process_tree() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(&[&["--allow-run"], &["--allow-run"], &["--allow-run"]]);
    let dir = lan.dir().to_path_buf();
    let inputs: Vec<String> = (1..=300).map(|i| i.to_string()).collect();
    let mut args = vec!["run", "--json", "--key", "run", "--", "sh", "-c", "sleep 0.05; echo $(( {} * 7 ))", ":::"];
    args.extend(inputs.iter().map(String::as_str));
    let job = lan.spawn("h1", &args);
    assert!(eventually(FIND, || lan
        .peers("h1")
        .iter()
        .any(|r| r["name"] == "h3" && r["tasks_done"].as_u64().unwrap_or(0) > 5)));
    lan.kill9("h3");
    let out = lan.wait(job);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: Vec<String> = (1..=300u64).map(|i| format!("{}\n", i * 7)).collect();
    assert_eq!(outputs(&doc), want, "exact outputs after a kill -9");

    // A task whose child ignores SIGTERM: the timeout ends both, on whichever host.
    let marker = format!("mesh-orphan-{}", std::process::id());
    let script = format!("(trap '' TERM; exec -a {marker} sleep 300) & sleep 300");
    let (out, doc) = run(&mut lan, "h1", &dir, &["--timeout", "1", "--", "sh", "-c", &script, ":::", "a", "b"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(doc["results"].as_array().unwrap().iter().all(|r| r["error"].as_str().unwrap_or("").contains("timed out")));
    // SIGKILL follows SIGTERM after a grace of 2 s.
    let gone = eventually(Duration::from_secs(10), || {
        let ps = std::process::Command::new("pgrep").args(["-f", &marker]).output().unwrap();
        ps.stdout.is_empty()
    });
    assert!(gone, "a process of a timed-out task outlived it");
}

#[test]
fn resume_skips_what_the_joblog_records() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(&[&["--allow-run"], &["--allow-run"]]);
    let dir = lan.dir().to_path_buf();
    let log = dir.join("log.tsv");
    let log = log.to_str().unwrap();
    let inputs: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    let mut args = vec!["--joblog", log, "--", "sh", "-c", "test {} -le 15 && echo {}", ":::"];
    args.extend(inputs.iter().map(String::as_str));
    let (out, _) = run(&mut lan, "h1", &dir, &args);
    assert_eq!(out.status.code(), Some(1), "tasks 16 to 20 fail");
    let hosts: Vec<String> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(hosts.len(), 20);
    assert!(hosts.iter().any(|h| h == "h2"), "the joblog names the hosts: {hosts:?}");
    let mut again = vec!["--resume", "--joblog", log, "--", "sh", "-c", "echo {}", ":::"];
    again.extend(inputs.iter().map(String::as_str));
    let (out, doc) = run(&mut lan, "h1", &dir, &again);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(doc["tasks"], 0, "everything is in the joblog");
    let mut failed = vec!["--resume-failed", "--joblog", log, "--", "sh", "-c", "echo {#}", ":::"];
    failed.extend(inputs.iter().map(String::as_str));
    let (out, doc) = run(&mut lan, "h1", &dir, &failed);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(outputs(&doc), (16..=20).map(|i| format!("{i}\n")).collect::<Vec<_>>());
}

#[test]
fn a_python_sweep_runs_from_a_sent_script() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(&[&["--allow-run"], &["--allow-run"], &["--allow-run"]]);
    let dir = lan.dir().join("sweep");
    std::fs::create_dir_all(&dir).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/run/sweep.py");
    std::fs::copy(script, dir.join("sweep.py")).unwrap();
    let seeds: Vec<String> = (1..=24).map(|i| i.to_string()).collect();
    let mut args =
        vec!["--send", "sweep.py", "--", "python3", "sweep.py", "--samples", "100000", "--seed", "{}", ":::"];
    args.extend(seeds.iter().map(String::as_str));
    let (out, doc) = run(&mut lan, "h1", &dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // The same seeds, run here, give the same lines: the results do not depend on the node.
    for (seed, got) in seeds.iter().zip(outputs(&doc)) {
        let here = std::process::Command::new("python3")
            .args([script, "--samples", "100000", "--seed", seed])
            .output()
            .unwrap();
        assert_eq!(got, String::from_utf8_lossy(&here.stdout), "seed {seed}");
    }
    assert!(by_node(&doc).len() >= 2, "the sweep spread: {:?}", by_node(&doc));
}
