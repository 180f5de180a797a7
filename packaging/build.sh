#!/usr/bin/env bash
# Builds mesh's packages on an x86-64 PC: a .deb and a tarball of the stripped binary for
#   x86_64   lab PCs (Debian 12 or newer, Ubuntu 22.04 or newer)
#   aarch64  64-bit Raspberry Pi OS (Pi 3, 4, 5)
#   armv7    32-bit Raspberry Pi OS (armhf: Pi 2, 3; Pi 4 and 5 too)
#
#   bash packaging/build.sh                  all three, into target/packages/
#   bash packaging/build.sh aarch64 armv7    some of them
#   bash packaging/build.sh --quick          CI's check: the x86-64 .deb from the debug
#                                            binary the tests built (no release build)
#
# Installs what it needs itself (root, Debian or Ubuntu): the cross C compilers that ring
# and blake3 use, the rustup targets, and cargo-deb. Time on the 2-core CI machine, from
# clean: 22 minutes for all three (docs/benchmarks.md, "Packages and the Pi").
# Every package is checked by packaging/check.sh afterwards.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
out=target/packages
gen=target/packaging
quick=false
arches=()
for a in "$@"; do
  case "$a" in
    --quick) quick=true ;;
    x86_64 | aarch64 | armv7) arches+=("$a") ;;
    *) echo "usage: bash packaging/build.sh [--quick] [x86_64] [aarch64] [armv7]" >&2; exit 2 ;;
  esac
done
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64 armv7)
$quick && arches=(x86_64)

triple() {
  case "$1" in
    x86_64) echo x86_64-unknown-linux-gnu ;;
    aarch64) echo aarch64-unknown-linux-gnu ;;
    armv7) echo armv7-unknown-linux-gnueabihf ;;
  esac
}
# The Debian packages of each arch's cross C compiler and its C library.
cross_packages() {
  case "$1" in
    aarch64) echo gcc-aarch64-linux-gnu libc6-dev-arm64-cross ;;
    armv7) echo gcc-arm-linux-gnueabihf libc6-dev-armhf-cross ;;
  esac
}
cross_gcc() {
  case "$1" in
    aarch64) echo aarch64-linux-gnu-gcc ;;
    armv7) echo arm-linux-gnueabihf-gcc ;;
  esac
}

echo "== what the build needs"
need=""
for a in "${arches[@]}"; do
  for p in $(cross_packages "$a"); do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
done
command -v dpkg-deb >/dev/null || need="$need dpkg"
if [ -n "$need" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
for a in "${arches[@]}"; do rustup target add "$(triple "$a")" >/dev/null 2>&1 || rustup target add "$(triple "$a")"; done
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi

mkdir -p "$out"
rm -rf "$gen"
mkdir -p "$gen/man" "$gen/completions"
version=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"name":"mesh","version":"\([^"]*\)".*/\1/p')

# The manual pages and completions come from the binary's own clap definitions, the same
# on every arch: a binary that runs here writes them.
host_binary() {
  if $quick; then
    cargo build --quiet --locked --bin mesh
    echo target/debug/mesh
  else
    build x86_64 >&2
    echo "target/$(triple x86_64)/dist/mesh"
  fi
}

build() {
  local a=$1 t
  t=$(triple "$a")
  echo "== cargo build --profile dist --target $t"
  if [ "$a" = x86_64 ]; then
    cargo build --quiet --locked --profile dist --target "$t" --bin mesh
  else
    local up=${t^^}
    up=${up//-/_}
    env "CARGO_TARGET_${up}_LINKER=$(cross_gcc "$a")" "CC_${t//-/_}=$(cross_gcc "$a")" \
      cargo build --quiet --locked --profile dist --target "$t" --bin mesh
  fi
}

host=$(host_binary)
"$host" manpage --dir "$gen/man"
"$host" completions bash >"$gen/completions/mesh.bash"
"$host" completions zsh >"$gen/completions/_mesh"
"$host" completions fish >"$gen/completions/mesh.fish"

for a in "${arches[@]}"; do
  t=$(triple "$a")
  if $quick; then
    # The debug binary, stripped, where a release build would be: the package's layout,
    # scripts and unit are what CI checks, not the binary's speed.
    mkdir -p "target/$t/dist"
    strip -o "target/$t/dist/mesh" target/debug/mesh
  elif [ "$a" != x86_64 ]; then
    build "$a"
  fi
  echo "== cargo deb --target $t"
  cargo deb --no-build --no-strip --profile dist --target "$t" --output "$out" $($quick && echo --fast)
  # The plain tarball: the stripped binary and how to use it.
  tardir="$gen/mesh-$version-$a"
  mkdir -p "$tardir"
  cp "target/$t/dist/mesh" README.md docs/raspberry-pi.md packaging/mesh.service "$tardir/"
  tar -C "$gen" -czf "$out/mesh-$version-$a.tar.gz" "mesh-$version-$a"
done

echo "== packages"
ls -l "$out"
