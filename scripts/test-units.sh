#!/usr/bin/env bash
# Fast packaging checks (a few seconds; scripts/test.sh runs them):
#  - every unit in systemd/ passes `systemd-analyze verify` with NOTHING on stderr (it exits 0
#    on warnings), inside a staged root that holds the files the units name;
#  - every service in systemd/ has a `systemd-analyze security` exposure of at most 4.5;
#  - shellcheck on the shell scripts (when shellcheck is installed);
#  - install.sh --help documents every flag its parser accepts, and bad values are refused
#    before anything is touched;
#  - install.sh, run on a scratch folder with stub system commands and the built pbikiosk:
#    a username with & and | is stored as given, a changed secret restarts a running kiosk
#    (`systemctl try-restart`), an unchanged one does not, no temporary file is left behind
#    even when a step fails, a secret with spaces around it is refused, and a password an
#    older install kept in the config folder moves to the secrets folder;
#  - pbikiosk-session turns PBIKIOSK_ROTATION into cage's -r flags;
#  - every asset cargo-deb packages exists (except the binary, built by cargo deb).
# The heavy tests (building .debs, arm64 under qemu, a Debian root) are scripts/test-packaging.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

# 1. systemd-analyze verify, in a root with the system's units plus ours and our executables.
if command -v systemd-analyze >/dev/null; then
  root=$tmp/root
  mkdir -p "$root/usr/lib/systemd/system" "$root/usr/lib/pbikiosk" "$root/usr/bin" "$root/bin"
  cp -a /lib/systemd/system/. "$root/usr/lib/systemd/system/"
  cp systemd/* "$root/usr/lib/systemd/system/"
  install -m 755 packaging/pbikiosk-session "$root/usr/lib/pbikiosk/"
  for b in /usr/bin/cage /usr/bin/pbikiosk /bin/systemctl; do install -m 755 /bin/true "$root$b"; done
  for unit in systemd/*; do
    u=$(basename "$unit")
    if systemd-analyze verify --man=no --root="$root" "$u" >"$tmp/out" 2>"$tmp/err" && [ ! -s "$tmp/err" ]; then
      ok "systemd-analyze verify $u"
    else
      bad "systemd-analyze verify $u: $(cat "$tmp/err")"
    fi
  done
  # Exposure (0 locked down ... 10 unprotected) of every service we ship; timers have none.
  max_exposure=4.5
  for unit in systemd/*.service; do
    u=$(basename "$unit")
    out=$(systemd-analyze security --offline=yes --root="$root" "$u" 2>&1 || true)
    level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
    if [ -z "$level" ]; then
      bad "systemd-analyze security $u: no exposure level in: $(tail -3 <<<"$out")"
    elif awk -v l="$level" -v m="$max_exposure" 'BEGIN { exit !(l <= m) }'; then
      ok "systemd-analyze security $u: exposure $level (at most $max_exposure)"
    else
      bad "systemd-analyze security $u: exposure $level, above $max_exposure"
    fi
  done
else
  bad "systemd-analyze not found (apt-get install systemd)"
fi

# 2. shellcheck
scripts=(scripts/install.sh scripts/lib.sh scripts/build-deb.sh scripts/lint-deb.sh scripts/test-units.sh scripts/test-packaging.sh packaging/pbikiosk-session tests/boot/pbk-probe debian/postinst debian/prerm debian/postrm
  scripts/build-image.sh scripts/image-raspios.sh scripts/raspios-standin.sh scripts/test-image.sh packaging/image/pbikiosk-image-boot packaging/image/esp-kernel-update)
if command -v shellcheck >/dev/null; then
  for s in "${scripts[@]}"; do
    [ -f "$s" ] || continue
    if shellcheck -x "$s" >"$tmp/sc" 2>&1; then ok "shellcheck $s"; else bad "shellcheck $s"; cat "$tmp/sc"; fi
  done
else
  echo "skip shellcheck (not installed)"
fi

# 2b. build-deb.sh refuses a maintainer Debian would call bogus, before it builds anything.
for m in "pbikiosk@localhost" "Kiosk Team <kiosk@localhost>" "Kiosk Team"; do
  if out=$(PBIKIOSK_MAINTAINER=$m scripts/build-deb.sh amd64 2>&1); then
    bad "build-deb.sh accepted the maintainer '$m'"
  elif grep -q "PBIKIOSK_MAINTAINER must read 'Name <address@domain>'" <<<"$out"; then
    ok "build-deb.sh refuses the maintainer '$m'"
  else
    bad "build-deb.sh with maintainer '$m': $out"
  fi
done

# 3. install.sh --help names every flag the parser knows.
help=$(scripts/install.sh --help)
flags=$(sed -n 's/^ *\(-[a-z] | \)\{0,1\}\(--[a-z-]*\))$/\2/p; s/^ *\(-[a-z] | \)\{0,1\}\(--[a-z-]*\)) .*/\2/p' scripts/install.sh | sort -u)
[ "$(echo "$flags" | wc -l)" -ge 15 ] || bad "found only $(echo "$flags" | wc -l) flags in install.sh's parser"
missing=""
for f in $flags; do grep -q -- "$f" <<<"$help" || missing="$missing $f"; done
if [ -z "$missing" ]; then ok "install.sh --help documents all $(echo "$flags" | wc -l) flags"; else bad "install.sh --help lacks:$missing"; fi
for args in "--rotation 45" "--mode big" "--client-id nope" "--tenant common" "--bogus" "--workspace 00000000-0000-0000-0000-000000000000" \
  "--method bogus" "--method device_code --client-secret-file /dev/null" "--method device_code --username a@contoso.com" \
  "--method service_principal --password-file /dev/null" "--client-secret-file /dev/null --client-certificate-file /dev/null" \
  "--client-certificate-file $tmp/no-such.pem"; do
  # shellcheck disable=SC2086
  if out=$(scripts/install.sh $args 2>&1); then bad "install.sh $args was accepted"; else
    if grep -q "install.sh:" <<<"$out"; then ok "install.sh $args refused: $out"; else bad "install.sh $args: $out"; fi
  fi
done
# A sign-in name with | and & passes the flag checks (here it stops at the missing --deb instead).
if out=$(scripts/install.sh --username 'svc|a&b@contoso.onmicrosoft.com' --deb "$tmp/none.deb" 2>&1); then
  bad "install.sh --deb $tmp/none.deb was accepted"
elif grep -q -- "--deb $tmp/none.deb: no such file" <<<"$out"; then ok "install.sh --username 'svc|a&b@...' passes the flag checks"
else bad "install.sh --username 'svc|a&b@...': $out"; fi
# ...and install.sh's `pbikiosk config set` stores it as given, and a second run changes nothing.
bin=""
for b in target/debug/pbikiosk target/release/pbikiosk; do [ -x "$b" ] && bin=$b && break; done
if [ -n "$bin" ]; then
  conf=$tmp/pbikiosk.toml user='svc|a&b"\ü@contoso.onmicrosoft.com'
  printf '# kept\n[auth]\n\n# also kept\n' >"$conf"
  set_auth() {
    PBIKIOSK_CLIENT_SECRET=s PBIKIOSK_PASSWORD=p "$bin" --config "$conf" config set auth.tenant contoso.onmicrosoft.com \
      auth.client_id 00000000-0000-0000-0000-000000000001 auth.username "$user"
  }
  if set_auth && [ "$("$bin" --config "$conf" config get auth.username)" = "$user" ] &&
    sum=$(cksum <"$conf") && set_auth && [ "$(cksum <"$conf")" = "$sum" ] && grep -q '^# also kept$' "$conf"; then
    ok "pbikiosk config set: username with | & \" \\ round-trips, comments kept, second run no change"
  else
    bad "pbikiosk config set with username $user: $(cat "$conf")"
  fi
else
  echo "skip pbikiosk config set (no built binary in target/)"
fi

# 3b. install.sh's credentials step end to end, on a scratch folder: stubs stand in for the
# package tools, systemctl (which logs its calls) and the root-only owner changes.
if [ -n "$bin" ]; then
  inst=$tmp/install stubs=$tmp/install/stubs
  mkdir -p "$stubs" "$inst/etc" "$inst/secrets" "$inst/systemd"
  # FAIL_chown=1 makes the owner change fail, as for a file on a read-only or foreign mount.
  # shellcheck disable=SC2016  # expanded by the stubs
  for c in getent chown; do printf '#!/bin/sh\n[ -z "$FAIL_%s" ] || exit 1\nexit 0\n' "$c" >"$stubs/$c"; done
  printf '#!/bin/sh\necho 0\n' >"$stubs/id"
  printf '#!/bin/sh\necho amd64\n' >"$stubs/dpkg"
  printf '#!/bin/sh\necho "install ok installed 1.0"\n' >"$stubs/dpkg-query"
  printf '#!/bin/sh\necho "apt-get must not run here" >&2; exit 1\n' >"$stubs/apt-get"
  # `install -d ... DIR` (the only use): the folder, without the root-only owner change, and
  # never outside the scratch folder (the real /etc/pbikiosk is not for a test).
  # shellcheck disable=SC2016  # expanded by the stubs
  printf '#!/bin/sh\nwhile [ $# -gt 1 ]; do shift; done\ncase $1 in %s/*) mkdir -p "$1" ;; *) echo "install stub: $1 is outside the scratch folder" >&2; exit 1 ;; esac\n' "$inst" >"$stubs/install"
  # shellcheck disable=SC2016
  printf '#!/bin/sh\necho "$*" >>"%s"\ncase $1 in is-enabled) echo enabled ;; esac\nexit 0\n' "$inst/systemctl.log" >"$stubs/systemctl"
  chmod +x "$stubs"/*
  printf 'cs-one\n' >"$inst/cs" && printf 'pw-one\n' >"$inst/pw"
  iuser='svc|a&b@contoso.onmicrosoft.com'
  run_install() { # output in $inst/out
    PATH=$stubs:$PATH PBIKIOSK_INSTALL_CONF_DIR=$inst/etc PBIKIOSK_INSTALL_SECRETS_DIR=$inst/secrets PBIKIOSK_INSTALL_BIN=$bin \
      PBIKIOSK_INSTALL_SYSTEMD_DIR=$inst/systemd scripts/install.sh --yes --no-boot-config \
      --tenant contoso.onmicrosoft.com --client-id 00000000-0000-0000-0000-000000000001 \
      --username "$iuser" --client-secret-file "$inst/cs" --password-file "$inst/pw" >"$inst/out" 2>&1
  }
  restarts() { grep -c '^try-restart pbikiosk.service$' "$inst/systemctl.log" || true; }
  leftovers() { find "$inst/etc" -name '.install.*' | wc -l; }
  if run_install && [ "$("$bin" --config "$inst/etc/pbikiosk.toml" config get auth.username)" = "$iuser" ] &&
    [ "$(cat "$inst/secrets/password")" = pw-one ] && [ "$(restarts)" = 1 ]; then
    ok "install.sh: username with & and | stored as given; new secrets -> systemctl try-restart"
  else
    bad "install.sh first run: $(cat "$inst/out") / systemctl: $(cat "$inst/systemctl.log")"
  fi
  if run_install && [ "$(restarts)" = 1 ]; then ok "install.sh: unchanged secrets, no restart"
  else bad "install.sh second run restarted: $(cat "$inst/out")"; fi
  printf 'pw-two\n' >"$inst/pw"
  if run_install && [ "$(cat "$inst/secrets/password")" = pw-two ] && [ "$(restarts)" = 2 ] &&
    grep -q 'restarted the kiosk for the new secrets' "$inst/out"; then
    ok "install.sh: changed password -> systemctl try-restart"
  else bad "install.sh: changed password: $(cat "$inst/out") / $(restarts) restarts"; fi
  printf 'pw-three\n' >"$inst/pw"
  if ! FAIL_chown=1 run_install && grep -q "cannot write $inst/secrets/client-secret" "$inst/out" &&
    [ "$(leftovers)" = 0 ] && [ "$(cat "$inst/secrets/password")" = pw-two ] && [ "$(restarts)" = 2 ]; then
    ok "install.sh: a failed write stops it, leaves the old file and no temporary file"
  else bad "install.sh with a failing chown: $(cat "$inst/out"); $(leftovers) left over"; fi
  printf 'pw-three \n' >"$inst/pw"
  if ! run_install && grep -q "spaces or tabs" "$inst/out" && [ "$(cat "$inst/secrets/password")" = pw-two ]; then
    ok "install.sh: a password with a trailing space is refused"
  else bad "install.sh with a trailing space: $(cat "$inst/out")"; fi
  # An older install's password in the config folder (which the web sandbox shows) is moved
  # to the secrets folder, and the config follows it.
  mv "$inst/secrets/password" "$inst/etc/password"
  "$bin" --config "$inst/etc/pbikiosk.toml" config set auth.password_file "$inst/etc/password" >/dev/null
  printf 'pw-two\n' >"$inst/pw"
  if run_install && [ ! -e "$inst/etc/password" ] && [ "$(cat "$inst/secrets/password")" = pw-two ] &&
    [ "$("$bin" --config "$inst/etc/pbikiosk.toml" config get auth.password_file)" = "$inst/secrets/password" ] &&
    grep -q "moved $inst/etc/password to $inst/secrets/password" "$inst/out"; then
    ok "install.sh: a password kept in the config folder moves to the secrets folder, the config follows"
  else bad "install.sh moving an old password: $(cat "$inst/out"); $(ls "$inst/etc" "$inst/secrets")"; fi
  # The other sign-in methods, each on a scratch folder of its own.
  fresh() { rm -rf "${inst:?}/etc" "$inst/secrets" "$inst/systemctl.log" && mkdir -p "$inst/etc"; }
  run_method() { # run_method ARGS...: output in $inst/out
    PATH=$stubs:$PATH PBIKIOSK_INSTALL_CONF_DIR=$inst/etc PBIKIOSK_INSTALL_SECRETS_DIR=$inst/secrets PBIKIOSK_INSTALL_BIN=$bin \
      PBIKIOSK_INSTALL_SYSTEMD_DIR=$inst/systemd scripts/install.sh --yes --no-boot-config \
      --tenant contoso.onmicrosoft.com --client-id 00000000-0000-0000-0000-000000000001 "$@" >"$inst/out" 2>&1
  }
  cget() { "$bin" --config "$inst/etc/pbikiosk.toml" config get "$1" 2>/dev/null; }
  # Switching an existing password configuration to another method is refused, file untouched.
  sum=$(cksum <"$inst/etc/pbikiosk.toml")
  if ! run_method --method service_principal --client-secret-file "$inst/cs" && grep -q 'move .* away' "$inst/out" &&
    [ "$(cksum <"$inst/etc/pbikiosk.toml")" = "$sum" ]; then
    ok "install.sh: switching a password configuration to service_principal is refused with the way to do it"
  else bad "install.sh method switch: $(cat "$inst/out")"; fi
  fresh
  if run_method --method service_principal --client-secret-file "$inst/cs" &&
    [ "$(cget auth.method)" = service_principal ] && [ "$(cget auth.client_secret_file)" = "$inst/secrets/client-secret" ] &&
    [ "$(cat "$inst/secrets/client-secret")" = cs-one ] && ! cget auth.username >/dev/null && [ ! -e "$inst/secrets/password" ] &&
    [ "$(stat -c %a "$inst/secrets/client-secret")" = 640 ] && [ "$(restarts)" = 1 ]; then
    ok "install.sh --method service_principal: method, tenant, client id and secret file (0640), no username or password"
  else bad "install.sh --method service_principal: $(cat "$inst/out")"; fi
  sum=$(cksum <"$inst/etc/pbikiosk.toml")
  if run_method --method service_principal --client-secret-file "$inst/cs" && run_method --client-secret-file "$inst/cs" &&
    [ "$(cksum <"$inst/etc/pbikiosk.toml")" = "$sum" ] && [ "$(restarts)" = 1 ] && ! grep -q 'client secret in' "$inst/out"; then
    ok "install.sh --method service_principal: a second run (with or without --method) changes no file and restarts nothing"
  else bad "install.sh --method service_principal again: $(cat "$inst/out")"; fi
  if command -v openssl >/dev/null; then
    fresh
    openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=pbikiosk-test -days 30 \
      -keyout "$inst/key.pem" -out "$inst/crt.pem" >/dev/null 2>&1
    cat "$inst/crt.pem" "$inst/key.pem" >"$inst/app.pem"
    if run_method --method service_principal --client-certificate-file "$inst/app.pem" &&
      [ "$(cget auth.client_certificate_file)" = "$inst/secrets/client-certificate.pem" ] &&
      ! cget auth.client_secret_file >/dev/null && cmp -s "$inst/app.pem" "$inst/secrets/client-certificate.pem" &&
      [ "$(stat -c %a "$inst/secrets/client-certificate.pem")" = 640 ]; then
      ok "install.sh --method service_principal --client-certificate-file: the PEM copied (0640) and named in [auth]"
    else bad "install.sh --client-certificate-file: $(cat "$inst/out")"; fi
    fresh
    if ! run_method --method service_principal --client-certificate-file "$inst/crt.pem" &&
      grep -q 'no private key' "$inst/out" && [ ! -e "$inst/secrets/client-certificate.pem" ]; then
      ok "install.sh: a certificate without its private key is refused"
    else bad "install.sh with a certificate without key: $(cat "$inst/out")"; fi
  else
    echo "skip install.sh --client-certificate-file (no openssl)"
  fi
  fresh
  if run_method --method device_code && [ "$(cget auth.method)" = device_code ] &&
    ! cget auth.client_secret_file >/dev/null && [ -z "$(find "$inst/etc" -type f ! -name pbikiosk.toml)" ] && [ -z "$(find "$inst/secrets" -type f 2>/dev/null)" ] &&
    grep -q 'sudo pbikiosk login' "$inst/out" && grep -q 'shows a code' "$inst/out"; then
    ok "install.sh --method device_code: tenant and client id only, no secret file; tells where to sign in"
  else bad "install.sh --method device_code: $(cat "$inst/out")"; fi
else
  echo "skip install.sh end to end (no built binary in target/)"
fi

# 4. rotation -> cage flags
stub=$tmp/cage
printf '#!/bin/sh\necho "$@"\n' >"$stub"
chmod +x "$stub"
for pair in "0:-d -- /usr/bin/pbikiosk run" "90:-d -r -- /usr/bin/pbikiosk run" "180:-d -r -r -- /usr/bin/pbikiosk run" \
  "270:-d -r -r -r -- /usr/bin/pbikiosk run" "45:-d -- /usr/bin/pbikiosk run"; do
  got=$(PBIKIOSK_BIN=/usr/bin/pbikiosk PBIKIOSK_CAGE=$stub PBIKIOSK_ROTATION=${pair%%:*} packaging/pbikiosk-session 2>/dev/null)
  if [ "$got" = "${pair#*:}" ]; then ok "rotation ${pair%%:*} -> cage ${got}"; else bad "rotation ${pair%%:*}: got '$got'"; fi
done
# [display] rotation in the config (what `pbikiosk display-rotation` prints) wins over the unit's.
player=$tmp/pbikiosk
# shellcheck disable=SC2016  # $1 is for the stub to expand
printf '#!/bin/sh
[ "$1" = display-rotation ] && echo 270
exit 0
' >"$player"
chmod +x "$player"
got=$(PBIKIOSK_BIN=$player PBIKIOSK_CAGE=$stub PBIKIOSK_ROTATION=90 packaging/pbikiosk-session 2>/dev/null)
if [ "$got" = "-d -r -r -r -- $player run" ]; then ok "config rotation 270 wins -> cage ${got}"; else bad "config rotation: got '$got'"; fi

# 4b. the stop: the compositor's children get SIGTERM and the compositor ends by itself. The
# stub behaves as Debian's cage does: status 0 when its client ends, an abort (134) on its
# own SIGTERM.
# shellcheck disable=SC2016  # for the stub to expand
printf '#!/bin/sh
trap "exit 134" TERM
sleep 30 &
wait $!
exit 0
' >"$tmp/cage-stop"
chmod +x "$tmp/cage-stop"
"$tmp/cage-stop" &
cage_pid=$!
sleep 0.5
t0=$(date +%s)
packaging/pbikiosk-session --stop "$cage_pid"
rc=0
wait "$cage_pid" || rc=$?
if [ "$rc" = 0 ] && [ $(($(date +%s) - t0)) -lt 5 ]; then
  ok "pbikiosk-session --stop: the client got SIGTERM, the compositor ended by itself with status 0"
else bad "pbikiosk-session --stop: compositor status $rc after $(($(date +%s) - t0)) s"; fi
if packaging/pbikiosk-session --stop '' && packaging/pbikiosk-session --stop 'x1'; then
  ok "pbikiosk-session --stop without a main PID (the session already ended) does nothing"
else bad "pbikiosk-session --stop without a PID failed"; fi

# 5. assets
while read -r src; do
  case $src in
  target/*) continue ;;
  web/vendor/*) [ -e "$src" ] || { echo "skip $src (built by scripts/build-web.sh)"; continue; } ;;
  esac
  if [ -e "$src" ]; then ok "asset $src"; else bad "asset $src missing"; fi
done < <(sed -n 's/^ *\["\([^"]*\)", .*/\1/p' Cargo.toml)

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
