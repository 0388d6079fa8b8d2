#!/usr/bin/env bash
# pbikiosk side by side with the baseline a user would build instead: Debian's Chromium in --kiosk
# mode on a minimal page (bench/chromium/) with the same powerbi-client and one fixed token.
# Both run in turn under the same Xvfb (1280x720) against the same simulated tenant
# (bench/sim-scenario.toml: the demo's three reports, one page each, so every step is a switch
# between items). Each figure is the median of several runs. Figures, not assertions: timings are
# never asserted.
#
#   scripts/bench.sh                 3 runs of 12 switches at 3 s per item, 20 s idle (~8 min)
#   scripts/bench.sh --quick         CI smoke: 3 runs of 4 switches at 2 s, 8 s idle (< 3 min once built)
#   scripts/bench.sh --runs N --switches N --seconds S --idle S
#   scripts/bench.sh --soak [N]      pbikiosk only: N switches (default 1000) at 1 s per item;
#                                    PSS at start/end, growth, reloads, errors; exit 1 on any
#                                    reload or error (scripts/test.sh runs a reduced soak)
#   scripts/bench.sh --soak-seconds S   item duration of the soak
#   scripts/bench.sh --soak --recycle-margin MIB [--recycle-baseline S] [--recycle-interval S]
#                                    [--recycle-sample S]: the memory policy during the soak
#                                    ([player] memory_* in seconds); the soak then reports
#                                    recycles and the tree's PSS min/max/last (sampled every 5 s)
#   scripts/bench.sh --soak N --isolate   the soak in a mount namespace of its own (root, unshare)
#                                    where every library file the tree maps (WebKit, JavaScriptCore,
#                                    libLLVM, Mesa's drivers, GTK, ICU, libc...: read from the
#                                    /proc/PID/maps of a probe run) is bind-mounted from a private
#                                    copy under target/bench/isolated/. New inodes share no page
#                                    with any process outside, so the tree's PSS no longer moves
#                                    as other WebKit processes on the machine come and go; the
#                                    WebKit children and bubblewrap inherit the namespace. Checked:
#                                    the libwebkit2gtk mapped in the web process must be the copy
#                                    (its inode differs from the system file's), else exit 1.
#                                    Frames of the screen around the first recycles are saved as
#                                    target/bench/recycle-R-frame-K.png.
#   scripts/bench.sh --no-build | --bin PATH   use the release build as it is / another binary
#
# Output: the table on stdout and in target/bench/figures.txt (soak: target/bench/soak.txt), logs
# and raw samples in target/bench/.
set -euo pipefail
self=$(readlink -f "$0") args=("$@")
cd "$(dirname "$0")/.."
# A release build only looks for the page where it is installed: point it at the source tree's.
export PBIKIOSK_WEB_DIR=${PBIKIOSK_WEB_DIR:-$PWD/web}
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

runs=3 switches=12 seconds=3 idle=20 soak=0 soak_seconds=1 build=1 bin=target/release/pbikiosk
isolate=0
policy=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) runs=3 switches=4 seconds=2 idle=8 ;;
    --runs) runs="$2"; shift ;;
    --switches) switches="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --idle) idle="$2"; shift ;;
    --soak) soak=1000; if [[ "${2:-}" =~ ^[0-9]+$ ]]; then soak="$2"; shift; fi ;;
    --soak-seconds) soak_seconds="$2"; shift ;;
    --recycle-margin) policy+=(--memory-margin-mib "$2"); shift ;;
    --recycle-baseline) policy+=(--memory-baseline-seconds "$2"); shift ;;
    --recycle-interval) policy+=(--memory-min-interval-seconds "$2"); shift ;;
    --recycle-sample) policy+=(--memory-sample-seconds "$2"); shift ;;
    --isolate) isolate=1 ;;
    --no-build) build=0 ;;
    --bin) bin="$2"; build=0; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$isolate" = 1 ]; then
  [ "$soak" -gt 0 ] || { echo "--isolate is for the soak (--soak N)" >&2; exit 2; }
  if [ -z "${PBIKIOSK_BENCH_ISOLATED:-}" ]; then
    # The whole run (Xvfb, pbikiosk, its WebKit children, bubblewrap) in a mount namespace of
    # its own: the bind mounts below are seen by nobody else and vanish with the namespace.
    exec unshare --mount --propagation private env PBIKIOSK_BENCH_ISOLATED=1 "$self" "${args[@]}"
  fi
fi

need=()
for c in Xvfb:xvfb xauth:xauth curl:curl chromium:chromium node:nodejs openssl:openssl python3:python3; do
  command -v "${c%%:*}" >/dev/null || need+=("${c##*:}")
done
apt_install "${need[@]}"
if [ "$build" = 1 ]; then
  scripts/build-web.sh >/dev/null
  cargo build --release --locked -q
fi
scenario=bench/sim-scenario.toml
out=target/bench; mkdir -p "$out"
samples="$out/samples.tsv"; : >"$samples"
began=$(date +%s)

# ---------------------------------------------------------------- helpers
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }
pss_by_process() { # "comm=MiB ..." for each process of the tree, to see which one grows
  local p v line=""
  for p in $(tree_pids "$1"); do
    v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true)
    line="$line $(cut -c1-15 "/proc/$p/comm" 2>/dev/null)=$(( ${v:-0} / 1024 ))"
  done
  echo "${line# }"
}
pss_settled() { # median of 5 samples 0.4 s apart: one sample lands anywhere in a switch
  local v=() i
  for i in 1 2 3 4 5; do v+=("$(pss_mib "$1")"); sleep 0.4; done
  python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "${v[@]}"
}
tree_pids() { echo "$1"; local c; for c in $(pgrep -P "$1" || true); do tree_pids "$c"; done; }
pss_mib() { # whole process tree, from smaps_rollup (shared pages split fairly, unlike RSS)
  local sum=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true)
    sum=$((sum + ${v:-0}))
  done
  python3 -c "print(round($sum/1024, 1))"
}
private_kib() { # one process: Private_Clean + Private_Dirty (pages no other process maps)
  awk '/^Private_(Clean|Dirty):/{s+=$2} END{print s+0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0
}
private_mib() { # whole process tree; unlike PSS, it does not depend on what else runs
  local sum=0 p
  for p in $(tree_pids "$1"); do sum=$((sum + $(private_kib "$p"))); done
  python3 -c "print(round($sum/1024, 1))"
}
private_by_process() { # "comm=MiB ..." of private memory for each process of the tree
  local p line=""
  for p in $(tree_pids "$1"); do
    line="$line $(cut -c1-15 "/proc/$p/comm" 2>/dev/null)=$(( $(private_kib "$p") / 1024 ))"
  done
  echo "${line# }"
}
gl_mib() { # PSS of the software-rendering libraries in the tree (no GPU here): Mesa's (libLLVM,
  # dri/*_dri.so, libEGL/libGL*) and Chromium's (SwiftShader, ANGLE's libGLESv2/libEGL)
  local sum=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '/^[0-9a-f]+-/{m=(NF>=6?$6:"")} /^Pss:/{if (m ~ /libLLVM|\/dri\/|swiftshader|libGLESv2|libEGL|libGL[.X]/) s+=$2} END{print s+0}' \
      "/proc/$p/smaps" 2>/dev/null || echo 0)
    sum=$((sum + ${v:-0}))
  done
  python3 -c "print(round($sum/1024, 1))"
}
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
tree_ticks() { local sum=0 p; for p in $(tree_pids "$1"); do sum=$((sum + $(ticks "$p"))); done; echo "$sum"; }
pct() { python3 -c "print(round(($2-$1)*100/($(getconf CLK_TCK)*$3), 1))"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
sample() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$samples"; }
stop() { # pid: TERM, then KILL after 5 s
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
wait_until() { # seconds, command...: poll until the command succeeds
  local limit=$1; shift
  local end=$(( $(date +%s) + limit ))
  until "$@"; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.1
  done
}

disp=:$(( 150 + RANDOM % 50 ))
while [ -e "/tmp/.X11-unix/X${disp#:}" ]; do disp=:$(( 150 + RANDOM % 50 )); done
Xvfb "$disp" -screen 0 1280x720x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
pids_to_stop=()
cleanup() {
  local p; for p in "${pids_to_stop[@]}"; do stop "$p"; done; stop "$xvfb"
  # The private library copies (~800 MiB): the bind mounts die with the namespace.
  if [ "$isolate" = 1 ]; then rm -rf "$out/isolated"; fi
}
trap cleanup EXIT
wait_until 10 test -e "/tmp/.X11-unix/X${disp#:}"

# ---------------------------------------------------------------- pbikiosk
status_port=0
pk_status() { curl -sf "127.0.0.1:$status_port/status"; }
pk_rendered() { [ "$(pk_status | json 'd["first_render_ms"] is not None' 2>/dev/null)" = True ]; }
pk_switches() { pk_status | json 'd["switches_total"]'; }
pk_at_least() { [ "$(pk_switches 2>/dev/null || echo 0)" -ge "$1" ]; }

start_pbikiosk() { # seconds per item, log name, extra arguments...
  status_port=$(free_port)
  local secs=$1 name=$2; shift 2
  DISPLAY=$disp "$bin" demo --scenario "$scenario" --seconds "$secs" --window 1280x720 \
    --status-listen "127.0.0.1:$status_port" --sim-listen "127.0.0.1:$(free_port)" "$@" >"$out/$name.log" 2>&1 &
  pid=$!
  pids_to_stop+=("$pid")
  wait_until 90 pk_rendered || { echo "pbikiosk did not render in 90 s (see $out/$name.log)" >&2; exit 1; }
}

run_pbikiosk() { # run number
  start_pbikiosk "$seconds" "pbikiosk-rotation-$1"
  sample pbikiosk first_ms "$(pk_status | json 'd["first_render_ms"]')"
  sleep 2
  sample pbikiosk pss_first "$(pss_mib "$pid")"
  local base; base=$(pk_switches)
  wait_until $(( switches * seconds * 4 + 60 )) pk_at_least $(( base + switches )) \
    || { echo "pbikiosk: $switches switches did not happen" >&2; exit 1; }
  sleep 1
  sample pbikiosk pss_switches "$(pss_mib "$pid")"
  sample pbikiosk gl_switches "$(gl_mib "$pid")"
  local s; s=$(pk_status)
  sample pbikiosk gap_ms "$(echo "$s" | json 'd["switch_gaps"]["median_ms"]')"
  sample pbikiosk gap_max_ms "$(echo "$s" | json 'd["switch_gaps"]["max_ms"]')"
  sample pbikiosk reloads "$(echo "$s" | json 'd["page_reloads_total"]')"
  stop "$pid"
}

idle_pbikiosk() { # run number
  start_pbikiosk 3600 "pbikiosk-idle-$1"
  sample pbikiosk first_ms "$(pk_status | json 'd["first_render_ms"]')"
  sleep 3
  local h0 t0 h1 t1
  h0=$(ticks "$pid"); t0=$(tree_ticks "$pid"); sleep "$idle"; h1=$(ticks "$pid"); t1=$(tree_ticks "$pid")
  sample pbikiosk cpu_host "$(pct "$h0" "$h1" "$idle")"
  sample pbikiosk cpu_tree "$(pct "$t0" "$t1" "$idle")"
  stop "$pid"
}

# ---------------------------------------------------------------- Chromium baseline
reports=$out/chromium-reports.jsonl
ch_count() { local n; n=$(grep -c "\"type\":\"$1\"" "$reports" 2>/dev/null) || true; echo "${n:-0}"; }
ch_has() { [ "$(ch_count "$1")" -ge "$2" ]; }

start_sim() { # the simulator + its https front door, standing alone (shared by all Chromium runs)
  # Removed first: the background job's redirection may not have truncated them yet when the
  # wait below looks, and an old file would give an old proxy address.
  rm -f "$out/sim.out" "$out/front.pem"
  "$bin" sim --scenario "$scenario" --listen "127.0.0.1:$(free_port)" --embed-front \
    --cert-out "$out/front.pem" >"$out/sim.out" 2>"$out/sim.log" &
  sim_pid=$!
  pids_to_stop+=("$sim_pid")
  wait_until 20 grep -qs '^# embed front' "$out/sim.out"
  proxy=$(grep -o 'proxy http://[0-9.:]*' "$out/sim.out" | cut -d' ' -f2)
  spki=$(openssl x509 -in "$out/front.pem" -pubkey -noout | openssl pkey -pubin -outform der \
    | openssl dgst -sha256 -binary | base64)
}

start_chromium() { # seconds per item, log name
  local attempt
  for attempt in 1 2 3; do
    : >"$reports"
    rm -f "$out/serve.out"
    node bench/chromium/serve.mjs --sim-config "$out/sim.out" --seconds "$1" --out "$reports" \
      >"$out/serve.out" 2>&1 &
    serve=$!
    pids_to_stop+=("$serve")
    wait_until 20 grep -qs '^listening' "$out/serve.out"
    local url; url=$(sed -n 's/^listening //p' "$out/serve.out")
    udd=$(mktemp -d)
    t_launch=$(now_ms)
    DISPLAY=$disp chromium --kiosk --no-first-run --disable-background-networking \
      --disable-component-update --disable-sync --no-sandbox --user-data-dir="$udd" \
      --window-size=1280,720 --proxy-server="$proxy" --ignore-certificate-errors-spki-list="$spki" \
      --enable-logging=stderr --v=0 "$url/" >"$out/$2.log" 2>&1 &
    pid=$!
    pids_to_stop+=("$pid")
    if wait_until 20 ch_has rendered 1; then
      local first; first=$(grep -m1 '"type":"rendered"' "$reports" | json 'd["epoch_ms"]')
      sample chromium first_ms "$(python3 -c "print(round($first - $t_launch))")"
      return 0
    fi
    # Seen now and then under Xvfb: the tab shows Chromium's sad face (renderer gone) and
    # nothing renders. Counted, and the run starts over with a fresh profile.
    echo "Chromium did not render in 20 s (attempt $attempt; see $out/$2.failed-$attempt.*)" >&2
    if command -v import >/dev/null; then import -display "$disp" -window root "$out/$2.failed-$attempt.png" || true; fi
    cp "$out/serve.out" "$out/$2.failed-$attempt.serve.log"
    cp "$out/$2.log" "$out/$2.failed-$attempt.chromium.log"
    sample chromium launch_failures 1
    stop_chromium
  done
  echo "Chromium failed to render 3 times" >&2
  exit 1
}

stop_chromium() { stop "$pid"; stop "$serve"; rm -rf "$udd"; }

run_chromium() {
  start_chromium "$seconds" "chromium-rotation-$1"
  sleep 2
  sample chromium pss_first "$(pss_mib "$pid")"
  wait_until $(( switches * seconds * 4 + 60 )) ch_has switch "$switches" \
    || { echo "Chromium: $switches switches did not happen" >&2; exit 1; }
  sleep 1
  sample chromium pss_switches "$(pss_mib "$pid")"
  sample chromium gl_switches "$(gl_mib "$pid")"
  # For scale: pbikiosk's figures include the simulator, which `demo` runs in its own process;
  # this is what the standalone one (serving Chromium) takes.
  sample sim pss "$(pss_mib "$sim_pid")"
  local gaps
  gaps=$(python3 -c "
import json, statistics, sys
g = [json.loads(l)['gap_ms'] for l in open(sys.argv[1]) if '\"switch\"' in l]
print(statistics.median(g), max(g))" "$reports")
  sample chromium gap_ms "${gaps% *}"
  sample chromium gap_max_ms "${gaps#* }"
  sample chromium errors "$(ch_count error)"
  stop_chromium
}

idle_chromium() {
  start_chromium 3600 "chromium-idle-$1"
  sleep 3
  local h0 t0 h1 t1
  h0=$(ticks "$pid"); t0=$(tree_ticks "$pid"); sleep "$idle"; h1=$(ticks "$pid"); t1=$(tree_ticks "$pid")
  sample chromium cpu_host "$(pct "$h0" "$h1" "$idle")"
  sample chromium cpu_tree "$(pct "$t0" "$t1" "$idle")"
  stop_chromium
}

# ---------------------------------------------------------------- soak
isolate_libraries() { # a probe run's mapped library files, each bind-mounted from a private copy
  start_pbikiosk "$soak_seconds" isolate-probe
  sleep 5 # a few switches: what the next items load is mapped too
  local files f p n=0 bytes=0
  files=$(for p in $(tree_pids "$pid"); do
    awk 'NF >= 6 && $6 ~ /^\/(usr|lib|lib64|var\/cache\/fontconfig)\// {print $6}' "/proc/$p/maps" 2>/dev/null
  done | sort -u)
  stop "$pid"
  rm -rf "$out/isolated"; : >"$out/isolated.tsv"
  for f in $files; do
    [ -f "$f" ] || continue
    mkdir -p "$out/isolated$(dirname "$f")"
    cp "$f" "$out/isolated$f"
    # The system file's inode, to tell it from the copy in the maps of the soak's processes.
    printf '%s\t%s\n' "$f" "$(stat -c %i "$f")" >>"$out/isolated.tsv"
    mount --bind "$out/isolated$f" "$f"
    n=$((n + 1)); bytes=$((bytes + $(stat -c %s "$f")))
  done
  isolated_files="$n files, $((bytes / 1048576)) MiB"
  echo "isolation: $isolated_files bind-mounted from private copies" >&2
}
isolation_check() { # proof, from the running tree: its libwebkit2gtk is the copy
  local p web="" line ino path sys copies=0 system=0
  for p in $(tree_pids "$pid"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = WebKitWebProces ] && web=$p
  done
  [ -n "$web" ] || { echo "isolation check: no web process in the tree" >&2; exit 1; }
  line=$(awk '$6 ~ /libwebkit2gtk-4\.1\.so/ {print $5, $6; exit}' "/proc/$web/maps")
  ino=${line%% *}; path=${line#* }
  sys=$(awk -F'\t' -v f="$path" '$1 == f {print $2}' "$out/isolated.tsv")
  if [ -z "$line" ] || [ -z "$sys" ] || [ "$ino" = "$sys" ]; then
    echo "isolation check failed: the web process maps ${path:-no libwebkit2gtk} with inode ${ino:-?}, the system file has ${sys:-?}" >&2
    exit 1
  fi
  # Every library file the tree maps: a private copy, or still the system's (loaded after the probe).
  local m_ino m_path m_sys
  while read -r m_ino m_path; do
    m_sys=$(awk -F'\t' -v f="$m_path" '$1 == f {print $2}' "$out/isolated.tsv")
    if [ -n "$m_sys" ] && [ "$m_ino" != "$m_sys" ]; then copies=$((copies + 1)); else system=$((system + 1)); fi
  done < <(for p in $(tree_pids "$pid"); do
    awk 'NF >= 6 && $6 ~ /^\/(usr|lib|lib64|var\/cache\/fontconfig)\// {print $5, $6}' "/proc/$p/maps" 2>/dev/null
  done | sort -u)
  isolation="$isolated_files copied; ${path##*/} in the web process: inode $ino (system file: $sys); library files mapped by the tree: $copies private copies, $system shared"
  echo "isolation: $isolation" >&2
}

if [ "$soak" -gt 0 ]; then
  isolation="off (PSS shares library pages with other processes on the machine)"
  if [ "$isolate" = 1 ]; then isolate_libraries; fi
  start_pbikiosk "$soak_seconds" soak "${policy[@]}"
  log=$out/soak.log
  pss_first=$(pss_mib "$pid")
  if [ "$isolate" = 1 ]; then isolation_check; fi
  # The tree's PSS and private memory every 5 s for the whole soak (min/max/last), and a line
  # per step: a soak stopped early still leaves its figures so far.
  : >"$out/soak-pss.tsv"; : >"$out/soak-progress.txt"
  ( while kill -0 "$pid" 2>/dev/null; do
      printf '%s\t%s\t%s\n' "$(date +%s)" "$(pss_mib "$pid")" "$(private_mib "$pid")" >>"$out/soak-pss.tsv"; sleep 5
    done ) &
  pss_sampler=$!
  pids_to_stop+=("$pss_sampler")
  pk_recycles() { pk_status | json 'd["memory"]["web_process_recycles_total"]'; }
  # What the screen shows at a recycle: frames right after the first two (the count is read
  # without Python, twice a second, to stay light).
  rm -f "$out"/recycle-*-frame-*.png
  if command -v import >/dev/null; then
    ( seen=0 last=0
      while kill -0 "$pid" 2>/dev/null && [ "$seen" -lt 2 ]; do
        r=$(pk_status 2>/dev/null | grep -o '"web_process_recycles_total":[0-9]*' | cut -d: -f2)
        if [ -n "$r" ] && [ "$r" != "$last" ] && [ "$r" != 0 ]; then
          seen=$((seen + 1)); last=$r
          for k in 1 2 3 4 5 6 7 8; do
            import -display "$disp" -window root "$out/recycle-$r-frame-$k.png" 2>/dev/null || true
            sleep 0.25
          done
        fi
        sleep 0.5
      done ) &
    pids_to_stop+=("$!")
  fi
  base=$(pk_switches)
  # The steady state begins once every item has been on screen once (a round of 3).
  wait_until 120 pk_at_least $(( base + 3 ))
  sleep 1
  pss_start=$(pss_settled "$pid"); base=$(pk_switches); t_start=$(date +%s)
  procs_start=$(pss_by_process "$pid")
  private_start=$(private_mib "$pid"); private_procs_start=$(private_by_process "$pid")
  trend="$pss_start"
  step=$(( soak >= 500 ? 100 : (soak >= 50 ? soak / 5 : soak) ))
  done_n=0
  while [ "$done_n" -lt "$soak" ]; do
    done_n=$(( done_n + step > soak ? soak : done_n + step ))
    wait_until $(( step * soak_seconds * 6 + 120 )) pk_at_least $(( base + done_n )) \
      || { echo "soak: stuck before $done_n switches; status: $(pk_status)" >&2; exit 1; }
    v=$(pss_settled "$pid")
    trend="$trend $v"
    echo "$(date -u +%T) switches $done_n/$soak  PSS $v MiB  private $(private_mib "$pid") MiB  recycles $(pk_recycles)  reloads $(pk_status | json 'd["page_reloads_total"]')  by process (PSS/private MiB) $(pss_by_process "$pid") / $(private_by_process "$pid")" \
      | tee -a "$out/soak-progress.txt"
  done
  sleep 1
  pss_end=$(pss_settled "$pid")
  procs_end=$(pss_by_process "$pid")
  private_end=$(private_mib "$pid"); private_procs_end=$(private_by_process "$pid")
  s=$(pk_status)
  reloads=$(echo "$s" | json 'd["page_reloads_total"]')
  recycles=$(echo "$s" | json 'd["memory"]["web_process_recycles_total"]')
  memory=$(echo "$s" | json '"baseline %s MiB, margin %s MiB" % (d["memory"]["baseline_pss_mib"], d["memory"]["recycle_margin_mib"])')
  stop "$pss_sampler"
  pss_range=$(python3 -c "
import sys
v = [float(l.split()[1]) for l in open(sys.argv[1]) if len(l.split()) == 3]
print('min %.1f / max %.1f / last %.1f MiB over %d samples' % (min(v), max(v), v[-1], len(v)) if v else 'no samples')" "$out/soak-pss.tsv")
  private_range=$(python3 -c "
import sys
v = [float(l.split()[2]) for l in open(sys.argv[1]) if len(l.split()) == 3]
print('min %.1f / max %.1f / last %.1f MiB over %d samples' % (min(v), max(v), v[-1], len(v)) if v else 'no samples')" "$out/soak-pss.tsv")
  skipped=$(echo "$s" | json 'sum(1 for i in d["items"] if i["skipped"])')
  gaps=$(echo "$s" | json '"median %.1f / p95 %.1f / max %.1f ms over the last %d" % (d["switch_gaps"]["median_ms"], d["switch_gaps"]["p95_ms"], d["switch_gaps"]["max_ms"], d["switch_gaps"]["count"])')
  errors=$(grep -cE ' (WARN|ERROR) ' "$log" || true)
  growth=$(python3 -c "print(round(($pss_end-$pss_start)*100/$pss_start, 1))")
  # Least-squares slope of the trend, per 100 switches: a leak shows as a steady climb, noise
  # (WebKit and JavaScriptCore give memory back in batches) does not.
  # shellcheck disable=SC2086  # $trend: one argument a sample
  slope=$(python3 -c "
import sys
y = [float(v) for v in sys.argv[2:]]; x = [i * float(sys.argv[1]) for i in range(len(y))]
n = len(y); mx = sum(x) / n; my = sum(y) / n
sxx = sum((a - mx) ** 2 for a in x) or 1
print(round(sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx * 100, 2))" "$step" $trend)
  stop "$pid"
  cat <<TABLE | tee "$out/soak.txt"
pbikiosk soak, $(git describe --always --dirty 2>/dev/null), binary $(sha256sum "$bin" | cut -c1-12) of $(date -u -r "$bin" '+%F %H:%M'), $(nproc) cores, $(date -u '+%F %H:%M') UTC, Xvfb 1280x720, $scenario
| figure                                   | value |
|------------------------------------------|-------|
| switches (item duration)                 | $soak (${soak_seconds} s) in $(( $(date +%s) - t_start )) s |
| PSS after the first report               | $pss_first MiB |
| PSS at start (after the first round)     | $pss_start MiB |
| PSS at end                               | $pss_end MiB |
| growth, start -> end                     | $growth % |
| trend slope (least squares)              | $slope MiB per 100 switches |
| by process (MiB), start / end            | $procs_start / $procs_end |
| PSS every $step switches (median of 5)   | $trend |
| PSS every 5 s, whole soak                | $pss_range |
| private memory (Private_Clean+Dirty), start / end | $private_start / $private_end MiB |
| private by process (MiB), start / end    | $private_procs_start / $private_procs_end |
| private memory every 5 s, whole soak     | $private_range |
| library isolation (--isolate)            | $isolation |
| web process recycles (memory policy)     | $recycles (${memory}) |
| switch gap (page-measured)               | $gaps |
| page reloads                             | $reloads |
| errors (WARN/ERROR log lines), skipped items | $errors, $skipped |
TABLE
  if [ "$reloads" != 0 ] || [ "$errors" != 0 ] || [ "$skipped" != 0 ]; then
    echo "soak: reloads, errors or skipped items (see $log)" >&2
    exit 1
  fi
  exit 0
fi

# ---------------------------------------------------------------- the comparison
start_sim
for i in $(seq "$runs"); do
  echo "run $i/$runs: rotation ($switches switches at $seconds s), then idle ($idle s)" >&2
  run_pbikiosk "$i"
  run_chromium "$i"
  idle_pbikiosk "$i"
  idle_chromium "$i"
done

pk_size=$(stat -c %s "$bin")
ch_bin=/usr/lib/chromium/chromium
ch_size=$(stat -c %s "$ch_bin")
python3 - "$samples" "$runs" "$switches" "$seconds" "$idle" "$pk_size" "$ch_size" \
  "$(git describe --always --dirty 2>/dev/null)" "$(nproc)" "$(chromium --version 2>/dev/null | head -1)" \
  "$(dpkg-query -W -f='${Version}' libwebkit2gtk-4.1-0 2>/dev/null)" "$(( $(date +%s) - began ))" <<'PY' | tee "$out/figures.txt"
import statistics, sys, datetime
path, runs, switches, seconds, idle, pk_size, ch_size, rev, cores, chver, wkver, took = sys.argv[1:]
d = {}
for line in open(path):
    who, what, v = line.rstrip("\n").split("\t")
    d.setdefault((who, what), []).append(float(v))
def med(who, what):
    v = d.get((who, what))
    return statistics.median(v) if v else float("nan")
def cell(who, what, unit, fmt="{:.0f}"):
    v = d.get((who, what), [])
    return f"{fmt.format(med(who, what))} {unit} ({len(v)})"
def ratio(what):
    return f"{med('pbikiosk', what) / med('chromium', what):.2f}"
mib = lambda b: f"{int(b) / 1048576:.1f} MiB"
print(f"pbikiosk {rev} vs {chver}; WebKitGTK {wkver}; {cores} cores (shared), "
      f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; Xvfb 1280x720, software rendering")
print(f"{runs} runs; rotation: {switches} switches at {seconds} s per item; idle: {idle} s; "
      f"median of runs (number of samples); took {took} s")
print()
print("| figure | pbikiosk | Chromium --kiosk | pbikiosk / Chromium |")
print("|---|---|---|---|")
print(f"| start -> first `rendered` | {cell('pbikiosk','first_ms','ms')} | {cell('chromium','first_ms','ms')} | {ratio('first_ms')} |")
print(f"| process tree PSS after the first report | {cell('pbikiosk','pss_first','MiB','{:.1f}')} | {cell('chromium','pss_first','MiB','{:.1f}')} | {ratio('pss_first')} |")
print(f"| process tree PSS after {switches} switches | {cell('pbikiosk','pss_switches','MiB','{:.1f}')} | {cell('chromium','pss_switches','MiB','{:.1f}')} | {ratio('pss_switches')} |")
print(f"| switch gap, median of run medians | {cell('pbikiosk','gap_ms','ms','{:.1f}')} | {cell('chromium','gap_ms','ms','{:.1f}')} | {ratio('gap_ms')} |")
print(f"| switch gap, worst in a run (median) | {cell('pbikiosk','gap_max_ms','ms','{:.1f}')} | {cell('chromium','gap_max_ms','ms','{:.1f}')} | |")
print(f"| host process CPU, report idle | {cell('pbikiosk','cpu_host','%','{:.1f}')} | {cell('chromium','cpu_host','%','{:.1f}')} | |")
print(f"| whole tree CPU, report idle | {cell('pbikiosk','cpu_tree','%','{:.1f}')} | {cell('chromium','cpu_tree','%','{:.1f}')} | {ratio('cpu_tree')} |")
print(f"| Chromium launches that never rendered (retried) | | {sum(d.get(('chromium','launch_failures'),[0])):.0f} | |")
print(f"| page reloads / page errors in rotation | {sum(d.get(('pbikiosk','reloads'),[0])):.0f} reloads | {sum(d.get(('chromium','errors'),[0])):.0f} errors | |")
print(f"| (for scale) the simulator alone, PSS | {med('sim','pss'):.1f} MiB: inside pbikiosk's figures (demo runs it in-process), outside Chromium's | | |")
# The same comparison with a simulator on both sides: pbikiosk's tree (simulator inside) against
# Chromium's tree plus the standalone simulator that serves it.
for what, label in (('pss_first', 'after the first report'), ('pss_switches', f'after {switches} switches')):
    both = med('chromium', what) + med('sim', 'pss')
    print(f"| PSS {label}, simulator counted on both sides | {med('pbikiosk', what):.1f} MiB | {both:.1f} MiB (Chromium + simulator) | {med('pbikiosk', what) / both:.2f} |")
# Where a GPU-less machine differs: both sides carry a software GPU (Mesa's llvmpipe, Chromium's
# SwiftShader). Shown, not subtracted: a real GPU driver takes memory of its own.
gl = {w: med(w, 'gl_switches') for w in ('pbikiosk', 'chromium')}
print(f"| of which software-rendering libraries (Mesa llvmpipe / SwiftShader, ANGLE) | {gl['pbikiosk']:.1f} MiB | {gl['chromium']:.1f} MiB | |")
print(f"| binary (stripped) | {mib(pk_size)} | {mib(ch_size)} (/usr/lib/chromium/chromium) | {int(pk_size)/int(ch_size):.2f} |")
PY
