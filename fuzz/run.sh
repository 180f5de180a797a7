#!/usr/bin/env bash
# Fuzzes every decoder of bytes from outside the node (src/fuzzing.rs) with cargo-fuzz and
# libFuzzer, each for a fixed time, and reports what it found.
#
#   bash fuzz/run.sh [SECONDS]     SECONDS per target, 60 by default: 8 targets, about
#                                  9 minutes, plus about 15 minutes for the first build
#                                  (nightly with the sanitizers compiles every crate)
#   MERGE=1 bash fuzz/run.sh 600   also merges the inputs that found new coverage into
#                                  the checked-in corpus (fuzz/corpus/)
#
# Needs the nightly toolchain and cargo-fuzz, and installs cargo-fuzz if missing. This is
# the script beside CI: CI runs on stable and does not build the fuzzers, but `cargo test`
# replays every input in fuzz/corpus/ and fuzz/regressions/ through the same entry points
# (fuzzing::tests::the_saved_fuzz_inputs_replay_cleanly).
#
# A crash is any panic (a decoder that panics, or an accepted input that does not round-
# trip), any single allocation over 64 MiB (-malloc_limit_mb: no decoder may allocate
# beyond its input bound), or more than 1 GiB of memory. Its input is copied to
# fuzz/regressions/<target>/, where `cargo test` replays it from then on, and the script
# fails.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo +stable install cargo-fuzz --locked
cargo +nightly fuzz build --fuzz-dir . >/dev/null
found=0
for t in $(cargo +nightly fuzz list --fuzz-dir .); do
  mkdir -p "work/$t" "corpus/$t" "artifacts/$t"
  rm -f "artifacts/$t"/crash-* "artifacts/$t"/oom-* "artifacts/$t"/leak-*
  # New inputs go to work/ (not checked in); corpus/ is read as seeds.
  if cargo +nightly fuzz run --fuzz-dir . "$t" "work/$t" "corpus/$t" -- \
    -max_total_time="$secs" -max_len=65536 -malloc_limit_mb=64 -rss_limit_mb=1024 -timeout=10 \
    -print_final_stats=1 >"work/$t.log" 2>&1; then
    status=ok
  else
    status=CRASH
    found=1
    mkdir -p "regressions/$t"
    for a in "artifacts/$t"/*; do [ -f "$a" ] && cp "$a" "regressions/$t/"; done
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "work/$t.log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "work/$t.log" | tail -1 | grep -o '[0-9]*' || echo 0)
  printf '%-18s %-5s %10s runs in %ss, coverage %s edges, corpus %s inputs\n' \
    "$t" "$status" "$runs" "$secs" "$cov" "$(ls "work/$t" "corpus/$t" | grep -vc ':$')"
  # fuzzing::wasm_module keeps its blobs and compiled code in a temporary home.
  rm -rf "${TMPDIR:-/tmp}"/mesh-fuzz-wasm-*
  if [ "${MERGE:-0}" = 1 ]; then
    cargo +nightly fuzz run --fuzz-dir . "$t" "corpus/$t" "work/$t" -- -merge=1 >/dev/null 2>&1 || true
  fi
done
if [ "$found" = 1 ]; then
  echo "crashes were found: their inputs are in fuzz/regressions/ (see fuzz/work/<target>.log)"
  exit 1
fi
