#!/usr/bin/env bash
# Build the player page: install the pinned powerbi-client from npm (no install scripts) and
# copy its bundle to web/vendor/, where the player serves it from.
set -euo pipefail
cd "$(dirname "$0")/../web"
if ! command -v npm >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
node build.mjs
