#!/usr/bin/env bash
# Test the flashable images (heavy: builds two Debian systems, boots one in QEMU). Root.
#
#   scripts/test-image.sh [--deb-amd64 FILE] [--deb-arm64 FILE]
#                         [--image-amd64 FILE.img[.xz]] [--image-arm64 FILE.img[.xz]]
#                         [--raspios FILE.img.xz] [--only amd64|arm64|raspios]
#
# 1. Builds both images with scripts/build-image.sh (or takes the given .img.xz files) and
#    checks their checksum files.
# 2. amd64: a copy of the image, made 2 GiB bigger than written (as a card is bigger than the
#    image), gets a test-only unit (pbikiosk-imagetest.service, added to the copy only) that
#    writes what the first boot did to the serial port. The copy is booted in QEMU (UEFI, KVM
#    when /dev/kvm is there, else TCG) without a display; when the player's /status says
#    not_configured, QEMU's screendump is saved as target/image/test/amd64-not-configured.png.
#    Checked: the kiosk reached the not-configured status screen (its /status, and a screendump
#    with the many colours of a rendered page, not a text console), the root file system grew
#    to the medium, /etc/machine-id was made at that boot (the image ships "uninitialized"),
#    SSH host keys were made at that boot (the image ships none), no account has a password,
#    SSH is off (no key given).
#    Then, when the image's pbikiosk has `pbikiosk import`: a pbikiosk.toml pointing at a
#    simulator run inside the guest (pbikiosk-imagetest-sim.service, also test-only) is put on
#    the boot partition; the next boot must play reports, and the FAT copy must be gone.
#    Without `pbikiosk import` this step says SKIP.
# 3. arm64: the image's partitions are loop-mounted and checked: pbikiosk --version runs under
#    qemu-user, the units are enabled, the kernel, initrd, device trees of the Pis it boots and
#    raspi-firmware's files are on the FAT partition, its cmdline.txt names the root partition,
#    no SSH host keys, no machine id, no password. Then (unless ARM64_BOOT=0) a copy is booted
#    in QEMU's `virt` machine (cortex-a72, TCG) with the image's own kernel and initrd and its
#    cmdline.txt, the root on a virtio disk, and checked as the amd64 first boot
#    (target/image/test/arm64-not-configured.png). `virt` is not a Raspberry Pi: the Pi
#    firmware, config.txt and device trees are not exercised by this boot.
# 4. --from-raspios: without --raspios FILE (an official Raspberry Pi OS Lite image), a
#    STAND-IN is made (scripts/raspios-standin.sh: Raspberry Pi OS's partition shape around a
#    Debian arm64 root; Raspberry Pi OS cannot be downloaded here); build-image.sh
#    --from-raspios converts it and the result's file systems are checked (pbikiosk runs under
#    qemu-user, units, userconfig/sshswitch masked, no keys, no machine id, no password, the
#    boot partition root-only, cmdline.txt). Not booted.
# Figures (build times, sizes, boot time to the status screen) are printed at the end.
# Needs root, loop devices, qemu-system-x86, qemu-system-arm, ovmf, ImageMagick (installed when
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ROOT=$PWD
OUT=$ROOT/target/image
T=$OUT/test
BOOT_TIMEOUT=${BOOT_TIMEOUT:-400}

log() { printf '== %s\n' "$*" >&2; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}
ok() { printf 'ok: %s\n' "$*"; }

deb_amd64='' deb_arm64='' img_amd64='' img_arm64='' only='' raspios=''
while [ $# -gt 0 ]; do
  case $1 in
  --deb-amd64) deb_amd64=$2; shift ;;
  --deb-arm64) deb_arm64=$2; shift ;;
  --image-amd64) img_amd64=$2; shift ;;
  --image-arm64) img_arm64=$2; shift ;;
  --only) only=$2; shift ;;
  --raspios) raspios=$2; shift ;;
  *) echo "unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || fail "run as root (loop devices, mounts, mmdebstrap)"
apt_install qemu-system-x86 qemu-system-arm ovmf imagemagick socat util-linux mtools

mkdir -p "$T"
rm -f "$T/build-figures"
figures=()
mounts=()
loops=()
qemu_pid=
accel_mode=''
p1='' p2='' fat=''
cleanup() {
  local i
  if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; fi
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}" 2>/dev/null || true; done
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
}
trap cleanup EXIT

# attach IMG -> sets $p1 and $p2: a loop device for each partition, at its offset (partition
# scanning of loop devices is not available in every container).
attach() {
  local n start size
  for n in 1 2; do
    read -r start size < <(sfdisk --dump "$1" | sed -n "s/^[^:]*$n : start= *\([0-9]*\), size= *\([0-9]*\).*/\1 \2/p")
    [ -n "$start" ] || fail "no partition $n in $1"
    local l
    l=$(losetup --find --show --offset $((start * 512)) --sizelimit $((size * 512)) "$1")
    loops+=("$l")
    if [ "$n" = 1 ]; then p1=$l fat="$1@@$((start * 512))"; else p2=$l; fi
  done
}
detach() {
  local x
  for x in "$p1" "$p2"; do losetup -d "$x" 2>/dev/null || true; done
  loops=()
}
# The FAT partitions are read and written with mtools: no vfat driver is needed on this machine.
export MTOOLS_SKIP_CHECK=1
# $fat: the image file at the FAT partition's offset (mtools on a loop device asks it for a
# disk geometry it does not have).
fat_has() { mdir -b -i "$fat" "::/$1" >/dev/null 2>&1; }

mnt() {
  mount "$@"
  mounts+=("${!#}")
}
umnt() {
  umount "$1"
  local keep=()
  for x in "${mounts[@]}"; do [ "$x" = "$1" ] || keep+=("$x"); done
  mounts=("${keep[@]}")
}

build() { # ARCH DEB -> the .img.xz path
  local arch=$1 deb=$2 args=() t0
  [ -n "$deb" ] && args=(--deb "$deb")
  t0=$(date +%s)
  scripts/build-image.sh "$arch" "${args[@]}" --name "pbikiosk-test-$arch" | tail -n 1
  # Run in $(...): the figure goes through a file.
  echo "$arch image built in $(($(date +%s) - t0)) s" >>"$T/build-figures"
}

# unpack IMG[.xz] COPY: the test works on a copy (an uncompressed .img is taken as it is, for
# reruns against an image kept from a build).
unpack() {
  case $1 in
  *.xz) xz -dc "$1" >"$2" ;;
  *) cp --sparse=always "$1" "$2" ;;
  esac
}

check_sum() {
  case $1 in *.xz) ;; *) return 0 ;; esac
  (cd "$(dirname "$1")" && sha256sum -c --quiet "$(basename "$1").sha256") || fail "$1: checksum does not match"
  ok "$(basename "$1"): sha256 matches; $(du -h "$1" | cut -f1) compressed, $(xz -l --robot "$1" | awk '/^totals/ {printf "%d MiB", $5/1048576}') uncompressed"
  figures+=("$(basename "$1"): $(du -h "$1" | cut -f1) compressed")
}

# check_image_rules NAME ROOT: the rules every image follows (scripts/build-image.sh), in its
# mounted root file system: no machine id and no SSH host keys (each device makes its own), no
# account with a password, systemd-firstboot masked (it would wait for a key at the first boot).
check_image_rules() {
  local name=$1 m=$2
  case $(cat "$m/etc/machine-id") in "" | uninitialized) ;; *) fail "$name: the image ships a machine id" ;; esac
  ! ls "$m"/etc/ssh/ssh_host_* >/dev/null 2>&1 || fail "$name: the image ships SSH host keys"
  [ "$(awk -F: '$2 !~ /^[!*]/ && $2 != "" {n++} END {print n+0}' "$m/etc/shadow")" = 0 ] || fail "$name: an account has a password"
  [ "$(readlink "$m/etc/systemd/system/systemd-firstboot.service")" = /dev/null ] || fail "$name: systemd-firstboot.service not masked"
  ok "$name: no machine id, no SSH host keys, no password, systemd-firstboot masked"
}

# check_arm64_root NAME ROOT: pbikiosk runs under qemu-user, its units are enabled, SSH is not.
check_arm64_root() {
  local name=$1 m=$2 v u
  v=$(chroot "$m" /usr/bin/pbikiosk --version) || fail "$name: pbikiosk --version does not run under qemu-user"
  ok "$name: $v runs (qemu-user)"
  for u in multi-user.target.wants/pbikiosk.service timers.target.wants/pbikiosk-recover.timer sysinit.target.wants/pbikiosk-image-boot.service; do
    [ -L "$m/etc/systemd/system/$u" ] || fail "$name: $u not enabled"
  done
  [ ! -L "$m/etc/systemd/system/multi-user.target.wants/ssh.service" ] || fail "$name: ssh enabled without a key"
  ok "$name: pbikiosk.service, pbikiosk-recover.timer, pbikiosk-image-boot.service enabled; ssh not"
}

# ---------------------------------------------------------------------------------------------
# amd64
# ---------------------------------------------------------------------------------------------
# The test-only unit: waits for the player's /status, then reports on the serial port.
imagetest_script() {
  cat <<'EOF'
#!/bin/bash
# Test only (scripts/test-image.sh): what this boot did, on the serial port.
out=${IMAGETEST_SERIAL:-/dev/ttyS0}
say() { echo "IMAGETEST $*" >"$out"; }
status=
for _ in $(seq 150); do
  if exec 3<>/dev/tcp/127.0.0.1/9520 2>/dev/null; then
    printf 'GET /status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
    status=$(sed -n '/^\r\{0,1\}$/,$p' <&3 | tr -d '\r\n')
    exec 3>&-
    case $status in *'"state":"starting"'* | *'"state":"signing_in"'* | '') ;; *) break ;; esac
  fi
  sleep 1
done
say "uptime=$(cut -d' ' -f1 /proc/uptime)"
say "status=$status"
say "machine-id=$(cat /etc/machine-id)"
say "root-bytes=$(findmnt -n -b -o SIZE /)"
say "disk-bytes=$(lsblk -n -b -d -o SIZE "/dev/$(lsblk -n -d -o PKNAME "$(findmnt -n -o SOURCE /)")")"
for k in /etc/ssh/ssh_host_*_key.pub; do say "hostkey=$(ssh-keygen -l -f "$k" | awk '{print $2}') $(stat -c %Y "$k")"; done
say "boot-time=$(date +%s) booted-at=$(($(date +%s) - $(cut -d. -f1 /proc/uptime)))"
say "passwords=$(awk -F: '$2 !~ /^[!*]/ && $2 != "" {n++} END {print n+0}' /etc/shadow)"
say "ssh=$(systemctl is-enabled ssh.service 2>&1)/$(systemctl is-active ssh.service 2>&1)"
say "image-boot=$(systemctl is-active pbikiosk-image-boot.service)"
say "kiosk=$(systemctl is-active pbikiosk.service)"
say "boot-files=$(ls /boot/firmware | tr '\n' ' ')"
say "failed-units=$(systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
# How the previous boot's shutdown stopped the kiosk (the journal is kept on the disk).
say "previous-kiosk-stop=$(journalctl -b -1 -u pbikiosk.service -o cat --no-pager 2>/dev/null | grep -E 'Failed with result|Deactivated successfully' | tail -n 1)"
if [ "$(systemctl is-active pbikiosk.service)" != active ]; then
  journalctl -b -u pbikiosk.service -n 60 --no-pager -o cat | sed 's/^/IMAGETEST journal: /' >"$out"
fi
say READY
EOF
}

imagetest_unit() { # SERIAL: the guest's serial device (ttyS0 on a PC, ttyAMA0 on arm64 virt)
  sed "s#@SERIAL@#/dev/${1:-ttyS0}#" <<'EOF'
[Unit]
Description=pbikiosk image test: report this boot on the serial port (test only)
After=pbikiosk.service pbikiosk-image-boot.service

[Service]
Type=oneshot
Environment=IMAGETEST_SERIAL=@SERIAL@
ExecStart=/usr/local/sbin/pbikiosk-imagetest

[Install]
WantedBy=multi-user.target
EOF
}

qmp() { # one QMP command on the socket; prints the answers
  printf '{"execute":"qmp_capabilities"}\n%s\n' "$1" | socat -t 5 - "UNIX-CONNECT:$T/qmp.sock"
}

# boot_amd64 IMG SERIAL SHOT [MOVING]: runs QEMU until the guest reports READY (screendump then)
# and shuts down. MOVING: how many pixels may change between two screendumps of a screen that
# is done painting (a report's clock ticks; the status screens stand still: 0).
boot_amd64() { boot_vm amd64 "$@"; }

# boot_vm ARCH IMG SERIAL SHOT [MOVING]. arm64: QEMU's `virt` machine (not a Raspberry Pi: the Pi
# firmware and config.txt play no part), started with the image's own Debian kernel and initrd
# (taken from its boot partition into $T/arm64-vmlinuz, $T/arm64-initrd.img) and the image's
# cmdline.txt, root on a virtio disk; always TCG.
boot_vm() {
  local arch=$1 img=$2 serial=$3 shot=$4 moving=${5:-0} accel=() t0 timeout
  if [ "$arch" = arm64 ]; then
    rm -f "$serial" "$T/qmp.sock"
    timeout=$((BOOT_TIMEOUT * 4))
    t0=$(date +%s.%N)
    qemu-system-aarch64 -machine virt -cpu cortex-a72 -m 2048 -smp 2 \
      -kernel "$T/arm64-vmlinuz" -initrd "$T/arm64-initrd.img" -append "$(cat "$T/arm64-cmdline")" \
      -drive file="$img",format=raw,if=none,id=disk -device virtio-blk-pci,drive=disk \
      -device virtio-gpu-pci -display none -nic user,model=virtio-net-pci,restrict=on \
      -serial "file:$serial" -qmp "unix:$T/qmp.sock,server=on,wait=off" 2>"$serial.qemu" &
    qemu_pid=$!
    wait_report_and_screen "$serial" "$shot" "$timeout" "$t0" "$moving"
    return
  fi
  # KVM when it works. Some nested hosts offer /dev/kvm but cannot run the firmware under it
  # ("KVM internal error ... emulation failure"): the first boot tries KVM for a few seconds
  # and falls back to TCG (slower, same result).
  if [ -z "$accel_mode" ]; then
    accel_mode=tcg
    if [ -w /dev/kvm ]; then
      timeout 20 qemu-system-x86_64 -machine q35,accel=kvm -m 512 -bios /usr/share/ovmf/OVMF.fd \
        -display none -nodefaults -no-reboot >"$T/kvm-probe.log" 2>&1 || true
      if grep -q 'KVM internal error\|failed to' "$T/kvm-probe.log"; then
        log "KVM does not run the UEFI firmware on this host ($(grep -m1 'KVM internal error\|failed to' "$T/kvm-probe.log")): using TCG"
      else
        accel_mode=kvm
      fi
    fi
  fi
  accel=(-machine "q35,accel=$accel_mode")
  [ "$accel_mode" = tcg ] && timeout=$((BOOT_TIMEOUT * 3)) || timeout=$BOOT_TIMEOUT
  # virtio-vga: wlroots (cage) refuses the standard VGA card's DRM driver (no PRIME import).
  rm -f "$serial" "$T/qmp.sock"
  t0=$(date +%s.%N)
  qemu-system-x86_64 "${accel[@]}" -m 2048 -smp 2 \
    -bios /usr/share/ovmf/OVMF.fd \
    -drive file="$img",format=raw,if=virtio \
    -vga virtio -display none -nic user,model=virtio-net-pci,restrict=on \
    -serial "file:$serial" -qmp "unix:$T/qmp.sock,server=on,wait=off" 2>"$serial.qemu" &
  qemu_pid=$!
  wait_report_and_screen "$serial" "$shot" "$timeout" "$t0" "$moving"
}

# wait_report_and_screen SERIAL SHOT TIMEOUT T0 MOVING: the running QEMU ($qemu_pid) until READY on
# the serial log, the screendumps, the power-off. Sets boot_seconds and screen_seconds.
wait_report_and_screen() {
  local serial=$1 shot=$2 timeout=$3 t0=$4 moving=$5
  local i up=
  for ((i = 0; i < timeout; i++)); do
    grep -q 'IMAGETEST READY' "$serial" 2>/dev/null && { up=1; break; }
    kill -0 "$qemu_pid" 2>/dev/null || break
    sleep 1
  done
  boot_seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}')
  if [ -z "$up" ]; then
    tail -n 40 "$serial" >&2 || true
    qmp '{"execute":"screendump","arguments":{"filename":"'"$T/failed.ppm"'"}}' >/dev/null || true
    convert "$T/failed.ppm" "$T/failed.png" 2>/dev/null || true
    fail "the guest did not report within ${timeout} s (serial log $serial, screen $T/failed.png)"
  fi
  # /status changes before the web view has painted (slowly, under TCG), and the page's
  # "Starting..." screen comes first (its dots move): screendumps until the screen shows a
  # rendered page (many colours; a text console or a black screen has a few) that stays the
  # same for 10 s (but for MOVING pixels), or the time is up. The last one is kept either way.
  local colours=0 end=$((SECONDS + timeout / 2)) same=0
  while :; do
    [ -f "$shot.png" ] && mv "$shot.png" "$shot.prev.png"
    qmp '{"execute":"screendump","arguments":{"filename":"'"$shot.ppm"'"}}' >/dev/null
    for i in $(seq 20); do [ -s "$shot.ppm" ] && break; sleep 0.5; done
    convert "$shot.ppm" "$shot.png" && rm -f "$shot.ppm"
    colours=$(convert "$shot.png" -format %k info:)
    # A number of changed pixels; anything else compare prints (an error) counts as a change.
    if [ -f "$shot.prev.png" ] &&
      awk -v d="$(compare -metric AE "$shot.png" "$shot.prev.png" null: 2>&1)" -v m="$moving" 'BEGIN { exit !(d ~ /^[0-9.e+]+$/ && d + 0 <= m) }'; then
      same=$((same + 1))
    else
      same=0
    fi
    { [ "$colours" -gt 200 ] && [ "$same" -ge 2 ]; } || [ "$SECONDS" -ge "$end" ] && break
    sleep 5
  done
  rm -f "$shot.prev.png"
  screen_seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}')
  qmp '{"execute":"system_powerdown"}' >/dev/null || true
  for i in $(seq 90); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$qemu_pid" 2>/dev/null; then
    log "the guest did not power off within 90 s; stopping QEMU"
    qmp '{"execute":"quit"}' >/dev/null || kill "$qemu_pid"
  fi
  wait "$qemu_pid" 2>/dev/null || true
  qemu_pid=
}

field() { sed -n "s/^IMAGETEST $1=//p" "$2" | tr -d '\r' | head -n 1; }

test_amd64() {
  local xzimg=$1 img=$T/amd64.img m=$T/mnt-amd64 serial=$T/amd64-boot1.serial
  log "amd64: preparing a copy of $(basename "$xzimg")"
  unpack "$xzimg" "$img"
  local written
  written=$(stat -c %s "$img")
  # A card or stick is bigger than the image: the first boot must grow into the rest.
  truncate -s +2G "$img"
  attach "$img"
  mkdir -p "$m"
  mnt "$p2" "$m"
  check_image_rules amd64 "$m"
  [ -L "$m/etc/systemd/system/multi-user.target.wants/pbikiosk.service" ] || fail "amd64: pbikiosk.service not enabled"
  for f in EFI/BOOT/BOOTX64.EFI loader/loader.conf loader/entries/pbikiosk.conf vmlinuz initrd.img; do
    fat_has "$f" || fail "amd64: $f missing on the EFI system partition"
  done
  ok "amd64 EFI system partition: systemd-boot, loader entry, kernel, initrd"
  imagetest_script >"$m/usr/local/sbin/pbikiosk-imagetest"
  chmod 755 "$m/usr/local/sbin/pbikiosk-imagetest"
  imagetest_unit >"$m/etc/systemd/system/pbikiosk-imagetest.service"
  ln -sf /etc/systemd/system/pbikiosk-imagetest.service "$m/etc/systemd/system/multi-user.target.wants/"
  # QEMU's virtio-gpu has no 3D here: wlroots' GLES renderer falls back to kms_swrast and cage
  # crashes (SEGV) on it; its pixman renderer draws in software. Test only: a real screen's GPU
  # (i915, amdgpu, vc4) has the GLES renderer.
  mkdir -p "$m/etc/systemd/system/pbikiosk.service.d"
  printf '[Service]\nEnvironment=WLR_RENDERER=pixman WLR_NO_HARDWARE_CURSORS=1\n' \
    >"$m/etc/systemd/system/pbikiosk.service.d/50-imagetest-vm.conf"
  # Kernel and systemd messages on the serial port too, for a boot that goes wrong;
  # no_timer_check: under TCG on a busy host the kernel may find the timer too slow and panic.
  mtype -i "$fat" ::/loader/entries/pbikiosk.conf | sed 's/^options .*/& console=tty1 console=ttyS0,115200 no_timer_check/' >"$T/entry.conf"
  mcopy -o -i "$fat" "$T/entry.conf" ::/loader/entries/pbikiosk.conf
  local has_import=0
  chroot "$m" /usr/bin/pbikiosk import --help >/dev/null 2>&1 && has_import=1
  umnt "$m"
  detach

  log "amd64: first boot in QEMU"
  boot_amd64 "$img" "$serial" "$T/amd64-not-configured"
  figures+=("amd64 first boot: /status not_configured ${boot_seconds} s, status screen drawn ${screen_seconds} s after QEMU start ($accel_mode)")
  grep '^IMAGETEST' "$serial" | tr -d '\r' | sed 's/^/  /'
  check_first_boot amd64 "$serial" "$T/amd64-not-configured.png" "$written"

  if [ "$has_import" = 0 ]; then
    echo "SKIP: pbikiosk import not in this package (the boot-partition pbikiosk.toml step needs it)"
    return 0
  fi
  test_amd64_import "$img"
}

# check_first_boot ARCH SERIAL SHOT WRITTEN: what the first boot did, from the guest's report
# on its serial port and the screendump SHOT; WRITTEN is the image's size in bytes.
check_first_boot() {
  local a=$1 serial=$2 shot=$3 written=$4
  local status
  status=$(field status "$serial")
  case $status in *'"state":"not_configured"'*) ok "$a: /status says not_configured" ;; *) fail "$a: /status is '$status', not not_configured" ;; esac
  [ "$(field kiosk "$serial")" = active ] || fail "$a: pbikiosk.service is not active"
  local colours
  colours=$(convert "$shot" -format %k info:)
  [ "$colours" -gt 200 ] || fail "$a: the screendump has $colours colours: a console, not the status screen ($shot)"
  ok "$a: screendump $shot has $colours colours (a rendered page)"
  local mid
  mid=$(field machine-id "$serial")
  [[ $mid =~ ^[0-9a-f]{32}$ ]] || fail "$a: machine id '$mid'"
  ok "$a: machine id made at first boot ($mid)"
  local rootb diskb
  rootb=$(field root-bytes "$serial")
  diskb=$(field disk-bytes "$serial")
  [ "$rootb" -gt "$written" ] || fail "$a: root file system $rootb bytes, not grown past the image's $written"
  [ "$rootb" -gt $((diskb - 400 * 1048576)) ] || fail "$a: root file system $rootb bytes on a $diskb-byte disk: not grown to the end"
  ok "$a: root file system grew to $((rootb / 1048576)) MiB on a $((diskb / 1048576)) MiB disk (image $((written / 1048576)) MiB)"
  grep -q '^IMAGETEST hostkey=SHA256:' "$serial" || fail "$a: no SSH host keys after the first boot"
  ok "$a: SSH host keys made at first boot ($(grep -c '^IMAGETEST hostkey=' "$serial") keys)"
  [ "$(field passwords "$serial")" = 0 ] || fail "$a: $(field passwords "$serial") accounts have a password"
  ok "$a: no account has a password"
  case $(field ssh "$serial") in disabled/inactive) ok "$a: SSH off (no key given)" ;; *) fail "$a: ssh is $(field ssh "$serial") without a key" ;; esac
  [ "$(field image-boot "$serial")" = active ] || fail "$a: pbikiosk-image-boot.service is $(field image-boot "$serial")"
}

# With `pbikiosk import` in the package: a pbikiosk.toml on the FAT partition, pointing at a
# simulator run in the guest, is imported at the next boot and the reports play.
test_amd64_import() {
  local img=$1 m=$T/mnt-amd64 serial=$T/amd64-boot2.serial
  attach "$img"
  mnt "$p2" "$m"
  # The simulator prints the config that points at it; it is the same in the guest (same port,
  # same built-in scenario).
  local simcfg=$T/sim-config.toml
  timeout 10 chroot "$m" /usr/bin/pbikiosk sim --listen 127.0.0.1:9521 >"$simcfg" 2>/dev/null || true
  grep -q '^\[auth\]' "$simcfg" || fail "amd64: pbikiosk sim printed no config"
  # The web view reaches the simulated reports as https://app.powerbi.com through the
  # simulator's front door (a loopback proxy with a CA made at its start), as a screen behind
  # a TLS-inspecting corporate proxy would: the config names the proxy and trusts the CA.
  local bootcfg=$T/boot-pbikiosk.toml
  awk '/^\[auth\]/ {p = 1} p && !/^# embed front/' "$simcfg" |
    sed 's#^\[cloud\]$#[cloud]\nca_file = "/run/pbikiosk-imagetest/ca.pem"#' >"$bootcfg"
  printf '\n[network]\nproxy = "http://127.0.0.1:9522"\n' >>"$bootcfg"
  mcopy -o -i "$fat" "$bootcfg" ::/pbikiosk.toml
  cat >"$m/etc/systemd/system/pbikiosk-imagetest-sim.service" <<'EOF'
[Unit]
Description=Microsoft simulator for the image test (test only)
Before=pbikiosk.service pbikiosk-import.service

[Service]
# Root, so that the CA it writes is root's, as the config's ca_file must be.
ExecStart=/usr/bin/pbikiosk sim --listen 127.0.0.1:9521 --embed-front --ca-out /run/pbikiosk-imagetest/ca.pem --front-port 9522
# The import checks ca_file: the CA must exist before the import starts.
ExecStartPost=/bin/sh -c 'for i in $(seq 100); do [ -s /run/pbikiosk-imagetest/ca.pem ] && exit 0; sleep 0.2; done; exit 1'
RuntimeDirectory=pbikiosk-imagetest
RuntimeDirectoryMode=0755

[Install]
WantedBy=multi-user.target
EOF
  ln -sf /etc/systemd/system/pbikiosk-imagetest-sim.service "$m/etc/systemd/system/multi-user.target.wants/"
  umnt "$m"
  detach

  log "amd64: second boot, with pbikiosk.toml on the boot partition"
  # The report's clock changes every second: up to 2 % of a 1280x800 screen may move.
  boot_amd64 "$img" "$serial" "$T/amd64-playing" 20000
  grep '^IMAGETEST' "$serial" | tr -d '\r' | sed 's/^/  /'
  case $(field status "$serial") in *'"state":"playing"'*) ok "amd64: the imported config plays reports" ;; *) fail "amd64: after import /status is '$(field status "$serial")', not playing ($T/amd64-playing.png)" ;; esac
  case " $(field boot-files "$serial") " in *" pbikiosk.toml "*) fail "amd64: pbikiosk.toml is still on the boot partition" ;; esac
  ok "amd64: pbikiosk.toml removed from the boot partition after the import"
  case $(field previous-kiosk-stop "$serial") in
  *'Deactivated successfully'*) ok "amd64: the first boot's power-off stopped pbikiosk.service cleanly (cage not aborted)" ;;
  *) fail "amd64: the first boot's power-off stopped pbikiosk.service with: '$(field previous-kiosk-stop "$serial")'" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# arm64
# ---------------------------------------------------------------------------------------------
test_arm64() {
  local xzimg=$1 img=$T/arm64.img m=$T/mnt-arm64
  log "arm64: checking $(basename "$xzimg")"
  unpack "$xzimg" "$img"
  [ "$(sfdisk --json "$img" | grep -o '"label": *"[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"')" = dos ] || fail "arm64: not an MBR image"
  attach "$img"
  mkdir -p "$m"
  mnt "$p2" "$m"
  check_arm64_root arm64 "$m"
  local kver
  kver=$(find "$m/lib/modules" -mindepth 1 -maxdepth 1 -printf "%f\n" | sort -V | tail -n 1)
  for f in "vmlinuz-$kver" "initrd.img-$kver" config.txt cmdline.txt bootcode.bin start4.elf fixup4.dat start.elf fixup.dat \
    bcm2711-rpi-4-b.dtb bcm2711-rpi-400.dtb bcm2711-rpi-cm4-io.dtb bcm2837-rpi-3-b.dtb bcm2837-rpi-3-b-plus.dtb; do
    fat_has "$f" || fail "arm64: $f missing on the boot partition"
  done
  ok "arm64 boot partition: kernel $kver, its initrd, Pi firmware, config.txt, cmdline.txt, device trees of Pi 3/3B+/4/400/CM4"
  # The CM4's device tree is named in config.txt, for the CM4 only (board type 0x14).
  mtype -i "$fat" ::/config.txt | tr -d '\r' | awk '
    /^\[/ { cm4 = ($0 == "[board-type=0x14]") }
    cm4 && $0 == "device_tree=bcm2711-rpi-cm4-io.dtb" { named = 1 }
    !cm4 && /^device_tree=/ { other = 1 }
    END { exit !(named && !other) }' || fail "arm64: config.txt does not name bcm2711-rpi-cm4-io.dtb for the CM4 alone: $(mtype -i "$fat" ::/config.txt | grep -v '^#' | tr '\n' ' ')"
  ok "arm64: config.txt names the CM4's device tree under [board-type=0x14] only"
  local cmdline
  cmdline=$(mtype -i "$fat" ::/cmdline.txt)
  case $cmdline in *root=LABEL=RASPIROOT*) ;; *) fail "arm64: cmdline.txt does not name RASPIROOT: $cmdline" ;; esac
  [ "$(blkid -s LABEL -o value "$p2")" = RASPIROOT ] || fail "arm64: root partition not labelled RASPIROOT"
  [ "$(blkid -s LABEL -o value "$p1")" = RASPIFIRM ] || fail "arm64: boot partition not labelled RASPIFIRM"
  ok "arm64: cmdline.txt root=LABEL=RASPIROOT matches the partition labels"
  check_image_rules arm64 "$m"
  if [ "${ARM64_BOOT:-1}" = 0 ]; then
    echo "SKIP: arm64 boot (ARM64_BOOT=0)"
    umnt "$m"
    detach
    rm -f "$img"
    return 0
  fi
  # The boot in QEMU's `virt` machine: not a Raspberry Pi, so the Pi firmware, config.txt and
  # device trees play no part; what it shows is that the image's kernel, initrd, root file
  # system, first boot and kiosk come up on arm64. Prepared as the amd64 copy is.
  local written
  written=$(stat -c %s "$img")
  imagetest_script >"$m/usr/local/sbin/pbikiosk-imagetest"
  chmod 755 "$m/usr/local/sbin/pbikiosk-imagetest"
  imagetest_unit ttyAMA0 >"$m/etc/systemd/system/pbikiosk-imagetest.service"
  ln -sf /etc/systemd/system/pbikiosk-imagetest.service "$m/etc/systemd/system/multi-user.target.wants/"
  mkdir -p "$m/etc/systemd/system/pbikiosk.service.d"
  printf '[Service]\nEnvironment=WLR_RENDERER=pixman WLR_NO_HARDWARE_CURSORS=1\n' \
    >"$m/etc/systemd/system/pbikiosk.service.d/50-imagetest-vm.conf"
  mcopy -o -i "$fat" "::/vmlinuz-$kver" "$T/arm64-vmlinuz"
  mcopy -o -i "$fat" "::/initrd.img-$kver" "$T/arm64-initrd.img"
  # The Pi's serial console is ttyS1 (mini UART) or ttyAMA0; virt's is ttyAMA0.
  local tok args=()
  for tok in $cmdline; do case $tok in console=*) ;; *) args+=("$tok") ;; esac; done
  echo "${args[*]} console=tty0 console=ttyAMA0,115200" >"$T/arm64-cmdline"
  umnt "$m"
  detach
  truncate -s +2G "$img"
  log "arm64: first boot in QEMU (virt, cortex-a72, TCG): $(cat "$T/arm64-cmdline")"
  boot_vm arm64 "$img" "$T/arm64-boot1.serial" "$T/arm64-not-configured"
  figures+=("arm64 first boot (QEMU virt, TCG): /status not_configured ${boot_seconds} s, status screen drawn ${screen_seconds} s after QEMU start")
  grep '^IMAGETEST' "$T/arm64-boot1.serial" | tr -d '\r' | sed 's/^/  /'
  check_first_boot arm64 "$T/arm64-boot1.serial" "$T/arm64-not-configured.png" "$written"
  rm -f "$img"
}

# ---------------------------------------------------------------------------------------------
# --from-raspios
# ---------------------------------------------------------------------------------------------
# A Raspberry Pi OS Lite image cannot be downloaded here: without --raspios FILE the test makes
# a STAND-IN (scripts/raspios-standin.sh: Raspberry Pi OS's partition shape, a Debian arm64
# root), converts it with build-image.sh --from-raspios and checks the result's file systems.
test_raspios() {
  local src=$1 deb=$2 m=$T/mnt-raspios img=$T/raspios.img xzimg t0
  if [ -z "$src" ]; then
    log "raspios: making the stand-in image (not Raspberry Pi OS: Debian arm64 in its shape)"
    t0=$(date +%s)
    src=$(scripts/raspios-standin.sh "$OUT/raspios-standin.img.xz" | tail -n 1)
    figures+=("raspios stand-in made in $(($(date +%s) - t0)) s")
  fi
  local args=()
  [ -n "$deb" ] && args=(--deb "$deb")
  t0=$(date +%s)
  xzimg=$(scripts/build-image.sh --from-raspios "$src" "${args[@]}" --name pbikiosk-test-raspios | tail -n 1)
  figures+=("--from-raspios image built in $(($(date +%s) - t0)) s")
  check_sum "$xzimg"
  unpack "$xzimg" "$img"
  attach "$img"
  mkdir -p "$m"
  mnt "$p2" "$m"
  check_arm64_root raspios "$m"
  for u in userconfig sshswitch; do
    [ "$(readlink "$m/etc/systemd/system/$u.service")" = /dev/null ] || fail "raspios: $u.service not masked"
  done
  ok "raspios: userconfig and sshswitch masked"
  check_image_rules raspios "$m"
  grep -Eq '^PARTUUID=[0-9a-f]+-01[[:space:]]+/boot/firmware[[:space:]]+vfat[[:space:]]+rw,umask=0077,nofail' "$m/etc/fstab" ||
    fail "raspios: /boot/firmware not mounted root-only by its PARTUUID: $(grep boot/firmware "$m/etc/fstab")"
  ok "raspios: the boot partition keeps its PARTUUID mount, root-only (umask=0077)"
  local cmdline
  cmdline=$(mtype -i "$fat" ::/cmdline.txt)
  case $cmdline in *root=PARTUUID=*-02*consoleblank=0*) ;; *) fail "raspios: cmdline.txt: $cmdline" ;; esac
  ok "raspios: cmdline.txt keeps root=PARTUUID and has consoleblank=0"
  [ -f "$m/var/lib/dpkg/info/pbikiosk.list" ] || fail "raspios: pbikiosk not installed"
  [ -x "$m/usr/bin/cage" ] || fail "raspios: cage not installed"
  [ "$(find "$m/var/lib/apt/lists" -maxdepth 1 -type f ! -name lock | wc -l)" = 0 ] || fail "raspios: apt lists left in the image"
  ok "raspios: pbikiosk and cage installed with apt, no apt lists left; root $(df -m --output=used,size "$m" | tail -n 1 | awk '{print $1 " of " $2}') MiB used"
  umnt "$m"
  detach
  rm -f "$img"
}

if [ "$only" = "" ] || [ "$only" = amd64 ]; then
  [ -n "$img_amd64" ] || img_amd64=$(build amd64 "$deb_amd64")
  check_sum "$img_amd64"
  test_amd64 "$img_amd64"
  rm -f "$T/amd64.img"
fi
if [ "$only" = "" ] || [ "$only" = arm64 ]; then
  [ -n "$img_arm64" ] || img_arm64=$(build arm64 "$deb_arm64")
  check_sum "$img_arm64"
  test_arm64 "$img_arm64"
fi
if [ "$only" = "" ] || [ "$only" = raspios ]; then
  test_raspios "$raspios" "$deb_arm64"
fi
[ -f "$T/build-figures" ] && mapfile -t -O "${#figures[@]}" figures <"$T/build-figures"
echo "figures:"
printf '  %s\n' "${figures[@]}"
echo "test-image: all checks passed"
