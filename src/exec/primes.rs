//! The primes kernels: exact sums (and counts) of the primes in a half-open range.
//!
//! Two algorithms, both exact for every `hi <= MAX_N`:
//!
//! * [`sieve`]: a segmented sieve of Eratosthenes on a mod-30 wheel. One byte holds the
//!   30 numbers `30k .. 30k+30`; its eight bits are the residues coprime to 30, so only
//!   8/30 of the numbers take memory. Multiples of 7, 11 and 13 are not crossed off one by
//!   one: each segment starts as a copy of a 1001-byte pre-sieved pattern. Segments are
//!   [`SEGMENT_BYTES`] long so the working set stays in L2.
//! * [`trial`]: the Parallel Python demo's `isprime`, trial division by every integer from
//!   2 up to ceil(sqrt(x)). It is deliberately slow and regular, for measuring clusters.
//!
//! Sums use `u128`: the sum of the primes below `MAX_N = 10^14` is about 3e26, far past
//! `u64`. [`MAX_N`] belongs to the job spec (`job::primes`), which parses every bound
//! against it; [`run_task`] runs one task of a [`PrimesJob`] with these kernels.
//!
//! **Stopping.** A task of a job that ended (cancelled, its owner gone) or of a node that
//! leaves must not run on: a task near 10^14 runs for hours. [`sieve_until`] asks its
//! stop predicate before each segment (3.9 million numbers: about 10 ms near 10^14 on a
//! desktop core, measured), and [`trial_until`] before each run of at most
//! [`TRIAL_CHECK_DIVISIONS`] divisions, or before each number where one number may take
//! more (near 10^14 a prime takes 10^7 divisions, about 30 ms). Both answer [`Cancelled`]
//! once it says so. An ask is a relaxed load or two per run, lost in the kernels' time.
//! [`sieve`] and [`trial`] never stop.

use crate::job::primes::{Algo, MAX_N, PrimesJob};
use std::cell::RefCell;

/// Segment length in bytes; each byte covers 30 numbers.
const SEGMENT_BYTES: usize = 1 << 17;

/// Trial divisions between two asks whether to stop (the bound on the divisions one number
/// of the range can take, `ceil(sqrt(hi))`, when that is more).
pub const TRIAL_CHECK_DIVISIONS: u64 = 1 << 16;

/// The residues modulo 30 that are coprime to 30, in bit order.
const RESIDUES: [u64; 8] = [1, 7, 11, 13, 17, 19, 23, 29];

/// Period of the pre-sieved pattern in bytes: 7 * 11 * 13.
const PATTERN_BYTES: usize = 1001;

/// The sum and the count of the primes in a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrimeSum {
    pub sum: u128,
    pub count: u64,
}

impl PrimeSum {
    fn add(&mut self, p: u64) {
        self.sum += u128::from(p);
        self.count += 1;
    }
}

impl std::ops::Add for PrimeSum {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self { sum: self.sum + o.sum, count: self.count + o.count }
    }
}

/// A task was stopped: its job ended, or the node is leaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped: its job ended, or the node is leaving")]
pub struct Cancelled;

/// Runs task `task` of a primes job: the sum of the primes in its span, unless `stop`
/// says to stop first.
pub fn run_task(job: &PrimesJob, task: u64, stop: impl Fn() -> bool) -> Result<u128, Cancelled> {
    let (lo, hi) = job.span_of(task);
    let sum = match job.algo {
        Algo::Sieve => sieve_until(lo, hi, stop)?,
        Algo::Trial => trial_until(lo, hi, stop)?,
    };
    Ok(sum.sum)
}

/// Sum and count of the primes `p` with `lo <= p < hi`, by the segmented wheel sieve.
///
/// Panics if `hi > MAX_N`: callers parse their bounds against [`MAX_N`] first.
pub fn sieve(lo: u64, hi: u64) -> PrimeSum {
    never_stopped(sieve_until(lo, hi, || false))
}

/// Like [`sieve`], asking `stop` before each segment.
pub fn sieve_until(lo: u64, hi: u64, stop: impl Fn() -> bool) -> Result<PrimeSum, Cancelled> {
    assert!(hi <= MAX_N, "hi {hi} beyond MAX_N");
    let mut out = PrimeSum::default();
    if hi <= lo {
        return Ok(out);
    }
    // 2, 3 and 5 divide 30, so the wheel does not represent them; 7, 11 and 13 are
    // cleared by the pattern along with their multiples.
    for p in [2, 3, 5, 7, 11, 13] {
        if lo <= p && p < hi {
            out.add(p);
        }
    }
    let first_byte = lo / 30;
    let end_byte = hi.div_ceil(30);
    let limit = isqrt_ceil(hi);
    with_base_primes(limit, |base| {
        let mut primes = SievingPrimes::new(base, limit, first_byte);
        let mut seg = vec![0u8; SEGMENT_BYTES];
        let mut start = first_byte;
        while start < end_byte {
            if stop() {
                return Err(Cancelled);
            }
            let len = (end_byte - start).min(SEGMENT_BYTES as u64) as usize;
            let seg = &mut seg[..len];
            fill_pattern(seg, start);
            primes.cross_off(seg, start);
            clear_outside(seg, start, lo, hi);
            out = out + tally(seg, start);
            start += len as u64;
        }
        Ok(out)
    })
}

/// Sum and count of the primes `p` with `lo <= p < hi`, by the demo's trial division.
pub fn trial(lo: u64, hi: u64) -> PrimeSum {
    never_stopped(trial_until(lo, hi, || false))
}

/// Like [`trial`], asking `stop` every [`TRIAL_CHECK_DIVISIONS`] divisions or so.
pub fn trial_until(lo: u64, hi: u64, stop: impl Fn() -> bool) -> Result<PrimeSum, Cancelled> {
    assert!(hi <= MAX_N, "hi {hi} beyond MAX_N");
    // No number of the range takes more than ceil(sqrt(hi)) divisions.
    let chunk = (TRIAL_CHECK_DIVISIONS / isqrt_ceil(hi).max(1)).max(1);
    let mut out = PrimeSum::default();
    let mut x = lo;
    while x < hi {
        if stop() {
            return Err(Cancelled);
        }
        let end = hi.min(x + chunk);
        for y in x..end {
            if is_prime_trial(y) {
                out.add(y);
            }
        }
        x = end;
    }
    Ok(out)
}

fn never_stopped(r: Result<PrimeSum, Cancelled>) -> PrimeSum {
    // Invariant: the kernels answer Cancelled only when their predicate says to stop,
    // and `|| false` never does.
    r.unwrap_or_else(|Cancelled| unreachable!("a kernel that is never asked to stop stopped"))
}

/// The demo's `isprime`: divide by every integer from 2 to ceil(sqrt(x)).
// A plain remainder keeps the hot loop free of is_multiple_of's zero check.
#[allow(clippy::manual_is_multiple_of)]
pub fn is_prime_trial(x: u64) -> bool {
    if x < 2 {
        return false;
    }
    if x == 2 {
        return true;
    }
    let max = isqrt_ceil(x);
    // Narrow divisions are markedly faster on small cores; the results are identical.
    if let Ok(x32) = u32::try_from(x) {
        return (2..=max as u32).all(|i| x32 % i != 0);
    }
    (2..=max).all(|i| x % i != 0)
}

fn isqrt_ceil(x: u64) -> u64 {
    let r = x.isqrt();
    if r * r < x { r + 1 } else { r }
}

/// A sieving prime with, for each of its eight wheel classes, the next byte to clear
/// (absolute byte index) and the bit to clear there.
#[derive(Debug, Clone, Copy)]
struct SievingPrime {
    p: u64,
    next: [u64; 8],
    mask: [u8; 8],
}

#[derive(Debug)]
struct SievingPrimes(Vec<SievingPrime>);

impl SievingPrimes {
    /// Prepares every base prime in `17..=limit` to cross off from byte `first_byte` on.
    fn new(base: &[u32], limit: u64, first_byte: u64) -> Self {
        let lo = first_byte * 30;
        let mut out = Vec::new();
        for &p in base.iter().skip_while(|&&p| p < 17) {
            let p = u64::from(p);
            if p > limit {
                break;
            }
            // Cofactors q >= p (smaller ones were crossed off by smaller primes), and
            // with p * q >= lo.
            let q_min = p.max(lo.div_ceil(p));
            let mut sp = SievingPrime { p, next: [0; 8], mask: [0; 8] };
            for (j, &r) in RESIDUES.iter().enumerate() {
                let q = q_min + (r + 30 - q_min % 30) % 30;
                let m = p * q;
                sp.next[j] = m / 30;
                sp.mask[j] = !(1u8 << bit_of(m % 30));
            }
            out.push(sp);
        }
        Self(out)
    }

    /// Clears the multiples inside `seg`, which starts at absolute byte `start`.
    fn cross_off(&mut self, seg: &mut [u8], start: u64) {
        let end = start + seg.len() as u64;
        for sp in &mut self.0 {
            for j in 0..8 {
                let mut k = sp.next[j];
                let mask = sp.mask[j];
                while k < end {
                    seg[(k - start) as usize] &= mask;
                    k += sp.p;
                }
                sp.next[j] = k;
            }
        }
    }
}

/// The bit that residue `r` (coprime to 30) occupies.
fn bit_of(r: u64) -> usize {
    // Invariant: r is the residue of a product of numbers coprime to 30, so it is one of
    // RESIDUES.
    RESIDUES.iter().position(|&x| x == r).expect("residue coprime to 30")
}

/// The pattern with every multiple of 7, 11 and 13 cleared, indexed by absolute byte mod 1001.
fn pattern() -> &'static [u8; PATTERN_BYTES] {
    static PATTERN: std::sync::OnceLock<[u8; PATTERN_BYTES]> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        let mut pat = [0xffu8; PATTERN_BYTES];
        for (k, byte) in pat.iter_mut().enumerate() {
            for (bit, &r) in RESIDUES.iter().enumerate() {
                let n = 30 * k as u64 + r;
                if [7, 11, 13].iter().any(|&p| n.is_multiple_of(p)) {
                    *byte &= !(1 << bit);
                }
            }
        }
        pat
    })
}

fn fill_pattern(seg: &mut [u8], start: u64) {
    let pat = pattern();
    let mut off = (start % PATTERN_BYTES as u64) as usize;
    let mut i = 0;
    while i < seg.len() {
        let n = (PATTERN_BYTES - off).min(seg.len() - i);
        seg[i..i + n].copy_from_slice(&pat[off..off + n]);
        i += n;
        off = 0;
    }
}

/// Clears the bits of numbers outside `[lo, hi)` and of 1, which the wheel marks as prime.
fn clear_outside(seg: &mut [u8], start: u64, lo: u64, hi: u64) {
    let end = start + seg.len() as u64;
    for k in [start, end - 1] {
        let byte = &mut seg[(k - start) as usize];
        for (bit, &r) in RESIDUES.iter().enumerate() {
            let n = 30 * k + r;
            if n < lo || n >= hi || n == 1 {
                *byte &= !(1 << bit);
            }
        }
    }
}

/// Per byte value: the sum of the residues its set bits stand for.
fn residue_sums() -> &'static [u16; 256] {
    static SUMS: std::sync::OnceLock<[u16; 256]> = std::sync::OnceLock::new();
    SUMS.get_or_init(|| {
        let mut t = [0u16; 256];
        for (b, s) in t.iter_mut().enumerate() {
            *s = RESIDUES.iter().enumerate().filter(|&(bit, _)| b & (1 << bit) != 0).map(|(_, &r)| r as u16).sum();
        }
        t
    })
}

/// Sums the primes left in a sieved segment.
fn tally(seg: &[u8], start: u64) -> PrimeSum {
    let rsum = residue_sums();
    // Within a segment these stay far inside u64: at most 2^17 bytes, 8 primes each.
    let (mut count, mut weighted, mut residues) = (0u64, 0u64, 0u64);
    for (i, &b) in seg.iter().enumerate() {
        if b != 0 {
            let c = u64::from(b.count_ones());
            count += c;
            weighted += i as u64 * c;
            residues += u64::from(rsum[b as usize]);
        }
    }
    let sum = 30 * (u128::from(start) * u128::from(count) + u128::from(weighted)) + u128::from(residues);
    PrimeSum { sum, count }
}

thread_local! {
    /// Primes up to the largest limit this thread has needed so far.
    static BASE_PRIMES: RefCell<(u64, Vec<u32>)> = const { RefCell::new((0, Vec::new())) };
}

/// Runs `f` with every prime up to at least `limit`, computed once per thread.
fn with_base_primes<T>(limit: u64, f: impl FnOnce(&[u32]) -> T) -> T {
    BASE_PRIMES.with(|cell| {
        let mut cache = cell.borrow_mut();
        if cache.0 < limit {
            // Grow geometrically so a rising series of tasks sieves a few times, not each time.
            let new_limit = limit.max(cache.0 * 2).max(1 << 16);
            *cache = (new_limit, simple_sieve(new_limit));
        }
        f(&cache.1)
    })
}

/// Every prime up to and including `limit`, by a plain odd-only sieve.
fn simple_sieve(limit: u64) -> Vec<u32> {
    let n = limit as usize;
    let mut composite = vec![false; n / 2 + 1];
    let mut out = vec![2u32];
    let mut i = 3;
    while i <= n {
        if !composite[i / 2] {
            out.push(i as u32);
            let mut j = i * i;
            while j <= n {
                composite[j / 2] = true;
                j += 2 * i;
            }
        }
        i += 2;
    }
    out
}

#[cfg(test)]
mod stopping;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::primes::{Split, Target};
    use proptest::prelude::*;

    /// Sums of the primes below 10^k, k = 1..=9, from OEIS A046731.
    const SUMS_BELOW_POW10: [u128; 9] = [
        17,
        1_060,
        76_127,
        5_736_396,
        454_396_537,
        37_550_402_023,
        3_203_324_994_356,
        279_209_790_387_276,
        24_739_512_092_254_535,
    ];
    /// pi(10^k), k = 1..=9 (OEIS A006880).
    const COUNTS_BELOW_POW10: [u64; 9] = [4, 25, 168, 1_229, 9_592, 78_498, 664_579, 5_761_455, 50_847_534];

    #[test]
    fn sieve_matches_known_sums_and_counts() {
        for (k, (&sum, &count)) in SUMS_BELOW_POW10.iter().zip(&COUNTS_BELOW_POW10).enumerate() {
            let n = 10u64.pow(k as u32 + 1);
            assert_eq!(sieve(0, n), PrimeSum { sum, count }, "below {n}");
        }
    }

    #[test]
    fn trial_matches_known_sums() {
        for (k, &sum) in SUMS_BELOW_POW10.iter().take(5).enumerate() {
            let n = 10u64.pow(k as u32 + 1);
            assert_eq!(trial(0, n).sum, sum, "below {n}");
        }
    }

    #[test]
    fn demo_value() {
        assert_eq!(sieve(0, 100_999).sum, 462_436_339);
        assert_eq!(trial(2, 100_999).sum, 462_436_339);
    }

    #[test]
    fn tiny_ranges() {
        assert_eq!(sieve(0, 0), PrimeSum::default());
        assert_eq!(sieve(0, 2), PrimeSum::default());
        assert_eq!(sieve(0, 3), PrimeSum { sum: 2, count: 1 });
        assert_eq!(sieve(2, 3), PrimeSum { sum: 2, count: 1 });
        assert_eq!(sieve(3, 3), PrimeSum::default());
        assert_eq!(sieve(7, 8), PrimeSum { sum: 7, count: 1 });
        assert_eq!(sieve(8, 11), PrimeSum::default());
        assert_eq!(sieve(1, 2), PrimeSum::default());
        assert_eq!(sieve(5, 4), PrimeSum::default());
    }

    #[test]
    fn split_sums_add_up_across_segments() {
        // Spans several segments and an uneven split point.
        let n = 30 * SEGMENT_BYTES as u64 * 3 + 17;
        let whole = sieve(0, n);
        let mid = 1_234_567;
        assert_eq!(sieve(0, mid) + sieve(mid, n), whole);
    }

    #[test]
    fn primes_near_the_top_bound() {
        // Trial division is exact and shares no code with the sieve; a short window keeps
        // its sqrt(10^14) = 10^7 divisions per prime affordable.
        let lo = MAX_N - 300;
        assert_eq!(sieve(lo, MAX_N), trial(lo, MAX_N));
    }

    /// Sums past 2^64, checked against a plain windowed sieve that shares no code with
    /// the wheel: the window below MAX_N holds about 3e6 primes near 1e14, sum about 3e20.
    #[test]
    fn sums_past_u64_are_exact() {
        let (lo, hi) = (MAX_N - 100_000_000, MAX_N);
        let mut composite = vec![false; (hi - lo) as usize];
        for p in simple_sieve(hi.isqrt()) {
            let p = u64::from(p);
            let mut m = lo.div_ceil(p).max(p) * p;
            while m < hi {
                composite[(m - lo) as usize] = true;
                m += p;
            }
        }
        let expected: u128 = (lo..hi).filter(|&x| !composite[(x - lo) as usize]).map(u128::from).sum();
        assert!(expected > u128::from(u64::MAX));
        assert_eq!(sieve(lo, hi).sum, expected);
    }

    proptest! {
        #[test]
        fn sieve_agrees_with_trial(lo in 0u64..3_000_000, len in 0u64..20_000) {
            prop_assert_eq!(sieve(lo, lo + len), trial(lo, lo + len));
        }
    }

    #[test]
    fn split_covers_every_number_once() {
        for (n, split) in [
            (100_999, Split::Auto { workers: 2 }),
            (10, Split::Tasks(3)),
            (1, Split::Auto { workers: 64 }),
            (0, Split::Auto { workers: 1 }),
            (1000, Split::Size(7)),
        ] {
            let job = PrimesJob::new(Target::Below(n), Algo::Sieve, split).unwrap();
            let outs: Vec<u128> = (0..job.tasks()).map(|t| run_task(&job, t, || false).unwrap()).collect();
            assert_eq!(job.assemble(&outs), vec![sieve(0, n).sum], "n={n} {split:?}");
        }
    }

    #[test]
    fn tasks_of_a_range_job_give_one_sum_per_n() {
        let job =
            PrimesJob::new(Target::Each { first: 10, last: 12 }, Algo::Trial, Split::Auto { workers: 4 }).unwrap();
        assert_eq!(job.tasks(), 3);
        let outs: Vec<u128> = (0..3).map(|t| run_task(&job, t, || false).unwrap()).collect();
        assert_eq!(job.assemble(&outs), vec![17, 17, 28]);
        assert_eq!(job.result_ns(), vec![10, 11, 12]);
        assert!(PrimesJob::new(Target::Each { first: 1, last: 2 }, Algo::Sieve, Split::Tasks(2)).is_err());
    }
}
