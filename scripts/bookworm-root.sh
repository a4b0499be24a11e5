#!/usr/bin/env bash
# A minimal Debian bookworm root (debootstrap minbase, merged /usr) for the package attribution
# tests and `scripts/bench.sh packages-noise`, made once from the machine's Debian mirror and
# cached outside the repository. The .debs it was made from stay in its
# /var/cache/apt/archives, so the tests reinstall packages with dpkg in a chroot and never need
# the network again. Prints the root's path.
#
#   KUBEFIM_TEST_CACHE   where the cache lives (default /var/cache/kubefim-tests)
#   KUBEFIM_DEBIAN_MIRROR the mirror (default: the first deb.debian.org-style URI in apt's sources)
set -euo pipefail

cache=${KUBEFIM_TEST_CACHE:-/var/cache/kubefim-tests}
root=$cache/bookworm
if [[ -f $root.complete ]]; then
  echo "$root"
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "bookworm-root: debootstrap needs root" >&2
  exit 1
fi
mkdir -p "$cache"
exec 9>"$cache/bookworm.lock"
flock 9
if [[ -f $root.complete ]]; then
  echo "$root"
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  (apt-get install -y debootstrap || { apt-get update && apt-get install -y debootstrap; }) >&2
fi
mirror=${KUBEFIM_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(\S*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)}
mirror=${mirror:-http://deb.debian.org/debian}
rm -rf "$root.tmp"
debootstrap --variant=minbase --merged-usr bookworm "$root.tmp" "$mirror" >&2
rm -rf "$root"
mv "$root.tmp" "$root"
touch "$root.complete"
echo "$root"
