//! Jobs that outlive their terminal and their owner's restart, across a namespaced LAN
//! (issue 26): a detached job followed from other hosts through its owner's kill -9 and
//! restart; every host killed mid-job and started again; a detached `mesh run --return`
//! job's files through `mesh wait --results` on another host. See tests/it/common/lan.rs.

use crate::common::lan::{Lan, eventually, lan_tests_enabled};
use crate::mesh_jobs::{expected, results};
use serde_json::Value;
use std::time::Duration;

const FIND: Duration = Duration::from_secs(60);
const JOIN: [&str; 3] = ["--key", "jobs", "--allow-run"];

fn mesh_of(n: usize) -> Lan {
    let mut lan = Lan::new(n);
    for i in 1..=n {
        lan.join(&format!("h{i}"), &JOIN);
    }
    formed(&mut lan, n);
    lan
}

fn formed(lan: &mut Lan, n: usize) {
    let want: Vec<String> = (2..=n).map(|i| format!("h{i}")).collect();
    assert!(eventually(FIND, || lan.members("h1") == want), "the mesh did not form");
}

fn json(out: &std::process::Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Submits the demo for first..=last on `host`, detached; its id.
fn detach(lan: &mut Lan, host: &str, first: u64, last: u64) -> String {
    let range = format!("{first}..{last}");
    let out = lan.mesh(host, &["submit", "primes", &range, "--algo", "trial", "--detach", "--json"]);
    json(&out)["job"].as_str().unwrap().to_string()
}

/// Job `id` as `mesh jobs` on `viewer` lists it.
fn listed(lan: &mut Lan, viewer: &str, id: &str) -> Option<Value> {
    let jobs = json(&lan.mesh(viewer, &["jobs", "--json"]));
    jobs.as_array().unwrap().iter().find(|j| j["job"] == id).cloned()
}

fn done_of(lan: &mut Lan, viewer: &str, id: &str) -> u64 {
    listed(lan, viewer, id).and_then(|j| j["done"].as_u64()).unwrap_or(0)
}

fn exact(doc: &Value, first: u64, last: u64) {
    assert_eq!(results(doc), expected(first, last));
    let counted: u64 = doc["nodes"].as_array().unwrap().iter().map(|n| n["tasks"].as_u64().unwrap()).sum();
    assert_eq!(counted, doc["tasks"].as_u64().unwrap(), "every task counted once: {}", doc["nodes"]);
}

#[test]
fn a_detached_job_outlives_its_owners_kill_and_is_followed_from_any_host() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(3);
    let (first, last) = (100_000, 101_999);
    let id = detach(&mut lan, "h1", first, last);
    assert!(eventually(FIND, || listed(&mut lan, "h3", &id).is_some_and(|j| j["state"] == "running")));
    // h2 follows it from the start; h1 dies mid-job and comes back.
    let waiter = lan.spawn("h2", &["wait", &id, "--json"]);
    assert!(eventually(FIND, || done_of(&mut lan, "h3", &id) > 100), "the job never got going");
    lan.kill9("h1");
    std::thread::sleep(Duration::from_secs(1));
    lan.join("h1", &JOIN);
    let followed = json(&lan.wait(waiter));
    exact(&followed, first, last);
    let after = json(&lan.mesh("h3", &["wait", &id, "--json"]));
    assert_eq!(after["results"], followed["results"], "h3 gets the same results after the end");
    assert!(lan.log("h1").contains("resumed a job from the journal"), "{}", lan.log("h1"));
}

#[test]
fn every_host_killed_mid_job_and_started_again_finishes_every_job_exact() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(3);
    let jobs = [("h1", 100_000, 100_999), ("h2", 90_000, 90_999)];
    let ids: Vec<String> = jobs.iter().map(|&(h, first, last)| detach(&mut lan, h, first, last)).collect();
    assert!(eventually(FIND, || ids.iter().all(|id| done_of(&mut lan, "h3", id) > 20)), "the jobs never got going");
    // A power cut: every node at once, then every node again.
    for h in ["h1", "h2", "h3"] {
        lan.kill9(h);
    }
    for h in ["h1", "h2", "h3"] {
        lan.join(h, &JOIN);
    }
    formed(&mut lan, 3);
    for (id, &(_, first, last)) in ids.iter().zip(&jobs) {
        exact(&json(&lan.mesh("h3", &["wait", id, "--json"])), first, last);
    }
}

#[test]
fn a_detached_runs_returned_files_come_back_through_wait_on_another_host() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(3);
    let dir = lan.dir().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    let script = r#"sleep 0.3; echo "$1$1" > "$1.out"; echo "$1""#;
    let args = ["run", "--detach", "--return", "{}.out", "--", "sh", "-c", script, "sh", ":::", "a", "b", "c", "d"];
    let out = lan.mesh_in("h1", &dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let back = lan.dir().join("back");
    std::fs::create_dir_all(&back).unwrap();
    let out = lan.mesh_in("h3", &back, &["wait", &id, "--results", "files"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["a", "b", "c", "d"], "each task's output, once");
    for t in ["a", "b", "c", "d"] {
        let got = std::fs::read_to_string(back.join("files").join(format!("{t}.out"))).unwrap();
        assert_eq!(got, format!("{t}{t}\n"), "{t}.out came back through h3");
    }
}
