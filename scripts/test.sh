#!/usr/bin/env bash
# Run every test pbikiosk has, on a fresh Debian 12 machine or a developer's.
# Installs what the tests need first (apt and npm packages), so a clean machine passes too.
#
#   scripts/test.sh            all tests; the fault suite and the soak in their reduced form
#   scripts/test.sh --full     the full fault suite (long faults) and the 1,000-switch soak
#   SKIP_INSTALL=1 scripts/test.sh   skip the install step (offline re-runs)
set -euo pipefail
cd "$(dirname "$0")/.."

full=0
for a in "$@"; do
  case "$a" in
    --full) full=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
[ "$full" = 1 ] && export PBIKIOSK_FULL_FAULTS=1

log() { printf '\n== %s\n' "$*"; }

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  # Build tools for the Rust crates (aws-lc-sys needs a C compiler; pkg-config for -sys
  # crates), and WebKitGTK/GTK headers for the webview (wry/tao).
  # End-to-end tests: a virtual X server, and ImageMagick's import for screenshots.
  apt_install build-essential pkg-config ca-certificates \
    libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev \
    xvfb xauth x11-utils imagemagick fonts-dejavu-core faketime curl python3
  # WebKit's web process sandbox, which the player turns on.
  apt_install bubblewrap xdg-dbus-proxy
  # promtool (Debian's prometheus package) lints /metrics, the textfile and the example
  # alert rules; without it those checks are skipped.
  apt_install prometheus
  # Packaging checks: systemd-analyze verify on the units, shellcheck on the scripts.
  apt_install systemd shellcheck
  # (web/test/run.sh installs what the browser tests need: node, npm, chromium, openssl.)
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings

log "build the player page (pinned powerbi-client from npm)"
scripts/build-web.sh

log "cargo test (unit, simulator integration, end-to-end and fault injection under Xvfb)"
mkdir -p target/e2e && : >target/e2e/faults.txt
# The GUI tests are #[ignore]d so a plain `cargo test` runs without Xvfb; here they run too.
cargo test --locked --all-targets -- --include-ignored --nocapture
log "fault figures"
cat target/e2e/faults.txt

if [ "$full" = 1 ]; then
  log "soak: 1,000 switches at 1 s per item (release build)"
  scripts/bench.sh --soak 1000
else
  # The debug build cargo test just made: this checks behaviour (no reload, no error), the
  # figures that matter come from the release build (scripts/bench.sh --soak).
  log "soak, reduced: 60 switches at 1 s per item (debug build)"
  scripts/bench.sh --soak 60 --bin target/debug/pbikiosk
fi

if [ -x web/test/run.sh ]; then
  log "web tests (page-protocol contract; headless Chromium, real powerbi-client)"
  web/test/run.sh
fi

log "packaging quick checks (units, install.sh, scripts)"
# The heavy packaging tests (both .debs, arm64 under qemu, install/upgrade/purge in a Debian
# root) are scripts/test-packaging.sh: ~25 min cold, run them on their own.
scripts/test-units.sh

log "all tests passed"
