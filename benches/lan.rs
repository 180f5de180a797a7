//! Membership timings and idle cost on the namespace LAN (root and iproute2 needed).
//!
//! Run: `cargo bench --bench lan` (optionally `-- TRIALS`, default 10, and the names of
//! the parts to run: `jobs`, `membership`, `recovery`, `wasm`, `bench`, `python`,
//! `gossip`; default
//! all; `--csv`
//! prints the jobs part as CSV for `benches/plot.py`)
//!
//! Measures, with the release binary:
//! * jobs: the demo job on 1, 2 and 3 one-worker hosts;
//! * recovery: the extra time a job takes when a host is killed half-way;
//! * wasm: how many times each node receives a module (2-worker hosts, two jobs);
//! * bench: `mesh bench` on 3 one-worker hosts sharing this machine's 2 cores, its
//!   speedup (calibrated serial time / elapsed) against the task time sum / elapsed that
//!   it used to report, which counts stretched task times as work;
//! * python: Parallel Python's demo (401 trial-division tasks) through `mesh.pp` on 2
//!   one-worker hosts (h2 with `--allow-run`), and through pp itself (h1's local worker
//!   and a `ppserver` on h2), each against a serial run of the same Python kernel. Needs
//!   `benches/compare/.venv` (made by `bash benches/compare/run.sh`), for pp;
//! * join → visible: from starting `mesh join` on a fresh host until another host's
//!   `mesh peers` lists it (median and max over the trials);
//! * graceful leave (SIGTERM), kill -9 and a pulled cable: until the others drop it;
//! * an idle node's resident memory and CPU over 20 s;
//! * gossip: the bytes an idle node of a 5-, 10- and 20-host mesh receives and sends per
//!   second, and per peer (announces, their gossipsub copies, pings and TCP/IP, all
//!   counted on the wire), to show how the cost grows with the mesh; then the same for a
//!   node of 10 hosts during a job.

#[path = "../tests/it/common/lan.rs"]
mod lan;

use lan::{Lan, eventually};
use std::path::Path;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn time_until(mut f: impl FnMut() -> bool) -> f64 {
    let t = Instant::now();
    assert!(eventually(LIMIT, &mut f), "condition never held");
    t.elapsed().as_secs_f64()
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    let max = v[v.len() - 1];
    println!("{name:<28} median {median:6.2} s   max {max:6.2} s   ({} trials)", v.len());
}

fn pid_of_node(ns: &str) -> Option<u32> {
    let out = std::process::Command::new("ip").args(["netns", "pids", ns]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().next()?.trim().parse().ok()
}

fn proc_field(pid: u32, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = proc_field(pid, "stat");
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// A demo run: elapsed seconds, steals, tasks per host.
type DemoRun = (f64, u64, Vec<u64>);

/// The demo job (1000 trial-division tasks) submitted on h1 of a mesh of `hosts` hosts
/// with 1 worker each.
fn demo_on(hosts: usize) -> DemoRun {
    let mut lan = mesh_of(hosts, &["--key", "bench"]);
    let out = lan.mesh("h1", &["submit", "primes", "100000..100999", "--algo", "trial", "--json", "--key", "bench"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shares = (1..=hosts)
        .map(|i| {
            let name = format!("h{i}");
            doc["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["name"] == name.as_str())
                .map(|n| n["tasks"].as_u64().unwrap())
                .sum()
        })
        .collect();
    (doc["elapsed_s"].as_f64().unwrap(), doc["steals"].as_u64().unwrap(), shares)
}

/// Starts `hosts` hosts with `extra` join arguments and waits until h1 sees them all.
fn mesh_of(hosts: usize, extra: &[&str]) -> Lan {
    let mut lan = Lan::new(hosts);
    for i in 1..=hosts {
        lan.join(&format!("h{i}"), extra);
    }
    let want: Vec<String> = (2..=hosts).map(|i| format!("h{i}")).collect();
    assert!(eventually(LIMIT, || lan.members("h1") == want));
    std::thread::sleep(Duration::from_secs(1));
    lan
}

/// The 2000-task demo job on 3 one-worker hosts, with h3 killed once it has done 300
/// tasks (or not): the elapsed time.
fn recovery_run(kill: bool) -> f64 {
    let mut lan = mesh_of(3, &["--key", "bench"]);
    let job = lan.spawn("h1", &["submit", "primes", "100000..101999", "--algo", "trial", "--json", "--key", "bench"]);
    if kill {
        assert!(eventually(LIMIT, || {
            lan.peers("h1").iter().any(|r| r["name"] == "h3" && r["tasks_done"].as_u64().unwrap_or(0) >= 300)
        }));
        lan.kill9("h3");
    }
    let out = lan.wait(job);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["elapsed_s"].as_f64().unwrap()
}

/// A wasm job run twice from h1 on 3 two-worker hosts: the blobs each helper fetched.
fn wasm_fetches() -> Vec<(String, u64, u64)> {
    let mut lan = mesh_of(3, &["--key", "bench", "--workers", "2"]);
    let input: String = (100_000..100_200).map(|n| format!("{n}\n")).collect();
    let file = lan.dir().join("ns.txt");
    std::fs::write(&file, input).unwrap();
    let module = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wasm/primes.wat");
    for _ in 0..2 {
        let args = ["submit", "wasm", module, "--input-file", file.to_str().unwrap(), "--key", "bench"];
        let out = lan.mesh("h1", &args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    ["h2", "h3"]
        .iter()
        .map(|h| {
            let me = lan.peers(h).into_iter().find(|r| r["self"] == true).unwrap_or_default();
            let b = &me["blobs"];
            (h.to_string(), b["fetched"].as_u64().unwrap_or(0), me["tasks_done"].as_u64().unwrap_or(0))
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trials: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(10);
    let parts = ["jobs", "membership", "recovery", "wasm", "bench", "python", "gossip"];
    let chosen: Vec<&str> = parts.iter().copied().filter(|p| args.iter().any(|a| a == p)).collect();
    let run = |part: &str| chosen.is_empty() || chosen.contains(&part);
    if run("jobs") {
        jobs(args.iter().any(|a| a == "--csv"));
    }
    if run("recovery") {
        let base = (0..2).map(|_| recovery_run(false)).fold(f64::INFINITY, f64::min);
        let killed = (0..2).map(|_| recovery_run(true)).fold(f64::INFINITY, f64::min);
        println!(
            "2000-task demo on 3 hosts: {base:.3} s; with h3 killed after 300 tasks: {killed:.3} s (+{:.3} s)",
            killed - base
        );
    }
    if run("wasm") {
        for (h, fetched, done) in wasm_fetches() {
            println!("wasm job twice, 3 hosts x 2 workers: {h} ran {done} tasks and fetched {fetched} blobs");
        }
    }
    if run("bench") {
        let mut lan = mesh_of(3, &["--key", "bench"]);
        let out = lan.mesh("h1", &["bench", "--tasks", "600", "--json", "--key", "bench"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let h = &doc["heavy"];
        println!(
            "mesh bench, 3 hosts x 1 worker on {} cores: speedup {:.2}x (calibrated), task time sum / elapsed {:.2}x",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            h["speedup"].as_f64().unwrap(),
            h["busy_workers"].as_f64().unwrap()
        );
    }
    if run("python") {
        python_demo();
    }
    if run("membership") {
        membership(trials);
    }
    if run("gossip") {
        gossip();
    }
}

/// The bytes h2 of an idle mesh of 5, 10 and 20 hosts receives and sends per second over
/// 30 s; then, on 10 hosts, the same over 8 s of a job of 10,000 short tasks (about 5 ms
/// of CPU each here)
/// that h1 submitted, in which queues fill and empty as during the simulator's jobs.
fn gossip() {
    let formed = |n: usize| {
        let mut lan = Lan::new(n);
        for i in 1..=n {
            lan.join(&format!("h{i}"), &[]);
        }
        assert!(eventually(LIMIT, || lan.members("h1").len() == n - 1), "mesh of {n} did not form");
        std::thread::sleep(Duration::from_secs(5));
        lan
    };
    for n in [5, 10, 20] {
        let mut lan = formed(n);
        let (rx, tx) = link_rates(&mut lan, Duration::from_secs(30));
        println!(
            "idle mesh of {n:>2}: a node receives {rx:>6.0} B/s, {:>5.0} B/s per peer, and sends {tx:>6.0} B/s \
             (each peer announces once a second)",
            rx / (n - 1) as f64
        );
    }
    let n = 10;
    let mut lan = formed(n);
    let job = lan.spawn("h1", &["submit", "primes", "100000000000", "--tasks", "10000", "--json"]);
    std::thread::sleep(Duration::from_secs(3));
    let (rx, tx) = link_rates(&mut lan, Duration::from_secs(8));
    let out = lan.wait(job);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    println!(
        "mesh of {n} in a job ({:.1} s in all): a node that is not its owner receives {rx:>6.0} B/s, {:>5.0} B/s per peer, \
         and sends {tx:>6.0} B/s (statuses, steals, leases and results)",
        doc["elapsed_s"].as_f64().unwrap_or(f64::NAN),
        rx / (n - 1) as f64
    );
}

/// What h2 receives and sends per second over `window`, counted on the bridge side of
/// its link (what the bridge sends it, and takes from it).
fn link_rates(lan: &mut Lan, window: Duration) -> (f64, f64) {
    let veth = lan.host("h2").veth.clone();
    let count = |what: &str| -> u64 {
        let path = format!("/sys/class/net/{veth}/statistics/{what}");
        std::fs::read_to_string(path).expect("link counters").trim().parse().expect("a count")
    };
    let (rx0, tx0) = (count("tx_bytes"), count("rx_bytes"));
    std::thread::sleep(window);
    let per_s = |b: u64| b as f64 / window.as_secs_f64();
    (per_s(count("tx_bytes") - rx0), per_s(count("rx_bytes") - tx0))
}

fn jobs(csv: bool) {
    // Jobs: the machine has 2 cores, so at most 2 one-worker hosts can run truly in parallel.
    let best = |hosts| (0..3).map(|_| demo_on(hosts)).min_by(|a, b| a.0.total_cmp(&b.0)).unwrap();
    let runs: Vec<(usize, DemoRun)> = (1..=3).map(|h| (h, best(h))).collect();
    let t1 = runs[0].1.0;
    if csv {
        println!("hosts,elapsed_s,efficiency,steals");
    }
    for (hosts, (t, steals, shares)) in &runs {
        let eff = t1 / (*hosts as f64 * t);
        if csv {
            println!("{hosts},{t:.4},{eff:.4},{steals}");
        } else {
            println!(
                "demo job, {hosts} host(s) x 1 worker  {t:.3} s  efficiency {:.1}%  steals {steals} ({:.4} per task)  shares {shares:?}",
                100.0 * eff,
                *steals as f64 / 1000.0
            );
        }
    }
}

fn membership(trials: usize) {
    let (mut join, mut leave, mut kill, mut cut) = (vec![], vec![], vec![], vec![]);
    for _ in 0..trials {
        let mut lan = Lan::new(3);
        lan.join("h1", &[]);
        lan.join("h2", &[]);
        assert!(eventually(LIMIT, || lan.members("h1") == ["h2"]));
        lan.join("h3", &[]);
        join.push(time_until(|| lan.members("h1").contains(&"h3".to_string())));
        lan.stop("h3");
        leave.push(time_until(|| !lan.members("h1").contains(&"h3".to_string())));
        lan.join("h3", &[]);
        assert!(eventually(LIMIT, || lan.members("h1").len() == 2));
        lan.kill9("h3");
        kill.push(time_until(|| !lan.members("h1").contains(&"h3".to_string())));
        lan.cable("h2", false);
        cut.push(time_until(|| lan.members("h1").is_empty()));
    }
    summary("join -> visible", join);
    summary("graceful leave -> gone", leave);
    summary("kill -9 -> gone", kill);
    summary("cable pulled -> gone", cut);

    let mut lan = Lan::new(2);
    lan.join("h1", &[]);
    lan.join("h2", &[]);
    assert!(eventually(LIMIT, || lan.members("h1") == ["h2"]));
    std::thread::sleep(Duration::from_secs(3));
    let ns = lan.hosts[0].ns.clone();
    let pid = pid_of_node(&ns).expect("the node's pid");
    let ticks0 = cpu_ticks(pid);
    let window = Duration::from_secs(20);
    std::thread::sleep(window);
    let ticks = cpu_ticks(pid) - ticks0;
    let hz = 100.0; // USER_HZ on Linux
    let cpu = ticks as f64 / hz / window.as_secs_f64() * 100.0;
    let rss = proc_field(pid, "status").lines().find(|l| l.starts_with("VmRSS")).unwrap_or("VmRSS: ?").to_string();
    println!("idle node (1 peer, 20 s)       {rss}, CPU {cpu:.2}% of one core");
}

/// The pp demo on 2 one-worker namespace hosts through `mesh.pp` and through Parallel
/// Python, each as efficiency against the serial run of the same kernel: serial / (2 x
/// elapsed).
fn python_demo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("benches/compare/.venv/bin");
    assert!(venv.join("ppserver").exists(), "run `bash benches/compare/run.sh` once first: it makes the venv with pp");
    let python = venv.join("python");
    let script = root.join("benches/compare/lan_pp.py");
    let package = root.join("python");
    let (first, last) = ("100000", "100400");
    let one = |lan: &mut Lan, system: &str, extra: &[&str]| -> serde_json::Value {
        let mut args = vec![script.to_str().unwrap(), system, first, last];
        args.extend_from_slice(extra);
        let out = lan.exec("h1", python.to_str().unwrap(), &args, &[("PYTHONPATH", package.as_path())]);
        assert!(out.status.success(), "{system}: {}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{system}: {e}: {line}"))
    };
    let mut lan = Lan::new(2);
    let serial = one(&mut lan, "serial", &[]);
    let ip2 = lan.host("h2").ip.clone();
    let ppserver = venv.join("ppserver");
    let server = lan.spawn_program(
        "h2",
        ppserver.to_str().unwrap(),
        &["-i", &ip2, "-p", "60000", "-w", "1", "-s", "mesh-bench"],
    );
    let pp = one(&mut lan, "pp", &[&format!("{ip2}:60000")]);
    lan.kill(server);
    lan.join("h1", &["--key", "bench"]);
    lan.join("h2", &["--key", "bench", "--allow-run"]);
    assert!(eventually(LIMIT, || lan.members("h1") == ["h2"]));
    assert!(eventually(LIMIT, || lan.peers("h1").iter().all(|r| r["facts"]["python"].is_object())));
    let mesh = one(&mut lan, "mesh.pp", &[]);
    let base = serial["elapsed_s"].as_f64().unwrap();
    println!("pp demo ({} tasks), serial Python kernel: {base:.3} s", serial["tasks"]);
    for r in [&pp, &mesh] {
        assert_eq!(r["checksum"], serial["checksum"], "{} gave other sums", r["system"]);
        let t = r["elapsed_s"].as_f64().unwrap();
        println!(
            "{:<8} on 2 one-worker hosts: {t:.3} s  efficiency {:.1}%  jobs per node {}",
            r["system"].as_str().unwrap(),
            100.0 * base / (2.0 * t),
            r["nodes"]
        );
    }
}
