//! The dashboard as a person sees it: a real browser (headless Chromium) on one host of a
//! namespaced LAN watches the page of another host's node while a job submitted on a third
//! spreads over all three. Also the JSON API, and `/metrics` checked by Prometheus's own
//! `promtool`. See tests/it/common/browser.rs for the browser.

use crate::common::browser::{Browser, browser_tests_enabled};
use crate::common::lan::{Lan, eventually, lan_tests_enabled};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Safety nets against hangs, not timings.
const FIND: Duration = Duration::from_secs(30);
const JOB_END: Duration = Duration::from_secs(240);

/// `curl` in host `from`'s namespace: the body of `url`.
fn get(lan: &mut Lan, from: &str, url: &str) -> String {
    let out = lan.exec(from, "curl", &["-sS", "--max-time", "10", url], &[]);
    assert!(out.status.success(), "GET {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn promtool() -> String {
    std::env::var("MESH_PROMTOOL").unwrap_or_else(|_| "promtool".into())
}

/// `promtool check metrics` on `text`: its exit code and what it printed.
fn promtool_check(text: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is not installed (.ci/run extracts it from Debian's prometheus package; MESH_SKIP_BROWSER=1 skips)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The running job from h2 the page shows: its tasks done, and the page's own update
/// counter. (h3's short job may still show as running for a moment after it ended, until
/// h3's next announce.)
const LOOK: &str = "(() => { const j = [...document.querySelectorAll('#running [data-job]')] \
    .find(j => j.textContent.includes('from h2')); \
    return j ? [Number(j.dataset.done), Number(document.getElementById('updates').textContent)] : null; })()";

#[test]
fn a_browser_watches_a_job_spread_over_three_hosts() {
    if !lan_tests_enabled() || !browser_tests_enabled() {
        return;
    }
    let mut lan = Lan::new(3);
    lan.join("h1", &["--key", "dash", "--http", "0.0.0.0:4880"]);
    lan.join("h2", &["--key", "dash"]);
    lan.join("h3", &["--key", "dash"]);
    assert!(eventually(FIND, || lan.members("h1") == ["h2", "h3"]), "the mesh did not form");
    assert!(
        lan.log("h1").contains("is open to every machine"),
        "a LAN dashboard is not called one:\n{}",
        lan.log("h1")
    );
    assert!(lan.log("h2").contains("dashboard at http://127.0.0.1:4880/"), "{}", lan.log("h2"));

    // A short job first, from h3, so that the page has a finished job to show too.
    let out = lan.mesh("h3", &["submit", "primes", "2000000000", "--tasks", "12", "--key", "dash"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // The job watched: about 24 s of work for 3 workers, submitted on h2.
    let job = lan.spawn("h2", &["submit", "primes", "50000000000", "--tasks", "90", "--json", "--key", "dash"]);
    let url = format!("http://{}:4880/", lan.host("h1").ip);
    let ns = lan.host("h3").ns.clone();
    let mut page = Browser::open(Some(&ns), &url);

    let names = "[...document.querySelectorAll('#nodes [data-node]')].map(r => r.dataset.node).sort()";
    assert!(eventually(FIND, || page.eval(names) == serde_json::json!(["h1", "h2", "h3"])), "{}", page.eval(names));
    assert!(
        eventually(FIND, || page.eval(LOOK)[0].as_u64().is_some_and(|d| d > 0)),
        "no running job with progress shows"
    );
    let first = page.eval(LOOK);
    std::thread::sleep(Duration::from_millis(2500));
    let second = page.eval(LOOK);
    assert!(
        second[0].as_u64() > first[0].as_u64(),
        "the job's progress did not grow on the page: {first} then {second}"
    );
    assert!(second[1].as_u64() > first[1].as_u64(), "the page did not update by itself: {first} then {second}");
    let owner = "document.querySelector('#running [data-job]').textContent";
    assert!(page.eval(owner).as_str().is_some_and(|t| t.contains("primes from h2")), "{}", page.eval(owner));
    // What README shows: the page on a phone, mid-job.
    let png = page.screenshot(390, 844);
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let shot = match std::env::var_os("MESH_UPDATE_SCREENSHOT") {
        Some(_) => concat!(env!("CARGO_MANIFEST_DIR"), "/docs/dashboard.png").into(),
        None => std::env::temp_dir().join("mesh-dashboard.png"),
    };
    std::fs::write(&shot, &png).unwrap();

    // The metrics mid-job, as Prometheus would scrape them.
    let metrics = get(&mut lan, "h3", &format!("{url}metrics"));
    let (code, said) = promtool_check(&metrics);
    assert_eq!(code, Some(0), "promtool check metrics: {said}\n{metrics}");
    assert_eq!(value(&metrics, "mesh_peers{state=\"member\"}"), Some(2.0), "{metrics}");
    assert_eq!(value(&metrics, "mesh_workers"), Some(1.0), "{metrics}");

    // The job ends: it moves to the recent jobs, with its task count, on the page and in the API.
    let deadline = std::time::Instant::now() + JOB_END;
    let out = loop {
        if let Some(out) = lan.try_wait(&job) {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "the job did not end");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tasks"], 90);
    let recent = "[...document.querySelectorAll('#recent [data-job]')].map(j => [j.dataset.done, j.dataset.total])";
    let ended = serde_json::json!(["90", "90"]);
    assert!(
        eventually(FIND, || page.eval(recent).as_array().is_some_and(|a| a.contains(&ended))),
        "the finished job is not among the recent ones: {}",
        page.eval(recent)
    );
    let jobs: Value = serde_json::from_str(&get(&mut lan, "h3", &format!("{url}api/jobs"))).unwrap();
    let recent = jobs["recent"].as_array().unwrap();
    let watched = recent.iter().find(|j| j["owner"] == "h2").unwrap_or_else(|| panic!("{jobs}"));
    assert_eq!((&watched["done"], &watched["total"], &watched["finished"]), (&90.into(), &90.into(), &true.into()));
    let ran: u64 = watched["nodes"].as_array().unwrap().iter().map(|n| n["tasks"].as_u64().unwrap()).sum();
    assert_eq!(ran, 90, "every task counted once in the statistics: {watched}");
    assert!(recent.iter().any(|j| j["owner"] == "h3" && j["total"] == 12), "the first job: {jobs}");
    let peers: Value = serde_json::from_str(&get(&mut lan, "h3", &format!("{url}api/peers"))).unwrap();
    assert_eq!(peers.as_array().map(Vec::len), Some(3), "{peers}");
    let metrics = get(&mut lan, "h3", &format!("{url}metrics"));
    let ran_here = value(&metrics, "mesh_tasks_done_total{kind=\"primes\"}").unwrap_or(0.0);
    assert!(ran_here > 0.0, "h1 ran no primes task: {metrics}");
    assert_eq!(promtool_check(&metrics).0, Some(0));
}

#[test]
fn promtool_passes_the_documented_config_and_rejects_bad_metrics() {
    if !browser_tests_enabled() {
        return;
    }
    // docs/monitoring.md's scrape config and alert rules.
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/prometheus/prometheus.yml");
    let out = Command::new(promtool()).args(["check", "config", config]).output().expect("promtool");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 7 rules found"));
    // The check above could not fail if promtool accepted anything: a counter without the
    // `_total` suffix is a lint problem (3), a broken line a parse error (1).
    let (code, _) = promtool_check("# HELP x_seconds a\n# TYPE x_seconds counter\nx_seconds 1\n");
    assert_eq!(code, Some(3));
    let (code, _) = promtool_check("this is { not metrics\n");
    assert_eq!(code, Some(1));
}

/// Issue 30: 1,100 half-sent requests to the dashboard of a node limited to 1,024 file
/// descriptors (soft and hard) leave it working: `mesh peers` answers, a job submitted
/// through its control socket gives the exact sum, the node holds a bounded number of fds,
/// and the dashboard answers again once the flood's connections time out. A page that
/// rebinds its DNS name to the node (another `Host`) gets 421.
#[test]
fn a_dashboard_flood_under_1024_fds_leaves_the_node_working() {
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    raise_fd_limit(4096);
    let home = std::env::temp_dir().join(format!("mesh-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut join = std::process::Command::new(assert_cmd::cargo::cargo_bin("mesh"));
    join.args(["join", "--no-mdns", "--listen", "127.0.0.1:0", "--workers", "2", "--http", &addr])
        .env("MESH_HOME", &home)
        .env("MESH_KEY", "flood test")
        .stderr(std::process::Stdio::null());
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        join.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 1024, rlim_max: 1024 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
    let mut node = join.spawn().unwrap();
    let get = |host: &str| -> Option<String> {
        let mut s = std::net::TcpStream::connect(&addr).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
        write!(s, "GET /api/peers HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    let answered = || get(&addr).is_some_and(|r| r.starts_with("HTTP/1.1 200"));
    assert!(wait_for(answered), "the dashboard never answered");
    let rebound = get(&format!("attacker.example:{port}")).unwrap();
    assert!(rebound.starts_with("HTTP/1.1 421"), "{rebound}");
    // The flood: each connection sends half a request and waits.
    let flood: Vec<std::net::TcpStream> = (0..1100)
        .filter_map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).ok()?;
            s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").ok()?;
            Some(s)
        })
        .collect();
    assert!(flood.len() >= 1000, "the flood opened {} connections", flood.len());
    let fds = std::fs::read_dir(format!("/proc/{}/fd", node.id())).unwrap().count();
    assert!(fds < 512, "the node holds {fds} fds during the flood");
    let mesh = |args: &[&str]| {
        let out = assert_cmd::Command::cargo_bin("mesh").unwrap().args(args).env("MESH_HOME", &home).output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status,
        )
    };
    let (_, err, status) = mesh(&["peers", "--json"]);
    assert!(status.success(), "{err}");
    let (out, err, _) = mesh(&["submit", "primes", "100999"]);
    assert_eq!(out, "Sum of primes below 100999 is 462436339\n", "{err}");
    // Half-sent requests time out; then the dashboard serves again.
    assert!(wait_for(answered), "the dashboard never recovered");
    drop(flood);
    let _ = node.kill();
    let _ = node.wait();
    let _ = std::fs::remove_dir_all(&home);
}

/// Polls `check` every 100 ms, for at most 60 s (a hang guard, not a timing).
fn wait_for(check: impl Fn() -> bool) -> bool {
    (0..600).any(|_| {
        check() || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        }
    })
}

fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit write and read only `lim`.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_cur.max(want.min(lim.rlim_max));
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}
