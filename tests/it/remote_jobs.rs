//! `mesh wait` and `mesh cancel` on a node that does not own the job (issue 26): the node
//! asks the owner over `/mesh/job/1`. Two real nodes over loopback; raw JSON lines to the
//! asking node's control socket, and the `mesh` binary as a user runs it.

use crate::cli::stderr;
use crate::common::nodes::{Cluster, demo, expected, members, until};
use crate::jobs::{ask, long, refused_as, results, wait};
use serde_json::{Value, json};

/// What the other node's `mesh wait` gets is what the owner's gets: the same results, the
/// same report; and it still gets it after the job ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_on_another_node_gets_what_the_owner_has() {
    let mut c = Cluster::new("remote-wait");
    let a = c.add("a", true).await;
    let b = c.add("b", true).await;
    until(|| async { members(&a).await.len() == 1 && members(&b).await.len() == 1 }).await;
    let (ha, hb) = (c.home("a"), c.home("b"));
    let id = ask(&ha, json!({ "cmd": "submit", "job": demo(100, 140), "detach": true })).await["job"]
        .as_str()
        .unwrap()
        .to_string();
    let there = wait(&hb, &id).await;
    assert_eq!(results(&there), expected(100, 140), "{there}");
    let here = wait(&ha, &id).await;
    assert_eq!(there, here, "the same report on both nodes");
    let unknown = format!("{}-{}", &id[..8], 999_999);
    let answer = wait(&hb, &unknown).await;
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("no job")), "{answer}");
    let nobody = wait(&hb, "00000000-1").await;
    assert!(nobody["error"].as_str().is_some_and(|e| e.contains("no member")), "{nobody}");

    // A `mesh run` job whose outputs are blobs (over 64 KiB): the asking node fetches them.
    let mesh = |home: &std::path::Path| {
        let mut cmd = assert_cmd::Command::cargo_bin("mesh").unwrap();
        cmd.env("MESH_HOME", home).env_remove("MESH_LOG");
        cmd
    };
    let script = r#"yes "$1" | head -c 70000"#;
    let out = mesh(&ha).args(["run", "--detach", "--", "sh", "-c", script, "sh", ":::", "x", "y"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = mesh(&hb).args(["wait", &id, "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let outputs: Vec<&str> =
        report["results"].as_array().unwrap().iter().map(|r| r["output"].as_str().unwrap()).collect();
    assert_eq!(outputs, ["x\n".repeat(35_000), "y\n".repeat(35_000)]);
    c.stop_all().await;
}

/// From another node, only the submitter's user name may cancel: another user's cancel is
/// refused and changes nothing; the submitter's ends the job mesh-wide. Root only (a second
/// uid needs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_another_node_is_the_submitters_only() {
    if !crate::common::nodes::root_for_a_second_uid() {
        return;
    }
    const OTHER: u32 = 65534; // nobody
    let mut c = Cluster::new("remote-cancel");
    let a = c.add("a", true).await;
    let (b, socket) = c.add_group_node("b", OTHER).await;
    until(|| async { members(&a).await.len() == 1 && members(&b).await.len() == 1 }).await;
    let (ha, hb) = (c.home("a"), c.home("b"));
    let id =
        ask(&ha, json!({ "cmd": "submit", "job": long(), "detach": true })).await["job"].as_str().unwrap().to_string();
    refused_as(&socket, OTHER, &id, &["only a user of that name", "root@a"]).await;
    let running = ask(&ha, json!({ "cmd": "peers" })).await;
    assert_eq!(running["peers"]["rows"][0]["jobs"][0]["finished"], json!(false), "refused: still running: {running}");
    assert_eq!(ask(&hb, json!({ "cmd": "cancel", "job": id })).await, json!({ "ok": null }));
    let report = wait(&ha, &id).await;
    assert_eq!(report["report"]["cancelled"], json!(true), "the submitter's cancel from b ended it: {report}");
    c.stop_all().await;
}
