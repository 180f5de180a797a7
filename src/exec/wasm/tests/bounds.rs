//! The bounds a node keeps whatever its tasks do: the memory budget shared by all its
//! WebAssembly tasks, and timeouts that hold in wall-clock time. Counts and error kinds
//! only, never durations.

use super::super::limits::Limits;
use super::*;
use wasmtime::ResourceLimiter;

const MIB: usize = 1 << 20;

/// Grows memory a page at a time until refused, then traps.
const BOMB: &str = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable";

/// A module that starts with `pages` pages of memory and ends at once.
fn of_pages(pages: u32) -> String {
    module("", "", "").replace("(memory (export \"memory\") 1)", &format!("(memory (export \"memory\") {pages})"))
}

fn host_memory(err: &WasmTaskError) -> bool {
    matches!(err, WasmTaskError::Run { failure: RunFailure::HostMemory { .. }, .. })
}

/// Tasks on several threads, each growing past an 8 MiB budget (their own limit is
/// 16 MiB): together they never hold more than the budget, each fails naming it, and
/// all of it is back when they end.
#[test]
fn tasks_together_never_hold_more_than_the_budget() {
    let budget = MemoryBudget::new(8 * MIB);
    let f = Fixture::with_budget("budget", budget.clone());
    let job = f.job(&module("", BOMB, ""), "x\n").unwrap();
    let (threads, each) = (4, 3);
    let errors: Vec<WasmTaskError> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| (0..each).map(|_| f.rt.run(&job, 0, NodeId(0)).unwrap_err()).collect::<Vec<_>>()))
            .collect();
        runs.into_iter().flat_map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(errors.iter().filter(|e| host_memory(e)).count(), threads * each, "{errors:?}");
    let text = errors[0].to_string();
    assert!(text.contains("WebAssembly memory budget of 8 MiB"), "{text}");
    assert_eq!(budget.peak(), 8 * MIB, "filled to the page, never past it");
    assert_eq!(budget.used(), 0, "every task gave its memory back");
}

/// While other tasks hold most of the budget a task cannot start; once they end, it can,
/// and again and again: each task gives its share back.
#[test]
fn the_budget_is_given_back_when_tasks_end() {
    let budget = MemoryBudget::new(8 * MIB);
    let f = Fixture::with_budget("budget-back", budget.clone());
    let job = f.job(&of_pages(64), "x\n").unwrap(); // 4 MiB from the start
    let mut other = Limits::new(16 * MIB, budget.clone());
    assert!(other.memory_growing(0, 6 * MIB, None).unwrap());
    let err = f.rt.run(&job, 0, NodeId(0)).unwrap_err();
    assert!(host_memory(&err), "{err}");
    assert!(err.to_string().contains("has 6 MiB in use by other tasks"), "{err}");
    drop(other);
    for _ in 0..5 {
        assert_eq!(f.run(&job, 0).unwrap(), "", "5 × 4 MiB in turn fit in 8");
    }
    assert_eq!(budget.used(), 0);
}

/// A module that reads the monotonic clock until `ms` milliseconds have passed by it, then
/// ends well: it runs past a shorter timeout by construction, whatever the machine's speed.
fn busy_for(ms: u64) -> String {
    let imports =
        r#"(import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))"#;
    let body = format!(
        "(local $start i64)
    (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 200)))
    (local.set $start (i64.load (i32.const 200)))
    (loop $l
      (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 200)))
      (br_if $l (i64.lt_u (i64.sub (i64.load (i32.const 200)) (local.get $start)) (i64.const {}))))",
        ms * 1_000_000
    );
    module(imports, &body, "")
}

fn timed_out(err: &WasmTaskError) -> bool {
    matches!(err, WasmTaskError::Run { failure: RunFailure::TimedOut(_), .. })
}

/// With no ticks at all (a starved ticker), a task that returns after its deadline has
/// timed out: it never counts as a success.
#[test]
fn a_task_past_its_deadline_times_out_without_ticks() {
    let f = Fixture::new("no-ticks");
    f.rt.ticker.stop.store(true, Ordering::Relaxed);
    if let Some(t) = f.rt.ticker.thread.get() {
        t.unpark();
    }
    let mut job = f.job(&busy_for(100), "x\n").unwrap();
    job.timeout_ms = 20;
    let err = f.rt.run(&job, 0, NodeId(0)).unwrap_err();
    assert!(timed_out(&err), "{err}");
    job.timeout_ms = 60_000;
    assert_eq!(f.run(&job, 0).unwrap(), "", "within its timeout it succeeds");
}

/// With the ticker running, the tick after the wall-clock deadline ends a task that would
/// run for a minute.
#[test]
fn the_ticker_stops_a_task_at_its_wall_clock_deadline() {
    let f = Fixture::new("wall-clock");
    let mut job = f.job(&busy_for(60_000), "x\n").unwrap();
    job.timeout_ms = 50;
    let err = f.rt.run(&job, 0, NodeId(0)).unwrap_err();
    assert!(timed_out(&err), "{err}");
}
