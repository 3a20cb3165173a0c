#!/usr/bin/env bash
# tools/appliance/build.sh [options] OUTDIR - the DPI tap appliance: a bootable
# Debian 12 disk image (raw, BIOS boot with GRUB) holding dpdk-millipede's
# .deb. Prints the image's path as its last line. docs/appliance.md explains
# the image; run as root (mmdebstrap's root mode, a loop device for mkfs).
#
# What the image does at boot:
#   millipede-appliance-setup  (first boot) the second NIC becomes the tap's
#                              port in /etc/dpdk/interfaces, hugepages in
#                              /etc/dpdk/dpdk.conf, /etc/dpdk-millipede/tap0.conf
#   dpdk.service               (Debian's dpdk) reserves the hugepages, binds
#                              the port to vfio-pci
#   dpdk-millipede-tap@tap0    the tap; flow records appended to
#                              /var/log/dpdk-millipede/tap0.flows.json, flow
#                              export options in tap0.conf's TAP_EXPORT_ARGS
#   systemd-networkd           DHCP on the first NIC (management)
# The journal is forwarded to the serial console (ttyS0).
#
# Everything comes from Debian's archive (mmdebstrap, bookworm + updates +
# security) and this tree; nothing else is downloaded. Downloaded packages
# are kept in OUTDIR/apt-cache, and the image is reused while its inputs (the
# .deb, this script, rootfs/, the options) are unchanged.
#
# Options:
#   --deb FILE       the dpdk-millipede .deb (default: built by build-deb.sh
#                    into $MILLIPEDE_DEB_DIR, default OUTDIR/deb)
#   --size SIZE      image size (default 2G; truncate's suffixes)
#   --ssh-key FILE   add openssh-server, and FILE as root's authorized_keys
#                    (without it root has no password and no key: log in on
#                    the console only after setting one, docs/appliance.md)
# Environment: MILLIPEDE_DEBIAN_MIRROR, MILLIPEDE_DEBIAN_SECURITY (mirrors),
# MILLIPEDE_APPLIANCE_TIMEOUT (seconds for mmdebstrap, default 1500).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
deb="" size=2G ssh_key=""
while [ $# -gt 1 ]; do
  case $1 in
    --deb) deb=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --ssh-key) ssh_key=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] && [ "${1#-}" = "$1" ] || {
  echo "usage: $0 [--deb FILE] [--size SIZE] [--ssh-key FILE] OUTDIR" >&2
  exit 2
}
[ "$(id -u)" -eq 0 ] || { echo "build.sh: needs root (mmdebstrap --mode=root, losetup)" >&2; exit 2; }
for tool in mmdebstrap mkfs.ext4 sfdisk losetup; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (tools/lib/setup.sh lists the packages)" >&2; exit 2; }
done
[ -z "$ssh_key" ] || [ -f "$ssh_key" ] || { echo "build.sh: no ssh key file $ssh_key" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
mirror=${MILLIPEDE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${MILLIPEDE_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
log() { printf '[%s] appliance: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

exec {lock}>"$out/.lock"
flock -w 1800 "$lock" || { echo "build.sh: $out is locked by another build" >&2; exit 1; }

if [ -z "$deb" ]; then
  deb=$("$here/build-deb.sh" "${MILLIPEDE_DEB_DIR:-$out/deb}" | tail -1)
fi
[ -f "$deb" ] || { echo "build.sh: no .deb $deb" >&2; exit 2; }
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")

image="$out/dpdk-millipede-appliance.img"
sum=$({ sha256sum "$deb" "$0" | cut -d' ' -f1
        (cd "$here/rootfs" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
        echo "$size"; [ -z "$ssh_key" ] || sha256sum <"$ssh_key"; } | sha256sum | cut -d' ' -f1)
if [ -f "$image" ] && [ "$(cat "$out/image.sha256" 2>/dev/null)" = "$sum" ]; then
  log "reusing $image (inputs unchanged)"
  echo "$image"
  exit 0
fi
rm -f "$image" "$out/image.sha256"

rootdir="$out/rootfs"
loop=""
cleanup() {
  [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
  rm -rf "$rootdir"
}
trap cleanup EXIT
rm -rf "$rootdir" "$out/image.tmp"
mkdir -p "$out/apt-cache"

uuid=$(cat /proc/sys/kernel/random/uuid)
# dbus: systemd-logind needs it, and logind turns the power button (ACPI) into
# a clean shutdown, which stops the tap with SIGTERM (its records flushed).
packages=linux-image-amd64,systemd-sysv,udev,kmod,dbus,initramfs-tools,grub-pc-bin,pciutils,iproute2,procps,less
[ -n "$ssh_key" ] && packages+=,openssh-server

# Hooks run by mmdebstrap with the root directory as $1; the configuration
# written here is what docs/appliance.md describes.
configure=$(cat <<EOF
set -e
echo dpdk-millipede-tap >"\$1/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdpdk-millipede-tap\n' >"\$1/etc/hosts"
echo 'UUID=$uuid / ext4 errors=remount-ro 0 1' >"\$1/etc/fstab"
# GRUB, installed by hand (grub-install needs the disk's partition devices):
# its modules under /boot/grub, core.img made here and written after the MBR
# below, a fixed grub.cfg (no update-grub: /vmlinuz and /initrd.img follow
# the newest installed kernel, linux-base keeps them).
mkdir -p "\$1/boot/grub/i386-pc"
cp "\$1"/usr/lib/grub/i386-pc/*.mod "\$1"/usr/lib/grub/i386-pc/*.lst "\$1/boot/grub/i386-pc/"
cat >"\$1/boot/grub/grub.cfg" <<'EOT'
# dpdk-millipede appliance (tools/appliance/build.sh). The kernel command
# line is the "linux" line (intel_iommu=on: vfio-pci for the port where the
# machine has VT-d); add isolcpus=, nohz_full=, hugepages= here
# (docs/deploy.md); no update-grub rewrites this file.
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=1
menuentry "dpdk-millipede tap appliance" {
  linux /vmlinuz root=UUID=$uuid ro intel_iommu=on iommu=pt console=tty0 console=ttyS0,115200n8
  initrd /initrd.img
}
EOT
chroot "\$1" grub-mkimage -O i386-pc -o /boot/grub/i386-pc/core.img -p '(hd0,msdos1)/boot/grub' \
  biosdisk part_msdos ext2
[ -e "\$1/vmlinuz" ] || ln -s "\$(cd "\$1" && ls boot/vmlinuz-* | tail -1)" "\$1/vmlinuz"
[ -e "\$1/initrd.img" ] || ln -s "\$(cd "\$1" && ls boot/initrd.img-* | tail -1)" "\$1/initrd.img"
chroot "\$1" systemctl enable systemd-networkd.service dpdk.service millipede-appliance-setup.service \
  dpdk-millipede-tap@tap0.service
chroot "\$1" passwd -l root >/dev/null
EOF
)
extra_hooks=()
if [ -n "$ssh_key" ]; then
  extra_hooks+=(--customize-hook="mkdir -p -m 700 \"\$1/root/.ssh\" && install -m 600 $(printf '%q' "$ssh_key") \"\$1/root/.ssh/authorized_keys\"")
fi

log "mmdebstrap: bookworm + the kernel, dpdk, $(basename "$deb") (log: $out/mmdebstrap.log)"
t0=$(date +%s)
if ! timeout "${MILLIPEDE_APPLIANCE_TIMEOUT:-1500}" mmdebstrap --mode=root --variant=minbase \
  --skip=essential/unlink \
  --include="$packages" \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --setup-hook="sync-in $out/apt-cache /var/cache/apt/archives/" \
  --customize-hook="copy-in $deb /tmp/" \
  --customize-hook="chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /tmp/$(basename "$deb")" \
  --customize-hook="sync-out /var/cache/apt/archives $out/apt-cache" \
  --customize-hook="sync-in $here/rootfs /" \
  --customize-hook="$configure" \
  "${extra_hooks[@]}" \
  --customize-hook='rm -f "$1"/tmp/*.deb' \
  bookworm "$rootdir" \
  "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main" \
  >"$out/mmdebstrap.log" 2>&1; then
  tail -30 "$out/mmdebstrap.log" >&2
  echo "build.sh: mmdebstrap failed (whole log: $out/mmdebstrap.log)" >&2
  exit 1
fi
log "root file system in $(( $(date +%s) - t0 )) s ($(du -sm "$rootdir" | cut -f1) MiB)"

# The disk: GRUB's boot.img as the MBR's code, its core.img in the sectors
# after it (boot.img loads sector 1, core.img's first sector the rest: the
# defaults grub-mkimage writes), one bootable partition from 1 MiB to the end,
# ext4 made from the directory (without orphan_file, which bookworm's GRUB
# cannot read). The partition is reached through a loop device with an
# offset, not the kernel's partition scan (a kernel without MBR partition
# support, as in some CI virtual machines, has no /dev/loopNp1).
core="$rootdir/boot/grub/i386-pc/core.img"
[ "$(stat -c %s "$core")" -lt $((2047 * 512)) ] || { echo "build.sh: core.img does not fit before 1 MiB" >&2; exit 1; }
truncate -s "$size" "$out/image.tmp"
echo 'start=2048, type=83, bootable' | sfdisk -q --label dos "$out/image.tmp"
dd if="$rootdir/usr/lib/grub/i386-pc/boot.img" of="$out/image.tmp" bs=440 count=1 conv=notrunc status=none
dd if="$core" of="$out/image.tmp" bs=512 seek=1 conv=notrunc status=none
part_offset=$((2048 * 512))
loop=$(losetup -o "$part_offset" --sizelimit $(( $(stat -c %s "$out/image.tmp") - part_offset )) --show -f "$out/image.tmp")
mkfs.ext4 -q -L millipede-root -U "$uuid" -O ^orphan_file -d "$rootdir" "$loop"
losetup -d "$loop"
loop=""
mv "$out/image.tmp" "$image"
echo "$sum" >"$out/image.sha256"
log "built $image ($size, $(du -m "$image" | cut -f1) MiB used) in $(( $(date +%s) - t0 )) s"
echo "$image"
