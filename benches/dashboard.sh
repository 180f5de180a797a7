#!/usr/bin/env bash
# The dashboard under load: does watching a node slow its work, and what does serving cost?
#
#   bash benches/dashboard.sh            (root; about 5 minutes once built; ROUNDS=3,
#                                         CLIENTS=10, N=6e10 and TASKS=60 change the run)
#
# One node on a namespace LAN with 1 worker and --http 0.0.0.0:4880, pinned to CPU 0
# (taskset). A second host holds the "browsers", pinned to CPU 1 with the submitter, so
# that they do not take CPU from the node, as browsers on other machines would not. Each
# browser keeps the page's live stream open (/api/events, two snapshots a second) and
# polls /api/jobs and /metrics once a second, more than the page itself asks.
#
# It reports, for a heavy primes job alternately without and with the browsers, the job's
# efficiency (task time over elapsed time, from its report), and the node's CPU time
# outside its worker thread (the event loop, libp2p and the HTTP server: utime + stime of
# every thread but mesh-worker-0, from /proc) per second, idle and mid-job. Addresses:
# 198.18.0.0/15 only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-10}
N=${N:-60000000000}
TASKS=${TASKS:-60}
IDLE_S=${IDLE_S:-20}
[ -x target/release/mesh ] && [ "${REBUILD:-1}" = 0 ] || cargo build --release --locked >/dev/null
mesh=$PWD/target/release/mesh
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

dir=$(mktemp -d /tmp/mesh-dash-XXXX)
. benches/netns.sh
LAN_TAG=dash
LAN_DIR=$dir
lan_up node web
url=http://198.18.0.11:4880
ip netns exec mesh-t-dash-node taskset -c 0 "$mesh" join --name n1 --workers 1 --nice 0 --no-mdns \
  --key bench --home "$dir/n1" --http 0.0.0.0:4880 2>"$dir/n1.log" &
disown $!
for _ in $(seq 100); do [ -S "$dir/n1/control.sock" ] && break; sleep 0.1; done
sleep 1
node_pid=$(pgrep -f -- "--home $dir/n1" | head -1)
tck=$(getconf CLK_TCK)

# CPU ticks of every thread of the node but its worker.
overhead_ticks() {
  local t=0 s
  for task in /proc/"$node_pid"/task/*; do
    [ "$(cat "$task/comm")" = mesh-worker-0 ] && continue
    s=$(sed 's/^.*) //' "$task/stat")
    t=$((t + $(echo "$s" | awk '{print $12 + $13}')))
  done
  echo "$t"
}

browsers_start() {
  for b in $(seq "$CLIENTS"); do
    ip netns exec mesh-t-dash-web taskset -c 1 curl -sN "$url/api/events" >/dev/null 2>&1 &
    echo $! >>"$dir/browsers"
    disown $!
    ip netns exec mesh-t-dash-web taskset -c 1 bash -c \
      "while :; do curl -s $url/api/jobs >/dev/null; curl -s $url/metrics >/dev/null; sleep 1; done" &
    echo $! >>"$dir/browsers"
    disown $!
  done
  sleep 2
}
browsers_stop() {
  [ -f "$dir/browsers" ] && xargs -r kill <"$dir/browsers" 2>/dev/null || true
  pkill -f "curl -sN $url/api/events" 2>/dev/null || true
  rm -f "$dir/browsers"
  sleep 1
}

idle() { # label
  local a b
  a=$(overhead_ticks)
  sleep "$IDLE_S"
  b=$(overhead_ticks)
  awk -v d=$((b - a)) -v hz="$tck" -v s="$IDLE_S" -v l="$1" \
    'BEGIN { printf "idle, %-16s node CPU outside the worker: %6.2f ms/s\n", l, 1000 * d / hz / s }'
}

job() { # label
  local a b t0 t1 eff
  a=$(overhead_ticks)
  t0=$(date +%s.%N)
  ip netns exec mesh-t-dash-node env MESH_HOME="$dir/n1" taskset -c 1 "$mesh" submit primes "$N" \
    --tasks "$TASKS" --json >"$dir/job.json" 2>/dev/null
  t1=$(date +%s.%N)
  b=$(overhead_ticks)
  eff=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["efficiency"])' "$dir/job.json")
  awk -v d=$((b - a)) -v hz="$tck" -v t0="$t0" -v t1="$t1" -v e="$eff" -v l="$1" \
    'BEGIN { printf "job,  %-16s efficiency %.4f  elapsed %5.1f s  node CPU outside the worker: %6.2f ms/s\n", l, e, t1 - t0, 1000 * d / hz / (t1 - t0) }'
}

echo "# mesh dashboard load: $CLIENTS browsers, primes $N in $TASKS tasks, $ROUNDS rounds ($(nproc) CPUs)"
# What one page load fetches: the page, the chart's history, and one live snapshot (of a
# 1-node mesh: each more node adds about 0.5 KB to a snapshot).
get() { ip netns exec mesh-t-dash-web curl -s -o /dev/null -w '%{size_download}' "$url$1"; }
event=$(ip netns exec mesh-t-dash-web timeout 2 curl -sN "$url/api/events" | head -1 | wc -c || true)
echo "page weight: / $(get /) B, /api/throughput $(get /api/throughput) B, one live update $event B"
idle "no browsers"
browsers_start
idle "$CLIENTS browsers"
browsers_stop
for r in $(seq "$ROUNDS"); do
  job "no browsers"
  browsers_start
  job "$CLIENTS browsers"
  browsers_stop
done
