//! Counting a job's tasks: the same counts as the parsers nodes use, and specs whose
//! count is not their blob's refused.

use super::*;
use crate::core::Needs;
use crate::job::python::{PyTasks, PythonJob};
use crate::job::run::{RunJob, RunTasks, SentFile};
use crate::job::{InputLines, JobSpec, WasmJob};
use std::path::PathBuf;

fn temp_home(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mesh-job-blobs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn lines_are_counted_as_the_input_is_split() {
    let long = "x".repeat(MAX_LINE + 1);
    let fits = format!("{}\r\n", "x".repeat(MAX_LINE));
    let inputs: Vec<String> = vec![
        String::new(),
        "a".into(),
        "a\n".into(),
        "a\nb".into(),
        "a\r\nb\r\n".into(),
        "\n\nx\n".into(),
        "\r".into(),
        fits.clone(),
        format!("{fits}{fits}"),
        format!("a\n{long}\nb"),
        format!("a\n{long}"),
        format!("{long}\r\n"),
    ];
    for input in inputs {
        let parsed = InputLines::parse(input.clone().into_bytes()).map(|l| l.len());
        let counted = count_lines(std::io::Cursor::new(input.as_bytes()));
        assert_eq!(counted, parsed, "{:?}", &input[..input.len().min(20)]);
    }
}

#[test]
fn payloads_are_counted_as_the_task_list_is_split() {
    let list = PyTasks::encode([&b"abc"[..], b"", b"\x00\x01"]);
    let lists = [(list.clone(), Some(3)), (list[..list.len() - 1].to_vec(), None), (vec![0, 0, 1], None)];
    let lists = lists.into_iter().chain([(Vec::new(), Some(0)), (vec![0, 0, 0, 0], Some(1))]);
    for (bytes, want) in lists {
        match count_payloads(bytes.as_slice()) {
            Ok(n) => assert_eq!((Some(n), PyTasks::parse(bytes.clone(), n).map(|t| t.len() as u64)), (want, Ok(n))),
            Err(why) => assert_eq!((want, PyTasks::parse(bytes.clone(), 0).err()), (None, Some(why))),
        }
    }
}

#[test]
fn run_tasks_are_counted_and_checked_one_by_one() {
    let task = |seq: u64, path: Option<&str>| RunTask {
        seq,
        arg: format!("input {seq}"),
        file: path.map(|p| SentFile { path: p.into(), blob: ContentId::of(b"f"), len: 1, executable: false }),
    };
    let list = RunTasks { tasks: (1..=5).map(|i| task(i, Some("in/file"))).collect() };
    assert_eq!(count_run_tasks(list.encode().as_slice()), Ok(5));
    assert_eq!(count_run_tasks(RunTasks::default().encode().as_slice()), Ok(0));
    let escapes = RunTasks { tasks: vec![task(1, None), task(2, Some("../etc/passwd"))] };
    assert!(RunTasks::decode(&escapes.encode()).is_err());
    assert!(count_run_tasks(escapes.encode().as_slice()).unwrap_err().to_string().contains("goes up"));
    assert!(count_run_tasks(&b"\xa1\x65tasks\x01"[..]).is_err(), "a list that is not one");
}

/// One spec of each kind, its blobs in `store`, each stating `tasks` tasks where its
/// blob holds 3.
fn specs(store: &BlobStore, tasks: u64) -> Vec<JobSpec> {
    let input = store.put(b"a\nb\nc\n").unwrap();
    let list = RunTasks { tasks: (1..=3).map(|seq| RunTask { seq, arg: seq.to_string(), file: None }).collect() };
    let run_list = store.put(&list.encode()).unwrap();
    let py_list = store.put(&PyTasks::encode([&b"1"[..], b"2", b"3"])).unwrap();
    let wasm = WasmJob {
        module: ContentId::of(b"m"),
        input,
        tasks,
        timeout_ms: 1000,
        memory_mb: 64,
        retries: 0,
        needs: Needs::default(),
    };
    let run = RunJob {
        command: vec!["echo".into()],
        tasks,
        inputs: run_list,
        files: None,
        returns: Vec::new(),
        timeout: None,
        memory_mb: None,
        retries: 0,
        halt: None,
        needs: Needs::native(Vec::new()),
    };
    let python = PythonJob {
        tasks,
        inputs: py_list,
        code: ContentId::of(b"c"),
        timeout_ms: None,
        retries: 0,
        needs: Needs::python(Vec::new()),
    };
    vec![JobSpec::Wasm(wasm), JobSpec::Run(Box::new(run)), JobSpec::Python(Box::new(python))]
}

#[test]
fn a_count_that_is_not_the_blobs_is_refused_with_both() {
    let home = temp_home("count");
    let store = BlobStore::new(&home);
    for spec in specs(&store, 3) {
        assert_eq!(spec.check_blobs(&store), Ok(()), "{spec:?}");
    }
    // The probe's job: far more tasks than its list, and one with fewer.
    for stated in [1_280_000, 2, 0] {
        for spec in specs(&store, stated) {
            let what = if matches!(spec, JobSpec::Wasm(_)) { "input" } else { "task list" };
            assert_eq!(spec.check_blobs(&store), Err(JobError::CountMismatch { what, stated, found: 3 }));
            let said = spec.check_blobs(&store).unwrap_err().to_string();
            assert!(said.contains(&stated.to_string()) && said.contains("holds 3"), "{said}");
        }
    }
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn a_missing_damaged_or_malformed_blob_is_refused() {
    let home = temp_home("damaged");
    let store = BlobStore::new(&home);
    let [wasm, run, python] = <[JobSpec; 3]>::try_from(specs(&store, 3)).unwrap();
    let JobSpec::Wasm(w) = &wasm else { unreachable!() };
    std::fs::write(store.path(w.input), b"a\nb\nc\nd\n").unwrap();
    let err = wasm.check_blobs(&BlobStore::new(&home)).unwrap_err();
    assert!(matches!(err, JobError::Blob { what: "input", .. }) && err.to_string().contains("does not match"), "{err}");
    let err = wasm.check_blobs(&store).unwrap_err();
    assert!(err.to_string().contains("not in the store"), "a damaged blob is removed: {err}");
    // A task list that is not one of its kind: each names the other's.
    let (JobSpec::Run(r), JobSpec::Python(p)) = (&run, &python) else { unreachable!() };
    let swapped = [
        JobSpec::Run(Box::new(RunJob { inputs: p.inputs, ..(**r).clone() })),
        JobSpec::Python(Box::new(PythonJob { inputs: r.inputs, ..(**p).clone() })),
    ];
    for spec in swapped {
        assert!(matches!(spec.check_blobs(&store), Err(JobError::Malformed { what: "task list", .. })), "{spec:?}");
    }
    std::fs::remove_dir_all(&home).unwrap();
}
