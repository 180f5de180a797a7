#!/usr/bin/env bash
# A mixed mesh: an x86-64 node, a 64-bit ARM node (aarch64) and a 32-bit ARM node
# (armv7, armhf: wasm runs there through wasmtime's Pulley interpreter), the ARM builds of
# mesh run under qemu-user, on a namespace LAN. Runs the primes demo and WebAssembly jobs,
# and checks that every ARM node takes part and that every result is exactly what the
# x86-64 node computes alone.
#
#   bash benches/arm_mesh.sh            (root; installs qemu and jq, and cross-builds
#                                        with packaging/build.sh's toolchain: about 22
#                                        minutes from clean, a minute once built)
#
# The ARM nodes are emulated, so they are some 15x (aarch64) to 40x (armv7, interpreted
# wasm) slower per task than the x86-64 one: the job is also a mixed-speed mesh, and
# their shares show it. Addresses: 198.18.0.0/15 only.
set -euo pipefail
cd "$(dirname "$0")/.."
for pkg in qemu-user-static jq; do
  dpkg -s "$pkg" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$pkg" >/dev/null; }
done
# The release binaries, as the packages ship them (packaging/build.sh skips nothing it
# has built already).
[ -x target/aarch64-unknown-linux-gnu/dist/mesh ] && [ -x target/armv7-unknown-linux-gnueabihf/dist/mesh ] &&
  [ -x target/x86_64-unknown-linux-gnu/dist/mesh ] && [ "${REBUILD:-0}" = 0 ] ||
  bash packaging/build.sh >/dev/null
x86=$PWD/target/x86_64-unknown-linux-gnu/dist/mesh
a64="qemu-aarch64-static -L /usr/aarch64-linux-gnu $PWD/target/aarch64-unknown-linux-gnu/dist/mesh"
a32="qemu-arm-static -L /usr/arm-linux-gnueabihf $PWD/target/armv7-unknown-linux-gnueabihf/dist/mesh"

dir=$(mktemp -d /tmp/mesh-arm-XXXX)
. benches/netns.sh
LAN_TAG=arm
LAN_DIR=$dir
lan_up x86 a64 a32
# qemu-user does not emulate the IP_MULTICAST_IF socket option that mDNS needs, so the
# emulated nodes find the mesh the way nodes on networks without multicast do: --peer.
# (On real ARM hardware mDNS works as anywhere else.)
ip netns exec mesh-t-arm-x86 "$x86" join --name x86 --workers 1 --home "$dir/x86" --key arm 2>"$dir/x86.log" &
ip netns exec mesh-t-arm-a64 $a64 join --name arm64 --workers 1 --home "$dir/a64" --key arm \
  --no-mdns --peer 198.18.0.11:4877 2>"$dir/a64.log" &
ip netns exec mesh-t-arm-a32 $a32 join --name armv7 --workers 1 --home "$dir/a32" --key arm \
  --no-mdns --peer 198.18.0.11:4877 2>"$dir/a32.log" &
for _ in $(seq 1 300); do
  n=$(ip netns exec mesh-t-arm-x86 "$x86" --home "$dir/x86" peers --json 2>/dev/null |
    jq '[.[] | select((.name == "arm64" or .name == "armv7") and .state == "member")] | length')
  [ "$n" = 2 ] && break
  sleep 0.2
done
[ "$n" = 2 ] || {
  echo "the ARM nodes never joined"
  cat "$dir/a64.log" "$dir/a32.log" "$dir/x86.log"
  ip netns exec mesh-t-arm-x86 "$x86" --home "$dir/x86" peers
  exit 1
}
echo "mesh formed: x86 + arm64 (aarch64) + armv7 (armhf), the ARM nodes under qemu"

# Resident memory of each node, idle. Under qemu-user the figure includes the emulator
# and its translated code, so the script also measures qemu running a C program that
# only sleeps: the difference estimates the node's own memory on ARM hardware.
rss_of() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
base=()
for a in aarch64 arm; do
  gcc=$([ $a = arm ] && echo arm-linux-gnueabihf-gcc || echo aarch64-linux-gnu-gcc)
  sysroot=$([ $a = arm ] && echo /usr/arm-linux-gnueabihf || echo /usr/aarch64-linux-gnu)
  printf '#include <unistd.h>\nint main(void) { sleep(30); return 0; }\n' >"$dir/sleep.c"
  $gcc -O2 -o "$dir/sleep-$a" "$dir/sleep.c"
  "qemu-$a-static" -L "$sysroot" "$dir/sleep-$a" &
  spid=$!
  sleep 2
  base+=("$(rss_of $spid)")
  kill $spid
done
rss() { # label
  local h pid kib
  for h in $LAN_HOSTS; do
    pid=$(ip netns pids "mesh-t-arm-$h" | head -1)
    kib=$(rss_of "$pid")
    case "$h" in
      x86) echo "idle RSS $1, x86-64: $((kib / 1024)) MiB" ;;
      a64) echo "idle RSS $1, aarch64: $((kib / 1024)) MiB under qemu, $(((kib - base[0]) / 1024)) MiB without qemu's own $((base[0] / 1024)) MiB" ;;
      a32) echo "idle RSS $1, armv7: $((kib / 1024)) MiB under qemu, $(((kib - base[1]) / 1024)) MiB without qemu's own $((base[1] / 1024)) MiB" ;;
    esac
  done
}
sleep 5
rss "after joining"

# What each ARM node ran of a job; `must` names the nodes that must have run some.
arm_shares() { # json-file job-name must...
  local f=$1 name=$2 total a b
  shift 2
  total=$(jq '.tasks' "$f")
  a=$(jq '[.nodes[] | select(.name == "arm64") | .tasks] | add // 0' "$f")
  b=$(jq '[.nodes[] | select(.name == "armv7") | .tasks] | add // 0' "$f")
  echo "$name: $total tasks, arm64 ran $a, armv7 ran $b, every result equal to the x86-64 reference"
  for m in "$@"; do
    case "$m" in
      arm64) [ "$a" -gt 0 ] || { echo "$name: the aarch64 node ran nothing"; exit 1; } ;;
      armv7) [ "$b" -gt 0 ] || { echo "$name: the armv7 node ran nothing"; exit 1; } ;;
      any) [ $((a + b)) -gt 0 ] || { echo "$name: no ARM node ran anything"; exit 1; } ;;
    esac
  done
}

# The primes demo, exact sums: the primes below 2*10^10 in 48 tasks (about 0.15 s each
# on the x86-64 node).
ip netns exec mesh-t-arm-x86 "$x86" --home "$dir/x86" submit primes 20000000000 --tasks 48 --json --key arm >"$dir/primes.json"
"$x86" --home "$dir/ref" submit primes 20000000000 --tasks 48 --local --json 2>/dev/null >"$dir/primes.ref.json"
diff <(jq -c '.results' "$dir/primes.json") <(jq -c '.results' "$dir/primes.ref.json") >/dev/null ||
  { echo "primes: sums differ from the x86-64 reference"; exit 1; }
arm_shares "$dir/primes.json" primes arm64 armv7

run() { # name module inputfile submitting-host(x86, a64 or a32) must...
  local host=$4 bin
  case "$host" in x86) bin=$x86 ;; a64) bin=$a64 ;; a32) bin=$a32 ;; esac
  ip netns exec "mesh-t-arm-$host" $bin --home "$dir/$host" submit wasm "$2" --input-file "$3" --json --key arm >"$dir/$1.json"
  "$x86" --home "$dir/ref" submit wasm "$2" --input-file "$3" --local --json 2>/dev/null >"$dir/$1.ref.json"
  if ! diff <(jq -c '[.results[].output]' "$dir/$1.json") <(jq -c '[.results[].output]' "$dir/$1.ref.json") >/dev/null; then
    echo "$1: outputs differ from the x86-64 reference"; exit 1
  fi
  local name=$1
  shift 4
  arm_shares "$dir/$name.json" "$name" "$@"
}
seq 1 40 | sed 's/^/mesh-/; s/$/ 200000/' >"$dir/sha.txt"
# wasm on armv7 is interpreted (Pulley) and emulated here: far slower than the x86-64
# node, whose backup runs may finish its first task before it does.
run sha256 examples/wasm/c/sha256.wasm "$dir/sha.txt" x86 any
seq 1 40 | sed 's/$/ 3000000/' >"$dir/mc.txt"
run montecarlo examples/wasm/montecarlo.wat "$dir/mc.txt" x86 any
# Submitted on the 32-bit ARM node (Pulley), which runs its own tasks first.
seq 1 60 >"$dir/nan.txt"
run nan tests/wasm/nan.wat "$dir/nan.txt" a32 armv7
jq -r '.results[0].output' "$dir/nan.json" | sed 's/^/nan bits on every node: /'
sleep 5
rss "after the jobs"
