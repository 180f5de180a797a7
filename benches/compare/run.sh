#!/usr/bin/env bash
# mesh against Parallel Python and Dask distributed, on the same machine, the same number of
# workers and the same workloads. See docs/benchmarks.md ("Against Parallel Python and
# Dask") for what it measures and the last results.
#
#   bash benches/compare/run.sh [WORKERS] [--quick]
#
# On a fresh machine it creates benches/compare/.venv with pp (Parallel Python) and Dask
# distributed from PyPI, builds mesh in release mode, then runs every workload on every
# system and prints one table. --quick runs a tenth of the demo (for a check, not for the
# record). It uses only loopback and this machine's own processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
workers="${1:-2}"
shift || true
venv=benches/compare/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q pp==1.7.0 'dask[distributed]==2026.8.0' matplotlib
fi
cargo build --release --quiet
exec "$venv/bin/python" benches/compare/compare.py --workers "$workers" --mesh target/release/mesh "$@"
