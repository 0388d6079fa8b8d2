# shellcheck shell=bash
# Shared by the project's scripts: sourced, never run. Not by scripts/install.sh, which the .deb
# ships alone and which installs with its own apt options.

# apt_install PKG...: install those of the Debian packages PKG that are not installed yet (one
# `apt-get update` first, without recommends, quietly), with sudo when not run as root. Says on
# stderr what it installs, so that a script's standard output stays its own.
apt_install() {
  local missing=() p sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then return 0; fi
  echo "== installing ${missing[*]}" >&2
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
