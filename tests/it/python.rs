//! Python on the mesh, end to end: the real `mesh` package (`python/`) driving real nodes
//! in this process (loopback, mDNS off) through a node's control socket, and a session
//! node the package starts itself (`mesh session --local`). Needs `python3` on `PATH`.
//!
//! What must hold: pp scripts get the right results in order; Python runs only on nodes
//! that allow runs and on the submitter's own node; a raised exception comes back as the
//! caller's, with the remote traceback; a task no node can set up fails with the node's
//! reason, not silence; `print_stats` names the nodes that ran the jobs.

use crate::common::lan::{Lan, eventually, lan_tests_enabled};
use crate::common::nodes::{Cluster, members, until};
use mesh::exec::primes;
use mesh::node::Control;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The package's directory, for `PYTHONPATH`.
fn package() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Runs `script` with python3 against the node home `home`; its stdout, which must be
/// a success.
async fn python(dir: &Path, home: &Path, script: &str) -> String {
    static SCRIPTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SCRIPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = dir.join(format!("script-{n}.py"));
    std::fs::write(&file, script).unwrap();
    let home = home.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&file)
            .env("PYTHONPATH", package())
            .env("MESH_HOME", &home)
            .env("MESH_BIN", env!("CARGO_BIN_EXE_mesh"))
            .output()
            .expect("python3 on PATH")
    });
    let out = tokio::time::timeout(Duration::from_secs(240), out).await.expect("the script never ended").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the script failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout
}

/// The JSON the script printed last.
fn last_json(stdout: &str) -> serde_json::Value {
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON in:\n{stdout}"));
    serde_json::from_str(line).unwrap()
}

const SUM_PRIMES: &str = r#"
import json, math, sys, time
import mesh.pp as pp

def isprime(n):
    if n < 2:
        return False
    for i in range(2, int(math.sqrt(n)) + 1):
        if n % i == 0:
            return False
    return True

def sum_primes(n):
    time.sleep(0.05)
    return sum([x for x in range(2, n) if isprime(x)])

def boom(x):
    raise ValueError("boom %d" % x)

done = []
def collect(tag, result):
    done.append((tag, result))

server = pp.Server()
inputs = list(range(1000, 1040))
jobs = [(n, server.submit(sum_primes, (n,), depfuncs=(isprime,), modules=("math", "time"),
                          callback=collect, callbackargs=("cb",))) for n in inputs]
results = [job() for _, job in jobs]
bad = server.submit(boom, (3,))()
server.wait()
server.print_stats()
stats = {name: s.njobs for name, s in server.get_stats().items()}
print(json.dumps({"inputs": inputs, "results": results, "bad": bad, "stats": stats,
                  "callbacks": sorted(r for _, r in done)}))
"#;

/// Checks what `SUM_PRIMES` printed: results in order, one callback each, the raising job
/// None, every job counted once, none on `never`, some on `helper`.
fn check_sum_primes(out: &str, never: &str, helper: &str) {
    let got = last_json(out);
    let inputs: Vec<u64> = serde_json::from_value(got["inputs"].clone()).unwrap();
    let results: Vec<u64> = serde_json::from_value(got["results"].clone()).unwrap();
    let want: Vec<u64> = inputs.iter().map(|&n| primes::sieve(0, n).sum as u64).collect();
    assert_eq!(results, want, "results in submission order");
    let mut callbacks: Vec<u64> = serde_json::from_value(got["callbacks"].clone()).unwrap();
    callbacks.sort_unstable();
    let mut sorted = want.clone();
    sorted.sort_unstable();
    assert_eq!(callbacks, sorted, "one callback per job, with its result");
    assert!(got["bad"].is_null(), "a job that raised gives None, as in pp: {}", got["bad"]);

    let stats = got["stats"].as_object().unwrap();
    let total: u64 = stats.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, inputs.len() as u64 + 1, "every job counted once: {stats:?}");
    assert!(!stats.contains_key(never), "{never} does not allow runs, yet ran Python: {stats:?}");
    assert!(stats.get(helper).and_then(|v| v.as_u64()).unwrap_or(0) > 0, "{helper} allows runs and helped: {stats:?}");
    assert!(out.contains("Job execution statistics:") && out.contains(" job count | % of all jobs |"), "{out}");
}

#[tokio::test]
async fn a_pp_script_runs_on_the_nodes_that_allow_it() {
    let mut c = Cluster::new("py-pp");
    let a = c.add_with("a", |cfg| (cfg.allow_run, cfg.runs_own, cfg.control) = (false, true, Control::Owner)).await;
    c.add_with("b", |cfg| cfg.allow_run = true).await;
    c.add_with("c", |cfg| (cfg.allow_run, cfg.runs_own) = (false, false)).await;
    until(|| async { members(&a).await == ["b", "c"] }).await;
    until(|| async {
        a.peers().await.unwrap().rows.iter().any(|r| r.facts.as_ref().is_some_and(|f| f.python.is_some()))
    })
    .await;

    let out = python(&c.dir, &c.home("a"), SUM_PRIMES).await;
    check_sum_primes(&out, "c", "b");
    c.stop_all().await;
}

const EXECUTOR: &str = r#"
import json, os, sys, time
import mesh

def square(x):
    return x * x

def fails(x):
    if x == 2:
        raise KeyError("no %d" % x)
    return x

def needs_missing():
    import mesh_no_such_module_here
    return 1

def crash(x):
    if x == 5:
        os._exit(3)
    return -x

def stuck(x):
    time.sleep(60 if x == 1 else 0)
    return x

def large(n):
    return bytes(range(256)) * n

def main():
    out = {}
    with mesh.Executor() as ex:
        out["squares"] = list(ex.map(square, range(10000)))
        out["chunked"] = list(ex.map(square, range(1000), chunksize=7))
        futures = [ex.submit(fails, i) for i in range(4)]
        got = []
        for f in futures:
            try:
                got.append(f.result())
            except KeyError as e:
                got.append("KeyError:" + str(e))
                out["remote_traceback"] = str(getattr(e, "__cause__", None) or "")
        out["fails"] = got
        # A result past 64 KiB comes as a blob, which the package reads through the socket.
        big = ex.submit(large, 4096).result()
        out["large"] = [len(big), big == bytes(range(256)) * 4096]
        try:
            ex.submit(needs_missing).result()
            out["missing"] = "returned"
        except mesh.TaskFailed as e:
            out["missing"] = str(e)
        except Exception as e:
            out["missing"] = "%s: %s" % (type(e).__name__, e)
    # A task that kills its interpreter fails alone; one stuck past the timeout is ended.
    with mesh.Executor(retries=0, timeout=2) as ex:
        crashed = [ex.submit(crash, i) for i in range(8)]
        stalled = [ex.submit(stuck, i) for i in range(3)]
        out["crash"] = [f.result() if f.exception() is None else "failed: %s" % f.exception() for f in crashed]
        out["stuck"] = [f.result() if f.exception() is None else "failed: %s" % f.exception() for f in stalled]
    return out

# Nodes load this file to find the functions (as multiprocessing's spawn does): the work
# itself stays under the guard.
if __name__ == "__main__":
    print(json.dumps(main()))
"#;

#[tokio::test]
async fn an_executor_maps_raises_and_says_why_a_task_failed() {
    let mut c = Cluster::new("py-exec");
    let a = c.add_with("a", |cfg| (cfg.allow_run, cfg.control, cfg.workers) = (true, Control::Owner, 2)).await;
    let got = last_json(&python(&c.dir, &c.home("a"), EXECUTOR).await);
    let squares: Vec<u64> = serde_json::from_value(got["squares"].clone()).unwrap();
    assert_eq!(squares, (0..10_000u64).map(|x| x * x).collect::<Vec<_>>(), "map is exact and in order");
    let chunked: Vec<u64> = serde_json::from_value(got["chunked"].clone()).unwrap();
    assert_eq!(chunked, (0..1000u64).map(|x| x * x).collect::<Vec<_>>(), "chunks too");
    assert_eq!(got["fails"], serde_json::json!([0, 1, "KeyError:'no 2'", 3]));
    assert_eq!(got["large"], serde_json::json!([1 << 20, true]), "a 1 MiB result, read back through the socket");
    let tb = got["remote_traceback"].as_str().unwrap();
    assert!(tb.contains("in fails") && tb.contains("KeyError"), "the remote traceback: {tb}");
    let missing = got["missing"].as_str().unwrap();
    assert!(missing.contains("mesh_no_such_module_here"), "the failure names the module: {missing}");
    let crash: Vec<serde_json::Value> = serde_json::from_value(got["crash"].clone()).unwrap();
    for (i, r) in crash.iter().enumerate() {
        match i {
            5 => assert!(r.as_str().is_some_and(|t| t.contains("died") && t.contains("exit status 3")), "{r}"),
            _ => assert_eq!(r, &serde_json::json!(-(i as i64)), "only the crashing task fails"),
        }
    }
    let stuck: Vec<serde_json::Value> = serde_json::from_value(got["stuck"].clone()).unwrap();
    assert_eq!(stuck[0], 0);
    assert_eq!(stuck[2], 2);
    assert!(stuck[1].as_str().is_some_and(|t| t.contains("timed out")), "{}", stuck[1]);
    drop(a);
    c.stop_all().await;
}

const SESSION: &str = r#"
import json, os
import mesh.pp as pp

def cube(x):
    return x ** 3

server = pp.Server(ncpus=2, local=True)
results = [j() for j in [server.submit(cube, (i,)) for i in range(30)]]
sessions = os.path.join(os.environ["MESH_HOME"], "sessions")
homes = [os.path.join(sessions, d) for d in os.listdir(sessions) if os.path.isdir(os.path.join(sessions, d))]
print(json.dumps({"results": results, "sessions": homes}))
"#;

#[tokio::test]
async fn with_no_node_running_the_package_starts_a_session_node_that_ends_with_it() {
    let dir = std::env::temp_dir().join(format!("mesh-py-session-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let home = dir.join("home");
    let got = last_json(&python(&dir, &home, SESSION).await);
    let results: Vec<u64> = serde_json::from_value(got["results"].clone()).unwrap();
    assert_eq!(results, (0..30u64).map(|x| x.pow(3)).collect::<Vec<_>>());
    let sessions: Vec<PathBuf> = serde_json::from_value(got["sessions"].clone()).unwrap();
    assert_eq!(sessions.len(), 1, "one session node for the process: {sessions:?}");
    // The session node ends when the script does, and removes its home.
    let session_home = sessions[0].clone();
    until(|| async { !session_home.exists() }).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Parallel Python's own `sum_primes.py` example as a pp user wrote it, with only the
/// import changed, and more inputs so that every host gets some.
const PP_EXAMPLE: &str = r#"
import math, sys, time
import mesh.pp as pp

def isprime(n):
    """Returns True if n is prime and False otherwise"""
    if not isinstance(n, int):
        raise TypeError("argument passed to is_prime is not of 'int' type")
    if n < 2:
        return False
    if n == 2:
        return True
    max = int(math.ceil(math.sqrt(n)))
    i = 2
    while i <= max:
        if n % i == 0:
            return False
        i += 1
    return True

def sum_primes(n):
    """Calculates sum of all primes below given integer n"""
    return sum([x for x in range(2, n) if isprime(x)])

print("Usage: python sum_primes.py [ncpus]")
print("    [ncpus] - the number of workers to run in parallel,")
print("    if omitted it will be set to the number of processors in the system")

ppservers = ()
if len(sys.argv) > 1:
    ncpus = int(sys.argv[1])
    job_server = pp.Server(ncpus, ppservers=ppservers)
else:
    job_server = pp.Server(ppservers=ppservers)

print("Starting pp with", job_server.get_ncpus(), "workers")

start_time = time.time()
inputs = tuple(range(100000, 102400, 100))
jobs = [(input, job_server.submit(sum_primes, (input,), (isprime,), ("math",))) for input in inputs]
for input, job in jobs:
    print("Sum of primes below", input, "is", job())

print("Time elapsed: ", time.time() - start_time, "s")
job_server.print_stats()
"#;

/// The pp example on a namespaced LAN of four `mesh join` hosts that found each other by
/// mDNS: h1 (where the script runs, against its node), h2 and h3 with `--allow-run`, and
/// h4 without, which must never run Python.
#[test]
fn pp_sum_primes_on_a_lan_runs_on_every_host_that_allows_it() {
    if !lan_tests_enabled() {
        return;
    }
    let mut lan = Lan::new(4);
    for (host, extra) in [("h1", &[][..]), ("h2", &["--allow-run"][..]), ("h3", &["--allow-run"][..]), ("h4", &[][..])]
    {
        let mut args = vec!["--key", "py"];
        args.extend_from_slice(extra);
        lan.join(host, &args);
    }
    let find = Duration::from_secs(30);
    assert!(eventually(find, || lan.members("h1") == ["h2", "h3", "h4"]), "mesh did not form");
    assert!(eventually(find, || lan.peers("h1").iter().filter(|r| r["facts"].is_object()).count() == 4));
    // Each node says which Python it runs tasks with: `mesh peers` shows it.
    let version = Command::new("python3").args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).output();
    let version = String::from_utf8(version.unwrap().stdout).unwrap().trim().to_string();
    let table = String::from_utf8_lossy(&lan.mesh("h1", &["peers"]).stdout).into_owned();
    assert!(table.contains("python") && table.contains(&format!(" {version} ")), "{table}");
    let script = lan.dir().join("sum_primes.py");
    std::fs::write(&script, PP_EXAMPLE).unwrap();
    let package = package();
    let out = lan.exec("h1", "python3", &[script.to_str().unwrap()], &[("PYTHONPATH", package.as_path())]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    let sums: Vec<(u64, u64)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Sum of primes below "))
        .map(|l| {
            let (n, sum) = l.split_once(" is ").unwrap();
            (n.parse().unwrap(), sum.parse().unwrap())
        })
        .collect();
    let want: Vec<(u64, u64)> = (100_000..102_400).step_by(100).map(|n| (n, primes::sieve(0, n).sum as u64)).collect();
    assert_eq!(sums, want, "every sum exact, in submission order:\n{stdout}");

    // print_stats: pp's table, one row per node that ran jobs.
    let table: Vec<&str> = stdout.lines().skip_while(|l| *l != "Job execution statistics:").collect();
    assert_eq!(
        table.get(1),
        Some(&" job count | % of all jobs | job time sum | time per job | job server"),
        "{stdout}"
    );
    let rows: Vec<(u64, &str)> = table[2..]
        .iter()
        .take_while(|l| !l.starts_with("Time elapsed"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[0].parse().unwrap(), cells[4])
        })
        .collect();
    let mut hosts: Vec<&str> = rows.iter().map(|r| r.1).collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["h1", "h2", "h3"], "every host that may run Python took part, and only those:\n{stdout}");
    assert_eq!(rows.iter().map(|r| r.0).sum::<u64>(), want.len() as u64, "{stdout}");
}

/// The package's own tests (`python/tests`: the worker's frames against a real worker
/// process, and the package against a fake node), so that `cargo test` runs every test.
#[test]
fn the_package_own_tests_pass() {
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(package())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 on PATH");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python -m unittest failed:\n{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.lines().any(|l| l.starts_with("Ran ") && !l.starts_with("Ran 0 ")), "no tests ran:\n{stderr}");
}
