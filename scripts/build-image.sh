#!/usr/bin/env bash
# Build a ready-to-flash pbikiosk image: Debian 12 with pbikiosk installed and its kiosk session
# enabled, written to an SD card or USB stick with `xz -dc IMG.img.xz | dd of=/dev/sdX` or
# Raspberry Pi Imager ("Use custom").
#
#   scripts/build-image.sh amd64|arm64 [--deb FILE] [--ssh-key FILE] [--out DIR] [--name NAME]
#                          [--mirror URL] [--keep-tree]
#
#   amd64   mini-PCs with UEFI: GPT, EFI system partition (FAT, mounted at /boot/firmware: the
#           boot partition installers edit) with systemd-boot, Debian 12's kernel; ext4 root.
#   arm64   Raspberry Pi 3, 4, 400 and CM4 (Debian's own arm64 kernel and raspi-firmware; the
#           Pi 5 needs Raspberry Pi OS's kernel and does not boot this image): MBR, FAT boot
#           partition RASPIFIRM at /boot/firmware, ext4 root RASPIROOT. Built through qemu-user
#           (binfmt_misc).
#   --deb FILE      the pbikiosk package to install (default: built with scripts/build-deb.sh)
#   --ssh-key FILE  an authorized_keys file for root; without it (and without an
#                   authorized_keys file on the boot partition) SSH stays off
#   --out DIR       where the image goes (default target/image)
#   --name NAME     file name without .img.xz (default pbikiosk-<version>-<arch>)
#   --from-raspios FILE.img[.xz]  arm64 only: start from an official Raspberry Pi OS Lite
#                   (bookworm, 64-bit) image instead of building Debian (the Pi 5 needs Raspberry
#                   Pi OS's kernel): its root is grown by --grow MiB (default 1024), the .deb is
#                   installed with apt (and its dependencies from the image's own apt sources,
#                   so this needs the network) in a qemu-user chroot, and the same first-boot,
#                   SSH and no-password rules as the Debian image are applied. Raspberry Pi OS's
#                   own first boot (partition growing, its network stack) stays; its user
#                   rename wizard and SSH switch are turned off (no account has a password).
#   --keep-tree     keep the unpacked root tree under DIR/<name>.tree (for debugging)
#
# How: mmdebstrap makes the root tree (packages from the Debian mirror, the .deb installed with
# apt so that its dependencies come along, no recommends, apt lists and caches removed); the
# partitions are file system images made without mounting anything (mkfs.ext4 -d, mkfs.vfat and
# mtools' mcopy) and copied into a partitioned image file (sfdisk). Needs root (mmdebstrap's root
# mode keeps file owners); installs what it needs with apt when missing.
# First boot (packaging/image/pbikiosk-image-boot): the root partition and file system grow to
# the medium, SSH host keys are made, systemd makes /etc/machine-id; no user has a password.
# Output: DIR/NAME.img.xz and DIR/NAME.img.xz.sha256; the last line printed is the .img.xz path.
# Environment: XZ_LEVEL (default 6), MIRROR.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ROOT=$PWD

log() { printf '== %s\n' "$*" >&2; }
die() {
  printf 'build-image: %s\n' "$*" >&2
  exit 2
}
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; }

arch='' deb='' ssh_key='' out=$ROOT/target/image name='' keep_tree=0 raspios='' grow_mib=1024
MIRROR=${MIRROR:-http://deb.debian.org/debian}
while [ $# -gt 0 ]; do
  case $1 in
  amd64 | arm64) arch=$1 ;;
  --deb) deb=${2:?--deb needs a file}; shift ;;
  --ssh-key) ssh_key=${2:?--ssh-key needs a file}; shift ;;
  --out) out=${2:?--out needs a folder}; shift ;;
  --name) name=${2:?--name needs a name}; shift ;;
  --mirror) MIRROR=${2:?--mirror needs a URL}; shift ;;
  --keep-tree) keep_tree=1 ;;
  --from-raspios) raspios=${2:?--from-raspios needs an image file}; shift ;;
  --grow) grow_mib=${2:?--grow needs a size in MiB}; shift ;;
  -h | --help) usage; exit 0 ;;
  *) usage; die "unknown argument '$1'" ;;
  esac
  shift
done
if [ -n "$raspios" ]; then
  [ -z "$arch" ] || [ "$arch" = arm64 ] || die "--from-raspios makes an arm64 image, not $arch"
  arch=arm64
  [ -f "$raspios" ] || die "--from-raspios $raspios: no such file"
  { [[ $grow_mib =~ ^[0-9]+$ ]] && [ "$grow_mib" -ge 256 ]; } || die "--grow $grow_mib: give MiB, at least 256 (WebKitGTK and cage need about 600)"
fi
[ -n "$arch" ] || { usage; die "say which image: amd64 or arm64"; }
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap keeps file owners only as root)"
[ -z "$ssh_key" ] || [ -s "$ssh_key" ] || die "--ssh-key $ssh_key: no such file, or empty"
if [ -n "$ssh_key" ] && ! grep -Eq '^(ssh-|ecdsa-|sk-)' "$ssh_key"; then
  die "--ssh-key $ssh_key: no public key in it (lines start with ssh-ed25519, ssh-rsa, ecdsa-...); give the .pub file, never a private key"
fi

apt_install mmdebstrap dosfstools mtools fdisk e2fsprogs xz-utils
if [ "$arch" = arm64 ]; then
  apt_install qemu-user-static arch-test
  # mmdebstrap runs arm64 maintainer scripts through qemu-user: the kernel must know to.
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    log "registering qemu-aarch64 with binfmt_misc"
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [ -f "$conf" ] || die "$conf missing (qemu-user-static)"
    grep -v '^#' "$conf" | head -n 1 >/proc/sys/fs/binfmt_misc/register
  fi
  arch-test arm64 >/dev/null || die "this machine cannot run arm64 programs through qemu-user (arch-test arm64 fails)"
fi

if [ -z "$deb" ]; then
  log "no --deb: building the $arch package with scripts/build-deb.sh"
  deb=$(scripts/build-deb.sh "$arch" | tail -n 1)
fi
[ -f "$deb" ] || die "--deb $deb: no such file"
deb=$(realpath "$deb")
deb_arch=$(dpkg-deb -f "$deb" Architecture)
[ "$deb_arch" = "$arch" ] || die "--deb $deb is for $deb_arch, not $arch"
version=$(dpkg-deb -f "$deb" Version)
[ -n "$name" ] || name=pbikiosk-${version}-${arch}${raspios:+-raspios}

mkdir -p "$out"
out=$(realpath "$out")
work=$out/$name.work
tree=$out/$name.tree
rm -rf "$work" "$tree"
mkdir -p "$work"
# Removes a tree only when nothing is mounted inside it (an interrupted mmdebstrap can leave
# /proc, /sys or /dev mounted there for a moment; rm -rf must never walk into those).
remove_tree() {
  if grep -q " $1/" /proc/mounts; then
    log "not removing $1: something is still mounted inside it"
    return 0
  fi
  rm -rf "$1"
}
cleanup() {
  remove_tree "$work"
  [ "$keep_tree" = 1 ] || remove_tree "$tree"
}
trap cleanup EXIT
started=$(date +%s)

# --- the root tree ----------------------------------------------------------------------------
common=(systemd-sysv udev dbus kmod initramfs-tools zstd ca-certificates
  systemd-timesyncd systemd-resolved iproute2 openssh-server fdisk e2fsprogs)
case $arch in
amd64)
  pkgs=("${common[@]}" linux-image-amd64 systemd-boot-efi intel-microcode amd64-microcode)
  fat_label=PBIBOOT root_label=PBIROOT
  ;;
arm64)
  # raspi-firmware puts the Pi's boot firmware, config.txt, cmdline.txt, the kernel, initrd and
  # device trees on /boot/firmware at every kernel or initrd update; its defaults expect the
  # partitions labelled RASPIFIRM and RASPIROOT (as Debian's own Raspberry Pi images are).
  pkgs=("${common[@]}" linux-image-arm64 raspi-firmware firmware-brcm80211 wireless-regdb)
  fat_label=RASPIFIRM root_label=RASPIROOT
  ;;
esac

image_files=$ROOT/packaging/image
# write_rules FILE FLAVOUR: the script (run with the finished root tree as $1, after every
# package is installed) that applies the image's rules. FLAVOUR debian: the tree mmdebstrap
# made; raspios: a Raspberry Pi OS root, which keeps its fstab (PARTUUIDs), network stack
# (NetworkManager) and first-boot partition growing.
write_rules() {
  local f=$1 flavour=$2
  cat >"$f" <<EOF
#!/bin/sh
set -eu
t=\$1
echo pbikiosk >"\$t/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpbikiosk\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"\$t/etc/hosts"
mkdir -p "\$t/boot/firmware"
# D-Bus reads /etc/machine-id, made at the first boot (the image ships "uninitialized").
rm -f "\$t/var/lib/dbus/machine-id"
# No SSH host keys in the image: every device makes its own at the first boot.
rm -f "\$t"/etc/ssh/ssh_host_*
# No password for anyone: every account is locked, SSH takes keys only and is off without one.
for u in \$(awk -F: '\$2 !~ /^[!*]/ && \$2 != "" {print \$1}' "\$t/etc/shadow"); do chroot "\$t" usermod -p '*' "\$u"; done
chroot "\$t" usermod -p '*' root
mkdir -p "\$t/etc/ssh/sshd_config.d"
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n' \
  >"\$t/etc/ssh/sshd_config.d/pbikiosk-image.conf"
chroot "\$t" systemctl disable ssh.service >/dev/null 2>&1 || true
rm -f "\$t/etc/systemd/system/sshd.service"
install -d "\$t/usr/lib/pbikiosk-image"
install -m 0755 "$image_files/pbikiosk-image-boot" "\$t/usr/lib/pbikiosk-image/"
install -m 0644 "$image_files/pbikiosk-image-boot.service" "\$t/etc/systemd/system/"
chroot "\$t" systemctl enable pbikiosk-image-boot.service >/dev/null
# "uninitialized" in /etc/machine-id makes the first boot a systemd first boot, at which
# systemd-firstboot asks on the console for locale, time zone and root password and waits for a
# key: a kiosk has no one at the keyboard (the image sets what it would ask, or nothing).
chroot "\$t" systemctl mask systemd-firstboot.service >/dev/null 2>&1 ||
  ln -sf /dev/null "\$t/etc/systemd/system/systemd-firstboot.service"
# At a systemd first boot every unit is also set to its preset, and Debian's presets enable
# ssh.service: SSH then started at the first boot before pbikiosk-image-boot could say no. The
# image's own preset keeps it as the image left it (pbikiosk-image-boot turns it on with a key).
mkdir -p "\$t/etc/systemd/system-preset"
printf 'disable ssh.service\ndisable sshd.service\ndisable ssh.socket\n' >"\$t/etc/systemd/system-preset/10-pbikiosk-image.preset"
EOF
  case $flavour in
  debian)
    cat >>"$f" <<EOF
# The boot partition is FAT, which has no permissions: only root may read it (it may hold a
# pbikiosk.toml with a password until that is imported).
cat >"\$t/etc/fstab" <<FSTAB
LABEL=$root_label / ext4 rw,errors=remount-ro,commit=30 0 1
LABEL=$fat_label /boot/firmware vfat rw,umask=0077,nofail 0 2
FSTAB
# Wired network by DHCP on every Ethernet port; systemd-resolved gives the names.
mkdir -p "\$t/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' >"\$t/etc/systemd/network/50-wired.network"
chroot "\$t" systemctl enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service >/dev/null
EOF
    ;;
  raspios)
    cat >>"$f" <<'EOF'
# The boot partition is FAT, which has no permissions: only root may read it (it may hold a
# pbikiosk.toml with a password until that is imported). Raspberry Pi OS mounts it by PARTUUID
# with "defaults": only its options change.
awk '$2 == "/boot/firmware" && $3 == "vfat" {$4 = "rw,umask=0077,nofail"} {print}' OFS='\t' "$t/etc/fstab" >"$t/etc/fstab.new"
grep -q '/boot/firmware.*umask=0077' "$t/etc/fstab.new" || { echo "no vfat /boot/firmware line in the image's /etc/fstab" >&2; exit 1; }
mv "$t/etc/fstab.new" "$t/etc/fstab"
# Raspberry Pi OS's first-boot user wizard (it asks on the console for a user and password, over
# the kiosk's tty) and its SSH switch (an "ssh" file on the boot partition turns SSH on, with
# passwords): the image's rules replace both (no password; SSH with an authorized key only).
for u in userconfig.service sshswitch.service; do
  chroot "$t" systemctl disable "$u" >/dev/null 2>&1 || true
  chroot "$t" systemctl mask "$u" >/dev/null 2>&1 || true
done
EOF
    ;;
  esac
  if [ -n "$ssh_key" ]; then
    install -m 0600 "$ssh_key" "$work/authorized_keys"
    cat >>"$f" <<EOF
install -d -m 0700 "\$t/root/.ssh"
install -m 0600 "$work/authorized_keys" "\$t/root/.ssh/authorized_keys"
EOF
  fi
  cat >>"$f" <<'EOF'
# One machine id per device: "uninitialized" says plainly that systemd makes it at the first
# boot (machine-id(5)).
printf 'uninitialized\n' >"$t/etc/machine-id"
EOF
  chmod 755 "$f"
}

if [ -n "$raspios" ]; then
  # shellcheck source=scripts/image-raspios.sh
  . "$ROOT/scripts/image-raspios.sh"
  from_raspios
  exit 0
fi

write_rules "$work/customize.sh" debian
if [ "$arch" = amd64 ]; then
  cat >>"$work/customize.sh" <<EOF
install -D -m 0755 "$image_files/esp-kernel-update" "\$t/etc/initramfs/post-update.d/zz-pbikiosk-esp"
EOF
fi
cat >>"$work/customize.sh" <<EOF
# What file-mirror-automount left: the empty folders of the .deb's path.
rmdir -p "\$t$(dirname "$deb")" 2>/dev/null || true
EOF
if [ "$arch" = arm64 ]; then
  cat >>"$work/customize.sh" <<'EOF'
# raspi-firmware writes cmdline.txt with root= the partition mounted at / when it runs, which in
# a build is the build machine's: name the image's root partition by its label instead, keep
# the console from blanking under the kiosk, and write the boot files again.
if [ -f "$t/etc/default/raspi-firmware" ]; then
  sed -i '/^#\{0,1\}ROOTPART=/d' "$t/etc/default/raspi-firmware"
  echo 'ROOTPART=LABEL=RASPIROOT' >>"$t/etc/default/raspi-firmware"
  echo 'consoleblank=0 vt.global_cursor_default=0' >"$t/etc/default/raspi-extra-cmdline"
  # Debian's kernel ships the Compute Module 4's device tree under upstream Linux's name for a
  # CM4 on its IO board (bcm2711-rpi-cm4-io.dtb) and raspi-firmware's config.txt names none for
  # it: a board-type filter (0x14 is the CM4 in the Pi's revision codes) names it, and [all]
  # ends the section, so that the other Pis keep the firmware's own choice.
  printf '[board-type=0x14]\ndevice_tree=bcm2711-rpi-cm4-io.dtb\n[all]\n' >"$t/etc/default/raspi-firmware-custom"
  DEB_MAINT_PARAMS=configure chroot "$t" /etc/kernel/postinst.d/z50-raspi-firmware
fi
EOF
fi
cat >>"$work/customize.sh" <<'EOF'
# Small: no apt lists, caches or logs of the build.
rm -rf "$t"/var/lib/apt/lists/* "$t"/var/cache/apt/*.bin "$t"/var/cache/apt/archives/*.deb
rm -rf "$t"/var/log/*.log "$t"/var/log/apt/* "$t"/tmp/* "$t"/var/tmp/*
EOF

log "making the $arch root tree with mmdebstrap (Debian 12 from $MIRROR)"
# file-mirror-automount: dpkg runs inside the tree and must see the .deb given by its path.
mmdebstrap --variant=apt --architectures="$arch" \
  --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
  --components=main,non-free-firmware \
  --include="$(IFS=,; echo "${pkgs[*]}")" --include="$deb" \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-include=/usr/share/doc/pbikiosk/*' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --customize-hook="$work/customize.sh \"\$1\"" \
  bookworm "$tree" \
  "deb $MIRROR bookworm main non-free-firmware" \
  "deb $MIRROR bookworm-updates main non-free-firmware" \
  "deb ${MIRROR%/debian}/debian-security bookworm-security main non-free-firmware" >&2

# mmdebstrap's own clean-up, after the hooks, empties /etc/machine-id: "uninitialized" again.
printf 'uninitialized\n' >"$tree/etc/machine-id"

# The root tree must have the kiosk enabled as the package enables it.
[ -L "$tree/etc/systemd/system/multi-user.target.wants/pbikiosk.service" ] ||
  die "pbikiosk.service is not enabled in the root tree (the package's postinst did not run?)"

# --- the boot partition ----------------------------------------------------------------------
fat_dir=$work/fat
mkdir -p "$fat_dir"
kver=$(find "$tree/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
[ -n "$kver" ] || die "no kernel in $tree/boot"
case $arch in
amd64)
  [ -f "$tree/boot/initrd.img-$kver" ] || die "no initrd for $kver"
  mkdir -p "$fat_dir/EFI/BOOT" "$fat_dir/loader/entries"
  # The removable-media path: firmware finds it with no boot entry in its NVRAM, as on a stick.
  cp "$tree/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$fat_dir/EFI/BOOT/BOOTX64.EFI"
  cp "$tree/boot/vmlinuz-$kver" "$fat_dir/vmlinuz"
  cp "$tree/boot/initrd.img-$kver" "$fat_dir/initrd.img"
  printf 'default pbikiosk.conf\ntimeout 0\nconsole-mode keep\neditor no\n' >"$fat_dir/loader/loader.conf"
  cat >"$fat_dir/loader/entries/pbikiosk.conf" <<EOF
title   pbikiosk (Debian 12)
linux   /vmlinuz
initrd  /initrd.img
options root=LABEL=$root_label rw quiet loglevel=3 consoleblank=0 vt.global_cursor_default=0
EOF
  ;;
arm64)
  # raspi-firmware's hooks wrote the boot files into the tree's /boot/firmware.
  for f in start4.elf fixup4.dat bootcode.bin config.txt cmdline.txt; do
    [ -f "$tree/boot/firmware/$f" ] || die "raspi-firmware left no $f in /boot/firmware"
  done
  cp -a "$tree/boot/firmware/." "$fat_dir/"
  find "$tree/boot/firmware" -mindepth 1 -delete
  ;;
esac

# --- partitions and the image ----------------------------------------------------------------
fat_mib=256
used_mib=$(du -s --block-size=1M "$tree" | cut -f1)
# Headroom for the first boot and the journal; the partition grows to the medium at first boot.
root_mib=$((used_mib + used_mib / 4 + 300))
log "root tree: ${used_mib} MiB; root file system ${root_mib} MiB, boot partition ${fat_mib} MiB"

mkfs.vfat -C -F 32 -n "$fat_label" "$work/fat.img" $((fat_mib * 1024)) >/dev/null
mcopy -s -i "$work/fat.img" "$fat_dir"/* ::/
# -d: the file system is filled from the tree (owners, modes, links and extended attributes
# such as file capabilities kept) without mounting anything.
mkfs.ext4 -q -L "$root_label" -d "$tree" -E root_owner=0:0 "$work/root.img" "${root_mib}M"
e2fsck -fn "$work/root.img" >/dev/null || die "the root file system does not check clean"

img=$out/$name.img
start_mib=1
total_mib=$((start_mib + fat_mib + root_mib + 1))
rm -f "$img"
truncate -s "${total_mib}M" "$img"
case $arch in
amd64)
  sfdisk --quiet "$img" <<EOF
label: gpt
start=${start_mib}MiB, size=${fat_mib}MiB, type=uefi, name="EFI system partition"
size=${root_mib}MiB, type=linux, name="pbikiosk root"
EOF
  ;;
arm64)
  # The Pi's boot ROM reads the first MBR partition, FAT32 (LBA) type 0x0c.
  sfdisk --quiet "$img" <<EOF
label: dos
start=${start_mib}MiB, size=${fat_mib}MiB, type=c, bootable
size=${root_mib}MiB, type=83
EOF
  ;;
esac
dd if="$work/fat.img" of="$img" bs=1M seek=$start_mib conv=notrunc,sparse status=none
dd if="$work/root.img" of="$img" bs=1M seek=$((start_mib + fat_mib)) conv=notrunc,sparse status=none
rm -f "$work/fat.img" "$work/root.img"
[ "$keep_tree" = 1 ] || remove_tree "$tree"

log "compressing $(du -h --apparent-size "$img" | cut -f1) with xz -${XZ_LEVEL:-6}"
rm -f "$img.xz"
xz -T0 "-${XZ_LEVEL:-6}" "$img"
(cd "$out" && sha256sum "$name.img.xz" >"$name.img.xz.sha256")
log "$name: image $((total_mib)) MiB, compressed $(du -h "$img.xz" | cut -f1), kernel $kver, built in $(($(date +%s) - started)) s"
echo "$img.xz"
