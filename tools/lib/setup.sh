# shellcheck shell=bash
# Shared set-up for tools/*.sh: Debian packages, build, hugepages.
# Sourced, not run. Everything here is idempotent.

MILLIPEDE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Every Debian 12 package the project needs to build, test, benchmark and demo.
MILLIPEDE_PACKAGES=(
  build-essential meson ninja-build pkg-config python3
  dpdk dpdk-dev libdpdk-dev librte-crypto-ipsec-mb23 libnuma-dev libisal-dev libssl-dev libpcap-dev
  libsystemd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libndpi-dev libndpi-bin tshark python3-scapy nfdump
  clang libclang-rt-14-dev
  socat iperf3 iproute2 ethtool procps python3-matplotlib
  debhelper dpkg-dev mmdebstrap groff-base systemd e2fsprogs fdisk mount
  qemu-system-x86 qemu-utils tcpreplay
  openssh-client openssh-server
)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

install_packages() {
  local missing=()
  for p in "${MILLIPEDE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    return 1
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 900 apt-get update -qq || { log "apt-get update failed"; return 1; }
  timeout 1800 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { log "apt-get install failed"; return 1; }
}

# Reserves 2 MiB hugepages and mounts hugetlbfs when possible. Sets
# MILLIPEDE_HUGEPAGES=1 on success, 0 otherwise (callers then use --no-huge).
reserve_hugepages() {
  local want=${1:-512}
  MILLIPEDE_HUGEPAGES=0
  if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/nr_hugepages ]; then
    local have
    have=$(cat /proc/sys/vm/nr_hugepages)
    [ "$have" -lt "$want" ] && echo "$want" >/proc/sys/vm/nr_hugepages 2>/dev/null
    if ! mount | grep -q 'type hugetlbfs'; then
      mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null
    fi
    have=$(cat /proc/sys/vm/nr_hugepages)
    if [ "$have" -gt 0 ] && mount | grep -q 'type hugetlbfs'; then MILLIPEDE_HUGEPAGES=1; fi
  fi
  export MILLIPEDE_HUGEPAGES
  if [ "$MILLIPEDE_HUGEPAGES" = 1 ]; then
    log "hugepages: $(cat /proc/sys/vm/nr_hugepages) x 2 MiB reserved"
  else
    log "hugepages: not available, DPDK runs with --no-huge"
  fi
}

# meson setup (or reconfigure) + ninja. $1 = build dir, rest = meson options.
build_into() {
  local dir=$1
  shift
  if [ -f "$MILLIPEDE_ROOT/$dir/build.ninja" ]; then
    meson configure "$MILLIPEDE_ROOT/$dir" "$@" >/dev/null
  else
    meson setup "$MILLIPEDE_ROOT/$dir" "$MILLIPEDE_ROOT" "$@" >/dev/null
  fi
}
