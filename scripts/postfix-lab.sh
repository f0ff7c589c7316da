#!/usr/bin/env bash
# A private build of the Postfix release in vendor/postfix/ (3.11.6) for the real-Postfix tests
# (test/e2e), installed into .cache/postfix-<version>/root (gitignored). Never touches the system's
# Postfix: nothing is installed outside the cache, and the tests run the build with a config directory of
# their own whose main.cf names the cache's command, daemon and meta directories.
#
#   bash scripts/postfix-lab.sh          # check; build what is missing or stale
#   bash scripts/postfix-lab.sh --root   # the same, then print the install root (for scripts and tests)
#
# Quiet and idempotent when the cache is complete: the stamp holds the tarball's SHA-256, so a build is
# redone only when the tarball changes (or the cached binaries no longer run). Needs no root: the build
# is `make makefiles` with TLS, `make`, `make non-interactive-package install_root=...`, all as the
# calling user. ccache is used when present. Build dependencies (gcc, make, m4, libssl-dev, libdb-dev)
# come from scripts/system-deps.sh; missing ones are named, never skipped silently.
set -euo pipefail
cd "$(dirname "$0")/.."

print_root=0
[ "${1:-}" = "--root" ] && print_root=1

VENDOR=vendor/postfix
# The one release in vendor/postfix/: its tarball's name gives the version.
shopt -s nullglob
tarballs=("$VENDOR"/postfix-*.tar.gz)
shopt -u nullglob
if [ "${#tarballs[@]}" -ne 1 ]; then
  echo "postfix-lab: expected exactly one postfix-*.tar.gz in $VENDOR, found ${#tarballs[@]}" >&2
  exit 1
fi
TARBALL=${tarballs[0]}
VERSION=$(basename "$TARBALL" .tar.gz)
VERSION=${VERSION#postfix-}
CACHE=.cache/postfix-$VERSION
ROOT=$CACHE/root
STAMP=$CACHE/complete
POSTCONF=$ROOT/usr/sbin/postconf

# The checksum file is `HEX  NAME`, as sha256sum writes it.
want_sum=$(awk 'NR == 1 { print $1 }' "$TARBALL.sha256" 2>/dev/null || true)
if ! [[ "$want_sum" =~ ^[0-9a-f]{64}$ ]]; then
  echo "postfix-lab: $TARBALL.sha256 is missing or holds no SHA-256" >&2
  exit 1
fi

done_ok() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_sum" ] && [ -x "$POSTCONF" ] &&
    [ "$("$POSTCONF" -d -h mail_version 2>/dev/null)" = "$VERSION" ]
}

finish() {
  [ "$print_root" = 1 ] && echo "$PWD/$ROOT"
  exit 0
}

done_ok && finish

mkdir -p .cache
# One build at a time (two test runs started together would otherwise build into the same tree).
exec 9>".cache/postfix-$VERSION.lock"
flock 9
done_ok && finish

have_sum=$(sha256sum "$TARBALL" | awk '{ print $1 }')
if [ "$have_sum" != "$want_sum" ]; then
  echo "postfix-lab: $TARBALL has SHA-256 $have_sum, $TARBALL.sha256 says $want_sum: not building it" >&2
  exit 1
fi

missing=()
for bin in gcc make m4; do command -v "$bin" >/dev/null 2>&1 || missing+=("$bin"); done
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ -f /usr/include/db.h ] || [ -f /usr/include/db/db.h ] || missing+=(libdb-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "postfix-lab: building Postfix $VERSION needs ${missing[*]}; run: sudo bash scripts/system-deps.sh" >&2
  exit 1
fi

started=$(date +%s)
echo "postfix-lab: building Postfix $VERSION into $ROOT (once: 1-2 minutes on two idle cores, less with a warm ccache)" >&2
rm -rf "$CACHE"
mkdir -p "$CACHE/src"
tar -xzf "$TARBALL" -C "$CACHE/src" --strip-components=1
log=$PWD/$CACHE/build.log

cc=gcc
command -v ccache >/dev/null 2>&1 && cc="ccache gcc"
jobs=$(nproc 2>/dev/null || echo 2)
build() {
  # TLS in; no debug symbols (a test build, and -g makes it slower); Berkeley DB, ICU and the rest as
  # makedefs finds them on this machine.
  make makefiles CC="$cc" CCARGS='-DUSE_TLS' AUXLIBS='-lssl -lcrypto' DEBUG= &&
    make -j"$jobs" &&
    # The build tree's binaries know Postfix's default paths (/etc/postfix, /usr/sbin, /usr/libexec/postfix):
    # a package install writes them below install_root instead, owned by the caller, set-gid bits unset
    # (the tests run as root, so postdrop needs none).
    make non-interactive-package install_root="$PWD/../root"
}
if ! (cd "$CACHE/src" && build) >"$log" 2>&1; then
  echo "postfix-lab: the build failed; last lines of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi

if [ "$("$POSTCONF" -d -h mail_version 2>/dev/null)" != "$VERSION" ]; then
  echo "postfix-lab: the built postconf does not report mail_version $VERSION; see $log" >&2
  exit 1
fi
# Only the install tree is used; the source tree is 100+ MB of objects.
rm -rf "$CACHE/src"
echo "$want_sum" >"$STAMP"
echo "postfix-lab: Postfix $VERSION ready in $ROOT ($(($(date +%s) - started)) s)" >&2
finish
