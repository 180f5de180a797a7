//! What a host without the key can cost a node (docs/robustness.md, "What a non-member can
//! do"): on a namespaced LAN, a third host floods a member with TCP connections and the LAN
//! with mDNS records while the members run a job. See tests/it/common/lan.rs for the network
//! and tests/strangers/flood.py for the stranger.

use crate::common::lan::{Lan, eventually, lan_tests_enabled};
use mesh::exec::primes;
use std::time::Duration;

const FIND: Duration = Duration::from_secs(30);
/// `node::limits::MAX_PENDING_PER_IP`: handshakes one address may hold open at once.
const PENDING_PER_IP: u64 = 8;

/// A primes job's (n, sum) lines, from its JSON document.
fn sums(doc: &serde_json::Value) -> Vec<(u64, u64)> {
    let results = doc["results"].as_array().unwrap();
    results.iter().map(|r| (r["n"].as_u64().unwrap(), r["sum"].as_u64().unwrap())).collect()
}

/// A mesh of h1 and h2, where h2 misbehaves by `failpoint` (with `extra` arguments), and
/// when the test began: no rogue request can be older.
fn with_rogue(extra: &[&str], failpoint: (&str, &str)) -> (std::time::Instant, Lan) {
    let started = std::time::Instant::now();
    let mut lan = Lan::new(2);
    lan.join("h1", &["--key", "rogue"]);
    lan.join_with_env("h2", &[&["--key", "rogue"], extra].concat(), &[failpoint]);
    assert!(eventually(FIND, || lan.members("h1") == ["h2"]), "mesh did not form");
    (started, lan)
}

/// What those lines must be, computed here.
fn expected(ns: std::ops::Range<u64>) -> Vec<(u64, u64)> {
    ns.map(|n| (n, primes::sieve(0, n).sum as u64)).collect()
}

#[test]
fn a_stranger_flooding_connections_and_mdns_costs_a_bounded_amount() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = Lan::new(3);
    lan.join("h1", &["--key", "flood"]);
    lan.join("h2", &["--key", "flood"]);
    assert!(eventually(FIND, || lan.members("h1") == ["h2"]), "mesh did not form");
    let rss_before = lan.rss_kib("h1");

    // h3 (no key, no node) floods h1; the members' job, submitted on h2, runs meanwhile.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/strangers/flood.py");
    let records = std::env::var("FLOOD_RECORDS").unwrap_or_else(|_| "4000".into());
    let seconds = std::env::var("FLOOD_SECONDS").unwrap_or_else(|_| "5".into());
    let flood = lan.spawn_program("h3", "python3", &[script, "198.18.0.11", "4877", "400", &records, &seconds]);
    std::thread::sleep(Duration::from_secs(1));
    let job = lan.spawn("h2", &["submit", "primes", "100000..100599", "--algo", "trial", "--json", "--key", "flood"]);
    let flood = lan.wait(flood);
    assert!(flood.status.success(), "{}", String::from_utf8_lossy(&flood.stderr));
    let report: serde_json::Value = serde_json::from_slice(&flood.stdout).unwrap();
    eprintln!("the stranger: {report}");
    let (connected, open) = (report["connected"].as_u64().unwrap(), report["open"].as_u64().unwrap());
    // The kernel accepts them all; the node turns away every one over the per-address
    // bound at once, and holds the rest only through their handshake.
    assert!(connected >= 100, "the stranger could not even connect: {report}");
    assert!(open <= PENDING_PER_IP, "h1 held {open} of {connected} handshakes from one stranger: {report}");

    // The job is exact, the member never left, and h1 said it was flooded.
    let out = lan.wait(job);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(u64, u64)> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["n"].as_u64().unwrap(), r["sum"].as_u64().unwrap()))
        .collect();
    let want: Vec<(u64, u64)> = (100_000..100_600).map(|n| (n, primes::sieve(0, n).sum as u64)).collect();
    assert_eq!(got, want);
    assert_eq!(lan.members("h1"), ["h2"]);
    assert!(
        eventually(FIND, || lan.log("h1").contains("a flood of mDNS records")),
        "h1 never noticed the flood:\n{}",
        lan.log("h1")
    );
    // Thousands of made-up instances: mDNS was restarted to let go of them, and only a
    // few of the made-up nodes were reported one by one.
    let log = lan.log("h1");
    assert!(log.contains("restarting mDNS to drop them"), "{log}");
    let reported = log.matches("uses a different key").count();
    assert!((1..=8).contains(&reported), "{reported} made-up nodes reported one by one");
    // Its memory stayed bounded: made-up nodes and 400 connections left at most a few MiB
    // behind, however many (the bound is generous; the figures are in docs/robustness.md;
    // FLOOD_RECORDS and FLOOD_SECONDS make the flood bigger).
    let rss_after = lan.rss_kib("h1");
    eprintln!("h1 RSS: {rss_before} KiB before the flood, {rss_after} KiB after");
    assert!(rss_after < rss_before + 64 * 1024, "h1 grew from {rss_before} KiB to {rss_after} KiB");
}

#[test]
fn a_member_asking_for_work_in_a_tight_loop_is_answered_at_its_rate() {
    if !lan_tests_enabled() {
        return;
    }
    // h2 holds the key but sends 500 steal requests to each peer twice a second.
    let (started, mut lan) = with_rogue(&[], ("MESH_FAILPOINT_ROGUE_STEALS", "500"));
    let doc = {
        let out =
            lan.mesh("h1", &["submit", "primes", "100000..100999", "--algo", "trial", "--json", "--key", "rogue"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(sums(&doc), expected(100_000..101_000), "the job is exact");
    // h1 left what came over the rate unanswered, and says so in its metrics.
    let metrics = lan.exec("h1", "curl", &["-sf", "http://127.0.0.1:4880/metrics"], &[]);
    let text = String::from_utf8_lossy(&metrics.stdout);
    let value = |name: &str| -> u64 {
        text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    };
    let (received, refused) =
        (value("mesh_steal_requests_received_total "), value("mesh_steal_requests_refused_total "));
    // However fast they came, h1 answered no more than its rate allows over the time h2
    // could have been asking (less than the test's own run so far).
    let cfg = mesh::core::Config::default();
    let most = cfg.steal_burst + cfg.steal_rate * started.elapsed().as_secs_f64();
    let answered = received - refused;
    eprintln!("h1 answered {answered} of {received} steal requests from h2; at most {most:.0} may be");
    assert!(refused > 0, "h1 answered all {received} steal requests");
    assert!((answered as f64) <= most, "h1 answered {answered} of {received}, over {most:.0}");
    assert_eq!(lan.members("h1"), ["h2"]);
}

#[test]
fn a_member_asking_for_blobs_in_a_tight_loop_is_served_at_its_rate() {
    if !lan_tests_enabled() {
        return;
    }
    // h2 holds the key, but asks its peers for every blob it fetched, 500 times a blob
    // twice a second.
    let (started, mut lan) = with_rogue(&["--label", "helper"], ("MESH_FAILPOINT_ROGUE_BLOBS", "500"));
    // A job only h2 may run: it fetches the module and the input from h1, and then keeps
    // asking for them.
    let input = lan.dir().join("input.txt");
    std::fs::write(&input, (1000..1020).map(|n| format!("{n}\n")).collect::<String>()).unwrap();
    let module = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wasm/primes.wat");
    let args = ["submit", "wasm", module, "--input-file", input.to_str().unwrap(), "--json", "--key", "rogue"];
    let out = lan.mesh("h1", &[&args[..], &["--require", "label=helper"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Meanwhile h1 goes on with jobs of its own, exactly.
    let out = lan.mesh("h1", &["submit", "primes", "100000..100299", "--algo", "trial", "--json", "--key", "rogue"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sums(&doc), expected(100_000..100_300), "the job is exact");
    std::thread::sleep(Duration::from_secs(2));
    // h1 served h2 no faster than one peer's rate (node::event_loop::transfers::
    // {CHUNK_BURST, CHUNKS_PER_SECOND}: 64, then 256 a second), over the time h2 could
    // have been asking.
    let me = lan.peers("h1").into_iter().find(|r| r["self"] == true).unwrap();
    let served = me["blobs"]["chunks_served"].as_u64().unwrap();
    let most = 64.0 + 256.0 * started.elapsed().as_secs_f64();
    eprintln!("h1 served {served} chunks; at most {most:.0} may be");
    assert!(served > 2, "h2 never asked again: {served} chunks served");
    assert!((served as f64) <= most, "h1 served {served} chunks, over {most:.0}");
    assert_eq!(lan.members("h1"), ["h2"]);
}
