//! The kernels stop when asked, soon, and give the same sums when not asked.

use super::*;
use crate::job::primes::{Split, Target};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

/// A task of hours near MAX_N (by either kernel) returns Cancelled soon after its
/// flag is set from another thread; the join's wait is only a guard against a hang.
#[test]
fn a_huge_task_stops_when_asked() {
    for algo in [Algo::Sieve, Algo::Trial] {
        let job = PrimesJob::new(Target::Below(MAX_N), algo, Split::Tasks(2)).unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let (asked_tx, asked) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let seen = flag.clone();
        std::thread::spawn(move || {
            let stop = || {
                let _ = asked_tx.send(());
                seen.load(Ordering::Relaxed)
            };
            let _ = done_tx.send(run_task(&job, 1, stop));
        });
        // Asked twice: it is past its first segment or run of divisions.
        asked.recv().unwrap();
        asked.recv().unwrap();
        flag.store(true, Ordering::Relaxed);
        let out = done.recv_timeout(std::time::Duration::from_secs(600)).expect("the task returned");
        assert_eq!(out, Err(Cancelled), "{algo:?}");
    }
}

#[test]
fn stop_is_asked_before_any_work_and_sums_are_unchanged_without_it() {
    assert_eq!(sieve_until(0, 1000, || true), Err(Cancelled));
    assert_eq!(trial_until(0, 1000, || true), Err(Cancelled));
    let n = 30 * SEGMENT_BYTES as u64 * 2 + 11;
    assert_eq!(sieve_until(5, n, || false), Ok(sieve(5, n)));
    assert_eq!(trial_until(5, 200_000, || false), Ok(trial(5, 200_000)));
    let asks = std::cell::Cell::new(0);
    let counted = || {
        asks.set(asks.get() + 1);
        false
    };
    assert_eq!(sieve_until(0, n, counted).unwrap().sum, sieve(0, n).sum);
    assert_eq!(asks.get(), 3, "once per segment");
}
