#!/usr/bin/env bash
# Figures for pbikiosk on this machine, from the release binary on the built-in demo under Xvfb:
#   start -> first rendered report (ms), switch gap between items (ms, measured in the page),
#   whole process tree PSS (MiB) after the first report and after the run, idle CPU of the host
#   process (% of one core), stripped binary size.
# Figures, not assertions: CI may run --quick as a smoke test, timings are never asserted.
#
#   scripts/bench.sh               10-minute rotation (5 s per page)
#   scripts/bench.sh --quick       1-minute rotation
#   scripts/bench.sh --minutes N   N-minute rotation
#
# Not done yet (issue #5): the side-by-side Chromium --kiosk baseline, the 1,000-switch soak.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) minutes=1 ;;
    --minutes) minutes="$2"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

command -v Xvfb >/dev/null && command -v curl >/dev/null && command -v bc >/dev/null || {
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends xvfb xauth curl bc >/dev/null
}
scripts/build-web.sh >/dev/null
cargo build --release --locked -q
bin=target/release/pbikiosk
out=target/bench; mkdir -p "$out"

tree_pids() { echo "$1"; local c; for c in $(pgrep -P "$1" || true); do tree_pids "$c"; done; }
pss_mib() {
  local sum=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true)
    sum=$((sum + ${v:-0}))
  done
  echo "scale=1; $sum/1024" | bc
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

disp=:$(( 150 + RANDOM % 50 ))
Xvfb "$disp" -screen 0 1280x720x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null; kill $pid 2>/dev/null || true' EXIT
sleep 1

run_demo() { # seconds-per-page
  DISPLAY=$disp "$bin" demo --seconds "$1" --window 1280x720 --status-listen 127.0.0.1:9599 \
    >"$out/demo.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    s=$(curl -sf 127.0.0.1:9599/status || true)
    [ -n "$s" ] && [ "$(echo "$s" | json 'd["first_render_ms"] is not None')" = True ] && break
    sleep 0.2
  done
}

# 1. Rotation: first render, switch gaps, memory over the run.
run_demo 5
first_ms=$(curl -s 127.0.0.1:9599/status | json 'd["first_render_ms"]')
sleep 5
pss_start=$(pss_mib "$pid")
sleep $(( minutes * 60 ))
status=$(curl -s 127.0.0.1:9599/status)
pss_end=$(pss_mib "$pid")
echo "$status" > "$out/status-end.json"
switches=$(echo "$status" | json 'd["switches_total"]')
reloads=$(echo "$status" | json 'd["page_reloads_total"]')
gaps=$(echo "$status" | json '"median %.1f / p95 %.1f / max %.1f over %d" % (d["switch_gaps"]["median_ms"], d["switch_gaps"]["p95_ms"], d["switch_gaps"]["max_ms"], d["switch_gaps"]["count"])')
kill "$pid"; wait "$pid" 2>/dev/null || true

# 2. Idle: one report page on screen, nothing changing but its clock.
run_demo 3600
sleep 10
t0=$(cpu_ticks "$pid"); sleep 30; t1=$(cpu_ticks "$pid")
hz=$(getconf CLK_TCK)
idle_cpu=$(echo "scale=1; ($t1-$t0)*100/($hz*30)" | bc)
kill "$pid"; wait "$pid" 2>/dev/null || true

size_mib=$(echo "scale=1; $(stat -c %s "$bin")/1048576" | bc)
growth=$(echo "scale=1; ($pss_end-$pss_start)*100/$pss_start" | bc)
cat <<TABLE | tee "$out/figures.txt"
pbikiosk $(git describe --always --dirty 2>/dev/null) on $(nproc) cores, $(date -u +%F), Xvfb 1280x720, demo tenant
| figure                                        | value |
|-----------------------------------------------|-------|
| start -> first rendered report                | ${first_ms} ms |
| switch gap between items (page-measured)      | ${gaps} |
| process tree PSS after first report           | ${pss_start} MiB |
| process tree PSS after ${minutes} min rotation           | ${pss_end} MiB (${growth} %) |
| playlist steps / page reloads in the run      | ${switches} / ${reloads} |
| host process CPU, report idle on screen       | ${idle_cpu} % of one core |
| release binary (stripped)                     | ${size_mib} MiB |
TABLE
