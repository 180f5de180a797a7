#!/usr/bin/env bash
# The sieve kernel against primesieve (Debian package `primesieve`), both counting the
# primes below 10^10 on one core.
#
#   bash benches/sieve_vs_primesieve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v primesieve >/dev/null || { apt-get update -qq && apt-get install -y -qq primesieve >/dev/null; }
echo "== primesieve 1e10 --count --threads 1"
primesieve 1e10 --count --threads 1 --time --quiet
echo "== mesh sieve (criterion: primes_slow/sieve_count_below_1e10)"
cargo bench --bench primes -- sieve_count_below_1e10 2>&1 | grep -A2 'sieve_count_below_1e10' | grep time
