//! Membership on a real (namespaced) LAN: discovery, keys, leaving, crashes, cut cables
//! and rejoining. See tests/it/common/lan.rs for the network.

use crate::common::lan::{Lan, eventually, lan_tests_enabled};
use std::time::Duration;

/// Safety nets against hangs; how fast nodes join and leave is measured by
/// `cargo bench --bench lan -- membership`, not asserted here.
const FIND: Duration = Duration::from_secs(30);
const GONE: Duration = Duration::from_secs(30);

fn started(n: usize, extra: &[&str]) -> Lan {
    let mut lan = Lan::new(n);
    for i in 1..=n {
        lan.join(&format!("h{i}"), extra);
    }
    lan
}

fn others(n: usize, me: usize) -> Vec<String> {
    (1..=n).filter(|&i| i != me).map(|i| format!("h{i}")).collect()
}

#[test]
fn three_hosts_find_each_other() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = started(3, &["--key", "lab"]);
    for i in 1..=3 {
        let me = format!("h{i}");
        assert!(eventually(FIND, || lan.members(&me) == others(3, i)), "{me} sees {:?}", lan.members(&me));
    }
    // The self row, and the fields `mesh peers --json` promises.
    let rows = lan.peers("h1");
    let me: Vec<_> = rows.iter().filter(|r| r["self"] == true).collect();
    assert_eq!(me.len(), 1);
    assert_eq!(me[0]["name"], "h1");
    for r in &rows {
        for field in ["name", "peer_id", "addrs", "workers", "busy", "queued", "tasks_done", "version", "self"] {
            assert!(r.get(field).is_some(), "missing {field} in {r}");
        }
    }
    let h2 = rows.iter().find(|r| r["name"] == "h2").unwrap();
    assert_eq!(h2["workers"], 1);
    // Every node says how its machine is doing: /proc always gives load and free memory
    // (a temperature only where the machine has a thermal zone).
    assert!(
        eventually(FIND, || {
            lan.peers("h1").iter().all(|r| {
                r["health"]["load_centi"].is_u64() && r["health"]["mem_avail_mb"].as_u64().is_some_and(|m| m > 0)
            })
        }),
        "{:?}",
        lan.peers("h1")
    );
    // A member first heard of through another (its announce relayed) has an address once
    // a connection of its own is up.
    let addressed = |lan: &mut Lan| {
        let rows = lan.peers("h1");
        let h2 = rows.iter().find(|r| r["name"] == "h2").cloned().unwrap_or_default();
        h2["addrs"][0].as_str().is_some_and(|a| a.contains("198.18.0.12"))
    };
    assert!(eventually(FIND, || addressed(&mut lan)), "{:?}", lan.peers("h1"));
    // The table form names every member.
    let out = lan.mesh("h1", &["peers"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("h2") && table.contains("h3"), "{table}");
    assert!(table.contains("mem free") && table.contains(" MiB"), "{table}");
    // The node said hello once, on one line, and then what happened: its peers joined.
    // Its log is a file, not a terminal: no colour codes.
    assert!(eventually(FIND, || lan.log("h1").contains("mesh node h1 is up")), "{}", lan.log("h1"));
    let log = lan.log("h1");
    let hello: Vec<&str> = log.lines().filter(|l| l.contains("mesh node h1 is up")).collect();
    assert_eq!(hello.len(), 1, "{log}");
    for part in ["peer id 12D3", "listening on /ip4/", "/ip4/198.18.0.11/tcp/4877", "1 worker,", "key "] {
        assert!(hello[0].contains(part), "{part} in {}", hello[0]);
    }
    assert!(log.contains("h2 joined the mesh") && log.contains("h3 joined the mesh"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in a log that is not a terminal:\n{log}");
}

#[test]
fn an_empty_mesh_says_so_and_why() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = Lan::new(2);
    // No node anywhere: mesh peers browses the LAN and finds nobody.
    let out = lan.mesh("h1", &["peers", "--browse", "0.5"]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    for part in ["No mesh node found on this LAN", "no `mesh join` runs here", "--peer IP:4877", "MESH_KEY"] {
        assert!(err.contains(part), "{part} in {err}");
    }
    assert!(out.stdout.is_empty(), "no empty table: {}", String::from_utf8_lossy(&out.stdout));
    // A node alone: its own row, and why it may be alone.
    lan.join("h1", &["--key", "one"]);
    lan.join("h2", &["--key", "another"]);
    let different = |lan: &mut Lan| lan.peers("h1").iter().any(|r| r["state"] == "different-key");
    assert!(eventually(FIND, || different(&mut lan)), "{:?}", lan.peers("h1"));
    let out = lan.mesh("h1", &["peers"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this node is alone in its mesh") && err.contains("use a different key"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("h1"), "its own row");
}

#[test]
fn another_key_is_reported_and_never_a_member() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = Lan::new(3);
    lan.join("h1", &["--key", "alpha"]);
    lan.join("h2", &["--key", "alpha"]);
    // h3 even dials h1 directly: only the pnet key can keep it out.
    lan.join("h3", &["--key", "beta", "--peer", "198.18.0.11:4877"]);
    let reported = |lan: &mut Lan| lan.peers("h1").iter().any(|r| r["name"] == "h3" && r["state"] == "different-key");
    assert!(eventually(FIND, || lan.members("h1") == ["h2"] && reported(&mut lan)), "{:?}", lan.peers("h1"));
    // h3's dial to h1 has been made and refused (pnet): only then is "not a member" news.
    let refused = "cannot connect to a --peer";
    assert!(eventually(FIND, || lan.log("h3").contains(refused)), "h3 never dialed h1:\n{}", lan.log("h3"));
    assert_eq!(lan.members("h1"), ["h2"]);
    assert!(lan.members("h3").is_empty());
    let out = lan.mesh("h1", &["peers"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 node(s) on this LAN use a different key"));
}

#[test]
fn graceful_leave_and_kill_and_rejoin_with_same_id() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = started(3, &[]);
    assert!(eventually(FIND, || lan.members("h1") == ["h2", "h3"]));
    let id_of =
        |lan: &mut Lan, name: &str| lan.peers("h1").iter().find(|r| r["name"] == name).map(|r| r["peer_id"].clone());
    let h3_id = id_of(&mut lan, "h3").unwrap();

    assert_eq!(lan.stop("h2"), Some(0), "SIGTERM is a clean exit");
    assert!(eventually(GONE, || lan.members("h1") == ["h3"]), "h2 left: {:?}", lan.members("h1"));
    assert!(lan.log("h2").contains("this node left the mesh"));

    lan.kill9("h3");
    assert!(eventually(GONE, || lan.members("h1").is_empty()), "h3 killed: {:?}", lan.members("h1"));

    lan.join("h3", &[]);
    assert!(eventually(FIND, || lan.members("h1") == ["h3"]));
    assert_eq!(id_of(&mut lan, "h3").unwrap(), h3_id, "same home, same peer id");
}

#[test]
fn cut_cable_drops_the_host_and_it_rejoins() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = started(3, &[]);
    assert!(eventually(FIND, || lan.members("h1") == ["h2", "h3"]));
    lan.cable("h3", false);
    assert!(eventually(GONE, || lan.members("h1") == ["h2"]), "{:?}", lan.members("h1"));
    // h3 runs its own 5 s expiry, a moment apart from h1's.
    assert!(eventually(GONE, || lan.members("h3").is_empty()), "h3 is alone too: {:?}", lan.members("h3"));
    lan.cable("h3", true);
    assert!(eventually(FIND, || lan.members("h1") == ["h2", "h3"]), "{:?}", lan.members("h1"));
}

#[test]
fn peers_without_a_node_browses_the_lan() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = started(2, &[]);
    assert!(eventually(FIND, || lan.members("h1") == ["h2"]));
    let other_home = lan.dir().join("no-node-here");
    let out = lan.mesh("h1", &["peers", "--json", "--browse", "3", "--home", other_home.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["h1", "h2"]);
    assert!(rows.iter().all(|r| r["state"] == "seen"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("browsing the LAN"));
}
