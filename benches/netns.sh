# A namespace LAN for the bench scripts, sourced by them: one network namespace per host,
# named mesh-t-$LAN_TAG-HOST, on one Linux bridge, with addresses 198.18.0.11, .12, … in
# the order given (198.18.0.0/15 is for benchmarking networks: never a real host), and a
# multicast route so that mDNS works. `lan_up` sets an EXIT trap that runs `lan_down`:
# it kills every process in the namespaces, removes them and the bridge, and removes the
# script's scratch directory $LAN_DIR if it set one.
#
#   LAN_TAG=arm; LAN_DIR=$(mktemp -d); lan_up x86 a64 a32

lan_up() {
  trap lan_down EXIT
  LAN_HOSTS="$*"
  LAN_BRIDGE=mbr$LAN_TAG$$
  ip link add "$LAN_BRIDGE" type bridge
  # Without an IGMP querier, snooping would drop the mDNS group traffic.
  ip link set "$LAN_BRIDGE" type bridge mcast_snooping 0
  ip link set "$LAN_BRIDGE" up
  local i=10 h ns
  for h in $LAN_HOSTS; do
    i=$((i + 1))
    ns=mesh-t-$LAN_TAG-$h
    ip netns add "$ns"
    ip link add "va$h$$" type veth peer name "vi$h$$"
    ip link set "va$h$$" master "$LAN_BRIDGE" up
    ip link set "vi$h$$" netns "$ns"
    ip netns exec "$ns" ip addr add "198.18.0.$i/24" dev "vi$h$$"
    ip netns exec "$ns" ip link set "vi$h$$" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip route add 224.0.0.0/4 dev "vi$h$$"
  done
}

lan_down() {
  local h pids
  for h in $LAN_HOSTS; do
    pids=$(ip netns pids "mesh-t-$LAN_TAG-$h" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    ip netns del "mesh-t-$LAN_TAG-$h" 2>/dev/null || true
  done
  ip link del "$LAN_BRIDGE" 2>/dev/null || true
  if [ -n "${LAN_DIR:-}" ]; then rm -rf "$LAN_DIR"; fi
}
