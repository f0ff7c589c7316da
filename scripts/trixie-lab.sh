#!/usr/bin/env bash
# A minimal Debian 13 (trixie) tree for the tests that need Debian 13's own programs: the .deb installed
# there as a new user would (test/packaging/deb-trixie.test.ts) and the real-Postfix delivery cases
# against Debian 13's Postfix (test/e2e/delivery-trixie.test.ts). Built once into .cache/trixie/root
# (gitignored) with `debootstrap --variant=minbase trixie` from Debian's archive, then, chrooted,
# `apt-get install` of what the tests need: Debian's nodejs (20.19) and postfix (3.10), ca-certificates,
# adduser (the .deb's other dependency, so that installing it needs no download).
#
#   bash scripts/trixie-lab.sh          # check; build the tree when missing or stale (root)
#   bash scripts/trixie-lab.sh --root   # the same, then print the tree's path (for scripts and tests)
#
# Quiet and idempotent when the tree is complete: the stamp holds the recipe below, so the tree is
# rebuilt only when the recipe changes or the tree's postconf or node no longer run. One build at a time
# (flock). The tests never change the tree: they run it under an overlay of their own (test/lab/trixie.ts).
# Cold: 330 MB, about 80 CPU-s (mostly dpkg unpacking; the downloads, ~60 MB, take seconds): measured on two
# cores at load 10, 164 s (debootstrap 107 s, apt-get 56 s), at load 15, 366 s. Warm: 0.6 s. The build
# log (.cache/trixie/build.log) has the time of each step.
#
# Needs root (debootstrap, chroot) and Debian's archive (TRIXIE_MIRROR, default http://deb.debian.org/debian):
# when the archive cannot be reached the script says so and fails, never skips silently. The build runs
# in a mount namespace of its own (unshare -m), so the /proc, /sys and /dev mounts that debootstrap and
# the chrooted apt-get need disappear with it, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

print_root=0
[ "${1:-}" = "--root" ] && print_root=1

SUITE=trixie
MIRROR=${TRIXIE_MIRROR:-http://deb.debian.org/debian}
PACKAGES=(nodejs postfix ca-certificates adduser)
CACHE=.cache/$SUITE
ROOT=$CACHE/root
STAMP=$CACHE/complete
# What the tree is made of; a change here rebuilds it.
RECIPE="debootstrap --variant=minbase $SUITE; apt-get install ${PACKAGES[*]}; postfix: No configuration; policy-rc.d 101; v1"

done_ok() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ] &&
    [ -x "$ROOT/usr/sbin/postconf" ] && [ -x "$ROOT/usr/bin/node" ] &&
    chroot "$ROOT" /usr/sbin/postconf -d -h mail_version >/dev/null 2>&1 &&
    chroot "$ROOT" /usr/bin/node --version >/dev/null 2>&1
}

finish() {
  [ "$print_root" = 1 ] && echo "$PWD/$ROOT"
  exit 0
}

if [ "$(id -u)" -ne 0 ]; then
  # Without root the tree cannot even be checked (chroot): say what to run.
  echo "trixie-lab: needs root (debootstrap, chroot); run: sudo bash scripts/trixie-lab.sh" >&2
  exit 1
fi

done_ok && finish

mkdir -p .cache
exec 9>"$CACHE.lock"
flock 9
done_ok && finish

for bin in debootstrap unshare chroot wget; do
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
    echo "trixie-lab: $bin not found; run: sudo bash scripts/system-deps.sh" >&2
    exit 1
  fi
done
export PATH="$PATH:/usr/sbin:/sbin"
if [ ! -f "/usr/share/debootstrap/scripts/$SUITE" ]; then
  echo "trixie-lab: this debootstrap does not know $SUITE (/usr/share/debootstrap/scripts/$SUITE); install a newer debootstrap" >&2
  exit 1
fi

# A clear message rather than debootstrap's when the archive is out of reach (no network, a proxy).
if ! wget -q -T 20 -t 2 -O /dev/null "$MIRROR/dists/$SUITE/InRelease"; then
  echo "trixie-lab: cannot reach Debian's archive: $MIRROR/dists/$SUITE/InRelease did not download." >&2
  echo "trixie-lab: the Debian 13 tests need it once, to build $ROOT; set TRIXIE_MIRROR to a reachable mirror" >&2
  exit 1
fi

started=$(date +%s)
echo "trixie-lab: building a minimal Debian $SUITE tree in $ROOT (once: 1-6 minutes, by the load)" >&2
rm -rf "$CACHE/root" "$CACHE/root.new" "$STAMP"
new=$CACHE/root.new
mkdir -p "$new"
log=$PWD/$CACHE/build.log
: >"$log"

# Everything below in a private mount namespace: no mount outlives it.
build() {
  set -euo pipefail
  local new=$1 suite=$2 mirror=$3
  shift 3
  echo "trixie-lab: $(date +%T) debootstrap"
  debootstrap --variant=minbase "$suite" "$new" "$mirror"
  echo "trixie-lab: $(date +%T) apt-get install $*"
  mount -t proc proc "$new/proc"
  mount -t sysfs sysfs "$new/sys"
  mount --rbind /dev "$new/dev"
  # Maintainer scripts must not start daemons (Debian's policy-rc.d convention); kept in the tree, for
  # the packages the tests install there.
  printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
  chmod 755 "$new/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$new/etc/resolv.conf"
  echo 'postfix postfix/main_mailer_type select No configuration' | chroot "$new" debconf-set-selections
  chroot "$new" env DEBIAN_FRONTEND=noninteractive apt-get -q update
  chroot "$new" env DEBIAN_FRONTEND=noninteractive apt-get -y -q install --no-install-recommends "$@"
  chroot "$new" apt-get clean
  echo "trixie-lab: $(date +%T) done"
}
export -f build
if ! unshare -m --propagation private bash -c 'build "$@"' build "$new" "$SUITE" "$MIRROR" "${PACKAGES[@]}" >>"$log" 2>&1; then
  echo "trixie-lab: building the tree failed; last lines of $log:" >&2
  tail -n 30 "$log" >&2
  rm -rf "$new"
  exit 1
fi
mv "$new" "$ROOT"

if ! version=$(chroot "$ROOT" /usr/sbin/postconf -d -h mail_version 2>>"$log") || ! node=$(chroot "$ROOT" /usr/bin/node --version 2>>"$log"); then
  echo "trixie-lab: the tree's postconf or node does not run; see $log" >&2
  exit 1
fi
echo "$RECIPE" >"$STAMP"
echo "trixie-lab: Debian $SUITE ready in $ROOT: Postfix $version, Node.js $node ($(($(date +%s) - started)) s, $(du -sh "$ROOT" | cut -f1))" >&2
finish
