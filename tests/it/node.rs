//! The node layer in one process, without root: 2–3 real nodes (event loop, workers,
//! libp2p with pnet, control socket) on loopback TCP, with mDNS off and `--peer`
//! addresses. They cover forming a mesh, stealing, blob fetches, the control socket and a
//! node that leaves mid-job. Every wait has a generous limit against hangs; nothing here
//! asserts a time.

use crate::common::nodes::{Cluster, LIMIT, demo, expected, members, run, tasks_of, until};
use mesh::exec::primes;
use mesh::id::ContentId;
use mesh::job::{JobSpec, WasmJob};
use mesh::node::{JobResults, JobUpdate, Node, control};
use mesh::store::BlobStore;

#[tokio::test]
async fn three_nodes_form_a_mesh_and_share_a_job_exactly() {
    let (cluster, clients) = Cluster::mesh("share", 3).await;
    assert_eq!(members(&clients[0]).await, ["b", "c"]);
    let report = run(&clients[0], demo(100_000, 100_599)).await;
    assert_eq!(report.results, expected(100_000, 100_599));
    assert!(report.failed.is_empty());
    for name in ["a", "b", "c"] {
        assert!(tasks_of(&report, name) > 0, "{name} ran no task: {:?}", report.nodes);
    }
    assert_eq!(report.nodes.iter().map(|n| n.tasks).sum::<u64>(), 600, "each task counted once");
    assert!(report.steals() >= 2, "b and c stole: {:?}", report.nodes);
    cluster.stop_all().await;
}

#[tokio::test]
async fn helpers_fetch_a_module_and_its_input_once() {
    let (cluster, clients) = Cluster::mesh("blobs", 3).await;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wasm/primes.wat")).unwrap();
    let module = wat::parse_str(&text).unwrap();
    let ns: Vec<u64> = (100_000..100_300).collect();
    let input: String = ns.iter().map(|n| format!("{n}\n")).collect();
    let store = BlobStore::new(&cluster.home("a"));
    let job = WasmJob {
        module: store.put(&module).unwrap(),
        input: store.put(input.as_bytes()).unwrap(),
        tasks: ns.len() as u64,
        timeout_ms: 60_000,
        memory_mb: 64,
        retries: 2,
        needs: Default::default(),
    };
    let mut helped = [0, 0];
    for round in 0..2 {
        let report = run(&clients[0], JobSpec::Wasm(job.clone())).await;
        helped[0] += tasks_of(&report, "b");
        helped[1] += tasks_of(&report, "c");
        let JobResults::Wasm(tasks) = &report.results else { panic!("not a wasm report") };
        let outputs: Vec<String> = tasks.iter().map(|t| t.output.clone().unwrap_or_default()).collect();
        let want: Vec<String> = ns.iter().map(|&n| primes::sieve(0, n).sum.to_string()).collect();
        assert_eq!(outputs, want, "round {round}");
        assert!(tasks_of(&report, "b") + tasks_of(&report, "c") > 0, "round {round}: {:?}", report.nodes);
    }
    // A helper fetched the module and the input once each over both jobs, or nothing. One
    // whose results counted must have fetched both; one may also have fetched them and
    // lost every task to the owner's backup runs.
    for (i, name) in ["b", "c"].iter().enumerate() {
        let blobs = clients[i + 1].peers().await.unwrap().rows[0].blobs.unwrap();
        assert!(blobs.fetched == 2 || (blobs.fetched == 0 && helped[i] == 0), "{name}: {blobs:?}, {} tasks", helped[i]);
        assert_eq!(blobs.rejected, 0);
        assert_eq!(BlobStore::new(&cluster.home(name)).contains(job.module), blobs.fetched == 2);
    }
    let served = clients[0].peers().await.unwrap().rows[0].blobs.unwrap();
    assert!(served.chunks_served >= 1, "a served the blobs: {served:?}");
    cluster.stop_all().await;
}

#[tokio::test]
async fn a_node_that_leaves_mid_job_loses_no_task() {
    let (mut cluster, clients) = Cluster::mesh("leave", 3).await;
    let mut h = clients[0].submit(demo(100_000, 100_599)).await.unwrap();
    // Stop c once it has finished some tasks of the job.
    until(|| async {
        let rows = clients[0].peers().await.unwrap().rows;
        rows.iter().any(|r| r.name == "c" && r.tasks_done.unwrap_or(0) > 10)
    })
    .await;
    cluster.stop("c").await;
    let report = tokio::time::timeout(LIMIT, &mut h.done).await.expect("the job never finished").unwrap();
    assert_eq!(report.results, expected(100_000, 100_599));
    until(|| async { members(&clients[0]).await == ["b"] }).await;
    cluster.stop_all().await;
}

#[tokio::test]
async fn the_control_socket_serves_peers_and_jobs_and_guards_its_home() {
    let mut cluster = Cluster::new("control");
    let a = cluster.add("a", true).await;
    cluster.add("b", false).await;
    until(|| async { members(&a).await == ["b"] }).await;
    let home = cluster.home("a");
    let rows = control::peers(&home).await.unwrap().expect("a node serves this home").rows;
    assert!(rows[0].is_self && rows[0].name == "a", "{rows:?}");
    let mut seen = Vec::new();
    let progress = |u: JobUpdate| {
        if let JobUpdate::Progress(p) = u {
            seen.push(p.done);
        }
    };
    let report = control::submit(&home, &demo(100_000, 100_099), progress, std::future::pending())
        .await
        .unwrap()
        .expect("a node serves this home");
    assert_eq!(report.results, expected(100_000, 100_099));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress only grows: {seen:?}");
    // A bad job is refused with its reason, and the node lives on.
    let mut bad = WasmJob {
        module: ContentId::of(b"nowhere"),
        input: ContentId::of(b"nothing"),
        tasks: 1,
        timeout_ms: 1000,
        memory_mb: 16,
        retries: 0,
        needs: Default::default(),
    };
    let err = control::submit(&home, &JobSpec::Wasm(bad.clone()), |_| {}, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not in"), "{err}");
    bad.memory_mb = 0;
    let err =
        control::submit(&home, &JobSpec::Wasm(bad), |_| {}, std::future::pending()).await.unwrap_err().to_string();
    assert!(err.contains("invalid wasm job"), "{err}");
    // A client beyond the limit is told why, not just closed; the node serves again as
    // soon as one leaves.
    let socket = control::socket_path(&home);
    let mut held = Vec::new();
    for _ in 0..control::MAX_CLIENTS {
        held.push(tokio::net::UnixStream::connect(&socket).await.unwrap());
    }
    let mut extra = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let mut said = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut extra, &mut said).await.unwrap();
    assert!(said.contains("at most") && said.contains("clients at once"), "{said}");
    drop(held);
    until(|| async { control::peers(&home).await.is_ok_and(|r| r.is_some()) }).await;
    // A second node on the same home is refused.
    let err = Node::spawn(cluster.config("a", Vec::new(), true)).await.unwrap_err().to_string();
    assert!(err.contains("already runs with home"), "{err}");
    assert!(control::peers(&home).await.unwrap().is_some(), "the first node still answers");
    cluster.stop_all().await;
    assert!(control::peers(&home).await.unwrap().is_none(), "the socket is gone with the node");
}

/// One node at a time runs on a home, with the home's peer id (issue 30: two nodes
/// started at once on a home with a stale socket both ran). A second node is refused
/// while the first runs, even one without a control socket to collide on; a node with
/// neither a network nor a socket (`mesh submit --local`) may share the home's store.
#[tokio::test]
async fn a_home_runs_one_node_at_a_time() {
    let cluster = Cluster::new("home-lock");
    let home = cluster.home("a");
    std::fs::create_dir_all(&home).unwrap();
    drop(std::os::unix::net::UnixListener::bind(control::socket_path(&home)).unwrap()); // a killed node's
    let (_, first) = Node::spawn(cluster.config("a", Vec::new(), true)).await.unwrap();
    let err = Node::spawn(cluster.config("a", Vec::new(), false)).await.unwrap_err().to_string();
    assert!(err.contains("already runs with home"), "{err}");
    let mut local = cluster.config("a", Vec::new(), false);
    local.network = None;
    let (client, alone) = Node::spawn(local).await.unwrap();
    assert_eq!(run(&client, demo(10, 12)).await.results, expected(10, 12));
    alone.stop().await.unwrap();
    first.stop().await.unwrap();
    let (_, again) = Node::spawn(cluster.config("a", Vec::new(), false)).await.expect("free once the first stopped");
    again.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&cluster.dir);
}

#[tokio::test]
async fn a_node_without_a_network_runs_a_job_alone() {
    let cluster = Cluster::new("local");
    let mut cfg = cluster.config("solo", Vec::new(), false);
    cfg.network = None;
    cfg.workers = 2;
    let (client, node) = Node::spawn(cfg).await.unwrap();
    let report = run(&client, demo(100_000, 100_199)).await;
    assert_eq!(report.results, expected(100_000, 100_199));
    assert_eq!(report.workers, 2);
    let rows = client.peers().await.unwrap().rows;
    assert_eq!(rows.len(), 1, "alone: {rows:?}");
    assert!(rows[0].addrs.is_empty(), "no listen address without a network");
    node.stop().await.unwrap();
    assert!(client.peers().await.is_err(), "a stopped node says so");
    let _ = std::fs::remove_dir_all(&cluster.dir);
}

/// The mesh service's node shares its socket with a group (`--control-group`, mode 0660)
/// and cannot read a user's store: a wasm job's files go to it as bytes (`upload`), checked
/// against their ids, and the job runs on it. (That another user may not `put` a path is
/// checked as another user, in packaging/install_test.sh.)
#[tokio::test]
async fn a_group_node_takes_uploaded_files_and_runs_their_job() {
    use std::os::unix::fs::PermissionsExt;
    let mut cluster = Cluster::new("group");
    let a = cluster.add_with("a", |c| c.control = mesh::node::Control::Group).await;
    cluster.add("b", false).await;
    until(|| async { members(&a).await == ["b"] }).await;
    let home = cluster.home("a");
    let mode = std::fs::metadata(control::socket_path(&home)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "the group may connect");
    // A user's own store, elsewhere.
    let mine = cluster.home("user");
    std::fs::create_dir_all(&mine).unwrap();
    let store = BlobStore::new(&mine);
    let module = wat::parse_str(include_str!("../wasm/echo.wat")).unwrap();
    let input = b"alpha\nbeta\n".to_vec();
    let job = WasmJob {
        module: store.put(&module).unwrap(),
        input: store.put(&input).unwrap(),
        tasks: 2,
        timeout_ms: 60_000,
        memory_mb: 16,
        retries: 0,
        needs: Default::default(),
    };
    let spec = JobSpec::Wasm(job.clone());
    let err = control::submit(&home, &spec, |_| {}, std::future::pending()).await.unwrap_err().to_string();
    assert!(err.contains("is not in"), "the node does not see the user's store: {err}");
    // Bytes that are not what their id says are refused, and nothing is stored.
    let err = control::upload(&home, job.module, b"not the module").await.unwrap_err().to_string();
    assert!(err.contains("upload"), "{err}");
    assert!(!BlobStore::new(&home).contains(job.module));
    control::send_files(&home, &mine, &spec).await.unwrap();
    assert!(BlobStore::new(&home).contains(job.module) && BlobStore::new(&home).contains(job.input));
    let report =
        control::submit(&home, &spec, |_| {}, std::future::pending()).await.unwrap().expect("a node serves this home");
    let JobResults::Wasm(tasks) = &report.results else { panic!("not a wasm report") };
    let outputs: Vec<String> = tasks.iter().map(|t| t.output.clone().unwrap_or_default()).collect();
    assert_eq!(outputs, ["alpha", "beta"]);
    // A run job names more files than its spec: refused before anything is sent.
    let list = mesh::job::run::RunTasks { tasks: Vec::new() };
    let run_job = mesh::job::run::RunJob {
        command: vec!["true".into()],
        tasks: 0,
        inputs: store.put(&list.encode()).unwrap(),
        files: None,
        returns: Vec::new(),
        timeout: None,
        memory_mb: None,
        retries: 0,
        halt: None,
        needs: mesh::core::Needs::native(Vec::new()),
    };
    let run = control::send_files(&home, &mine, &JobSpec::Run(Box::new(run_job))).await.unwrap_err().to_string();
    assert!(run.contains("cannot go through the node"), "{run}");
    cluster.stop_all().await;
}

/// A node outside its `--hours` stays a member with 0 workers and runs nothing; the
/// others do the whole job.
#[tokio::test]
async fn a_node_outside_its_hours_lends_nothing() {
    // A window that starts an hour from now, in this machine's local time.
    let now = std::process::Command::new("date").arg("+%H %M").output().unwrap();
    let now = String::from_utf8(now.stdout).unwrap();
    let (h, m) = now.trim().split_once(' ').unwrap();
    let minute = h.parse::<u16>().unwrap() * 60 + m.parse::<u16>().unwrap();
    let (from, to) = ((minute + 60) % 1440, (minute + 120) % 1440);
    let hours: mesh::core::Hours =
        format!("{:02}:{:02}-{:02}:{:02}", from / 60, from % 60, to / 60, to % 60).parse().unwrap();
    let mut cluster = Cluster::new("hours");
    let a = cluster.add("a", false).await;
    cluster.add_with("b", |c| c.lending = mesh::core::Availability::new(Some(hours), false)).await;
    until(|| async {
        let rows = a.peers().await.unwrap().rows;
        rows.iter().any(|r| r.name == "b" && r.workers == Some(0))
    })
    .await;
    let report = run(&a, demo(100_000, 100_299)).await;
    assert_eq!(report.results, expected(100_000, 100_299));
    assert_eq!(tasks_of(&report, "b"), 0, "b ran tasks outside its hours: {:?}", report.nodes);
    cluster.stop_all().await;
}
