#!/usr/bin/env bash
# A private copy of Debian's Exim for the real-Exim tests (test/exim), unpacked from the .debs into
# .cache/exim/ (gitignored). Debian's exim4-daemon-heavy conflicts with postfix, which the other tests
# need, so nothing is installed: the packages are fetched with `apt-get download` and unpacked with
# `dpkg -x`, and the binary runs from the cache with the libraries it lacks beside it.
#
#   bash scripts/exim-lab.sh       # check; fetch and unpack what is missing (root), else explain
#
# Quiet and idempotent when the cache is complete. Also makes sure the system user Debian-exim exists:
# Debian's binary is built with EXIM_USER=Debian-exim and refuses to start without it (it drops to that
# user for remote deliveries), which is what exim4-base's postinst would have created.
# Not root and something missing: prints the exact command to run and fails. Never skips silently.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=.cache/exim
ROOT=$CACHE/root
BIN=$ROOT/usr/sbin/exim4
LIBDIRS="$PWD/$ROOT/usr/lib/x86_64-linux-gnu:$PWD/$ROOT/usr/lib"
EXIM_PACKAGES=(exim4-daemon-heavy exim4-base exim4-config)
STAMP=$CACHE/complete

need_root() {
  echo "exim-lab: $1" >&2
  echo "exim-lab: run as root: sudo bash scripts/exim-lab.sh" >&2
  exit 1
}

# The libraries the binary (or an unpacked library) cannot find, as sonames.
missing_sonames() {
  local f
  for f in "$BIN" "$ROOT"/usr/lib/x86_64-linux-gnu/*.so.* "$ROOT"/usr/lib/*.so.*; do
    [ -f "$f" ] || continue
    LD_LIBRARY_PATH=$LIBDIRS ldd "$f" 2>/dev/null | awk '/=> not found/ { print $1 }'
  done | sort -u
}

# Direct dependencies of the given packages that are libraries and not installed on this machine.
uninstalled_lib_deps() {
  apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances "$@" 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^lib/ { print $2 }' | sort -u |
    while read -r pkg; do
      dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || echo "$pkg"
    done
}

users_ok() {
  getent passwd Debian-exim >/dev/null && getent group Debian-exim >/dev/null
}

works() {
  [ -x "$BIN" ] && [ -z "$(missing_sonames)" ] && users_ok &&
    LD_LIBRARY_PATH=$LIBDIRS "$BIN" -C /dev/null -bV >/dev/null 2>&1
}

# The wrapper names absolute paths: a moved checkout needs a new one.
wrapper_ok() {
  [ -x "$CACHE/bin/exim" ] && grep -qF "exec $PWD/$BIN " "$CACHE/bin/exim"
}

if [ -f "$STAMP" ] && works && wrapper_ok; then
  exit 0
fi

[ "$(id -u)" -eq 0 ] || need_root "the real-Exim tests need Debian's exim4 unpacked into $CACHE (and the system user Debian-exim)"
command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
  echo "exim-lab: apt-get and dpkg are needed (Debian 12)" >&2
  exit 1
}

if ! users_ok; then
  echo "exim-lab: creating the system user and group Debian-exim (as exim4-base would)" >&2
  getent group Debian-exim >/dev/null || groupadd --system Debian-exim
  useradd --system --gid Debian-exim --no-create-home --home-dir /var/spool/exim4 \
    --shell /usr/sbin/nologin Debian-exim
fi

rm -rf "$CACHE"
mkdir -p "$ROOT"
debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
# _apt must be able to write the download directory, or apt-get warns and downloads unsandboxed.
chown _apt "$debs" 2>/dev/null || true

download() {
  (cd "$debs" && apt-get -q download "$@" >/dev/null 2>&1) && return 0
  echo "exim-lab: apt-get download $* failed; updating the package lists once" >&2
  apt-get -qq update
  (cd "$debs" && apt-get -q download "$@" >/dev/null)
}

echo "exim-lab: fetching ${EXIM_PACKAGES[*]}" >&2
download "${EXIM_PACKAGES[@]}"
fetched=("${EXIM_PACKAGES[@]}")

# The binary's library dependencies that this machine lacks (postfix and nsd bring most), and theirs,
# until ldd finds everything.
for round in 1 2 3 4; do
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$ROOT"; done
  # Unpacked libraries have no soname symlinks until ldconfig makes them (it only touches this dir).
  for dir in "$ROOT/usr/lib/x86_64-linux-gnu" "$ROOT/usr/lib"; do
    [ -d "$dir" ] && ldconfig -n "$dir"
  done
  [ -z "$(missing_sonames)" ] && break
  mapfile -t libs < <(uninstalled_lib_deps "${fetched[@]}")
  new=()
  for pkg in "${libs[@]}"; do
    case " ${fetched[*]} " in *" $pkg "*) ;; *) new+=("$pkg") ;; esac
  done
  if [ "${#new[@]}" -eq 0 ]; then
    echo "exim-lab: still missing after round $round: $(missing_sonames | tr '\n' ' ')" >&2
    exit 1
  fi
  echo "exim-lab: fetching libraries ${new[*]}" >&2
  download "${new[@]}"
  fetched+=("${new[@]}")
done

# The package's binary is setuid root. Here it only ever runs as root or, re-executed by a delivery
# process, as Debian-exim; the setuid bit would make the loader ignore LD_LIBRARY_PATH in the latter case.
chmod u-s "$BIN"

if ! works; then
  echo "exim-lab: the unpacked exim does not run:" >&2
  LD_LIBRARY_PATH=$LIBDIRS "$BIN" -C /dev/null -bV >&2 || true
  exit 1
fi

# What the tests run: Exim re-executes itself through exim_path, so the wrapper carries the library path.
mkdir -p "$CACHE/bin"
cat >"$CACHE/bin/exim" <<EOF
#!/bin/sh
# Debian's exim4 from $CACHE (scripts/exim-lab.sh), with the libraries this machine lacks.
LD_LIBRARY_PATH=$LIBDIRS exec $PWD/$BIN "\$@"
EOF
chmod 755 "$CACHE/bin/exim"
printf '%s\n' "${fetched[@]}" >"$STAMP"
echo "exim-lab: $("$CACHE/bin/exim" -C /dev/null -bV 2>/dev/null | head -1) ready in $CACHE" >&2
