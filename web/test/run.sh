#!/usr/bin/env bash
# Browser tests of web/ alone: installs what they need (npm packages from the lock file, Debian's chromium,
# openssl), builds web/vendor/ and runs node's test runner. Exits non-zero on any failure.
# No browser is downloaded: playwright-core drives /usr/bin/chromium (override with PBIKIOSK_CHROMIUM).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. ../scripts/lib.sh

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
[ -x "${PBIKIOSK_CHROMIUM:-/usr/bin/chromium}" ] || need_apt+=(chromium)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# Fonts, so screenshots show text (chromium pulls some in; make sure of a basic set).
[ -d /usr/share/fonts/truetype/dejavu ] || need_apt+=(fonts-dejavu-core)
apt_install "${need_apt[@]}"

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
  echo "node $node_major is too old (need 18+)" >&2
  exit 1
fi

# --ignore-scripts: nothing in the tree needs an install script, and none may fetch a browser.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
node build.mjs
mkdir -p test/out
node --test test/
