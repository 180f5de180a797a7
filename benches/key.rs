//! What one guess of a passphrase costs an attacker who read a node's mDNS fingerprint:
//! version 1's two blake3 derivations against version 2's argon2id (`src/secret.rs`). A
//! node pays the second once when it starts.
//!
//! Run: `cargo bench --bench key`

use criterion::{Criterion, criterion_group, criterion_main};
use mesh::secret::SharedKey;
use std::hint::black_box;
use std::time::Duration;

fn guesses(c: &mut Criterion) {
    let mut g = c.benchmark_group("key_fingerprint_per_guess");
    g.bench_function("v1_blake3", |b| {
        b.iter(|| {
            let psk = blake3::derive_key("mesh 2026-11 pnet pre-shared key v1", black_box(b"sunshine"));
            blake3::derive_key("mesh 2026-11 key fingerprint v1", &psk)
        })
    });
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    // A new passphrase each time: the process remembers the last few it derived.
    let mut n = 0u64;
    g.bench_function("v2_argon2id", |b| {
        b.iter(|| {
            n += 1;
            SharedKey::from_passphrase(&format!("guess {n}")).unwrap().fingerprint()
        })
    });
    g.finish();
}

criterion_group!(benches, guesses);
criterion_main!(benches);
