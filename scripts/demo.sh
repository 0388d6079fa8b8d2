#!/usr/bin/env bash
# Run pbikiosk on its built-in demo tenant: no configuration, no Microsoft account.
# On a fresh Debian 12 / Raspberry Pi OS machine it first installs what it needs.
#
#   scripts/demo.sh                      a 1280x720 window on this desktop (close it to stop)
#   scripts/demo.sh --scenario mfa       preview a problem's status screen (see README)
#   DEMO_SECONDS=40 scripts/demo.sh      without a display: run 40 s under Xvfb, save screenshots
#
# Any other arguments go to `pbikiosk demo` (e.g. --seconds 5, --token-lifetime 60).
set -euo pipefail
cd "$(dirname "$0")/.."
# A release build only looks for the page where it is installed: point it at the source tree's.
export PBIKIOSK_WEB_DIR=${PBIKIOSK_WEB_DIR:-$PWD/web}
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

pkgs=(build-essential pkg-config ca-certificates curl
      libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev
      xvfb xauth imagemagick fonts-dejavu-core)
# Node may come from elsewhere than Debian (then Debian's npm would conflict with it).
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
apt_install "${pkgs[@]}"
if ! command -v cargo >/dev/null 2>&1; then
  echo "Rust is needed: install it with rustup (https://rustup.rs), then run this again." >&2
  exit 1
fi

echo "== building the player page and the player (release; the first build takes a few minutes)"
scripts/build-web.sh
cargo build --release --locked
bin=target/release/pbikiosk

if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "== pbikiosk demo: close the window (or Ctrl+C) to stop; status at http://127.0.0.1:9520/status"
  exec "$bin" demo --window 1280x720 "$@"
fi

# No display: run under a virtual one, take screenshots, print what /status says.
secs=${DEMO_SECONDS:-30}
out=target/demo
mkdir -p "$out"
echo "== no display: running the demo ${secs}s under Xvfb; screenshots go to $out/"
# shellcheck disable=SC2016  # expanded by the inner bash
xvfb-run -a -s '-screen 0 1280x720x24' bash -c '
  "$0" demo --status-listen 127.0.0.1:9520 "${@:3}" >"$1/demo.log" 2>&1 &
  pid=$!
  half=$(( $2 / 2 ))
  sleep "$half"; import -window root "$1/demo-1.png"
  sleep "$half"; import -window root "$1/demo-2.png"
  curl -s 127.0.0.1:9520/status > "$1/status.json" || true
  kill $pid; wait $pid 2>/dev/null || true
' "$bin" "$out" "$secs" "$@"
echo "== /status at the end:"
cat "$out/status.json"; echo
echo "== screenshots: $out/demo-1.png $out/demo-2.png (log: $out/demo.log)"
