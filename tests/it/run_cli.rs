//! `mesh run` as users run it, with real programs (`sh`, `cat`, `sha256sum`), on this
//! machine only (`--local`: no network, as every test outside the test LAN): outputs in
//! input order, replacement strings, sent and returned files, the joblog and `--resume`,
//! `--json`, limits, and clear errors for bad input. The mesh-wide behaviour (files sent
//! once per node, `--allow-run`, `--require`, a killed node) is in tests/it/run_jobs.rs.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

/// A scratch directory for one test: its home and working directory.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mesh-run-cli-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("work")).unwrap();
        Self(dir)
    }

    fn work(&self) -> PathBuf {
        self.0.join("work")
    }

    fn mesh(&self, args: &[&str]) -> std::process::Output {
        Command::cargo_bin("mesh")
            .unwrap()
            .current_dir(self.work())
            .env("MESH_HOME", self.0.join("home"))
            .env_remove("MESH_LOG")
            .args(["run", "--local"])
            .args(args)
            .output()
            .unwrap()
    }

    fn write(&self, path: &str, text: &str) {
        let p = self.work().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn outputs_come_whole_in_input_order_with_replacement_strings() {
    let s = Scratch::new("order");
    // Later inputs finish first: the output is still in input order, each task's whole.
    let out = s.mesh(&[
        "--",
        "sh",
        "-c",
        "sleep $(( (5 - {#}) ))e-2; echo {#} {/.} {//}; echo second line",
        ":::",
        "a/x.txt",
        "b/y.tar.gz",
        "z",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1 x a\nsecond line\n2 y.tar b\nsecond line\n3 z .\nsecond line\n");
    // Without a replacement string the input is the last argument, passed as one word.
    let out = s.mesh(&["--", "printf", "[%s]", ":::", "two words", "it's"]);
    assert_eq!(text(&out.stdout), "[two words][it's]");
    assert!(text(&out.stderr).contains("time per task"), "the statistics table: {}", text(&out.stderr));
}

#[test]
fn inputs_come_from_a_file_or_stdin() {
    let s = Scratch::new("inputs");
    s.write("list.txt", "one\r\ntwo\n");
    let out = s.mesh(&["--", "echo", "::::", "list.txt"]);
    assert_eq!(text(&out.stdout), "one\ntwo\n");
    let out = Command::cargo_bin("mesh")
        .unwrap()
        .current_dir(s.work())
        .env("MESH_HOME", s.0.join("home"))
        .args(["run", "--local", "--", "echo", "got"])
        .write_stdin("abc\nde\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "got abc\ngot de\n");
}

#[test]
fn sent_files_and_inputs_reach_the_task_and_returned_files_come_back() {
    let s = Scratch::new("files");
    s.write("tool/upper.sh", "#!/bin/sh\ntr a-z A-Z < \"$1\" > \"$1.up\"\n");
    std::fs::set_permissions(s.work().join("tool/upper.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    s.write("docs/a.txt", "alpha\n");
    s.write("docs/b.txt", "beta\n");
    let out = s.mesh(&[
        "--send",
        "tool",
        "--send-inputs",
        "--return",
        "{}.up",
        "--results",
        "back",
        "--",
        "./tool/upper.sh",
        "{}",
        ":::",
        "docs/a.txt",
        "docs/b.txt",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let back = s.work().join("back/docs");
    assert_eq!(std::fs::read_to_string(back.join("a.txt.up")).unwrap(), "ALPHA\n");
    assert_eq!(std::fs::read_to_string(back.join("b.txt.up")).unwrap(), "BETA\n");
    // A promised file the task did not make fails the task, and says which file.
    let out = s.mesh(&["--return", "{}.missing", "--", "true", ":::", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("did not produce x.missing"), "{}", text(&out.stderr));
}

#[test]
fn paths_that_would_leave_the_directory_are_refused() {
    let s = Scratch::new("paths");
    for args in [
        vec!["--send", "/etc/hostname", "--", "true", ":::", "x"],
        vec!["--send", "../up", "--", "true", ":::", "x"],
        vec!["--return", "/tmp/x", "--", "true", ":::", "x"],
        vec!["--return", "../x", "--", "true", ":::", "x"],
        vec!["--send-inputs", "--", "true", ":::", "/etc/hostname"],
        vec!["--send-inputs", "--", "true", ":::", "missing.txt"],
        vec!["--", "true", ":::", "a", ":::", "b"],
        vec!["--halt", "soon,fail=1", "--", "true", ":::", "a"],
        vec!["--require", "colour=red", "--", "true", ":::", "a"],
        vec!["--timeout", "0", "--", "true", ":::", "a"],
    ] {
        let out = s.mesh(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).starts_with("mesh: ") || text(&out.stderr).contains("error"), "{args:?}");
    }
    // A return path that a task fills in from its input is checked on the node too.
    let out = s.mesh(&["--return", "{}", "--", "true", ":::", "../../escape"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!s.0.join("escape").exists());
}

#[test]
fn the_joblog_is_gnu_parallels_and_resume_goes_on_where_it_stopped() {
    let s = Scratch::new("joblog");
    let log = s.work().join("log.tsv");
    let log_s = log.to_str().unwrap();
    let out = s.mesh(&["--joblog", log_s, "--", "sh", "-c", "echo {}; test {} != 3", ":::", "1", "2", "3", "4"]);
    assert_eq!(out.status.code(), Some(1), "task 3 fails");
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(String::from).collect();
    assert_eq!(lines[0], "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand");
    assert_eq!(lines.len(), 5);
    let three: Vec<&str> = lines.iter().find(|l| l.starts_with("3\t")).unwrap().split('\t').collect();
    assert_eq!((three[5], three[6], three[7], three[8]), ("2", "1", "0", "sh -c echo 3; test 3 != 3"));
    // --resume: everything is logged, so nothing runs again.
    let out =
        s.mesh(&["--joblog", log_s, "--resume", "--", "sh", "-c", "echo {}; test {} != 3", ":::", "1", "2", "3", "4"]);
    assert_eq!(text(&out.stdout), "");
    // --resume-failed: only task 3 runs again, under its own number.
    let out =
        s.mesh(&["--joblog", log_s, "--resume-failed", "--", "sh", "-c", "echo {#}:{}", ":::", "1", "2", "3", "4"]);
    assert_eq!(text(&out.stdout), "3:3\n");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 6, "appended");
    // A run killed while writing leaves a torn line: --resume skips it (its task runs
    // again) rather than refuse the whole log.
    let mut torn = std::fs::read_to_string(&log).unwrap();
    torn.push_str("5\tvm\t17");
    std::fs::write(&log, torn).unwrap();
    let words = ["--joblog", log_s, "--resume", "--", "echo", ":::", "1", "2", "3", "4", "5"];
    let out = s.mesh(&words);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "5\n");
    assert!(text(&out.stderr).contains("is not a joblog line; skipped"), "{}", text(&out.stderr));
    let again = s.mesh(&words);
    assert_eq!(text(&again.stdout), "", "task 5's new record is whole: {}", text(&again.stderr));
    // An input holding a newline keeps its joblog record on one line.
    let nl = s.work().join("nl.tsv");
    let out = s.mesh(&["--joblog", nl.to_str().unwrap(), "--", "echo", ":::", "a\nb"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let logged = std::fs::read_to_string(&nl).unwrap();
    assert_eq!(logged.lines().count(), 2, "{logged}");
    assert!(logged.lines().nth(1).unwrap().ends_with("\techo a\\nb"), "{logged}");
}

#[test]
fn json_timeouts_memory_and_halt() {
    let s = Scratch::new("limits");
    let out = s.mesh(&["--json", "--timeout", "1", "--", "sh", "-c", "sleep {}; echo done", ":::", "0", "30"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = doc["results"].as_array().unwrap();
    assert_eq!((r[0]["exit"].as_i64(), r[0]["output"].as_str()), (Some(0), Some("done\n")));
    assert_eq!(r[1]["signal"], 15);
    assert!(r[1]["error"].as_str().unwrap().contains("timed out after 1.0 s"), "{}", r[1]);
    assert_eq!(doc["tasks"], 2);
    let out = s.mesh(&["--memory", "100", "--", "python3", "-c", "bytearray({} << 20)", ":::", "10", "400"]);
    assert_eq!(out.status.code(), Some(1), "400 MiB under a 100 MiB limit fails");
    assert!(text(&out.stderr).contains("task 2 (400) failed"), "{}", text(&out.stderr));
    let out = s.mesh(&["-w", "1", "--halt", "now,fail=1", "--", "sh", "-c", "exit {}", ":::", "0", "1", "0", "0", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("3 of 5 tasks never ran"), "{}", text(&out.stderr));
}

#[test]
fn large_output_and_missing_commands() {
    let s = Scratch::new("big");
    let out = s.mesh(&["--", "head", "-c", "{}", "/dev/zero", ":::", "300000", "5"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), 300_005);
    let out = s.mesh(&["--", "no-such-program", ":::", "a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("command `no-such-program` was not found"), "{}", text(&out.stderr));
    let out = s.mesh(&["--", "sh", "-c", "yes | head -c 70000000", ":::", "a"]);
    assert_eq!(out.status.code(), Some(1), "stdout over its 64 MiB cap fails");
    assert!(text(&out.stderr).contains("wrote more than"), "{}", text(&out.stderr));
    assert!(
        Path::new(&s.0.join("home/run")).read_dir().map_or(true, |mut d| d.all(|e| e
            .unwrap()
            .path()
            .read_dir()
            .unwrap()
            .next()
            .is_none())),
        "no task directory is left"
    );
}
