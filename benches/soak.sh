#!/usr/bin/env bash
# The churn soak: a namespace LAN of 5 hosts runs jobs back to back (primes, WebAssembly,
# `mesh run`), each submitted from a host picked at random, while every few seconds a
# random other host is stopped gracefully, killed with kill -9, cut off and healed, or
# restarted. At the end it checks, and prints a summary:
#
#   - every job ended, none hung (each has 5 minutes), and its results are exact;
#   - every task was counted once (the nodes' tasks add up to the job's);
#   - the RSS, open fds and threads of h1 (never faulted) stay flat after the warm-up;
#   - no task directory is left behind under any node's home;
#   - every node's blob store is sound (`mesh store check`).
#
#   bash benches/soak.sh [MINUTES]   root; 10 minutes by default, longer for a release
#                                    (bash benches/soak.sh 60); CI runs SOAK_SECONDS=60
#
# Environment: MESH_BIN (default target/debug/mesh, built if missing; CI's is the tests'
# build), FAULT_EVERY (seconds between faults, default 4), SOAK_SECONDS (overrides
# MINUTES). Addresses: 198.18.0.0/15 only. On failure the hosts' logs are kept and named.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SOAK_SECONDS:-$((${1:-10} * 60))}
every=${FAULT_EVERY:-4}
bin=${MESH_BIN:-$PWD/target/debug/mesh}
[ -x "$bin" ] || cargo build --locked >/dev/null
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }

dir=$(mktemp -d /tmp/mesh-soak-XXXX)
. benches/netns.sh
LAN_TAG=soak
hosts="h1 h2 h3 h4 h5"
failed=0
lan_up $hosts
cleanup() {
  [ -n "${faulter:-}" ] && kill "$faulter" 2>/dev/null || true
  lan_down
  if [ "$failed" = 0 ]; then rm -rf "$dir"; else echo "soak FAILED: logs and homes kept in $dir"; fi
}
trap cleanup EXIT
mkdir -p "$dir/state"
ns() { echo "mesh-t-soak-$1"; }
veth() { echo "va$1$$"; }

start() { # host
  local h=$1
  rm -f "$dir/$h/control.sock"
  ip netns exec "$(ns "$h")" "$bin" join --name "$h" --workers 1 --key soak --allow-run --no-http \
    --home "$dir/$h" 2>>"$dir/$h.log" &
  echo $! >"$dir/state/$h.pid"
  disown $!
  for _ in $(seq 100); do [ -S "$dir/$h/control.sock" ] && break; sleep 0.1; done
  echo up >"$dir/state/$h"
}
pid_of() { cat "$dir/state/$1.pid"; }

for h in $hosts; do start "$h"; done
for _ in $(seq 60); do
  n=$(ip netns exec "$(ns h1)" "$bin" --home "$dir/h1" peers --json 2>/dev/null | jq '[.[] | select(.state == "member")] | length' || echo 0)
  [ "$n" = 5 ] && break
  sleep 0.5
done
[ "$n" = 5 ] || { echo "the mesh did not form ($n of 5)"; failed=1; exit 1; }

# The references, computed on this machine alone.
seq 1 24 | sed 's/^/soak-/; s/$/ 100000/' >"$dir/sha.txt"
"$bin" --home "$dir/ref" submit primes 2000000000 --tasks 40 --local --json 2>/dev/null | jq -c '.results' >"$dir/primes.ref"
"$bin" --home "$dir/ref" submit wasm examples/wasm/c/sha256.wasm --input-file "$dir/sha.txt" --local --json 2>/dev/null |
  jq -c '[.results[].output]' >"$dir/sha.ref"
seq 1 30 | jq -R -s -c 'split("\n")[:-1] | map(tonumber * tonumber | tostring + "\n")' >"$dir/run.ref"

# The faulter: every few seconds, one host other than h1 and the submitting one.
fault_loop() {
  local stops=0 kills=0 cuts=0 restarts=0 h f
  while :; do
    sleep "$every"
    h=$(
      flock "$dir/lock" bash -c "
        for c in \$(shuf -e h2 h3 h4 h5); do
          [ \"\$c\" != \"\$(cat $dir/submitter 2>/dev/null)\" ] && [ \"\$(cat $dir/state/\$c)\" = up ] && { echo busy >$dir/state/\$c; echo \$c; break; }
        done"
    )
    [ -n "$h" ] || continue
    f=$(shuf -n1 -e stop kill9 cut restart)
    case "$f" in
      stop) kill -TERM "$(pid_of "$h")"; sleep 2; stops=$((stops + 1)) ;;
      kill9) kill -9 "$(pid_of "$h")"; sleep 2; kills=$((kills + 1)) ;;
      cut) ip link set "$(veth "$h")" down; sleep $((3 + RANDOM % 6)); ip link set "$(veth "$h")" up; cuts=$((cuts + 1)) ;;
      restart) kill -TERM "$(pid_of "$h")"; restarts=$((restarts + 1)) ;;
    esac
    if [ "$f" != cut ]; then
      for _ in $(seq 50); do kill -0 "$(pid_of "$h")" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$(pid_of "$h")" 2>/dev/null || true # a stop that takes over 5 s
      start "$h"
    else
      echo up >"$dir/state/$h"
    fi
    echo "$stops $kills $cuts $restarts" >"$dir/faults"
  done
}
echo "0 0 0 0" >"$dir/faults"
fault_loop &
faulter=$!

sample() { # RSS (KiB), fds and threads of h1's node
  local p
  p=$(pid_of h1)
  echo "$(awk '/VmRSS/ {print $2}' "/proc/$p/status") $(ls "/proc/$p/fd" | wc -l) $(ls "/proc/$p/task" | wc -l)" >>"$dir/h1.samples"
}

jobs=0 tasks=0 bad=0 hung=0
end=$(($(date +%s) + secs))
next_sample=0
kinds=(primes wasm run)
while [ "$(date +%s)" -lt "$end" ]; do
  [ "$(date +%s)" -ge "$next_sample" ] && { sample; next_sample=$(($(date +%s) + 5)); }
  kind=${kinds[$((jobs % 3))]}
  h=$(flock "$dir/lock" bash -c "
    for c in \$(shuf -e $hosts); do
      [ \"\$(cat $dir/state/\$c)\" = up ] && { echo \$c > $dir/submitter; echo \$c; break; }
    done")
  out="$dir/job-$jobs.json"
  case "$kind" in
    primes) args=(submit primes 2000000000 --tasks 40 --json --key soak) ;;
    wasm) args=(submit wasm "$PWD/examples/wasm/c/sha256.wasm" --input-file "$dir/sha.txt" --json --key soak) ;;
    run) args=(run --json --key soak -- sh -c 'sleep 0.2; echo $(($1*$1))' sh ::: $(seq 1 30)) ;;
  esac
  set +e
  timeout 300 ip netns exec "$(ns "$h")" "$bin" --home "$dir/$h" "${args[@]}" >"$out" 2>"$out.err"
  rc=$?
  set -e
  rm -f "$dir/submitter"
  jobs=$((jobs + 1))
  if [ "$rc" = 124 ]; then
    hung=$((hung + 1)); echo "job $jobs ($kind from $h) hung"; continue
  fi
  case "$kind" in
    primes) got=$(jq -c '.results' "$out" 2>/dev/null); want=$(cat "$dir/primes.ref") ;;
    wasm) got=$(jq -c '[.results[].output]' "$out" 2>/dev/null); want=$(cat "$dir/sha.ref") ;;
    run) got=$(jq -c '[.results[].output]' "$out" 2>/dev/null); want=$(cat "$dir/run.ref") ;;
  esac
  counted=$(jq '([.nodes[].tasks] | add) == .tasks' "$out" 2>/dev/null || echo false)
  if [ "$rc" != 0 ] || [ "$got" != "$want" ] || [ "$counted" != true ]; then
    bad=$((bad + 1))
    echo "job $jobs ($kind from $h): exit $rc, exact $([ "$got" = "$want" ] && echo yes || echo no), counted once $counted: $(tail -3 "$out.err")"
  fi
  tasks=$((tasks + $(jq '.tasks' "$out" 2>/dev/null || echo 0)))
done
kill "$faulter" 2>/dev/null || true
wait "$faulter" 2>/dev/null || true
faulter=
read -r stops kills cuts restarts <"$dir/faults"
# Heal and bring back every host, let the mesh settle, then look at what is left.
for h in $hosts; do
  ip link set "$(veth "$h")" up
  kill -0 "$(pid_of "$h")" 2>/dev/null || start "$h"
done
sleep 8
sample

leaks=0
for h in $hosts; do
  left=$(find "$dir/$h/run" -mindepth 2 -maxdepth 2 2>/dev/null | wc -l)
  [ "$left" = 0 ] || { echo "$h: $left task directories left under its home"; leaks=$((leaks + left)); }
done
corrupt=0
for h in $hosts; do
  ip netns exec "$(ns "$h")" "$bin" --home "$dir/$h" store check >"$dir/$h.store" 2>&1 ||
    { echo "$h: $(cat "$dir/$h.store")"; corrupt=$((corrupt + 1)); }
done
# Flat after the warm-up: the last sample against the one a quarter of the way in.
read -r rss0 fd0 th0 < <(awk '{ a[NR] = $0 } END { print a[int(NR / 4) + 1] }' "$dir/h1.samples")
read -r rss1 fd1 th1 < <(tail -1 "$dir/h1.samples")
flat=yes
[ "$rss1" -le $((rss0 * 5 / 4 + 8192)) ] && [ "$fd1" -le $((fd0 + 8)) ] && [ "$th1" -le $((th0 + 4)) ] || flat=no

echo "soak: $((secs / 60)) min $((secs % 60)) s, 5 hosts, $jobs jobs, $tasks tasks"
echo "faults: $stops graceful stops, $kills kill -9, $cuts cut cables, $restarts restarts"
echo "jobs wrong or failed: $bad; hung: $hung; task directories left: $leaks; damaged blob stores: $corrupt"
echo "h1 after warm-up: RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB, fds $fd0 -> $fd1, threads $th0 -> $th1 (flat: $flat)"
if [ "$bad" != 0 ] || [ "$hung" != 0 ] || [ "$leaks" != 0 ] || [ "$corrupt" != 0 ] || [ "$flat" != yes ] || [ "$jobs" -lt 3 ]; then
  failed=1
  exit 1
fi
echo "soak OK"
