#!/usr/bin/env bash
# Checks the packages that packaging/build.sh wrote to target/packages/: each .deb's
# control data, maintainer scripts and paths; that its binary is for its arch and
# stripped; the systemd unit with `systemd-analyze verify` (which must print nothing) and
# `systemd-analyze security` (exposure at most 2.5 of 10); and each tarball's contents.
#
#   bash packaging/check.sh            every package in target/packages/
#
# Takes a few seconds. Run by CI after `packaging/build.sh --quick`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/packages
work=$(mktemp -d /tmp/mesh-pkgcheck-XXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v readelf >/dev/null || fail "readelf missing (apt-get install binutils)"
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing (apt-get install systemd)"

debs=("$out"/mesh_*.deb)
[ -e "${debs[0]}" ] || fail "no .deb in $out: run packaging/build.sh first"

# arch in the .deb name -> what readelf calls the machine
machine_of() {
  case "$1" in
    amd64) echo "X86-64" ;;
    arm64) echo "AArch64" ;;
    armhf) echo "ARM" ;;
    *) fail "unknown package arch $1" ;;
  esac
}

for deb in "${debs[@]}"; do
  name=$(basename "$deb")
  arch=$(dpkg-deb --field "$deb" Architecture)
  echo "== $name ($arch)"
  [ "$(dpkg-deb --field "$deb" Package)" = mesh ] || fail "$name: package is not named mesh"
  dpkg-deb --field "$deb" Depends | grep -q 'libc6 (>= 2.34)' || fail "$name: Depends lacks libc6 (>= 2.34)"

  # Maintainer scripts: present, executable in the package, and valid sh.
  ctl="$work/$arch-control"
  dpkg-deb --control "$deb" "$ctl"
  for s in postinst prerm postrm; do
    [ -x "$ctl/$s" ] || fail "$name: no executable $s"
    sh -n "$ctl/$s" || fail "$name: $s is not valid sh"
  done
  grep -qx /etc/default/mesh "$ctl/conffiles" || fail "$name: /etc/default/mesh is not a conffile"
  grep -q systemd-sysusers "$ctl/postinst" || fail "$name: postinst does not make the mesh user"
  grep -q "enable --now" "$ctl/postinst" || fail "$name: postinst does not say how to start the service"

  # Paths.
  dpkg-deb --contents "$deb" | awk '{print $NF}' >"$work/$arch-paths"
  for p in ./usr/bin/mesh ./usr/lib/systemd/system/mesh.service ./usr/lib/sysusers.d/mesh.conf \
    ./usr/lib/tmpfiles.d/mesh.conf ./etc/default/mesh ./usr/share/doc/mesh/raspberry-pi.md \
    ./usr/share/man/man1/mesh.1.gz ./usr/share/man/man1/mesh-join.1.gz \
    ./usr/share/bash-completion/completions/mesh; do
    grep -qx "$p" "$work/$arch-paths" || fail "$name: $p missing"
  done
  # Every file (directories end in /) lies under a path the package means to own.
  extra=$(grep -v '/$' "$work/$arch-paths" |
    grep -v -E '^\./(usr/bin|usr/lib/systemd/system|usr/lib/sysusers\.d|usr/lib/tmpfiles\.d|usr/share|etc/default)/' || true)
  [ -z "$extra" ] || fail "$name: unexpected files: $extra"

  # The binary: this arch's, stripped.
  root="$work/$arch-root"
  dpkg-deb --extract "$deb" "$root"
  bin="$root/usr/bin/mesh"
  want=$(machine_of "$arch")
  readelf -h "$bin" | grep -q "Machine: *.*$want" || fail "$name: usr/bin/mesh is not a $want binary"
  if [ "$arch" = armhf ]; then
    readelf -A "$bin" | grep -q "Tag_ABI_VFP_args: VFP registers" || fail "$name: not a hard-float binary"
  fi
  if readelf -S "$bin" | grep -q -E '\.symtab|\.debug_info'; then
    fail "$name: usr/bin/mesh is not stripped"
  fi
  echo "   $(stat -c %s "$deb") bytes packed, binary $(stat -c %s "$bin") bytes, stripped, $want"

  # The unit. systemd-analyze verify exits 0 even on unknown keys, so it must print
  # nothing at all. The units it names (network-online.target, ...) are this machine's.
  cp -rn /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/"
  verify=$(systemd-analyze verify --man=no --root="$root" "$root/usr/lib/systemd/system/mesh.service" 2>&1 || true)
  [ -z "$verify" ] || fail "$name: systemd-analyze verify says: $verify"
  score=$(systemd-analyze security --offline=true --root="$root" "$root/usr/lib/systemd/system/mesh.service" 2>/dev/null |
    sed -n 's/.*Overall exposure level for mesh.service: \([0-9.]*\).*/\1/p')
  [ -n "$score" ] || fail "$name: systemd-analyze security gave no score"
  awk -v s="$score" 'BEGIN { exit !(s <= 2.5) }' || fail "$name: the unit's exposure is $score (at most 2.5)"
  echo "   unit: systemd-analyze verify clean, exposure $score"
done

for tgz in "$out"/mesh-*.tar.gz; do
  [ -e "$tgz" ] || continue
  echo "== $(basename "$tgz")"
  tar -tzf "$tgz" >"$work/tar"
  for f in mesh README.md raspberry-pi.md mesh.service; do
    grep -q "/$f\$" "$work/tar" || fail "$(basename "$tgz") lacks $f"
  done
done
echo "packages OK"
