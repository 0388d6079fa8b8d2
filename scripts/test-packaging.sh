#!/usr/bin/env bash
# shellcheck disable=SC2015  # `test && ok || bad`: ok and bad always succeed
# The heavy packaging tests (root; Debian 12 host; about 25 min cold on 2 cores, a few minutes
# warm). Installs what it needs itself, caches its big outputs under target/ (gitignored):
#   target/sysroot-arm64        arm64 sysroot (~950 MB), made by scripts/build-deb.sh
#   target/pkgtest/base.tar     a debootstrapped Debian 12 root with pbikiosk's dependencies
# Steps (each timed; the times are printed at the end and kept in target/pkgtest/times.txt):
#   1. prerequisites  apt packages, cargo-deb, the rustup arm64 target
#   2. build          scripts/build-deb.sh amd64 arm64
#   3. inspect        dpkg-deb: architecture, Depends (arm64: every NEEDED soname is covered),
#                     contents
#   3b. lintian       Debian's package checks on both .debs (scripts/lint-deb.sh): no errors,
#                     and every warning explained there
#   4. qemu           the arm64 binary under qemu-user: --version, and `check` against the
#                     simulator (run by the amd64 binary) must pass
#   5. root           a throw-away Debian 12 root (debootstrap): install, check user, files,
#                     permissions and enabled units; upgrade keeps a modified config and fixes
#                     secret permissions; purge leaves no stray files; install.sh twice (the
#                     second run must change nothing)
#   6. boot           that root booted with systemd-nspawn: the shipped unit (cage on wlroots'
#                     headless backend) gets READY=1 from the player, the page heartbeat keeps
#                     the watchdog fed, a frozen player gets the session restarted
# System changes are undone on exit: mounts inside the test root. No binfmt registration and
# no dpkg architecture is added (qemu-user runs the binary directly; the sysroot has its own apt).
#   KEEP_ROOT=1  keep target/pkgtest/root for inspection
#   --boot-only  only what the boot step needs: the amd64 package, installed in the root, booted
#                (no arm64, no qemu, no upgrade/purge/install.sh checks)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
W=$REPO/target/pkgtest
R=$W/root
SYSROOT=${SYSROOT:-$REPO/target/sysroot-arm64}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BOOT_ONLY=0
for a in "$@"; do
  case $a in
  --boot-only) BOOT_ONLY=1 ;;
  *) echo "unknown option $a (--boot-only)" >&2; exit 2 ;;
  esac
done
mkdir -p "$W"
: >"$W/times.txt"

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() { # check "description" command...
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}
STEP="" STEP_T0=0
step() {
  local now
  now=$(date +%s)
  [ -n "$STEP" ] && printf '%-14s %4ds\n' "$STEP" $((now - STEP_T0)) | tee -a "$W/times.txt"
  STEP=$1 STEP_T0=$now
  [ "$STEP" = end ] || printf '\n== %s\n' "$1"
}

MOUNTS=()
cleanup() {
  local m
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[i]}" 2>/dev/null || true; done
  [ -n "${SIM_PID:-}" ] && kill "$SIM_PID" 2>/dev/null || true
  if [ "${KEEP_ROOT:-0}" != 1 ] && [ -d "$R" ]; then
    for m in proc sys dev/pts dev; do mountpoint -q "$R/$m" && umount -l "$R/$m"; done
    rm -rf "$R"
  fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- 1
step prerequisites
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
if [ "$BOOT_ONLY" = 1 ]; then
  apt_install debootstrap systemd-container debian-archive-keyring ca-certificates file
  command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
else
apt_install debootstrap systemd-container gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu \
  qemu-user-static shellcheck debian-archive-keyring ca-certificates file
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
fi

# ---------------------------------------------------------------- 2
step build
if [ "$BOOT_ONLY" = 1 ]; then
  scripts/build-deb.sh amd64 >"$W/debs.txt"
else
  scripts/build-deb.sh amd64 arm64 >"$W/debs.txt"
fi
mapfile -t debs <"$W/debs.txt"
AMD=${debs[0]} ARM=${debs[1]:-}
echo "$AMD"
echo "$ARM"
ls -l "$AMD" ${ARM:+"$ARM"}
f() { dpkg-deb -f "$1" "$2"; }

if [ "$BOOT_ONLY" = 0 ]; then

# ---------------------------------------------------------------- 3
step inspect
[ "$(f "$AMD" Architecture)" = amd64 ] && ok "amd64 package: Architecture amd64" || bad "amd64 Architecture $(f "$AMD" Architecture)"
[ "$(f "$ARM" Architecture)" = arm64 ] && ok "arm64 package: Architecture arm64" || bad "arm64 Architecture $(f "$ARM" Architecture)"
for deb in "$AMD" "$ARM"; do
  a=$(f "$deb" Architecture)
  echo "   $a Depends: $(f "$deb" Depends)"
  for dep in libwebkit2gtk-4.1-0 libgtk-3-0 libsoup-3.0-0 libc6 cage seatd xwayland adduser bubblewrap xdg-dbus-proxy; do
    f "$deb" Depends | tr ',' '\n' | grep -q "^ *$dep\b" && ok "$a depends on $dep" || bad "$a lacks Depends $dep"
  done
  contents=$(dpkg-deb -c "$deb" | awk '{print $1, $2, $6}')
  for p in ./usr/bin/pbikiosk ./usr/lib/pbikiosk/pbikiosk-session ./lib/systemd/system/pbikiosk.service \
    ./lib/systemd/system/pbikiosk-recover.timer ./lib/systemd/system/pbikiosk-recover.service \
    ./lib/systemd/system/pbikiosk-import.service ./usr/share/man/man1/pbikiosk.1.gz \
    ./lib/systemd/system/pbikiosk-hotplug.service ./lib/udev/rules.d/70-pbikiosk-hotplug.rules \
    ./usr/share/doc/pbikiosk/changelog.Debian.gz ./usr/share/doc/pbikiosk/copyright \
    ./usr/share/pbikiosk/pbikiosk.toml.example ./usr/share/pbikiosk/web/index.html \
    ./usr/share/pbikiosk/web/player.js ./usr/share/pbikiosk/web/protocol.js ./usr/share/pbikiosk/web/player.css \
    ./usr/share/pbikiosk/web/vendor/powerbi.min.js; do
    grep -q " $p\$" <<<"$contents" && ok "$a contains $p" || bad "$a lacks $p"
  done
  grep -q ' ./etc/pbikiosk/' <<<"$contents" && bad "$a ships files in /etc/pbikiosk (must be made by postinst)" || ok "$a ships nothing in /etc/pbikiosk (config made by postinst, never a conffile prompt)"
done
rm -rf "$W/arm64-x" "$W/amd64-x"
dpkg-deb -x "$ARM" "$W/arm64-x"
dpkg-deb -x "$AMD" "$W/amd64-x"
file -b "$W/arm64-x/usr/bin/pbikiosk" | grep -q 'ARM aarch64' && ok "arm64 binary is an aarch64 ELF" || bad "arm64 binary: $(file -b "$W/arm64-x/usr/bin/pbikiosk")"
# Every library the arm64 binary links must come from a package it depends on.
armdeps=$(f "$ARM" Depends | tr ',' '\n' | sed 's/^ *//; s/ .*//')
while read -r so; do
  pkg=$(awk -F'\t' -v so="/$so" '{ n = split($2, a, " "); for (i = 1; i <= n; i++) if (substr(a[i], length(a[i]) - length(so) + 1) == so) { print $1; exit } }' "$SYSROOT/.packages")
  if [ -z "$pkg" ]; then bad "arm64 NEEDED $so: no package in the sysroot has it"
  elif grep -qx "$pkg" <<<"$armdeps"; then ok "arm64 NEEDED $so <- Depends $pkg"
  else bad "arm64 NEEDED $so comes from $pkg, which is not in Depends"; fi
done < <(aarch64-linux-gnu-objdump -p "$W/arm64-x/usr/bin/pbikiosk" | awk '/NEEDED/ {print $2}')

# ---------------------------------------------------------------- 3b
step lintian
# Debian's own checks: no error, and no warning that scripts/lint-deb.sh does not explain.
apt_install lintian
for deb in "$AMD" "$ARM"; do
  a=$(f "$deb" Architecture)
  if scripts/lint-deb.sh "$deb" >"$W/lintian-$a.txt" 2>&1; then
    ok "lintian $a: $(tail -1 "$W/lintian-$a.txt")"
  else
    bad "lintian $a:"
    cat "$W/lintian-$a.txt"
  fi
done

# ---------------------------------------------------------------- 4
step qemu
v=$(QEMU_LD_PREFIX=$SYSROOT qemu-aarch64-static "$W/arm64-x/usr/bin/pbikiosk" --version)
[[ $v == "pbikiosk "* ]] && ok "arm64 under qemu: --version -> $v" || bad "arm64 --version: $v"
port=$((20000 + RANDOM % 20000))
# check also probes the hosts the web view needs (embed, cluster, CDN): the simulator's front
# door answers them on loopback, signed by a CA made for the run that the config trusts.
"$W/amd64-x/usr/bin/pbikiosk" sim --listen "127.0.0.1:$port" --embed-front --ca-out "$W/front-ca.pem" \
  >"$W/sim.out" 2>"$W/sim.err" &
SIM_PID=$!
for _ in $(seq 50); do grep -q '^# embed front:' "$W/sim.out" 2>/dev/null && break; sleep 0.2; done
front=$(sed -n 's|^# embed front: .* through the HTTP proxy http://\([0-9.:]*\).*|\1|p' "$W/sim.out")
grep -v '^#' "$W/sim.out" | sed "s|^\[cloud\]\$|[cloud]\nca_file = \"$W/front-ca.pem\"|" >"$W/sim.toml"
chmod 600 "$W/sim.toml" "$W/front-ca.pem"
t0=$(date +%s)
if https_proxy="http://$front" QEMU_LD_PREFIX=$SYSROOT qemu-aarch64-static "$W/arm64-x/usr/bin/pbikiosk" \
  --config "$W/sim.toml" check --json >"$W/check.json" 2>"$W/check.err"; then
  ok "arm64 under qemu: check against the simulator passes ($(($(date +%s) - t0)) s)"
else
  bad "arm64 under qemu: check failed: $(head -c 2000 "$W/check.json" "$W/check.err")"
fi
# The top-level "ok" (every line's own "ok" would match a plain grep).
python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["ok"] is True else 1)' "$W/check.json" \
  && ok "arm64 check --json says ok: true" || bad "arm64 check --json: $(head -c 500 "$W/check.json")"
kill "$SIM_PID" 2>/dev/null || true
wait "$SIM_PID" 2>/dev/null || true
SIM_PID=

fi # BOOT_ONLY: no inspect, no qemu

# ---------------------------------------------------------------- 5
step root
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
mount_root() {
  mkdir -p "$R/proc" "$R/sys" "$R/dev"
  mount -t proc proc "$R/proc" && MOUNTS+=("$R/proc")
  mount --rbind /dev "$R/dev" && mount --make-rslave "$R/dev" && MOUNTS+=("$R/dev")
  cp /etc/resolv.conf "$R/etc/resolv.conf"
}
# Besides the package's dependencies: its Recommends, file(1), and man-db for reading the
# installed manual page the way a user does (`man -l`; minbase has no man).
extra_pkgs="fonts-liberation2 file man-db"
deps_now="$(f "$AMD" Depends); $extra_pkgs"
if [ -f "$W/base.tar" ] && [ "$(cat "$W/base.deps" 2>/dev/null)" != "$deps_now" ]; then
  echo "   the package's Depends or the extra packages changed: remaking the base root"
  rm -f "$W/base.tar"
fi
if [ ! -f "$W/base.tar" ]; then
  echo "   debootstrap bookworm (cached in $W/base.tar afterwards)"
  rm -rf "$R"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,apt-utils bookworm "$R" "$MIRROR" >"$W/debootstrap.log" 2>&1 ||
    { tail -20 "$W/debootstrap.log"; exit 1; }
  printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
  chmod +x "$R/usr/sbin/policy-rc.d"
  mount_root
  # pbikiosk's dependencies, so the purge test compares against a root that had them already.
  in_root apt-get update -qq
  in_root apt-get satisfy -y -qq "$(f "$AMD" Depends)" >/dev/null
  # shellcheck disable=SC2086  # a list of package names
  in_root apt-get install -y -qq $extra_pkgs >/dev/null
  in_root apt-get clean
  for m in proc dev; do umount -l "$R/$m"; done
  MOUNTS=()
  tar -C "$R" -cf "$W/base.tar" .
  echo "$deps_now" >"$W/base.deps"
else
  rm -rf "$R"
  mkdir -p "$R"
  tar -C "$R" -xf "$W/base.tar"
fi
mount_root
snapshot() { # what a user would call "the files": path, type, mode, owner; mtime+size for non-dirs
  (cd "$R" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./tmp -o -path ./run \
    -o -path ./var/cache -o -path ./var/log -o -path ./var/lib/dpkg -o -path ./var/lib/apt \
    -o -path ./etc/ld.so.cache \) -prune -o \( -type d -printf '%p d %m %U:%G\n' \) \
    -o -printf '%p %y %m %U:%G %s %T@\n' | LC_ALL=C sort)
}
users_files='^\./etc/(passwd|group|shadow|gshadow|subuid|subgid)-? '
snapshot >"$W/s0"

# a) install
cp "$AMD" "$R/tmp/pbikiosk.deb"
in_root dpkg -i /tmp/pbikiosk.deb >"$W/install.log" 2>&1 && ok "dpkg -i (amd64) in a Debian 12 root" || { bad "dpkg -i"; cat "$W/install.log"; }
pw=$(in_root getent passwd pbikiosk || true)
uid=$(cut -d: -f3 <<<"$pw")
[ -n "$pw" ] && [ "$uid" -lt 1000 ] && ok "system user pbikiosk ($pw)" || bad "user pbikiosk: '$pw'"
[[ $pw == *:/var/lib/pbikiosk:/usr/sbin/nologin ]] && ok "pbikiosk: home /var/lib/pbikiosk, no login shell" || bad "pbikiosk passwd entry: $pw"
groups=$(in_root id -nG pbikiosk)
for g in pbikiosk video render input i2c; do
  if in_root getent group "$g" >/dev/null; then
    [[ " $groups " == *" $g "* ]] && ok "pbikiosk is in group $g" || bad "pbikiosk not in $g ($groups)"
  fi
done
st() { in_root stat -c '%a %U:%G' "$1"; }
[ "$(st /etc/pbikiosk)" = "750 root:pbikiosk" ] && ok "/etc/pbikiosk 750 root:pbikiosk" || bad "/etc/pbikiosk $(st /etc/pbikiosk)"
[ "$(st /etc/pbikiosk/pbikiosk.toml)" = "640 root:pbikiosk" ] && ok "pbikiosk.toml 640 root:pbikiosk" || bad "pbikiosk.toml $(st /etc/pbikiosk/pbikiosk.toml)"
[ "$(st /var/lib/pbikiosk)" = "750 pbikiosk:pbikiosk" ] && ok "/var/lib/pbikiosk 750 pbikiosk:pbikiosk" || bad "/var/lib/pbikiosk $(st /var/lib/pbikiosk)"
grep -q '^\[auth\]' "$R/etc/pbikiosk/pbikiosk.toml" && bad "example config is active" || ok "example config is commented out (not active)"
check "units enabled: multi-user.target.wants/pbikiosk.service" test -L "$R/etc/systemd/system/multi-user.target.wants/pbikiosk.service"
check "units enabled: timers.target.wants/pbikiosk-recover.timer" test -L "$R/etc/systemd/system/timers.target.wants/pbikiosk-recover.timer"
check "units enabled: multi-user.target.wants/pbikiosk-import.service" test -L "$R/etc/systemd/system/multi-user.target.wants/pbikiosk-import.service"
check "units enabled: multi-user.target.wants/pbikiosk-hotplug.service" test -L "$R/etc/systemd/system/multi-user.target.wants/pbikiosk-hotplug.service"
in_root man -l /usr/share/man/man1/pbikiosk.1.gz >"$W/man.out" 2>"$W/man.err" || true
grep -q 'pbikiosk import' "$W/man.out" && [ ! -s "$W/man.err" ] && ok "the manual page reads (man -l, no warning) and documents pbikiosk import" ||
  bad "man -l /usr/share/man/man1/pbikiosk.1.gz: $(head -c 1000 "$W/man.err") $(head -5 "$W/man.out")"
[ "$(in_root systemctl is-enabled pbikiosk.service 2>/dev/null)" = enabled ] && ok "systemctl is-enabled pbikiosk.service: enabled" || bad "pbikiosk.service not enabled"
in_root pbikiosk --version | grep -q '^pbikiosk ' && ok "installed binary runs" || bad "pbikiosk --version in root"
set +e
out=$(in_root setpriv --reuid=pbikiosk --regid=pbikiosk --init-groups pbikiosk check 2>&1)
rc=$?
set -e
[ $rc -eq 2 ] && grep -qi 'not configured' <<<"$out" && ok "pbikiosk check as user pbikiosk on the fresh install: exit 2, 'not configured'" || bad "check on fresh install: rc=$rc $out"
check "web page installed where the player looks" test -s "$R/usr/share/pbikiosk/web/vendor/powerbi.min.js"

if [ "$BOOT_ONLY" = 0 ]; then
# b) upgrade keeps a modified config, fixes secret permissions
cat >"$R/etc/pbikiosk/pbikiosk.toml" <<'EOF'
# edited by the installer
[auth]
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_file = "/etc/pbikiosk/client-secret"
username = "svc@contoso.onmicrosoft.com"
password_file = "/etc/pbikiosk/password"
EOF
echo "not-a-real-secret" >"$R/etc/pbikiosk/client-secret"
echo "not-a-real-password" >"$R/etc/pbikiosk/password"
chmod 0644 "$R/etc/pbikiosk/client-secret" "$R/etc/pbikiosk/password"
sum_before=$(sha256sum "$R/etc/pbikiosk/pbikiosk.toml" "$R/etc/pbikiosk/client-secret" "$R/etc/pbikiosk/password" | cut -d' ' -f1)
rm -rf "$W/v2" && dpkg-deb -R "$AMD" "$W/v2"
old_version=$(f "$AMD" Version)
sed -i "s/^Version: .*/Version: ${old_version}+test2/" "$W/v2/DEBIAN/control"
sed -i 's/^# pbikiosk configuration/# pbikiosk configuration (v2 example)/' "$W/v2/usr/share/pbikiosk/pbikiosk.toml.example"
dpkg-deb -b --root-owner-group "$W/v2" "$R/tmp/pbikiosk-v2.deb" >/dev/null
in_root dpkg -i /tmp/pbikiosk-v2.deb >"$W/upgrade.log" 2>&1 </dev/null && ok "upgrade to ${old_version}+test2 (dpkg -i, no prompt)" || { bad "upgrade"; cat "$W/upgrade.log"; }
sum_after=$(sha256sum "$R/etc/pbikiosk/pbikiosk.toml" "$R/etc/pbikiosk/client-secret" "$R/etc/pbikiosk/password" | cut -d' ' -f1)
[ "$sum_before" = "$sum_after" ] && ok "upgrade kept the modified config and the secrets byte for byte" || bad "upgrade changed the config or secrets"
for s in client-secret password; do
  [ "$(st /etc/pbikiosk/$s)" = "640 root:pbikiosk" ] && ok "upgrade set $s to 640 root:pbikiosk" || bad "$s: $(st /etc/pbikiosk/$s)"
done
# shellcheck disable=SC2016
[ "$(in_root dpkg-query -W -f='${Version}' pbikiosk)" = "${old_version}+test2" ] && ok "new version installed" || bad "version after upgrade"

# c) purge leaves nothing behind
in_root dpkg --purge pbikiosk >"$W/purge.log" 2>&1 && ok "dpkg --purge pbikiosk" || { bad "purge"; cat "$W/purge.log"; }
snapshot >"$W/s1"
stray=$(diff <(grep -Ev "$users_files" "$W/s0") <(grep -Ev "$users_files" "$W/s1") || true)
[ -z "$stray" ] && ok "purge left no stray files (users/groups databases aside: Debian keeps system users)" || { bad "purge left differences:"; echo "$stray" | head -40; }
in_root getent passwd pbikiosk >/dev/null && echo "   (the pbikiosk user and group stay after purge, as Debian policy recommends)"

# d) install.sh, twice
mkdir -p "$R/boot/firmware" "$R/tmp/inst"
echo "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait" >"$R/boot/firmware/cmdline.txt"
cp scripts/install.sh "$AMD" "$R/tmp/inst/"
printf 'test-client-secret\n' >"$R/tmp/inst/cs"
printf 'test-password\n' >"$R/tmp/inst/pw"
in_root systemctl enable getty@tty1.service >/dev/null 2>&1 || true
args=(--yes --deb "/tmp/inst/$(basename "$AMD")" --tenant contoso.onmicrosoft.com
  --client-id 11111111-2222-3333-4444-555555555555 --client-secret-file /tmp/inst/cs
  --username svc-signage@contoso.onmicrosoft.com --password-file /tmp/inst/pw
  --workspace aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee --report 99999999-8888-7777-6666-555555555555
  --rotation 90 --mode 1920x1080@60)
in_root /tmp/inst/install.sh "${args[@]}" >"$W/install1.log" 2>&1 && ok "install.sh, first run" || { bad "install.sh first run"; cat "$W/install1.log"; }
sed 's/^/   | /' "$W/install1.log"
[ "$(in_root systemctl is-enabled getty@tty1.service 2>/dev/null || true)" != enabled ] && ok "getty@tty1 disabled" || bad "getty@tty1 still enabled"
[ "$(in_root systemctl is-enabled pbikiosk.service 2>/dev/null)" = enabled ] && ok "pbikiosk.service enabled" || bad "pbikiosk.service not enabled"
[ "$(in_root systemctl is-enabled seatd.service 2>/dev/null)" = enabled ] && ok "seatd.service enabled" || bad "seatd.service not enabled"
for s in client-secret password; do
  [ "$(st /var/lib/pbikiosk-secrets/$s)" = "640 root:pbikiosk" ] && ok "install.sh wrote $s 640 root:pbikiosk" || bad "$s: $(st /var/lib/pbikiosk-secrets/$s)"
done
[ "$(cat "$R/var/lib/pbikiosk-secrets/client-secret")" = test-client-secret ] && ok "client secret content" || bad "client secret content"
grep -q '^tenant = "contoso.onmicrosoft.com"$' "$R/etc/pbikiosk/pbikiosk.toml" && grep -q '^report = "99999999-8888-7777-6666-555555555555"$' "$R/etc/pbikiosk/pbikiosk.toml" &&
  ok "config has [auth] and the first playlist entry" || { bad "config content"; cat "$R/etc/pbikiosk/pbikiosk.toml"; }
grep -qr 'not-a-real\|test-client-secret\|test-password' "$R/etc/pbikiosk/pbikiosk.toml" && bad "a secret is in the config file" || ok "no secret in the config file"
grep -q '^Environment=PBIKIOSK_ROTATION=90$' "$R/etc/systemd/system/pbikiosk.service.d/50-install.conf" && ok "rotation drop-in" || bad "rotation drop-in"
c=$(cat "$R/boot/firmware/cmdline.txt")
[[ $c == *"rootwait consoleblank=0 vt.global_cursor_default=0 video=HDMI-A-1:1920x1080@60D" ]] && ok "cmdline.txt: $c" || bad "cmdline.txt: $c"
# The config the installer wrote must load: point its cloud at the simulator and check.
snapshot >"$W/s2"
in_root /tmp/inst/install.sh "${args[@]}" >"$W/install2.log" 2>&1 && ok "install.sh, second run" || { bad "install.sh second run"; cat "$W/install2.log"; }
sed 's/^/   | /' "$W/install2.log"
snapshot >"$W/s3"
grep -q 'nothing to change' "$W/install2.log" && ok "second run says nothing to change" || bad "second run made changes"
d=$(diff "$W/s2" "$W/s3" || true)
[ -z "$d" ] && ok "second run changed no file (paths, modes, owners, sizes, mtimes)" || { bad "second run changed files:"; echo "$d" | head -20; }

verify_root() { # the installed units with the installer's drop-in, as systemd would load them
  if systemd-analyze verify --man=no --root="$R" pbikiosk.service pbikiosk-recover.service pbikiosk-recover.timer \
    pbikiosk-import.service pbikiosk-hotplug.service >"$W/verify.out" 2>"$W/verify.err" && [ ! -s "$W/verify.err" ]; then
    ok "systemd-analyze verify of the installed units + drop-in ($1): no output on stderr"
  else
    bad "systemd-analyze verify in the root ($1): $(cat "$W/verify.err")"
  fi
}
verify_root "rotation 90"
# Exposure (0 locked down ... 10 unprotected) of every service the package installed, as loaded
# in the root with the installer's drop-in; the same ceiling as scripts/test-units.sh.
max_exposure=4.5
for unit in "$R"/lib/systemd/system/pbikiosk*.service; do
  u=$(basename "$unit")
  out=$(systemd-analyze security --offline=yes --root="$R" "$u" 2>&1 || true)
  level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
  if [ -z "$level" ]; then
    bad "systemd-analyze security $u in the root: no exposure level in: $(tail -3 <<<"$out")"
  elif awk -v l="$level" -v m="$max_exposure" 'BEGIN { exit !(l <= m) }'; then
    ok "systemd-analyze security $u (installed, with the drop-in): exposure $level (at most $max_exposure)"
  else
    bad "systemd-analyze security $u in the root: exposure $level, above $max_exposure"
  fi
done
# e) a third run that changes one thing
in_root /tmp/inst/install.sh --yes --rotation 270 --no-boot-config >"$W/install3.log" 2>&1 && ok "install.sh --rotation 270 (third run)" || { bad "install.sh third run"; cat "$W/install3.log"; }
sed 's/^/   | /' "$W/install3.log"
grep -q '^Environment=PBIKIOSK_ROTATION=270$' "$R/etc/systemd/system/pbikiosk.service.d/50-install.conf" && ok "drop-in now says rotation 270" || { bad "rotation 270 drop-in"; cat "$R/etc/systemd/system/pbikiosk.service.d/50-install.conf"; }
grep -q 'changed: display settings' "$W/install3.log" && [ "$(grep -c 'changed:' "$W/install3.log")" -eq 1 ] && ok "third run changed only the display settings" || bad "third run: $(grep 'changed:' "$W/install3.log")"
verify_root "rotation 270"
# f) a PC with GRUB instead of a Pi's cmdline.txt: kernel options go to a grub.d snippet, once
mv "$R/boot/firmware/cmdline.txt" "$W/cmdline.txt.pi"
printf 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n' >"$R/etc/default/grub"
in_root /tmp/inst/install.sh --yes --mode 1280x720 >"$W/install4.log" 2>&1 && ok "install.sh --mode 1280x720 on a GRUB machine" || { bad "install.sh GRUB run"; cat "$W/install4.log"; }
g=$(cat "$R/etc/default/grub.d/pbikiosk.cfg" 2>/dev/null || true)
# shellcheck disable=SC2016  # the literal $GRUB_CMDLINE_LINUX_DEFAULT
grep -qxF 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT consoleblank=0 vt.global_cursor_default=0 video=HDMI-A-1:1280x720@60D"' <<<"$g" &&
  ok "grub.d/pbikiosk.cfg adds the kernel options" || bad "grub.d snippet: $g"
in_root /tmp/inst/install.sh --yes --mode 1280x720 >"$W/install5.log" 2>&1 && grep -q 'nothing to change' "$W/install5.log" &&
  ok "GRUB machine, second run: nothing to change" || { bad "GRUB second run"; cat "$W/install5.log"; }
rm -f "$R/etc/default/grub" "$R/etc/default/grub.d/pbikiosk.cfg"

fi # BOOT_ONLY: no upgrade, purge or install.sh runs

# ---------------------------------------------------------------- 6
step boot
# The installed unit under a real systemd: boot the root with systemd-nspawn (PID 1 here is
# not systemd). A container has no tty1 and no DRM: tests/boot/90-test-headless.conf lifts the
# tty1 condition and runs cage on wlroots' headless backend; everything else is the shipped unit
# (seatd, Type=notify, NotifyAccess=all, watchdog, sandboxing) with the real player and WebKit.
# tests/boot/pbk-probe watches it from inside and powers the container off.
if ! command -v systemd-nspawn >/dev/null; then
  bad "boot test: systemd-nspawn missing (apt-get install systemd-container)"
else
  P=$W/probe
  rm -rf "$P"
  mkdir -p "$P" "$R/probe" "$R/etc/systemd/system/pbikiosk.service.d"
  # Not configured: the player shows its status screen and needs no network.
  install -m 0640 -o root -g "$(in_root getent group pbikiosk | cut -d: -f3)" \
    "$R/usr/share/pbikiosk/pbikiosk.toml.example" "$R/etc/pbikiosk/pbikiosk.toml"
  rm -f "$R/usr/sbin/policy-rc.d"
  install -m 0644 tests/boot/90-test-headless.conf "$R/etc/systemd/system/pbikiosk.service.d/"
  install -m 0644 tests/boot/pbk-probe.service "$R/etc/systemd/system/"
  install -m 0755 tests/boot/pbk-probe "$R/usr/local/bin/"
  in_root systemctl enable --quiet pbk-probe.service
  for m in proc dev; do mountpoint -q "$R/$m" && umount -l "$R/$m"; done
  MOUNTS=()
  # nspawn wants a terminal for the console: script(1) gives it one.
  timeout 420 script -qfc "systemd-nspawn -D $R -b --register=no --keep-unit --bind=$P:/probe --console=read-only" \
    "$W/boot.typescript" >/dev/null 2>&1 </dev/null || true
  v() { sed -n "s/^$2=//p" "$P/$1" 2>/dev/null; }
  if [ "$(v started ActiveState)" = active ] && [ "$(v started StatusText)" = NotConfigured ]; then
    ok "booted: pbikiosk.service active $(cat "$P/ready-seconds") s after the probe started (READY=1 from the player reached systemd); status NotConfigured $(cat "$P/status-seconds") s after that"
  else
    bad "booted: pbikiosk.service not active: $(cat "$P/started" 2>/dev/null)"
  fi
  if [ "$(v import ConditionResult)" = no ] && [ "$(v import Result)" = success ] &&
    [ "$(v import ConditionTimestampMonotonic)" != 0 ]; then
    ok "pbikiosk-import.service ran in the boot and its condition skipped it (no boot file): the boot goes on"
  else
    bad "pbikiosk-import.service in the boot: $(cat "$P/import" 2>/dev/null)"
  fi
  grep -q 'WebKitWebProcess' "$P/ps" 2>/dev/null && ok "WebKit's web process runs inside the sandboxed unit" || bad "no WebKitWebProcess: $(cat "$P/ps" 2>/dev/null)"
  grep -q '/usr/bin/bwrap .*WebKitWebProcess' "$P/ps" 2>/dev/null && ok "...inside bubblewrap: $(grep -m1 '/usr/bin/bwrap' "$P/ps" | cut -c1-120)" || bad "no bwrap around the web process: $(cat "$P/ps" 2>/dev/null)"
  if [ "$(v after-60s ActiveState)" = active ] && [ "$(v after-60s NRestarts)" = 0 ]; then
    ok "60 s later (WatchdogSec=45s): still active, no restart: the page heartbeat feeds the watchdog"
  else
    bad "after 60 s: $(cat "$P/after-60s" 2>/dev/null)"
  fi
  if [ "$(v restarted NRestarts)" = 1 ] && [ "$(v restarted ActiveState)" = active ]; then
    ok "player frozen (SIGSTOP): the watchdog restarted the session $(cat "$P/restart-seconds") s later; active again"
  else
    bad "after freezing the player: $(cat "$P/restarted" 2>/dev/null)"
  fi
  grep -q 'Watchdog timeout' "$P/journal" 2>/dev/null && ok "journal: watchdog timeout on pbikiosk.service" || bad "no watchdog timeout in the journal"
  # ExecMainCode 1: the main process (cage) exited, rather than being killed by a signal.
  if [ "$(v stopped ActiveState)" = inactive ] && [ "$(v stopped Result)" = success ] &&
    [ "$(v stopped ExecMainCode)" = 1 ] && [ "$(v stopped ExecMainStatus)" = 0 ]; then
    ok "systemctl stop pbikiosk: cage ended by itself with status 0, the unit is inactive, not failed"
  else
    bad "after systemctl stop pbikiosk: $(tr '\n' ' ' <"$P/stopped" 2>/dev/null)"
  fi
  [ "$(head -1 "$P/recover-check" 2>/dev/null)" = "0 success 0" ] && ok "pbikiosk-recover.service's sandbox lets systemctl reach PID 1 (its commands ran and succeeded)" || bad "recover unit check: $(cat "$P/recover-check" 2>/dev/null)"
  # The hot-plug unit as shipped, on a fake /sys/class/drm with a connected screen nothing drives.
  if [ "$(head -1 "$P/hotplug-check" 2>/dev/null)" = "0 success 0" ] && grep -q 'restarting the kiosk session: card0-HDMI-A-1 is connected and the kiosk session drives no screen' "$P/hotplug-check" &&
    [ "$(v hotplug-before InvocationID)" != "$(v hotplug-after InvocationID)" ] && [ "$(v hotplug-after ActiveState)" = active ]; then
    ok "pbikiosk-hotplug.service restarted the kiosk from its sandbox for a connected screen nothing drives; active again"
  else
    bad "hotplug unit check: $(cat "$P/hotplug-check" "$P/hotplug-before" "$P/hotplug-after" 2>/dev/null)"
  fi
  grep -q 'pbikiosk-hotplug.*nothing to do' "$P/boot-journal" 2>/dev/null && ok "pbikiosk-hotplug.service's boot run looked and left the kiosk alone: $(grep -m1 'pbikiosk-hotplug.*nothing to do' "$P/boot-journal" | cut -c1-160)" || bad "hotplug boot run: $(grep pbikiosk-hotplug "$P/boot-journal" 2>/dev/null | head -5)"
  grep -E 'Watchdog|Started pbikiosk|Failed|Scheduled restart' "$P/journal" 2>/dev/null | head -8 | sed 's/^/   | /'
fi

step end
echo
cat "$W/times.txt"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
