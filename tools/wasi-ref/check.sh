#!/usr/bin/env bash
# Measures wasmtime's own WASI again and compares it with what mesh's tests pin: the
# call-by-call probe (tests/wasm/wasi_probe.*), the toolchain probes (tests/wasm/probes/)
# and the generated modules (tests/wasm/smith/). Run it after upgrading wasmtime; `cargo
# test` then replays the records against mesh's shim (src/exec/wasm/tests.rs).
#
#   bash tools/wasi-ref/check.sh           compare; exits 1 if wasmtime-wasi now answers
#                                          differently from the records
#   UPDATE=1 bash tools/wasi-ref/check.sh  write the records anew
#
# About 5 minutes for the first build of wasmtime-wasi (its own target directory), then
# seconds. Rebuilds the probe modules first when clang (with wasi-libc) and the
# wasm32-wasip1 Rust target are installed; otherwise uses the committed ones.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root/tools/wasi-ref"
cargo build --quiet
ref="$root/tools/wasi-ref/target/debug/wasi-ref"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
probes="$root/tests/wasm/probes"
if command -v clang >/dev/null && [ -d /usr/share/wasi-sysroot ] && rustup target list --installed | grep -q wasm32-wasip1; then
  make -s -C "$probes"
fi
"$ref" probe "$out" >/dev/null
"$ref" expect "$probes/probe_c.wasm" "$probes/input.txt" >"$out/probe_c.expect"
"$ref" expect "$probes/probe_rust.wasm" "$probes/input.txt" >"$out/probe_rust.expect"
"$ref" smith 100 "$out/smith"
if [ "${UPDATE:-0}" = 1 ]; then
  cp "$out/wasi_probe.wat" "$out/wasi_probe.expect" "$root/tests/wasm/"
  cp "$out/probe_c.expect" "$out/probe_rust.expect" "$probes/"
  rm -rf "$root/tests/wasm/smith" && cp -r "$out/smith" "$root/tests/wasm/smith"
  echo "records written; run cargo test to check mesh's shim against them"
  exit 0
fi
status=0
diff -u "$root/tests/wasm/wasi_probe.expect" "$out/wasi_probe.expect" || status=1
diff -u "$probes/probe_c.expect" "$out/probe_c.expect" || status=1
diff -u "$probes/probe_rust.expect" "$out/probe_rust.expect" || status=1
diff -r "$root/tests/wasm/smith" "$out/smith" || status=1
if [ "$status" = 0 ]; then echo "wasmtime-wasi answers as recorded"; else echo "wasmtime-wasi answers differently (UPDATE=1 records it)"; fi
exit "$status"
