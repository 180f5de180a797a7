#!/usr/bin/env bash
# Efficiency of the Parallel Python demo workload on this machine: the sum of primes below
# each n in 100000..100999 by trial division (1000 tasks), once on 1 worker (the serial run
# of the same kernel) and once on W workers (default 2).
#
#   bash benches/demo_efficiency.sh [W] [REPEATS]
#
# efficiency = serial elapsed / (W * parallel elapsed), best of REPEATS runs each.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-2}
REPEATS=${2:-3}
cargo build --release --quiet
export MESH_HOME=${MESH_HOME:-$(mktemp -d)}
best() { # workers -> best elapsed seconds
  local b=""
  for _ in $(seq "$REPEATS"); do
    e=$(./target/release/mesh submit primes 100000..100999 --algo trial --workers "$1" --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["elapsed_s"])')
    if [ -z "$b" ] || python3 -c "import sys; sys.exit(0 if $e < $b else 1)"; then b=$e; fi
  done
  echo "$b"
}
serial=$(best 1)
parallel=$(best "$W")
python3 - "$serial" "$parallel" "$W" <<'PY'
import sys
s, p, w = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(f"serial (1 worker): {s:.3f} s")
print(f"{w} workers:        {p:.3f} s")
print(f"speedup {s/p:.3f}x, efficiency {100*s/(w*p):.1f}% against the serial run")
PY
