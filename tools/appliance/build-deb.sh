#!/usr/bin/env bash
# tools/appliance/build-deb.sh OUTDIR - builds the dpdk-millipede .deb with
# dpkg-buildpackage (debian/) from a copy of this tree, into OUTDIR, and
# prints the .deb's path as its last line.
#
# The copy holds what git tracks plus new files git does not ignore (so
# uncommitted work is packaged, build directories are not); outside a git
# checkout, everything but build*/ and .git. The .deb is reused while the
# files that make it are unchanged (OUTDIR/source.sha256: every copied file
# but tests/, docs/, tools/appliance/ and *.md, which the package build does
# not read), so the package test and the appliance build share one, and an
# edit to a test or a document does not cost a rebuild. Concurrent calls wait for each other
# (flock on OUTDIR/.lock).
#
# Environment: MILLIPEDE_DEB_TIMEOUT (seconds, default 1800).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

exec {lock}>"$out/.lock"
flock -w "${MILLIPEDE_DEB_TIMEOUT:-1800}" "$lock" || { echo "build-deb: $out is locked by another build" >&2; exit 1; }

log() { printf '[%s] build-deb: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# The files of the package's source, NUL-separated, relative to $root.
list_sources() {
  if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$root" ls-files -z --cached --others --exclude-standard |
      while IFS= read -r -d '' f; do [ -f "$root/$f" ] && printf '%s\0' "$f"; done
  else
    (cd "$root" && find . -path ./.git -prune -o -path './build*' -prune -o -type f -print0 | sed -z 's|^\./||')
  fi
}

version=$(sed -n '1s/^dpdk-millipede (\([^)]*\)).*/\1/p' "$root/debian/changelog")
[ -n "$version" ] || { echo "build-deb: cannot read the version from debian/changelog" >&2; exit 1; }
deb="$out/dpdk-millipede_${version}_$(dpkg --print-architecture).deb"

sum=$(list_sources | grep -zv -e '^tests/' -e '^docs/' -e '^tools/appliance/' -e '\.md$' | sort -z |
  (cd "$root" && xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)
if [ -f "$deb" ] && [ "$(cat "$out/source.sha256" 2>/dev/null)" = "$sum" ]; then
  log "reusing $deb (sources unchanged)"
  echo "$deb"
  exit 0
fi

if ! missing=$(cd "$root" && dpkg-checkbuilddeps 2>&1); then
  echo "build-deb: ${missing#dpkg-checkbuilddeps: error: } (apt-get install them, or run tools/test.sh, which does)" >&2
  exit 1
fi

src="$out/src/dpdk-millipede-$version"
rm -rf "$out/src" "$out/source.sha256" "$out"/*.deb "$out"/*.ddeb
mkdir -p "$src"
list_sources | (cd "$root" && tar --null -T - -cf -) | tar -xf - -C "$src"

log "dpkg-buildpackage in $src (log: $out/build.log)"
t0=$(date +%s)
if ! (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
      timeout "${MILLIPEDE_DEB_TIMEOUT:-1800}" dpkg-buildpackage -b -us -uc) >"$out/build.log" 2>&1; then
  tail -30 "$out/build.log" >&2
  echo "build-deb: dpkg-buildpackage failed (whole log: $out/build.log)" >&2
  exit 1
fi
mv "$out"/src/*.deb "$out"/
mv "$out"/src/*.ddeb "$out"/ 2>/dev/null || true
[ -f "$deb" ] || { echo "build-deb: dpkg-buildpackage made no $deb" >&2; exit 1; }
rm -rf "$out/src"
echo "$sum" >"$out/source.sha256"
log "built $deb in $(( $(date +%s) - t0 )) s"
echo "$deb"
