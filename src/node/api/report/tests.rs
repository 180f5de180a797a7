//! What an owner keeps of a job's failures: the first ones' text, a count of the rest.

use super::*;
use crate::core::Needs;
use crate::id::ContentId;
use crate::job::WasmJob;
use crate::job::run::RunJob;

/// A task's final result, built from its wire form so that it says only what this test
/// sets (the task, its outcome, a millisecond).
fn report(task: u64, outcome: Result<TaskOutput, String>) -> TaskReport<TaskOutput> {
    let wire = serde_json::json!({ "task": task, "outcome": outcome, "took": Duration::from_millis(1) });
    serde_json::from_value(wire).expect("a task report's wire form")
}

/// The error of a failed task: long, as a wasm task's with its stderr can be.
fn error(task: u64) -> String {
    format!("task {task}: {}", "x".repeat(2000))
}

fn run_job(tasks: u64) -> Arc<JobSpec> {
    Arc::new(JobSpec::Run(Box::new(RunJob {
        command: vec!["false".into()],
        tasks,
        inputs: ContentId::of(b"list"),
        files: None,
        returns: Vec::new(),
        timeout: None,
        memory_mb: None,
        retries: 0,
        halt: None,
        needs: Needs::native(Vec::new()),
    })))
}

#[test]
fn an_owner_keeps_the_first_failures_text_and_counts_the_rest() {
    const TASKS: u64 = 100_000;
    let mut c = Collector::new(run_job(TASKS), Instant::now());
    for task in 0..TASKS {
        c.add(NodeId(1), report(task, Err(error(task))));
    }
    assert_eq!(c.failed.len(), FAILURES_LISTED);
    assert_eq!(c.failed_unlisted, TASKS - FAILURES_LISTED as u64);
    assert!(c.failed.iter().enumerate().all(|(i, f)| f.task == i as u64 && f.error == error(f.task)), "the first ones");
    let summary = c.summary(1, Instant::now(), false);
    assert_eq!((summary.failed, summary.done), (TASKS, TASKS), "every failure counted");
    let kept: usize = c.failed.iter().map(|f| f.error.len()).sum();
    assert!(kept < FAILURES_LISTED * 2100, "{kept} bytes of errors kept");
}

#[test]
fn a_wasm_jobs_records_keep_the_first_failures_text() {
    let tasks = FAILURES_LISTED as u64 + 10;
    let job = WasmJob {
        module: ContentId::of(b"m"),
        input: ContentId::of(b"i"),
        tasks,
        timeout_ms: 1000,
        memory_mb: 64,
        retries: 1,
        needs: Needs::default(),
    };
    let mut c = Collector::new(Arc::new(JobSpec::Wasm(job)), Instant::now());
    c.add(NodeId(1), report(0, Ok(TaskOutput::Bytes(b"fine\n".to_vec().into()))));
    c.retrying(NodeId(1), &report(1, Err("once".into())));
    assert_eq!(c.attempts(1), 2);
    for task in 1..tasks {
        c.add(NodeId(1), report(task, Err(error(task))));
    }
    assert!(c.retries.is_empty(), "a task's retries go into its record once it has one");
    assert_eq!((c.failed.len() as u64, c.failed_unlisted), (FAILURES_LISTED as u64, 9));
    let Outputs::Tasks(records) = &mut c.outputs else { panic!("a wasm job keeps records") };
    let records: Vec<TaskRecord> = records.drain(..).map(|r| record(r, 0, &HashMap::new())).collect();
    assert_eq!(records[0].output.as_deref(), Some("fine"));
    assert_eq!((records[1].error.clone(), records[1].attempts), (Some(error(1)), 2));
    assert_eq!(records[FAILURES_LISTED].error, Some(error(FAILURES_LISTED as u64)), "the 1000th failure");
    assert_eq!(records[FAILURES_LISTED + 1].error.as_deref(), Some(UNLISTED), "the 1001st");
}

#[test]
fn a_report_tells_its_unlisted_failures_only_when_there_are_some() {
    let mut r = JobReport::sample(Duration::from_secs(1), 5, 1, Duration::from_secs(1));
    r.failed = vec![FailedTask { task: 0, error: "x".into() }];
    let line = serde_json::to_string(&r).unwrap();
    assert!(!line.contains("failed_unlisted"), "the wire stays as it was: {line}");
    assert_eq!(serde_json::from_str::<JobReport>(&line).unwrap().failures(), 1);
    r.failed_unlisted = 41;
    let back: JobReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!((back.failures(), back), (42, r));
}
