#!/usr/bin/env bash
# Build the Debian package from this checkout:
#
#   npm run deb        ->  build/deb/mta-sts-sidecar_<version>_<arch>.deb (with its .buildinfo, .changes
#                          and -dbgsym .deb); the .deb's path is the last line printed
#
# dpkg-buildpackage wants debian/ at the top of the source tree; ours lives in packaging/debian. So this
# exports the working tree's files (tracked, and untracked but not ignored, as they are now: never
# node_modules, dist or build output) to a build tree (/var/tmp/mta-sts-sidecar-deb/, or $DEB_TREE),
# copies packaging/debian to debian/ there,
# runs `dpkg-buildpackage -us -uc -b` in it and moves the results to build/deb/ (or $DEB_OUT).
# DEB_REF=<commit> builds that commit instead of the working tree.
# debian/rules runs `npm ci` (from npm's cache in ~/.npm when it can), compiles better-sqlite3 for
# this machine's Node.js and prunes to production dependencies. When ccache is installed the C/C++
# compiles go through it; the tree's path is the same for every checkout on the machine, so that a
# rebuild of the same sources hits the cache (compiler flags carry the path). One build at a time.
# Build dependencies: packaging/debian/control (scripts/system-deps.sh installs them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${DEB_OUT:-$root/build/deb}
tree=${DEB_TREE:-/var/tmp/mta-sts-sidecar-deb}
src=$tree/mta-sts-sidecar

command -v dpkg-buildpackage >/dev/null || { echo "build-deb: dpkg-buildpackage missing (apt-get install dpkg-dev debhelper)" >&2; exit 1; }

mkdir -p "$(dirname "$tree")"
exec 9>"$tree.lock"
flock 9

rm -rf "$tree"
mkdir -p "$src"
trap 'rm -rf "$tree"' EXIT
cd "$root"
if [ -n "${DEB_REF:-}" ]; then
  # DEB_REF=HEAD (or any commit): build exactly that commit, whatever the working tree holds.
  git archive --format=tar "$DEB_REF" | tar -xf - -C "$src"
else
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      # tracked files deleted in the working tree are not part of it
      if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done |
    tar --null -T - -cf - | tar -xf - -C "$src"
fi
cp -a "$src/packaging/debian" "$src/debian"

if command -v ccache >/dev/null && [ -z "${CC:-}${CXX:-}" ]; then
  export CC="ccache gcc" CXX="ccache g++"
fi

cd "$src"
dpkg-checkbuilddeps
dpkg-buildpackage -us -uc -b

mkdir -p "$out"
rm -f "$out"/mta-sts-sidecar*.deb "$out"/mta-sts-sidecar_*.buildinfo "$out"/mta-sts-sidecar_*.changes
# debian/files lists what dpkg-buildpackage wrote next to the source tree (.deb files, .buildinfo).
for f in $(awk '{print $1}' debian/files); do mv "$tree/$f" "$out/"; done
mv "$tree"/mta-sts-sidecar_*.changes "$out/"
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
echo "$out/mta-sts-sidecar_${version}_${arch}.deb"
