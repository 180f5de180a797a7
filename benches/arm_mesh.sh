#!/usr/bin/env bash
# A mixed mesh: an x86-64 node and a 64-bit ARM node (the aarch64 build of mesh, run under
# qemu-user) on a namespace LAN, running the same WebAssembly jobs. Checks that the ARM
# node takes part and that every output is exactly what the x86-64 node computes alone.
#
#   bash benches/arm_mesh.sh            (root; installs the cross toolchain and qemu)
#
# The ARM node is emulated, so it is some 15x slower per task than the x86-64 one: the
# job is also a mixed-speed mesh, and its share shows it. Addresses: 198.18.0.0/15 only.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
for pkg in gcc-aarch64-linux-gnu qemu-user-static libc6-dev-arm64-cross jq; do
  dpkg -s "$pkg" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$pkg" >/dev/null; }
done
rustup target add "$target" >/dev/null
cargo build --release --quiet
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
  cargo build --release --quiet --target "$target" --bin mesh
x86=$PWD/target/release/mesh
arm="qemu-aarch64-static -L /usr/aarch64-linux-gnu $PWD/target/$target/release/mesh"

dir=$(mktemp -d /tmp/mesh-arm-XXXX)
br=mbrarm$$
cleanup() {
  for h in x86 arm; do
    pids=$(ip netns pids "mesh-t-arm-$h" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    ip netns del "mesh-t-arm-$h" 2>/dev/null || true
  done
  ip link del "$br" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
ip link add "$br" type bridge
ip link set "$br" type bridge mcast_snooping 0
ip link set "$br" up
i=10
for h in x86 arm; do
  i=$((i + 1))
  ns=mesh-t-arm-$h
  ip netns add "$ns"
  ip link add "va$h$$" type veth peer name "vi$h$$"
  ip link set "va$h$$" master "$br" up
  ip link set "vi$h$$" netns "$ns"
  ip netns exec "$ns" ip addr add "198.18.0.$i/24" dev "vi$h$$"
  ip netns exec "$ns" ip link set "vi$h$$" up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip route add 224.0.0.0/4 dev "vi$h$$"
done
# qemu-user does not emulate the IP_MULTICAST_IF socket option that mDNS needs, so the
# emulated node finds the mesh the way nodes on networks without multicast do: --peer.
# (On real ARM hardware mDNS works as anywhere else.)
ip netns exec mesh-t-arm-x86 "$x86" join --name x86 --workers 1 --home "$dir/x86" --key arm 2>"$dir/x86.log" &
ip netns exec mesh-t-arm-arm $arm join --name arm1 --workers 1 --home "$dir/arm" --key arm \
  --no-mdns --peer 198.18.0.11:4877 2>"$dir/arm.log" &
for _ in $(seq 1 150); do
  n=$(ip netns exec mesh-t-arm-x86 "$x86" --home "$dir/x86" peers --json 2>/dev/null | jq '[.[] | select(.name == "arm1" and .state == "member")] | length')
  [ "$n" = 1 ] && break
  sleep 0.2
done
[ "$n" = 1 ] || { echo "the ARM node never joined"; cat "$dir/arm.log" "$dir/x86.log"; ip netns exec mesh-t-arm-x86 "$x86" --home "$dir/x86" peers; exit 1; }
echo "mesh formed: x86 + arm1 (aarch64 under qemu)"

run() { # name module inputfile [submitting host: x86 or arm]
  if [ "${4:-x86}" = arm ]; then
    ip netns exec mesh-t-arm-arm $arm --home "$dir/arm" submit wasm "$2" --input-file "$3" --json --key arm >"$dir/$1.json"
  else
    ip netns exec mesh-t-arm-x86 "$x86" --home "$dir/x86" submit wasm "$2" --input-file "$3" --json --key arm >"$dir/$1.json"
  fi
  "$x86" --home "$dir/ref" submit wasm "$2" --input-file "$3" --local --json 2>/dev/null >"$dir/$1.ref.json"
  if ! diff <(jq -c '[.results[].output]' "$dir/$1.json") <(jq -c '[.results[].output]' "$dir/$1.ref.json") >/dev/null; then
    echo "$1: outputs differ from the x86-64 reference"; exit 1
  fi
  arm_tasks=$(jq '[.nodes[] | select(.name == "arm1") | .tasks] | add // 0' "$dir/$1.json")
  total=$(jq '.tasks' "$dir/$1.json")
  echo "$1: $total tasks, arm1 ran $arm_tasks, every output equal to the x86-64 reference"
  [ "$arm_tasks" -gt 0 ] || { echo "$1: the ARM node ran nothing"; exit 1; }
}
seq 1 40 | sed 's/^/mesh-/; s/$/ 200000/' >"$dir/sha.txt"
run sha256 examples/wasm/c/sha256.wasm "$dir/sha.txt"
seq 1 40 | sed 's/$/ 3000000/' >"$dir/mc.txt"
run montecarlo examples/wasm/montecarlo.wat "$dir/mc.txt"
# Submitted on the ARM node, which runs its own tasks first.
seq 1 60 >"$dir/nan.txt"
run nan tests/wasm/nan.wat "$dir/nan.txt" arm
jq -r '.results[0].output' "$dir/nan.json" | sed 's/^/nan bits on every node: /'
