//! Jobs across a namespaced LAN: work spreads by stealing, results stay exact when a host
//! is killed or cut off, submitters run side by side, and a submit with no local node still
//! gets help. See tests/it/common/lan.rs for the network.

use crate::common::lan::{Lan, Proc, eventually, lan_tests_enabled};
use mesh::exec::primes;
use std::time::Duration;

const FIND: Duration = Duration::from_secs(30);

fn mesh_of(n: usize) -> Lan {
    let mut lan = Lan::new(n);
    for i in 1..=n {
        lan.join(&format!("h{i}"), &["--key", "jobs"]);
    }
    let want: Vec<String> = (2..=n).map(|i| format!("h{i}")).collect();
    assert!(eventually(FIND, || lan.members("h1") == want), "mesh did not form");
    lan
}

/// The demo's expected lines for first..=last, computed here by the sieve.
pub(crate) fn expected(first: u64, last: u64) -> Vec<(u64, u128)> {
    (first..=last).map(|n| (n, primes::sieve(0, n).sum)).collect()
}

pub(crate) fn results(doc: &serde_json::Value) -> Vec<(u64, u128)> {
    doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["n"].as_u64().unwrap(), r["sum"].as_u64().unwrap() as u128))
        .collect()
}

fn share(doc: &serde_json::Value, name: &str) -> u64 {
    doc["nodes"].as_array().unwrap().iter().filter(|n| n["name"] == name).map(|n| n["tasks"].as_u64().unwrap()).sum()
}

fn submit(lan: &mut Lan, host: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["submit", "primes"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", "--key", "jobs"]);
    let out = lan.mesh(host, &all);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn work_spreads_over_three_hosts_and_is_exact() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(3);
    let doc = submit(&mut lan, "h1", &["100000..100999", "--algo", "trial"]);
    assert_eq!(results(&doc), expected(100_000, 100_999));
    for h in ["h1", "h2", "h3"] {
        let s = share(&doc, h);
        assert!(s > 0, "{h} ran no task of 1000: {}", doc["nodes"]);
    }
    assert!(doc["steals"].as_u64().unwrap() >= 2, "{}", doc["nodes"]);
}

#[test]
fn killed_host_mid_job_loses_nothing() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(3);
    let job = lan.spawn("h1", &["submit", "primes", "100000..101999", "--algo", "trial", "--json", "--key", "jobs"]);
    // Kill h3 once it has finished some of the job's tasks.
    assert!(eventually(FIND, || did_some(&mut lan, "h3")));
    lan.kill9("h3");
    let out = lan.wait(job);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results(&doc), expected(100_000, 101_999));
    // The statistics keep every node's name, whatever became of it; the dead one is marked.
    let names: Vec<&str> = doc["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"h3 (lost)"), "{names:?}");
    assert!(names.iter().all(|n| ["h1", "h2", "h3 (lost)"].contains(n)), "{names:?}");
}

#[test]
fn two_submitters_at_once_both_exact() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(3);
    let spawn = |lan: &mut Lan, host: &str, range: &str| {
        lan.spawn(host, &["submit", "primes", range, "--algo", "trial", "--json", "--key", "jobs"])
    };
    let a = spawn(&mut lan, "h1", "100000..100599");
    let b = spawn(&mut lan, "h2", "90000..90599");
    for (job, first, last) in [(a, 100_000, 100_599), (b, 90_000, 90_599)] {
        let out = lan.wait(job);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(results(&doc), expected(first, last));
    }
}

#[test]
fn submit_without_a_local_node_gets_help() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = Lan::new(3);
    lan.join("h2", &["--key", "jobs"]);
    lan.join("h3", &["--key", "jobs"]);
    assert!(eventually(FIND, || lan.members("h2") == ["h3"]));
    // No node on h1: submit starts a short-lived one that finds h2 and h3. Twice: the
    // second short-lived node has the same identity, and its job must not be mistaken
    // for the first one, which the helpers remember as ended.
    for _ in 0..2 {
        let doc = submit(&mut lan, "h1", &["100000..100999", "--algo", "trial", "--workers", "1"]);
        assert_eq!(results(&doc), expected(100_000, 100_999));
        let helpers = share(&doc, "h2") + share(&doc, "h3");
        assert!(helpers > 0, "remote hosts ran no task of 1000: {}", doc["nodes"]);
    }
}

#[test]
fn cut_cable_mid_job_is_exact_and_the_host_rejoins() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(3);
    let job = lan.spawn("h1", &["submit", "primes", "100000..101999", "--algo", "trial", "--json", "--key", "jobs"]);
    assert!(eventually(FIND, || did_some(&mut lan, "h3")));
    lan.cable("h3", false);
    let out = lan.wait(job);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results(&doc), expected(100_000, 101_999));
    lan.cable("h3", true);
    assert!(eventually(FIND, || lan.members("h1") == ["h2", "h3"]), "h3 rejoins: {:?}", lan.members("h1"));
}

/// Every host that `viewer` lists is idle: no queued and no busy workers.
fn all_idle(lan: &mut Lan, viewer: &str) -> bool {
    let rows = lan.peers(viewer);
    !rows.is_empty() && rows.iter().all(|r| r["queued"] == 0 && r["busy"] == 0)
}

fn long_job(lan: &mut Lan, host: &str) -> Proc {
    lan.spawn(host, &["submit", "primes", "100000..149999", "--algo", "trial", "--json", "--key", "jobs"])
}

/// Whether h1 sees `host` past its first few tasks.
fn did_some(lan: &mut Lan, host: &str) -> bool {
    lan.peers("h1").iter().any(|r| r["name"] == host && r["tasks_done"].as_u64().unwrap_or(0) > 20)
}

#[test]
fn abandoned_jobs_are_dropped_everywhere() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = mesh_of(3);
    let busy_h2 = |lan: &mut Lan| lan.peers("h1").iter().any(|r| r["name"] == "h2" && r["busy"] == 1);

    // The submitting client is interrupted (Ctrl-C): h1's node cancels the job mesh-wide.
    let client = long_job(&mut lan, "h1");
    assert!(eventually(FIND, || busy_h2(&mut lan)), "the job never reached h2");
    let out = lan.interrupt(client);
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--detach"), "Ctrl-C says how to leave a job running");
    assert!(eventually(FIND, || all_idle(&mut lan, "h1")), "{:?}", lan.peers("h1"));

    // The client just goes (a closed terminal): the job runs on, detached, until a
    // `mesh cancel` from another terminal ends it.
    let client = long_job(&mut lan, "h1");
    assert!(eventually(FIND, || busy_h2(&mut lan)), "the job never reached h2");
    lan.kill(client);
    let running = |lan: &mut Lan| {
        let out = lan.mesh("h1", &["jobs", "--json"]);
        let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        jobs.into_iter().find(|j| j["state"] == "running").and_then(|j| j["job"].as_str().map(String::from))
    };
    std::thread::sleep(std::time::Duration::from_secs(2));
    let id = running(&mut lan).expect("the job runs on after its client went");
    assert!(busy_h2(&mut lan) || did_some(&mut lan, "h2"), "{:?}", lan.peers("h1"));
    let out = lan.mesh("h1", &["cancel", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(eventually(FIND, || all_idle(&mut lan, "h1")), "{:?}", lan.peers("h1"));
    assert_eq!(running(&mut lan), None);

    // The owner itself dies: the others drop its work.
    let _client = long_job(&mut lan, "h1"); // ended by the harness
    assert!(eventually(FIND, || busy_h2(&mut lan)), "the job never reached h2");
    lan.kill9("h1");
    assert!(eventually(FIND, || all_idle(&mut lan, "h2") && lan.members("h2") == ["h3"]), "{:?}", lan.peers("h2"));
}

/// Two LANs joined by a router (issue 16): mDNS stops at the router, and one `--peer` on
/// one node is all it takes. h4 hears of h1 and h2 only through h3's relayed gossip, and
/// dials them at the addresses their announces tell, so a job submitted on h1 runs on
/// both LANs, with h4's results reaching h1 across the router.
#[test]
fn a_job_spans_two_lans_joined_by_a_router_with_one_peer() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = Lan::two_lans(2, 2);
    lan.join("h1", &["--key", "jobs"]);
    lan.join("h2", &["--key", "jobs"]);
    lan.join("h3", &["--key", "jobs", "--peer", "198.18.0.11:4877"]);
    lan.join("h4", &["--key", "jobs"]);
    let all =
        |me: &str| ["h1", "h2", "h3", "h4"].iter().filter(|h| **h != me).map(|h| h.to_string()).collect::<Vec<_>>();
    for h in ["h1", "h2", "h3", "h4"] {
        assert!(eventually(FIND, || lan.members(h) == all(h)), "{h} does not see both LANs: {:?}", lan.members(h));
    }
    // h4 is connected to h1 itself, at h1's address on the other LAN.
    let rows = lan.peers("h4");
    let h1 = rows.iter().find(|r| r["name"] == "h1").unwrap();
    assert!(h1["addrs"].to_string().contains("198.18.0.11"), "{h1}");
    let doc = submit(&mut lan, "h1", &["100000..101499", "--algo", "trial"]);
    assert_eq!(results(&doc), expected(100_000, 101_499));
    for h in ["h1", "h2", "h3", "h4"] {
        assert!(share(&doc, h) > 0, "{h} ran no task of 1500: {}", doc["nodes"]);
    }
}
