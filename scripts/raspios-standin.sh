#!/usr/bin/env bash
# Make a STAND-IN for a Raspberry Pi OS Lite (bookworm, arm64) image, for testing
# `build-image.sh --from-raspios` on a machine that cannot download Raspberry Pi OS (only
# Debian's mirror is reachable here). It is not Raspberry Pi OS: its root is plain Debian 12
# arm64 from the Debian mirror. What it copies is the shape the conversion depends on:
#   - MBR with a FAT32 partition labelled "bootfs" (config.txt, cmdline.txt with
#     root=PARTUUID=<disk id>-02 and Raspberry Pi OS's init=.../firstboot) and an ext4 partition
#     labelled "rootfs", mounted by PARTUUID in /etc/fstab, /boot/firmware the boot partition;
#   - root small with little free space (the conversion must grow it before installing);
#   - a user "pi" (uid 1000) without a usable password, a first-boot rename wizard unit
#     (userconfig.service) and an SSH switch unit (sshswitch.service) enabled, SSH host keys
#     present, SSH enabled, as a system whose image was made with them.
# Root; binfmt_misc with qemu-aarch64 registered (build-image.sh arm64 does it).
#
#   scripts/raspios-standin.sh OUT.img.xz
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: $0 OUT.img.xz" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "raspios-standin: run as root" >&2; exit 2; }
out=$1
MIRROR=${MIRROR:-http://deb.debian.org/debian}
work=${out%.img.xz}.standin-work
rm -rf "$work"
mkdir -p "$work"
trap 'grep -q " $work/" /proc/mounts || rm -rf "$work"' EXIT

cat >"$work/customize.sh" <<'EOF'
#!/bin/sh
set -eu
t=$1
echo raspberrypi >"$t/etc/hostname"
chroot "$t" useradd -m -u 1000 -s /bin/bash -p '*' pi
for u in userconfig sshswitch; do
  cat >"$t/lib/systemd/system/$u.service" <<UNIT
[Unit]
Description=stand-in for Raspberry Pi OS's $u.service
[Service]
Type=oneshot
ExecStart=/bin/true
[Install]
WantedBy=multi-user.target
UNIT
  chroot "$t" systemctl enable "$u.service" >/dev/null 2>&1
done
chroot "$t" ssh-keygen -A >/dev/null
chroot "$t" systemctl enable ssh.service >/dev/null 2>&1
mkdir -p "$t/boot/firmware"
rm -rf "$t"/var/lib/apt/lists/* "$t"/var/cache/apt/*.bin "$t"/var/cache/apt/archives/*.deb
EOF
chmod 755 "$work/customize.sh"

mmdebstrap --variant=minbase --architectures=arm64 \
  --include=systemd-sysv,apt,openssh-server,udev,dbus,kmod,fdisk,e2fsprogs,ca-certificates \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook="$work/customize.sh \"\$1\"" \
  bookworm "$work/tree" "deb $MIRROR bookworm main" \
  "deb ${MIRROR%/debian}/debian-security bookworm-security main" >&2

diskid=5e3da3da
cat >"$work/tree/etc/fstab" <<EOF
proc            /proc           proc    defaults          0       0
PARTUUID=$diskid-01  /boot/firmware  vfat    defaults          0       2
PARTUUID=$diskid-02  /               ext4    defaults,noatime  0       1
EOF
mkdir -p "$work/fat"
echo "console=serial0,115200 console=tty1 root=PARTUUID=$diskid-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot" >"$work/fat/cmdline.txt"
printf 'arm_64bit=1\ndtoverlay=vc4-kms-v3d\n' >"$work/fat/config.txt"
echo "stand-in for Raspberry Pi OS Lite, made by scripts/raspios-standin.sh" >"$work/fat/issue.txt"

used=$(du -s --block-size=1M "$work/tree" | cut -f1)
# Raspberry Pi OS's root partition has a little room only: the conversion must grow it.
root_mib=$((used + 100))
mkfs.vfat -C -F 32 -n bootfs "$work/fat.img" $((512 * 1024)) >/dev/null
MTOOLS_SKIP_CHECK=1 mcopy -s -i "$work/fat.img" "$work/fat"/* ::/
mkfs.ext4 -q -L rootfs -d "$work/tree" -E root_owner=0:0 "$work/root.img" "${root_mib}M" >&2
img=${out%.xz}
rm -f "$img" "$out"
truncate -s $((4 + 512 + root_mib))M "$img"
sfdisk --quiet "$img" <<EOF
label: dos
label-id: 0x$diskid
start=4MiB, size=512MiB, type=c
size=${root_mib}MiB, type=83
EOF
dd if="$work/fat.img" of="$img" bs=1M seek=4 conv=notrunc,sparse status=none
dd if="$work/root.img" of="$img" bs=1M seek=516 conv=notrunc,sparse status=none
xz -T0 -3 "$img"
echo "$out"
