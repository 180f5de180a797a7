//! WebAssembly jobs across a namespaced LAN: exact outputs from every host, each module
//! shipped to a node once, timeouts and memory bombs that fail only their task, and a
//! corrupted transfer that is caught and fetched again. See tests/it/common/lan.rs.

use crate::common::lan::{Lan, eventually, lan_tests_enabled};
use mesh::exec::primes;
use std::time::Duration;

const FIND: Duration = Duration::from_secs(30);

fn fixture(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A mesh of `n` hosts with key "wasm"; `h1` runs with `h1_env`.
fn mesh_of(n: usize, h1_env: &[(&str, &str)]) -> Lan {
    let mut lan = Lan::new(n);
    lan.join_with_env("h1", &["--key", "wasm"], h1_env);
    for i in 2..=n {
        lan.join(&format!("h{i}"), &["--key", "wasm"]);
    }
    let want: Vec<String> = (2..=n).map(|i| format!("h{i}")).collect();
    assert!(eventually(FIND, || lan.members("h1") == want), "mesh did not form");
    lan
}

/// Submits a wasm job on `host` and returns its exit code and JSON document.
fn submit(lan: &mut Lan, host: &str, module: &str, input: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let file = lan.dir().join(format!("input-{host}.txt"));
    std::fs::write(&file, input).unwrap();
    let file = file.to_str().unwrap().to_string();
    let mut args = vec!["submit", "wasm", module, "--input-file", &file, "--json", "--key", "wasm"];
    args.extend_from_slice(extra);
    let out = lan.mesh(host, &args);
    let doc =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), doc)
}

fn outputs(doc: &serde_json::Value) -> Vec<Option<String>> {
    doc["results"].as_array().unwrap().iter().map(|r| r["output"].as_str().map(String::from)).collect()
}

fn share(doc: &serde_json::Value, name: &str) -> u64 {
    doc["nodes"].as_array().unwrap().iter().filter(|n| n["name"] == name).map(|n| n["tasks"].as_u64().unwrap()).sum()
}

/// A host's own blob counters, from `mesh peers --json`.
fn blobs(lan: &mut Lan, host: &str) -> serde_json::Value {
    lan.peers(host).into_iter().find(|r| r["self"] == true).map(|r| r["blobs"].clone()).unwrap_or_default()
}

/// The primes example over `first..first+count`, and the sums it must print.
fn primes_job(first: u64, count: u64) -> (String, Vec<Option<String>>) {
    let ns = first..first + count;
    let input = ns.clone().map(|n| format!("{n}\n")).collect();
    (input, ns.map(|n| Some(primes::sieve(0, n).sum.to_string())).collect())
}

#[test]
fn a_module_runs_on_every_host_exactly_and_ships_once() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(3, &[]);
    let module = fixture("examples/wasm/primes.wat");
    // About 3 s of work: enough for every host to steal some even when the other LAN
    // tests share the machine's 2 cores.
    let (input, want) = primes_job(100_000, 500);
    let (code, doc) = submit(&mut lan, "h1", &module, &input, &[]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(outputs(&doc), want);
    for h in ["h1", "h2", "h3"] {
        assert!(share(&doc, h) > 0, "{h} ran no task of 500: {}", doc["nodes"]);
    }
    // The same job again: the helpers hold the module and the input already.
    let (code, again) = submit(&mut lan, "h1", &module, &input, &[]);
    assert_eq!(code, Some(0), "{again}");
    assert_eq!(outputs(&again), want);
    for h in ["h2", "h3"] {
        let b = blobs(&mut lan, h);
        assert_eq!(b["fetched"], 2, "{h} fetched the module and the input once each: {b}");
        assert_eq!(b["rejected"], 0, "{b}");
    }
    assert!(blobs(&mut lan, "h1")["chunks_served"].as_u64().unwrap() >= 4, "h1 served both blobs to both helpers");
}

#[test]
fn timeouts_and_memory_bombs_fail_only_their_tasks() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(3, &[]);
    let chaos = fixture("tests/wasm/chaos.wat");
    let mut input: Vec<String> = (0..40).map(|i| format!("line {i}")).collect();
    input.insert(5, "loop".into());
    input.insert(20, "bomb".into());
    let text = input.join("\n");
    let limits = ["--timeout", "1", "--memory", "16", "--retries", "1"];
    let (code, doc) = submit(&mut lan, "h1", &chaos, &text, &limits);
    assert_eq!(code, Some(1), "two tasks failed for good: {doc}");
    let results = doc["results"].as_array().unwrap();
    for (i, line) in input.iter().enumerate() {
        let r = &results[i];
        match line.as_str() {
            "loop" => {
                assert!(r["error"].as_str().unwrap().contains("timed out after 1.0 s"), "{r}");
                assert_eq!(r["attempts"], 2, "{r}");
            }
            "bomb" => assert!(r["error"].as_str().unwrap().contains("limit of 16 MiB"), "{r}"),
            _ => assert_eq!(r["output"].as_str(), Some(line.as_str()), "{r}"),
        }
    }
    // Every node survived, and the mesh runs the next job from another host.
    assert_eq!(lan.members("h1"), ["h2", "h3"]);
    let (code, doc) = submit(&mut lan, "h2", &chaos, "x\ny\nz\n", &[]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(outputs(&doc), [Some("x".into()), Some("y".into()), Some("z".into())]);
}

#[test]
fn a_corrupted_transfer_is_rejected_and_fetched_again() {
    if !lan_tests_enabled() {
        return;
    }
    // h1 corrupts the first chunk it serves, as a faulty peer would.
    let mut lan = mesh_of(3, &[("MESH_FAILPOINT_CORRUPT_BLOBS", "1")]);
    let (input, want) = primes_job(100_000, 120);
    let (code, doc) = submit(&mut lan, "h1", &fixture("examples/wasm/primes.wat"), &input, &[]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(outputs(&doc), want);
    assert!(share(&doc, "h2") + share(&doc, "h3") > 0, "the helpers ran tasks with the fetched blobs");
    // The job may end before the helper that got the bad chunk has fetched it again (the
    // others run its tasks meanwhile), so wait for its fetch to finish.
    let mut rejected = 0;
    let done = eventually(FIND, || {
        rejected = ["h2", "h3"].iter().map(|h| blobs(&mut lan, h)["rejected"].as_u64().unwrap_or(0)).sum();
        rejected >= 1
    });
    assert!(done && rejected == 1, "exactly the one corrupted chunk was caught, not {rejected}");
}

#[test]
fn a_submit_without_a_local_node_ships_the_module_to_the_mesh() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = Lan::new(3);
    lan.join("h2", &["--key", "wasm"]);
    lan.join("h3", &["--key", "wasm"]);
    assert!(eventually(FIND, || lan.members("h2") == ["h3"]), "mesh did not form");
    // No node on h1: `mesh submit wasm` starts a short-lived one, which serves the blobs.
    let (input, want) = primes_job(100_000, 300);
    let (code, doc) = submit(&mut lan, "h1", &fixture("examples/wasm/primes.wat"), &input, &["--workers", "1"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(outputs(&doc), want);
    let helpers = share(&doc, "h2") + share(&doc, "h3");
    assert!(helpers > 0, "remote hosts ran no task of 300: {}", doc["nodes"]);
}

#[test]
fn a_node_busy_with_a_long_task_still_leaves_promptly() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(2, &[]);
    let file = lan.dir().join("loops.txt");
    std::fs::write(&file, "loop\nloop\nloop\nloop\n").unwrap();
    let (module, file) = (fixture("tests/wasm/chaos.wat"), file.to_str().unwrap().to_string());
    let job = lan.spawn(
        "h1",
        &["submit", "wasm", &module, "--input-file", &file, "--timeout", "120", "--retries", "0", "--key", "wasm"],
    );
    assert!(
        eventually(FIND, || lan.peers("h1").iter().any(|r| r["name"] == "h2" && r["busy"] == 1)),
        "h2 never took a task"
    );
    // h2 spins in a task allowed 120 s; SIGTERM must still end it within seconds.
    let code = lan.stop_within("h2", Duration::from_secs(30));
    assert_eq!(code, Some(0), "h2 did not leave cleanly while busy");
    lan.kill(job);
}

#[test]
fn a_full_disk_fails_only_the_tasks_that_need_space() {
    if !lan_tests_enabled() {
        return;
    }
    // h2's home, blob store included, is a 1 MiB filesystem; only h2 has the label the
    // jobs require, so every task runs there.
    let mut lan = Lan::new(2);
    lan.small_disk("h2", "1m");
    lan.join("h1", &["--key", "wasm"]);
    lan.join("h2", &["--key", "wasm", "--label", "smalldisk"]);
    assert!(eventually(FIND, || lan.members("h1") == ["h2"]), "mesh did not form");
    let echo = fixture("tests/wasm/echo.wat");
    let only_h2 = ["--require", "label=smalldisk", "--retries", "0"];

    // A small job first: h2 now keeps its module and input.
    let (code, doc) = submit(&mut lan, "h1", &echo, "a\nb\nc\n", &only_h2);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(outputs(&doc), [Some("a".into()), Some("b".into()), Some("c".into())]);

    // A job whose 2 MB input cannot fit: each task fails, saying why.
    let lines: Vec<String> = (0..200).map(|i| format!("{i:04}{}", "x".repeat(9996))).collect();
    let (code, doc) = submit(&mut lan, "h1", &echo, &lines.join("\n"), &only_h2);
    assert_eq!(code, Some(1), "{doc}");
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 200);
    for r in results {
        let error = r["error"].as_str().unwrap_or_else(|| panic!("a task had no disk to run on, yet: {r}"));
        assert!(
            error.contains("this node cannot store the blob") && error.contains("No space left on device"),
            "{error}"
        );
    }

    // Nothing was corrupted or left behind, and h2 goes on serving jobs that fit.
    let check = lan.mesh("h2", &["store", "check"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let blobs_dir = lan.host("h2").home.join("blobs");
    let stray: Vec<_> = std::fs::read_dir(&blobs_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "unfinished blob files left in {}: {stray:?}", blobs_dir.display());
    let (code, doc) = submit(&mut lan, "h1", &echo, "d\ne\n", &only_h2);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(outputs(&doc), [Some("d".into()), Some("e".into())]);
    assert_eq!(lan.members("h1"), ["h2"]);
}

/// Issue 30: a node with a full disk does not swallow a job that others can run. Its
/// failures are its own (it cannot store the input), so each task runs again elsewhere
/// without using a retry, and after a few such failures in a row it pauses; the job,
/// with `--retries 0`, finishes exact on the other host. Before, h2 failed most of the
/// job's tasks for good in microseconds each.
#[test]
fn a_full_disk_node_does_not_fail_others_tasks() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = Lan::new(3);
    lan.small_disk("h2", "1m");
    lan.join("h1", &["--key", "wasm"]);
    lan.join("h2", &["--key", "wasm", "--label", "work"]);
    lan.join("h3", &["--key", "wasm", "--label", "work", "--workers", "1"]);
    assert!(eventually(FIND, || lan.members("h1") == ["h2", "h3"]), "mesh did not form");
    let echo = fixture("tests/wasm/echo.wat");
    let lines: Vec<String> = (0..200).map(|i| format!("{i:04}{}", "x".repeat(9996))).collect();
    let (code, doc) = submit(&mut lan, "h1", &echo, &lines.join("\n"), &["--require", "label=work", "--retries", "0"]);
    assert_eq!(code, Some(0), "{doc}");
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), lines.len());
    for (r, line) in results.iter().zip(&lines) {
        // echo.wat echoes the first 1000 bytes of its line.
        assert_eq!(r["output"].as_str(), Some(&line[..1000]), "a task's output: {}", r["error"]);
    }
    assert_eq!(share(&doc, "h2"), 0, "a result from the host without space");
    assert!(lan.log("h2").contains("takes no tasks for"), "h2 never paused: {}", lan.log("h2"));
}
