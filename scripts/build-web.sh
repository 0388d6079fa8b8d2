#!/usr/bin/env bash
# Build the player page: install the pinned powerbi-client from npm (no install scripts) and
# copy its bundle to web/vendor/, where the player serves it from.
set -euo pipefail
cd "$(dirname "$0")/../web"
# shellcheck source=scripts/lib.sh
. ../scripts/lib.sh
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
node build.mjs
