//! Primes kernels: the sieve against primesieve's reference job (count to 10^10 on one
//! core, see benches/sieve_vs_primesieve.sh), and one demo task of trial division.
//!
//! Run: `cargo bench --bench primes`

use criterion::{Criterion, criterion_group, criterion_main};
use mesh::exec::primes;
use std::hint::black_box;
use std::time::Duration;

fn kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("primes");
    g.bench_function("sieve_sum_below_1e7", |b| b.iter(|| primes::sieve(0, black_box(10_000_000))));
    g.bench_function("trial_demo_task_n100000", |b| b.iter(|| primes::trial(0, black_box(100_000))));
    g.finish();

    let mut g = c.benchmark_group("primes_slow");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(20));
    g.bench_function("sieve_count_below_1e10", |b| {
        b.iter(|| assert_eq!(primes::sieve(0, black_box(10_000_000_000)).count, 455_052_511))
    });
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
