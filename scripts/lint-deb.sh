#!/usr/bin/env bash
# Debian's own package checks on pbikiosk's .debs:
#
#   scripts/lint-deb.sh target/debian/pbikiosk_<version>_amd64.deb [more.deb...]
#
# Runs `lintian` (installed with `apt-get install lintian`) and fails on any error, and on any
# warning that is not in the list below, where each one says why a Debian maintainer would
# accept it for this package. Info and pedantic tags are printed, never fatal. The last line
# sums up (scripts/test-packaging.sh shows it). README.md (packaging) lists the info notes the
# release packages get and why each is expected.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 PACKAGE.deb..." >&2; exit 2; }
command -v lintian >/dev/null || { echo "lintian is not installed (apt-get install lintian)" >&2; exit 2; }

# Warnings accepted, as "tag: why". Matched on the tag name only.
ALLOWED=(
  "initial-upload-closes-no-bugs: the changelog's first entry closes no ITP bug because these packages are built by fleets for their own screens, not uploaded to Debian's archive (whose maintainers file an ITP first)"
)

errors=0 unexplained=0 explained=0 infos=0
for deb in "$@"; do
  # --tag-display-limit 0: every occurrence, so a new one is seen. Exit status is not used:
  # lintian exits 1 on errors and warnings alike; the tags are read instead.
  out=$(lintian --tag-display-limit 0 --display-info --pedantic "$deb" 2>&1 || true)
  printf '%s\n' "$out"
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    level=${line%%:*}
    tag=$(awk '{print $3}' <<<"$line")
    case $level in
    E) errors=$((errors + 1)) ;;
    W)
      why=
      for a in "${ALLOWED[@]}"; do
        [ "${a%%:*}" = "$tag" ] && why=${a#*: }
      done
      if [ -n "$why" ]; then
        explained=$((explained + 1))
        echo "   explained: $tag: $why"
      else
        unexplained=$((unexplained + 1))
        echo "   NOT EXPLAINED: $tag (add it to scripts/lint-deb.sh with the reason, or fix it)"
      fi
      ;;
    I | P | X | N | O) infos=$((infos + 1)) ;;
    esac
  done <<<"$out"
done
echo "lintian: $errors errors, $unexplained unexplained warnings, $explained explained warnings, $infos info/pedantic"
[ "$errors" -eq 0 ] && [ "$unexplained" -eq 0 ]
