#!/usr/bin/env bash
# The .deb from debian/, built with dpkg-buildpackage and installed into a
# fresh Debian 12 chroot made with mmdebstrap (Debian's archive only), where
# the installed binary must run and systemd-analyze must accept the units.
#
# usage: deb_chroot_test.sh WORKDIR VERSION
#   WORKDIR  a directory in the build tree (the .deb, the apt cache, the chroot)
#   VERSION  meson's project version: the package must carry the same
#
# Checks:
# - the .deb holds the binary, the man page, both units, the example configs,
#   and drivers-config/ when the source tree has it;
# - it depends on Debian's DPDK (libraries, PMD plugins, the dpdk package with
#   dpdk.service), ISA-L, libnuma and nDPI packages;
# - apt installs it, with what it depends on, into a minbase chroot;
# - there: every library resolves, --help of each mode and --version answer,
#   the PMD plugins the docs name are in DPDK's driver directory, and
#   `systemd-analyze verify` accepts both units (instantiated) while it
#   rejects a deliberately broken copy (so its verdict means something).
#
# Downloaded packages are kept in WORKDIR/apt-cache: a second run in the same
# build tree downloads only the package lists. Environment:
# MILLIPEDE_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 WORKDIR VERSION" >&2; exit 2; }
work=$1
version=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
mirror=${MILLIPEDE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${MILLIPEDE_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
mkdir -p "$work"
work=$(cd "$work" && pwd)
t0=$(date +%s)
step() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
fail() { echo "FAIL: $*"; exit 1; }

for tool in mmdebstrap dpkg-buildpackage dh; do
  command -v "$tool" >/dev/null || fail "$tool is missing (tools/test.sh installs it: tools/lib/setup.sh)"
done
[ "$(id -u)" -eq 0 ] || fail "needs root (mmdebstrap's root mode makes the chroot)"

# 1. The package.
step "building the .deb"
deb=$("$root/tools/appliance/build-deb.sh" "$work/deb" | tail -1)
[ -f "$deb" ] || fail "no .deb"
step "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

pkg_version=$(dpkg-deb -f "$deb" Version)
[ "$pkg_version" = "$version" ] || fail "debian/changelog says $pkg_version, meson.build says $version"

contents=$(dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./|/|')
want=(/usr/bin/dpdk-millipede /usr/share/man/man1/dpdk-millipede.1.gz
  /lib/systemd/system/dpdk-millipede-tap@.service /lib/systemd/system/dpdk-millipede-rx@.service
  /usr/share/doc/dpdk-millipede/examples/tap.conf /usr/share/doc/dpdk-millipede/examples/rx.conf
  /etc/dpdk-millipede/ /var/log/dpdk-millipede/)
if [ -d "$root/drivers-config" ]; then
  want+=(/usr/share/dpdk-millipede/drivers-config/)
  n_profiles=$(find "$root/drivers-config" -type f | wc -l)
  n_packaged=$(grep -c '^/usr/share/dpdk-millipede/drivers-config/.*[^/]$' <<<"$contents" || true)
  [ "$n_packaged" -eq "$n_profiles" ] ||
    fail "drivers-config/ has $n_profiles files, the .deb $n_packaged"
fi
for f in "${want[@]}"; do
  grep -qxF "$f" <<<"$contents" || fail "the .deb lacks $f"
done
depends=$(dpkg-deb -f "$deb" Depends)
for d in 'dpdk (' librte-eal23 librte-ethdev23 librte-net-virtio23 librte-net-pcap23 librte-mempool-ring23 \
  librte-bus-pci23 libisal2 libnuma1 libndpi4.2; do
  grep -qF "$d" <<<"$depends" || fail "Depends lacks $d: $depends"
done
step "contents and Depends as expected ($(wc -l <<<"$contents") paths)"

# 2. A fresh chroot with the package installed by apt, and the checks run in
# it (a customize hook: mmdebstrap has /proc, /sys and /dev mounted there).
# man-db: systemd-analyze verify checks that the units' Documentation=
# man:dpdk-millipede(1) resolves, i.e. that the package's man page is found.
chroot_dir="$work/chroot"
rm -rf "$chroot_dir"
mkdir -p "$work/apt-cache"
cat >"$work/checks.sh" <<'EOF'
#!/bin/sh
# Runs inside the chroot.
set -eu
fail() { echo "FAIL (in the chroot): $*"; exit 1; }
bin=/usr/bin/dpdk-millipede
if ldd "$bin" | grep -q 'not found'; then ldd "$bin" | grep 'not found'; fail "unresolved libraries"; fi
"$bin" --help | grep -q '^usage: dpdk-millipede' || fail "--help"
"$bin" -- tx --help | grep -q -- '--ip PORTID' || fail "-- tx --help"
"$bin" -- rx --help | grep -q -- 'rx PORT' || fail "-- rx --help"
"$bin" -- tap --help | grep -q -- '--flows-out' || fail "-- tap --help"
[ "$("$bin" --version)" = "dpdk-millipede $1" ] || fail "--version says $("$bin" --version)"
pmds=$(ls -d /usr/lib/*/dpdk/pmds-* | head -1)
for p in bus_pci bus_vdev mempool_ring net_virtio net_pcap net_af_packet net_memif net_ixgbe net_i40e net_ice; do
  ls "$pmds"/librte_"$p".so.* >/dev/null 2>&1 || fail "no $p PMD in $pmds"
done
[ -f /lib/systemd/system/dpdk.service ] || fail "no dpdk.service"
cd /lib/systemd/system
out=$(systemd-analyze verify dpdk-millipede-tap@tap0.service dpdk-millipede-rx@rx0.service 2>&1) ||
  { echo "$out"; fail "systemd-analyze verify rejects the units"; }
if echo "$out" | grep -q millipede; then echo "$out"; fail "systemd-analyze verify warns about the units"; fi
# The same verify on a copy with an unknown directive and a missing binary
# must fail, or a pass above proves nothing.
mkdir -p /tmp/broken
sed 's|^ExecStart=/usr/bin/dpdk-millipede|ExecStart=/usr/bin/no-such-binary|; s|^Restart=|Restartt=|' \
  dpdk-millipede-tap@.service >/tmp/broken/dpdk-millipede-tap@.service
if systemd-analyze verify /tmp/broken/dpdk-millipede-tap@x.service >/tmp/broken/out 2>&1; then
  cat /tmp/broken/out; fail "systemd-analyze verify accepted a broken unit"
fi
grep -q 'no-such-binary' /tmp/broken/out || { cat /tmp/broken/out; fail "verify did not name the missing binary"; }
echo "in the chroot: libraries resolve, --help/--version answer, PMDs present, units verified"
EOF
chmod +x "$work/checks.sh"

step "mmdebstrap: bookworm minbase + systemd + the .deb"
if ! timeout 900 mmdebstrap --mode=root --variant=minbase --include=systemd,man-db \
  --skip=essential/unlink \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --setup-hook="sync-in $work/apt-cache /var/cache/apt/archives/" \
  --customize-hook="copy-in $deb $work/checks.sh /tmp/" \
  --customize-hook="chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /tmp/$(basename "$deb")" \
  --customize-hook="sync-out /var/cache/apt/archives $work/apt-cache" \
  --customize-hook="chroot \"\$1\" /tmp/checks.sh $version" \
  bookworm "$chroot_dir" \
  "deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main" \
  >"$work/mmdebstrap.log" 2>&1; then
  tail -40 "$work/mmdebstrap.log"
  fail "mmdebstrap or a check in the chroot failed (log: $work/mmdebstrap.log)"
fi
grep -E '^(FAIL|in the chroot)' "$work/mmdebstrap.log" || true
grep -q '^in the chroot: libraries resolve' "$work/mmdebstrap.log" || fail "the checks in the chroot did not run"
installed=$(chroot "$chroot_dir" dpkg-query -W -f '${Version}' dpdk-millipede)
[ "$installed" = "$version" ] || fail "installed version $installed"
npkg=$(chroot "$chroot_dir" dpkg-query -W -f '${db:Status-Abbrev}\n' | grep -c '^ii')
rm -rf "$chroot_dir"
step "PASS: dpdk-millipede $version installed with $npkg packages from Debian's archive into a fresh chroot"
