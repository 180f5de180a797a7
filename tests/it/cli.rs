//! The `mesh` binary as users run it: outputs, exit codes and error messages.
//!
//! These run in the machine's own network namespace, so every submit here is `--local`:
//! nodes with mDNS only ever run inside the test LAN (tests/it/common/lan.rs), and the
//! loopback nodes of tests/it/node.rs have mDNS off.

use assert_cmd::Command;
use std::path::PathBuf;

/// A `mesh` command with its own home, so tests never touch ~/.mesh or each other.
pub(crate) fn mesh(home: &str) -> Command {
    let dir: PathBuf = std::env::temp_dir().join(format!("mesh-cli-test-{}-{home}", std::process::id()));
    let mut cmd = Command::cargo_bin("mesh").unwrap();
    cmd.env("MESH_HOME", dir).env_remove("MESH_LOG");
    cmd
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub(crate) fn stderr(out: &std::process::Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn demo_sum_and_statistics() {
    let out = mesh("demo").args(["submit", "primes", "100999", "--local"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Sum of primes below 100999 is 462436339\n");
    let err = stderr(&out);
    assert!(err.contains("Time elapsed:"), "{err}");
    assert!(err.contains("% of tasks") && err.contains("time per task"), "{err}");
    // 2 ms of work: a speedup would mostly measure start-up, so it says so in words.
    assert!(err.contains("Job too short to measure speedup"), "{err}");
    assert!(!err.contains("Speedup") && !err.contains("efficiency"), "{err}");
}

#[test]
fn statistics_give_a_speedup_only_for_jobs_long_enough_to_measure() {
    let empty = mesh("empty").args(["submit", "primes", "0", "--local"]).output().unwrap();
    assert_eq!(empty.status.code(), Some(0), "{}", stderr(&empty));
    let err = stderr(&empty);
    assert!(err.contains("Job too short to measure speedup") && !err.contains("Speedup 0.00x"), "{err}");
    assert!(err.contains("% of tasks"), "the table stays: {err}");
    // Each n by trial division takes milliseconds: a job of a hundred is measurable.
    let long = mesh("long")
        .args(["submit", "primes", "100000..100099", "--algo", "trial", "-w", "2", "--local"])
        .output()
        .unwrap();
    assert_eq!(long.status.code(), Some(0), "{}", stderr(&long));
    let err = stderr(&long);
    assert!(err.contains("Speedup ") && err.contains("on 2 workers") && err.contains("efficiency"), "{err}");
    assert!(!err.contains("too short"), "{err}");
    // --json keeps the raw figures whatever the job's length.
    let json = mesh("json").args(["submit", "primes", "100999", "--local", "--json"]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(doc["speedup"].is_f64() && doc["efficiency"].is_f64() && doc["elapsed_s"].is_f64(), "{doc}");
}

#[test]
fn range_prints_one_line_per_n_in_order() {
    let out = mesh("range")
        .args(["submit", "primes", "99990..100010", "--algo", "trial", "-w", "2", "--local"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 21);
    for (i, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("Sum of primes below {} is ", 99_990 + i)), "{line}");
    }
    // 100003 is the first prime at or above 100000; the sum below 100000 is in OEIS A046731.
    assert_eq!(lines[10], "Sum of primes below 100000 is 454396537");
    assert_eq!(lines[13], "Sum of primes below 100003 is 454396537");
    assert_eq!(lines[14], "Sum of primes below 100004 is 454496540");
}

#[test]
fn json_document_has_exact_results_and_node_stats() {
    let out = mesh("json")
        .args(["submit", "primes", "1000000", "--json", "--workers", "3", "--tasks", "30", "--name", "pi-1", "--local"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "--json keeps stderr quiet: {}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["results"][0]["n"], 1_000_000);
    assert_eq!(doc["results"][0]["sum"], 37_550_402_023u64);
    assert_eq!(doc["tasks"], 30);
    assert_eq!(doc["workers"], 3);
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["name"], "pi-1");
    assert_eq!(nodes[0]["tasks"], 30);
    assert!(nodes[0]["peer_id"].as_str().unwrap().starts_with("12D3KooW"));
    assert!(doc["elapsed_s"].as_f64().unwrap() > 0.0);
    assert!(nodes[0]["task_time_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn peer_id_persists_in_home() {
    let id = |_: ()| {
        let out = mesh("persist").args(["submit", "primes", "100", "--json", "--local"]).output().unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["nodes"][0]["peer_id"].as_str().unwrap().to_string()
    };
    assert_eq!(id(()), id(()));
}

#[test]
fn sieve_and_trial_agree_through_the_binary() {
    let run = |algo: &str| {
        let out = mesh("agree")
            .args(["submit", "primes", "250000", "--algo", algo, "--task-size", "9999", "--local"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        stdout(&out)
    };
    assert_eq!(run("sieve"), run("trial"));
}

#[test]
fn bad_input_exits_2_and_says_what_is_accepted() {
    let cases: &[(&[&str], &str)] = &[
        (&["abc"], "not a whole number"),
        (&["-5"], "negative"),
        (&["100..10"], "reversed"),
        (&["..10"], "both ends"),
        (&["1e15"], "beyond the supported bound"),
        (&["0..5000000"], "at most"),
        (&["100", "--algo", "magic"], "sieve, trial"),
        (&["100", "--workers", "0"], "--workers"),
        (&["100", "--tasks", "0"], "--tasks must be between"),
        (&["100", "--tasks", "x"], "--tasks"),
        (&["1..5", "--tasks", "2"], "a range already makes one task per n"),
        (&["100", "--tasks", "2", "--task-size", "5"], "cannot be used with"),
        (&[], "N|A..B"),
    ];
    for (args, expect) in cases {
        let out = mesh("bad").args(["submit", "primes", "--local"]).args(*args).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: expected {expect:?} in {err}");
        assert!(stdout(&out).is_empty(), "{args:?} printed results");
    }
}

#[test]
fn unusable_home_is_a_setup_error() {
    let file = std::env::temp_dir().join(format!("mesh-cli-test-{}-file", std::process::id()));
    std::fs::write(&file, b"not a directory").unwrap();
    let out = Command::cargo_bin("mesh")
        .unwrap()
        .args(["submit", "primes", "10", "--local", "--home"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--home"), "{}", stderr(&out));
}

#[test]
fn closed_stdout_pipe_exits_quietly() {
    use std::process::{Command as Std, Stdio};
    let bin = assert_cmd::cargo::cargo_bin("mesh");
    let dir = std::env::temp_dir().join(format!("mesh-cli-test-{}-pipe", std::process::id()));
    let mut child = Std::new(bin)
        .args(["submit", "primes", "0..50000", "-w", "1", "--local"])
        .env("MESH_HOME", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away, like `| head -0`
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn join_refuses_bad_addresses_and_keys_before_touching_the_network() {
    let cases: &[(&[&str], &str)] = &[
        (&["--peer", "not-an-address"], "is not a peer address"),
        (&["--listen", "nowhere"], "is not a listen address"),
        (&["--key-file", "/nonexistent/mesh.key"], "cannot read --key-file"),
        (&["--key", "   "], "the key is empty"),
        (&["--workers", "0"], "--workers"),
        (&["--hours", "18:00"], "expected HH:MM-HH:MM"),
        (&["--hours", "25:00-08:00"], "25:00 is not a time of day"),
        (&["--hours", "08:00-08:00"], "starts and ends at the same time"),
        (&["--nice", "20"], "--nice"),
        (&["--http", "nowhere"], "is not IP:PORT or a PORT"),
        (&["--http", "4880", "--no-http"], "cannot be used with"),
    ];
    for (args, expect) in cases {
        let out = mesh("join-bad").arg("join").args(*args).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: expected {expect:?} in {err}");
    }
}

#[test]
fn store_check_reports_and_removes_damaged_blobs() {
    let home = std::env::temp_dir().join(format!("mesh-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let check = || mesh("store").args(["store", "check"]).env("MESH_HOME", &home).output().unwrap();
    let out = check();
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "0 blobs (0.0 MiB) sound; 0 damaged\n"));
    let blobs = home.join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let good = mesh::id::ContentId::of(b"good");
    let bad = mesh::id::ContentId::of(b"bad");
    std::fs::write(blobs.join(good.to_string()), b"good").unwrap();
    std::fs::write(blobs.join(bad.to_string()), b"rot").unwrap();
    let out = check();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("1 blob (0.0 MiB) sound; 1 damaged\n"), "{text}");
    assert!(text.contains(&format!("removed damaged blob {bad}")), "{text}");
    assert!(blobs.join(good.to_string()).exists() && !blobs.join(bad.to_string()).exists());
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn join_stops_when_its_dashboard_address_is_taken_but_not_the_default() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let home = std::env::temp_dir().join(format!("mesh-http-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let out = mesh("join-http")
        .args(["join", "--no-mdns", "--listen", "127.0.0.1:0", "--key", "k", "--http", &port])
        .env("MESH_HOME", &home)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&home);
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("cannot serve the dashboard on 127.0.0.1:{port}")), "{err}");
}

fn fixture(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn wasm_outputs_print_in_input_order() {
    let ns = [10u64, 0, 100, 100_000, 7];
    let input: String = ns.iter().map(|n| format!("{n}\n")).collect();
    let out = mesh("wasm-order")
        .args(["submit", "wasm", &fixture("examples/wasm/primes.wat"), "--local", "-w", "2"])
        .write_stdin(input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Sums of the primes below each n (OEIS A046731 gives 454396537 for 100000).
    assert_eq!(stdout(&out), "17\n0\n1060\n454396537\n10\n");
    assert!(stderr(&out).contains("% of tasks"), "the statistics table follows");
}

#[test]
fn wasm_json_names_input_output_node_and_time() {
    let dir = std::env::temp_dir().join(format!("mesh-cli-wasm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inputs = dir.join("in.txt");
    std::fs::write(&inputs, "hello\nfail\nworld\n").unwrap();
    let out = mesh("wasm-json")
        .args(["submit", "wasm", &fixture("tests/wasm/chaos.wat"), "--input-file"])
        .arg(&inputs)
        .args(["--local", "--json", "--name", "pi-7", "--retries", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a task failed for good: {}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = doc["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!((r[0]["input"].as_str(), r[0]["output"].as_str()), (Some("hello"), Some("hello")));
    assert_eq!((r[2]["input"].as_str(), r[2]["output"].as_str()), (Some("world"), Some("world")));
    assert_eq!(r[0]["node"], "pi-7");
    assert!(r[0]["time_s"].as_f64().unwrap() > 0.0);
    assert_eq!(r[1]["output"], serde_json::Value::Null);
    let error = r[1]["error"].as_str().unwrap();
    assert!(error.contains("input line 2 ('fail')") && error.contains("exited with code 7"), "{error}");
    assert_eq!(r[1]["attempts"], 2, "one retry, then it failed for good");
    assert_eq!(doc["retried"], 1);
    assert_eq!(doc["failed"].as_array().unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wasm_limits_fail_tasks_with_reasons_and_the_rest_still_runs() {
    let out = mesh("wasm-limits")
        .args(["submit", "wasm", &fixture("tests/wasm/chaos.wat"), "-", "--local", "--timeout", "0.5"])
        .args(["--memory", "8", "--retries", "0"])
        .write_stdin("a\nloop\nbomb\nb\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "a\nb\n", "failed tasks print nothing; the others print in order");
    let err = stderr(&out);
    assert!(err.contains("input line 2 ('loop'): timed out after 0.5 s"), "{err}");
    assert!(err.contains("input line 3 ('bomb'): ran out of memory") && err.contains("limit of 8 MiB"), "{err}");
}

#[test]
fn bad_modules_and_inputs_are_usage_errors() {
    let dir = std::env::temp_dir().join(format!("mesh-cli-badwasm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0\x01\x05garbage").unwrap();
    let text = dir.join("typo.wat");
    std::fs::write(&text, "(module (func $f (i32.add)))x").unwrap();
    let foreign = dir.join("foreign.wat");
    let module = r#"(module (import "env" "system" (func)) (memory (export "memory") 1) (func (export "_start")))"#;
    std::fs::write(&foreign, module).unwrap();
    let primes = fixture("examples/wasm/primes.wat");
    let missing = dir.join("missing.wasm");
    let cases: [(Vec<&std::ffi::OsStr>, &str); 6] = [
        (vec![missing.as_os_str()], "cannot read module"),
        (vec![garbage.as_os_str()], "not valid WebAssembly"),
        (vec![text.as_os_str()], "neither WebAssembly nor WebAssembly text"),
        (vec![foreign.as_os_str()], "imports `env.system`"),
        (vec![primes.as_ref(), "--timeout".as_ref(), "0".as_ref()], "not a timeout"),
        (vec![primes.as_ref(), "--input-file".as_ref(), missing.as_os_str()], "cannot read input file"),
    ];
    for (args, why) in cases {
        let out =
            mesh("wasm-bad").args(["submit", "wasm"]).args(&args).arg("--local").write_stdin("1\n").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_reports_speeds_speedup_and_overhead() {
    let out = mesh("bench").args(["bench", "--local", "--tasks", "40", "-w", "2", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["calibration_ms"].as_f64().unwrap() > 0.0);
    let heavy = &doc["heavy"];
    assert_eq!(heavy["tasks"], 40);
    assert_eq!(heavy["workers"], 2);
    let nodes = heavy["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["tasks"], 40);
    assert!(nodes[0]["ms_per_task"].as_f64().unwrap() > 0.0 && nodes[0]["relative_speed"].as_f64().unwrap() > 0.0);
    // The speedup is the calibrated serial time over the elapsed time, not the task time
    // sum (which inflates when workers share cores); the latter is kept as busy_workers.
    let serial_s = doc["calibration_ms"].as_f64().unwrap() / 1e3 * 40.0;
    let speedup = heavy["speedup"].as_f64().unwrap();
    assert!((speedup - serial_s / heavy["elapsed_s"].as_f64().unwrap()).abs() < 1e-6 * speedup.max(1.0), "{heavy}");
    assert!(heavy["busy_workers"].as_f64().unwrap() > 0.0);
    assert_eq!(doc["tiny"]["tasks"], 10_000);
    assert!(doc["tiny"]["tasks_per_s"].as_f64().unwrap() > 0.0);
    let text = mesh("bench").args(["bench", "--local", "--tasks", "10", "-w", "1"]).output().unwrap();
    let report = stdout(&text);
    for want in [
        "Calibration:",
        "Heavy job: 10 demo tasks",
        "speed (this core = 1.00)",
        "Speedup",
        "(serial time on this core / elapsed)",
        "Tiny job: 10000 tasks",
    ] {
        assert!(report.contains(want), "{want} in {report}");
    }
}

#[test]
fn completions_load_in_bash_and_name_every_command() {
    let out = mesh("completions").args(["completions", "bash"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let script = stdout(&out);
    let dir = std::env::temp_dir().join(format!("mesh-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mesh.bash");
    std::fs::write(&file, &script).unwrap();
    let syntax = std::process::Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    // Sourced, it registers a completion for mesh, and completing `mesh r` offers run.
    let probe = format!(
        "source {}; complete -p mesh; COMP_WORDS=(mesh r); COMP_CWORD=1; COMP_LINE='mesh r'; COMP_POINT=6; \
         _mesh mesh r mesh; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let loaded = std::process::Command::new("bash").arg("-c").arg(&probe).output().unwrap();
    let shown = String::from_utf8_lossy(&loaded.stdout);
    assert!(shown.contains("-F _mesh mesh") && shown.lines().any(|l| l == "run"), "{shown}");
    for shell in ["zsh", "fish"] {
        let out = mesh("completions").args(["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = stdout(&out);
        assert!(["join", "peers", "run", "bench", "submit"].iter().all(|c| text.contains(c)), "{shell}: {text}");
    }
    let bad = mesh("completions").args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is a usage error");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_manual_pages_come_from_the_same_definitions() {
    let out = mesh("manpage").arg("manpage").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH mesh 1") && page.contains(".SH NAME") && page.contains(".SH SUBCOMMANDS"), "{page}");
    for cmd in ["join", "peers", "submit", "run", "bench", "completions"] {
        assert!(page.contains(&format!("mesh\\-{cmd}(1)")), "mesh.1 lists {cmd}: {page}");
    }
    let dir = std::env::temp_dir().join(format!("mesh-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = mesh("manpage").args(["manpage", "--dir", dir.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut pages: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    pages.sort();
    for want in ["mesh.1", "mesh-run.1", "mesh-join.1", "mesh-submit-wasm.1", "mesh-submit-primes.1"] {
        assert!(pages.iter().any(|p| p == want), "{want} in {pages:?}");
    }
    let run = std::fs::read_to_string(dir.join("mesh-run.1")).unwrap();
    assert!(run.contains(".TH mesh-run 1") && run.contains("\\-\\-send") && run.contains("mesh run"), "{run}");
    assert!(run.contains(concat!("\"mesh ", env!("CARGO_PKG_VERSION"), "\"")), "the version: {run}");
    // Where man is installed, every page renders.
    if std::process::Command::new("man").arg("--version").output().is_ok() {
        for p in &pages {
            let shown = std::process::Command::new("man").arg("-l").arg(dir.join(p)).env("MANWIDTH", "80").output();
            let shown = shown.unwrap();
            assert!(shown.status.success() && !shown.stdout.is_empty(), "man -l {p}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `mesh join` says hello once, on one line, at the default log level; its log, captured
/// rather than on a terminal, has no colour codes. (Loopback only, mDNS off.)
#[test]
fn join_says_hello_once_without_colour_when_captured() {
    use std::io::{BufRead, BufReader};
    let home = std::env::temp_dir().join(format!("mesh-hello-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let mut node = std::process::Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["join", "--no-mdns", "--listen", "127.0.0.1:0", "--name", "hello-node", "--key", "k"])
        .env("MESH_HOME", &home)
        .env_remove("MESH_LOG")
        .env_remove("NO_COLOR")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(node.stderr.take().unwrap()).lines();
    let hello = lines.by_ref().map(Result::unwrap).find(|l| l.contains(" is up: "));
    let stop = std::process::Command::new("kill").arg(node.id().to_string()).status().unwrap();
    assert!(stop.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = node.wait().unwrap();
    std::fs::remove_dir_all(&home).unwrap();
    let hello = hello.expect("no start line");
    for part in ["mesh node hello-node is up", "peer id 12D3", "listening on /ip4/127.0.0.1/tcp/", "key "] {
        assert!(hello.contains(part), "{part} in {hello}");
    }
    assert!(!hello.contains('\x1b') && rest.iter().all(|l| !l.contains('\x1b')), "{hello}\n{rest:?}");
    assert!(rest.iter().all(|l| !l.contains(" is up: ")), "said hello twice: {rest:?}");
    assert_eq!(status.code(), Some(0), "a SIGTERM is a clean stop: {rest:?}");
}
