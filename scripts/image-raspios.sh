# shellcheck shell=bash
# Sourced by scripts/build-image.sh for --from-raspios: never run on its own. Uses its variables
# (raspios, deb, out, name, work, grow_mib, ssh_key) and functions (log, die, write_rules,
# remove_tree).
#
# A Raspberry Pi OS Lite image (MBR: FAT "bootfs", ext4 "rootfs" as its last partition) becomes
# a pbikiosk image: the copy is made bigger and its root partition and file system grown; the
# root is loop-mounted and the .deb installed with the image's own apt in a chroot run through
# qemu-user (binfmt_misc); the image rules are applied; the boot partition is edited with
# mtools (no vfat driver needed here).

# What is mounted and attached, for raspios_cleanup on any exit (globals: an EXIT trap runs
# after the function that set it has returned).
binds=() loops=()
# shellcheck disable=SC2317  # called by the EXIT trap
raspios_cleanup() {
  local i
  for ((i = ${#binds[@]} - 1; i >= 0; i--)); do umount "${binds[$i]}" 2>/dev/null || umount -l "${binds[$i]}" 2>/dev/null || true; done
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  cleanup
}

# shellcheck disable=SC2154  # out, name, work, deb, ...: build-image.sh's
from_raspios() {
  local img=$out/$name.img root=$work/root started n
  started=$(date +%s)
  trap raspios_cleanup EXIT

  log "copying $(basename "$raspios") to $img"
  rm -f "$img" "$img.xz"
  case $raspios in
  *.xz) xz -dc "$raspios" >"$img" || die "--from-raspios $raspios: xz could not unpack it" ;;
  *) cp --sparse=always "$raspios" "$img" ;;
  esac
  [ "$(sfdisk --json "$img" 2>/dev/null | sed -n 's/.*"label": *"\([a-z]*\)".*/\1/p' | head -n 1)" = dos ] ||
    die "--from-raspios $raspios: not an MBR disk image (Raspberry Pi OS images are)"
  n=$(sfdisk --dump "$img" | grep -c '^[^:]* : start=')
  [ "$n" = 2 ] || die "--from-raspios $raspios: $n partitions, not Raspberry Pi OS's two (bootfs, rootfs)"

  # WebKitGTK, cage and their libraries need room that Raspberry Pi OS's root does not have.
  log "growing the root partition by $grow_mib MiB"
  truncate -s "+${grow_mib}M" "$img"
  echo ', +' | sfdisk --quiet --no-reread --no-tell-kernel -N 2 "$img" >/dev/null ||
    die "could not grow partition 2 of $img"

  local p start size fat=''
  for p in 1 2; do
    read -r start size < <(sfdisk --dump "$img" | sed -n "s/^[^:]*$p : start= *\([0-9]*\), size= *\([0-9]*\).*/\1 \2/p")
    local l
    l=$(losetup --find --show --offset $((start * 512)) --sizelimit $((size * 512)) "$img")
    loops+=("$l")
    [ "$p" = 1 ] && fat="$img@@$((start * 512))"
  done
  export MTOOLS_SKIP_CHECK=1
  [ "$(blkid -s TYPE -o value "${loops[0]}")" = vfat ] || die "--from-raspios: partition 1 is not FAT (bootfs)"
  [ "$(blkid -s TYPE -o value "${loops[1]}")" = ext4 ] || die "--from-raspios: partition 2 is not ext4 (rootfs)"
  mdir -b -i "$fat" ::/cmdline.txt >/dev/null 2>&1 || die "--from-raspios: no cmdline.txt on the boot partition: not a Raspberry Pi OS image"
  e2fsck -fy "${loops[1]}" >/dev/null || [ $? -le 1 ] || die "the image's root file system does not check clean"
  resize2fs "${loops[1]}" >/dev/null 2>&1 || die "could not grow the image's root file system"

  mkdir -p "$root"
  mount "${loops[1]}" "$root"
  binds+=("$root")
  local codename
  # shellcheck disable=SC1091  # the image's file, not this machine's
  codename=$(. "$root/etc/os-release" && echo "${VERSION_CODENAME:-}")
  [ "$codename" = bookworm ] || die "--from-raspios: the image's system is '${codename:-unknown}', not bookworm"
  [ -e "$root/lib/ld-linux-aarch64.so.1" ] || [ -e "$root/usr/lib/ld-linux-aarch64.so.1" ] ||
    die "--from-raspios: not a 64-bit (arm64) image; pbikiosk's Raspberry Pi package is arm64"

  local d
  for d in dev dev/pts proc sys; do
    mount --bind "/$d" "$root/$d"
    binds+=("$root/$d")
  done
  # apt in the chroot resolves names with this machine's resolver; the image's own file is put
  # back afterwards. No service may start inside the chroot (policy-rc.d).
  if [ -e "$root/etc/resolv.conf" ] || [ -L "$root/etc/resolv.conf" ]; then mv "$root/etc/resolv.conf" "$work/resolv.conf.image"; fi
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  cp "$deb" "$root/tmp/$(basename "$deb")"

  log "installing $(basename "$deb") and its dependencies with the image's apt (qemu-user)"
  local apt_env=(env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8)
  chroot "$root" "${apt_env[@]}" apt-get -q update >&2 || die "apt-get update in the image failed (network, or its apt sources)"
  chroot "$root" "${apt_env[@]}" apt-get -q -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    install "/tmp/$(basename "$deb")" >&2 || die "installing the package in the image failed"
  [ -L "$root/etc/systemd/system/multi-user.target.wants/pbikiosk.service" ] ||
    die "pbikiosk.service is not enabled in the image (the package's postinst did not run?)"

  write_rules "$work/rules.sh" raspios
  "$work/rules.sh" "$root" >&2 || die "applying the image rules failed"

  rm -f "$root/usr/sbin/policy-rc.d" "$root/tmp/$(basename "$deb")" "$root/etc/resolv.conf"
  if [ -e "$work/resolv.conf.image" ] || [ -L "$work/resolv.conf.image" ]; then mv "$work/resolv.conf.image" "$root/etc/resolv.conf"; fi
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/apt/* "$root"/tmp/*

  # The kiosk covers the console: no blanking, no cursor (as install.sh does on a Pi).
  local cmdline tok out_tokens=()
  cmdline=$(mtype -i "$fat" ::/cmdline.txt | tr -d '\r' | head -n 1)
  for tok in $cmdline; do
    case $tok in consoleblank=* | vt.global_cursor_default=*) continue ;; esac
    out_tokens+=("$tok")
  done
  out_tokens+=(consoleblank=0 vt.global_cursor_default=0)
  echo "${out_tokens[*]}" >"$work/cmdline.txt"
  mcopy -o -i "$fat" "$work/cmdline.txt" ::/cmdline.txt

  local used
  used=$(df -m --output=used,size "$root" | tail -n 1 | awk '{print $1 " of " $2}')
  for ((d = ${#binds[@]} - 1; d >= 0; d--)); do umount "${binds[$d]}"; done
  binds=()
  # The kernel wrote this file system (unlike mkfs.ext4 -d's): preen what it left (as a boot's
  # fsck would), then it must check clean.
  sync
  blockdev --flushbufs "${loops[1]}"
  local rc=0
  e2fsck -fp "${loops[1]}" >"$work/fsck.log" 2>&1 || rc=$?
  if [ "$rc" -gt 1 ] || ! e2fsck -fn "${loops[1]}" >>"$work/fsck.log" 2>&1; then
    cat "$work/fsck.log" >&2
    die "the root file system does not check clean (e2fsck exit $rc)"
  fi
  for l in "${loops[@]}"; do losetup -d "$l"; done
  loops=()

  log "compressing $(du -h --apparent-size "$img" | cut -f1) with xz -${XZ_LEVEL:-6}"
  xz -T0 "-${XZ_LEVEL:-6}" "$img"
  (cd "$out" && sha256sum "$name.img.xz" >"$name.img.xz.sha256")
  log "$name: from $(basename "$raspios"); root file system $used MiB used; compressed $(du -h "$img.xz" | cut -f1); built in $(($(date +%s) - started)) s"
  echo "$img.xz"
}
