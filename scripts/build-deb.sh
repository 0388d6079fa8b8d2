#!/usr/bin/env bash
# Build pbikiosk's Debian packages with cargo-deb.
#
#   scripts/build-deb.sh [amd64] [arm64]     (default: amd64)
#
# amd64 is built natively. arm64 (Raspberry Pi 4/5, 64-bit OS) is cross-built against a
# bookworm arm64 sysroot made here under target/sysroot-arm64 (about 950 MB, kept for reruns):
# a separate apt instance, with arm64 as its only architecture and an empty package database,
# downloads libwebkit2gtk-4.1-dev and everything it needs, and each .deb is unpacked with
# dpkg -x. This leaves the host's dpkg alone (no `dpkg --add-architecture`).
#
# Installs what it needs when missing, saying so: cargo-deb (`cargo install cargo-deb --locked`);
# for arm64 also gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, debian-archive-keyring and
# `rustup target add aarch64-unknown-linux-gnu`. The page's vendor bundle is built first with
# scripts/build-web.sh when it is missing.
# Environment: DEB_VERSION (override the package version), PBIKIOSK_MAINTAINER ("Name <mail>":
# the package's Maintainer and changelog signature, for whoever builds for a fleet; default the
# one in Cargo.toml), SYSROOT (arm64 sysroot folder),
# MIRROR (Debian mirror for the sysroot, default http://deb.debian.org/debian), TOOLS_ONLY=1
# (only install the tools for the given architectures, build nothing).
# Output: target/debian/pbikiosk_<version>_<arch>.deb; prints each path on the last lines.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ROOT=$PWD
SYSROOT=${SYSROOT:-$ROOT/target/sysroot-arm64}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ARM_TARGET=aarch64-unknown-linux-gnu

log() { printf '== %s\n' "$*" >&2; }

arches=("$@")
[ ${#arches[@]} -eq 0 ] && arches=(amd64)
for a in "${arches[@]}"; do
  case $a in amd64 | arm64) ;; *) echo "unknown architecture '$a' (amd64 or arm64)" >&2; exit 2 ;; esac
done

# Maintainer: Debian wants a real "Name <address>"; whoever builds for a fleet signs as
# themselves. The default is Cargo.toml's.
maintainer=${PBIKIOSK_MAINTAINER:-$(sed -n 's/^maintainer = "\(.*\)"$/\1/p' Cargo.toml | head -1)}
case $maintainer in
  [!\ \<]*" <"[!\ @\<\>]*@[!\ @\<\>]*.[!\ @\<\>]*">") ;;
  *) echo "PBIKIOSK_MAINTAINER must read 'Name <address@domain>', not '$maintainer'" >&2; exit 2 ;;
esac

# The tools, before anything is built: a fresh machine has no `cargo deb`.
if [ "${SYSROOT_ONLY:-0}" != 1 ]; then
  if ! cargo deb --version >/dev/null 2>&1; then
    log "cargo-deb is missing: installing it (cargo install cargo-deb --locked)"
    cargo install cargo-deb --locked >&2
  fi
  for a in "${arches[@]}"; do
    [ "$a" = arm64 ] || continue
    apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross debian-archive-keyring
    if ! rustup target list --installed | grep -qx "$ARM_TARGET"; then
      log "adding the Rust target $ARM_TARGET"
      rustup target add "$ARM_TARGET" >&2
    fi
  done
fi
[ "${TOOLS_ONLY:-0}" = 1 ] && exit 0

if [ ! -f web/vendor/powerbi.min.js ]; then
  log "building the page's vendor bundle (scripts/build-web.sh)"
  # Its output (npm's "added N packages") goes to stderr: stdout is the list of packages built.
  scripts/build-web.sh >&2
fi

version_args=()
[ -n "${DEB_VERSION:-}" ] && version_args=(--deb-version "$DEB_VERSION")
version_args+=(--maintainer "$maintainer")

# What cargo-deb packages besides the binary (see Cargo.toml's assets): the manual page, made
# by `pbikiosk manpage` from the command line's definition, and a Debian changelog for this
# version. The page comes from a build for this machine: the arm64 binary cannot run here, and
# both describe the same command line.
meta=$ROOT/target/pbikiosk-deb
mkdir -p "$meta"
log "writing the manual page (pbikiosk manpage)"
cargo run --release --locked --quiet -- manpage >"$meta/pbikiosk.1"
gzip -9n <"$meta/pbikiosk.1" >"$meta/pbikiosk.1.gz"
crate_version=$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"name":"pbikiosk","version":"\([^"]*\)".*/\1/p')
deb_version=${DEB_VERSION:-$crate_version-1}
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# The commit's date, not the build's: the same commit gives the same package.
when=$(git log -1 --format=%aD 2>/dev/null || date -R)
cat >"$meta/changelog" <<LOG
pbikiosk ($deb_version) stable; urgency=medium

  * Built from pbikiosk $crate_version, commit $commit.

 -- $maintainer  $when
LOG

# The arm64 sysroot: every arm64 package libwebkit2gtk-4.1-dev needs, unpacked.
make_sysroot() {
  if [ -f "$SYSROOT/.complete" ]; then
    return 0
  fi
  log "making the arm64 sysroot in $SYSROOT (downloads ~480 packages once)"
  local apt_dir="$ROOT/target/sysroot-apt"
  rm -rf "$SYSROOT"
  mkdir -p "$apt_dir"/{lists/partial,archives/partial,etc/preferences.d,etc/sources.list.d} "$SYSROOT"
  : >"$apt_dir/status"
  cat >"$apt_dir/etc/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bookworm-updates main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${MIRROR%/debian}/debian-security bookworm-security main
SRC
  local apt=(apt-get -q -o "Dir::State=$apt_dir" -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::State::status=$apt_dir/status" -o "Dir::Cache=$apt_dir" -o "Dir::Cache::archives=$apt_dir/archives"
    -o "Dir::Etc::SourceList=$apt_dir/etc/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/etc/sources.list.d"
    -o "Dir::Etc::Preferences=-" -o "Dir::Etc::PreferencesParts=$apt_dir/etc/preferences.d"
    -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64"
    -o "APT::Install-Recommends=false" -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
  "${apt[@]}" update >/dev/null
  "${apt[@]}" install -y --download-only \
    libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev \
    libc6-dev libgcc-12-dev >/dev/null
  local n=0
  : >"$SYSROOT/.packages"
  for deb in "$apt_dir"/archives/*.deb; do
    dpkg-deb -x "$deb" "$SYSROOT"
    # Remember which package gives which file (the tests map sonames to packages with it).
    {
      printf '%s\t' "$(dpkg-deb -f "$deb" Package)"
      dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' | tr '\n' ' '
      echo
    } >>"$SYSROOT/.packages"
    n=$((n + 1))
  done
  # Absolute symlinks point into the host: make them relative to the sysroot.
  find "$SYSROOT" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
    local target dir rel
    target=$(readlink "$link")
    dir=$(dirname "$link")
    rel=$(realpath -m --relative-to="$dir" "$SYSROOT$target")
    ln -sfn "$rel" "$link"
  done
  rm -rf "$apt_dir/archives"
  touch "$SYSROOT/.complete"
  log "sysroot: $n packages, $(du -sh "$SYSROOT" | cut -f1)"
}

[ "${SYSROOT_ONLY:-0}" = 1 ] && { make_sysroot; exit 0; }

for arch in "${arches[@]}"; do
  case $arch in
  amd64)
    log "building the amd64 package"
    cargo deb --locked "${version_args[@]}" >&2
    ;;
  arm64)
    make_sysroot
    log "cross-building the arm64 package against $SYSROOT"
    export PKG_CONFIG_SYSROOT_DIR=$SYSROOT PKG_CONFIG_ALLOW_CROSS=1
    export PKG_CONFIG_LIBDIR=$SYSROOT/usr/lib/aarch64-linux-gnu/pkgconfig:$SYSROOT/usr/share/pkgconfig
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=--sysroot=$SYSROOT"
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    cargo deb --locked --target "$ARM_TARGET" --variant arm64 "${version_args[@]}" >&2
    ;;
  esac
done

ver=${DEB_VERSION:-$(cargo metadata --no-deps --format-version 1 | sed -n 's/.*"name":"pbikiosk","version":"\([^"]*\)".*/\1/p')}
for arch in "${arches[@]}"; do
  if [ "$arch" = amd64 ]; then d=target/debian; else d=target/$ARM_TARGET/debian; fi
  f=
  for c in "$d"/pbikiosk_"${ver}"*_"$arch".deb; do [ -e "$c" ] && f=$c; done
  [ -n "$f" ] || { echo "no $arch package found in $d" >&2; exit 1; }
  echo "$ROOT/$f"
done
