#!/usr/bin/env bash
# Installs the x86-64 .deb where systemd runs, and checks what a Pi owner would see:
# no start without a key; with one, `systemctl enable --now mesh` runs the node as the
# `mesh` user, logging to journald; a member of the `mesh` group uses it with `mesh peers`
# and `mesh submit` (primes and wasm), a non-member gets a clear error; the node restarts
# after kill -9 and stops cleanly (the graceful leave); remove and purge clean up.
#
#   bash packaging/install_test.sh [DEB]     (root; about a minute)
#
# systemd boots in a container (systemd-nspawn) over a throwaway overlay of this
# machine's root, with a private network: loopback only, and the node runs without mDNS,
# so nothing leaves the container. If this machine cannot boot a container at all, the
# script says so and exits 0 with SKIP; every check after the boot fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(realpath "${1:-$(ls target/packages/mesh_*_amd64.deb | head -1)}")
[ -f "$deb" ] || { echo "no .deb: run packaging/build.sh first" >&2; exit 1; }
command -v systemd-nspawn >/dev/null ||
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-container >/dev/null; }

tmp=$(mktemp -d /tmp/mesh-nspawn-XXXX)
root=$tmp/root
machine=mesh-t-pkg-$$
nspawn=""
cleanup() {
  if [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null; then
    kill -TERM "$nspawn" 2>/dev/null || true # nspawn shuts the container down
    for _ in $(seq 1 50); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$nspawn" 2>/dev/null || true
  fi
  umount "$root" 2>/dev/null || umount -l "$root" 2>/dev/null || true
  umount "$tmp/rw" 2>/dev/null || umount -l "$tmp/rw" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  echo "--- the node's journal:" >&2
  inside journalctl -u mesh --no-pager -n 40 >&2 2>/dev/null || true
  exit 1
}
skip() { echo "SKIP: $* (packaging/check.sh still verified the unit)"; exit 0; }

# The container's root: this machine's root, read-only below a tmpfs that takes every
# write (a tmpfs, so the overlay's layers do not nest).
mkdir -p "$root" "$tmp/rw"
mount -t tmpfs tmpfs "$tmp/rw" || skip "cannot mount a tmpfs"
mkdir -p "$tmp/rw/up" "$tmp/rw/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$tmp/rw/up,workdir=$tmp/rw/work" "$root" ||
  skip "cannot mount an overlay of /"
mkdir -p "$root/work-copy" && cp "$deb" "$root/work-copy/mesh.deb" && cp tests/wasm/echo.wat "$root/work-copy/"
# A node installed on this machine earlier would be in the copy too.
rm -rf "$root/etc/mesh" "$root/var/lib/mesh" "$root/usr/bin/mesh" "$root/usr/lib/systemd/system/mesh.service"

systemd-nspawn -q -D "$root" -M "$machine" --private-network --register=no --keep-unit --link-journal=no \
  -b >"$tmp/console.log" 2>&1 &
nspawn=$!
leader=""
for _ in $(seq 1 100); do
  for c in $(pgrep -P "$nspawn" 2>/dev/null); do
    [ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ] && leader=$c
  done
  [ -n "$leader" ] && break
  kill -0 "$nspawn" 2>/dev/null || break
  sleep 0.2
done
[ -n "$leader" ] || skip "systemd-nspawn could not boot a container here: $(tail -3 "$tmp/console.log" | tr '\n' ' ')"
inside() { nsenter -t "$leader" -m -u -i -n -p -- "$@"; }
for _ in $(seq 1 150); do
  state=$(inside systemctl is-system-running 2>/dev/null || true)
  case "$state" in running | degraded) break ;; esac
  sleep 0.2
done
case "$state" in running | degraded) ;; *) skip "the container's systemd did not come up (state: $state)" ;; esac
echo "container up (systemd: $state)"

# 1. Install: the user, the group, /etc/mesh, and no node yet.
out=$(inside dpkg -i /work-copy/mesh.deb 2>&1) || fail "dpkg -i: $out"
echo "$out" | grep -q "needs the mesh's shared key" || fail "postinst did not say how to set the key: $out"
inside id mesh >/dev/null || fail "no mesh user"
[ "$(inside stat -c '%U:%G %a' /etc/mesh)" = "root:mesh 750" ] || fail "/etc/mesh is $(inside stat -c '%U:%G %a' /etc/mesh)"
[ "$(inside stat -c '%U:%G %a' /var/lib/mesh)" = "mesh:mesh 750" ] || fail "/var/lib/mesh is $(inside stat -c '%U:%G %a' /var/lib/mesh)"
inside systemctl is-active --quiet mesh && fail "the node started without a key"
# Started by hand without a key, it does not run, and says why.
inside systemctl start mesh || true
inside systemctl is-active --quiet mesh && fail "the node started without a key"
status=$(inside systemctl status mesh --no-pager 2>&1 || true)
echo "$status" | grep -q "ConditionPathExists=/etc/mesh/key" || fail "systemctl status does not name the missing key: $status"
echo "installed: mesh user, /etc/mesh root:mesh 750, /var/lib/mesh mesh:mesh 750; no key, no node"

# 2. A key, and the service. No mDNS in the container; loopback only.
inside sh -c 'umask 077; mesh key new > /etc/mesh/key'
inside sh -c 'echo MESH_OPTS=\"--no-mdns --workers 2 --listen 127.0.0.1:4877\" > /etc/default/mesh'
inside systemctl enable --now mesh >/dev/null 2>&1 || fail "systemctl enable --now mesh failed"
for _ in $(seq 1 100); do
  inside journalctl -u mesh --no-pager 2>/dev/null | grep -q "is up" && break
  sleep 0.2
done
inside journalctl -u mesh --no-pager | grep -q "mesh node .* is up" || fail "no start line in the journal"
[ "$(inside ps -o user= -p "$(inside systemctl show -p MainPID --value mesh)")" = mesh ] ||
  fail "the node does not run as the mesh user"
[ "$(inside stat -c '%G %a' /var/lib/mesh/control.sock)" = "mesh 660" ] || fail "the control socket is not the group's"
# The unit asks for 65536 open files; a container may cap the hard limit lower, so the
# check is that systemd took the setting and the node raised its soft limit to the hard.
[ "$(inside systemctl show -p LimitNOFILE --value mesh)" = 65536 ] || fail "the unit does not set LimitNOFILE=65536"
main=$(inside systemctl show -p MainPID --value mesh)
read -r soft hard < <(inside cat "/proc/$main/limits" | awk '/^Max open files/ {print $4, $5}')
[ "$soft" = "$hard" ] && [ "$soft" -gt 1024 ] || fail "the node's open-file limit is $soft (hard $hard)"
echo "running: as mesh, logging to the journal, control socket mesh 660, $soft open files"

# 3. A member of the mesh group uses the node; a non-member is told what to do.
inside useradd -m -G mesh alice
inside useradd -m bob
peers=$(inside runuser -u alice -- mesh peers 2>&1) || fail "alice's mesh peers: $peers"
echo "$peers" | grep -q "^\* this node" || fail "alice's mesh peers does not show the node: $peers"
sum=$(inside runuser -u alice -- mesh submit primes 1000000 --json 2>&1) || fail "alice's mesh submit: $sum"
echo "$sum" | grep -q '"sum": *37550402023' || fail "alice's primes sum is wrong: $sum"
# A WebAssembly job from alice's files: the node cannot read them; the CLI uploads them.
inside install -o alice -m 644 /work-copy/echo.wat /home/alice/echo.wat
inside sh -c 'printf "one\ntwo\nthree\n" > /home/alice/in.txt; chown alice /home/alice/in.txt'
wasm=$(inside runuser -u alice -- mesh submit wasm /home/alice/echo.wat --input-file /home/alice/in.txt --json 2>&1) ||
  fail "alice's mesh submit wasm: $wasm"
for w in one two three; do echo "$wasm" | grep -q "\"output\": *\"$w" || fail "alice's wasm job lacks $w: $wasm"; done
denied=$(inside runuser -u bob -- mesh peers 2>&1) && fail "bob, not in the group, used the node: $denied"
echo "$denied" | grep -q "only for the \`mesh\` group" || fail "bob's error does not say why: $denied"
echo "group: alice (member) ran peers, primes (exact sum) and wasm; bob (not a member) was told why not"

# 4. kill -9: systemd restarts it. Stop: the graceful leave, inside the stop timeout.
pid=$(inside systemctl show -p MainPID --value mesh)
inside kill -9 "$pid"
for _ in $(seq 1 100); do
  now=$(inside systemctl show -p MainPID --value mesh)
  [ "$now" != 0 ] && [ "$now" != "$pid" ] && inside systemctl is-active --quiet mesh && break
  sleep 0.2
done
[ "$now" != 0 ] && [ "$now" != "$pid" ] || fail "the node was not restarted after kill -9"
for _ in $(seq 1 100); do inside test -S /var/lib/mesh/control.sock && break; sleep 0.2; done
inside systemctl stop mesh
[ "$(inside systemctl show -p Result --value mesh)" = success ] ||
  fail "the stop was not clean: $(inside systemctl show -p Result --value mesh)"
inside journalctl -u mesh --no-pager | grep -q "left the mesh" || fail "no graceful leave in the journal"
echo "restarted after kill -9; stopped cleanly with a graceful leave"

# 5. Remove keeps the key; purge takes it and the home.
inside dpkg -r mesh >/dev/null 2>&1 || fail "dpkg -r failed"
inside test -e /usr/bin/mesh && fail "dpkg -r left /usr/bin/mesh"
inside test -s /etc/mesh/key || fail "dpkg -r removed the key"
inside dpkg -P mesh >/dev/null 2>&1 || fail "dpkg -P failed"
inside test -e /etc/mesh && fail "dpkg -P left /etc/mesh"
inside test -e /var/lib/mesh && fail "dpkg -P left /var/lib/mesh"
echo "removed and purged: no binary, no key, no home"
echo "install test OK"
