#!/usr/bin/env bash
# System (Debian) packages the integration tests need: real servers, no mocks.
#
#   bash scripts/system-deps.sh          # check, install what is missing (root), else explain
#   source scripts/system-deps.sh        # same, from another bash script; returns instead of exiting
#
# Quiet and idempotent when everything is present. When something is missing:
#   - as root: apt-get update (once) + noninteractive apt-get install, with postfix preseeded to
#     "No configuration" and package daemons kept from starting (the tests run their own nsd,
#     redis-server and postfix on loopback addresses; a system one would hold ports 25/53/6379);
#   - not root: prints the exact command to run and fails (exit/return 1). Never skips silently.

# package:binary pairs (binary looked up in PATH, /usr/sbin and /sbin)
LAB_SYSTEM_PACKAGES=(
  "nsd:nsd"
  "redis-server:redis-server"
  "postfix:postfix"
  "openssl:openssl"
  "iproute2:ip"
  # test/integration/operations.test.ts: sd_notify goes through systemd-notify; the test's stand-in
  # for systemd's notification socket is a unix datagram socket owned by python3
  "systemd:systemd-notify"
  "python3:python3"
  # test/packaging/deb.test.ts: build the .deb (packaging/debian/control's Build-Depends), lint it,
  # install it, read its man pages; ccache keeps rebuilding better-sqlite3 cheap
  "dpkg-dev:dpkg-buildpackage"
  "debhelper:dh"
  "go-md2man:go-md2man"
  "g++:g++"
  "make:make"
  "lintian:lintian"
  "ccache:ccache"
  "adduser:adduser"
  "man-db:man"
  "systemd:systemd-analyze"
  # scripts/postfix-lab.sh: the private Postfix 3.11 build for test/e2e (gcc comes with g++; a path
  # instead of a binary name is a file the package installs)
  "m4:m4"
  "libssl-dev:/usr/include/openssl/ssl.h"
  "libdb-dev:/usr/include/db.h"
  # test/lab/dnssec-lab.ts: zones signed at test time (ldns-keygen, ldns-signzone) and a validating
  # resolver with the lab root's trust anchor, for the DANE tests
  "ldnsutils:ldns-signzone"
  "unbound:unbound"
  # test/lab/postgres.ts: a private cluster (initdb + postgres from /usr/lib/postgresql/<major>/bin);
  # pg_ctlcluster comes with the server packages only. test/lab/redis-sentinel.ts: redis-sentinel
  "postgresql:pg_ctlcluster"
  "redis-sentinel:redis-sentinel"
  # scripts/trixie-lab.sh: a minimal Debian 13 tree (Debian's Postfix 3.10 and Node.js 20) for
  # test/packaging/deb-trixie.test.ts and test/e2e/delivery-trixie.test.ts
  "debootstrap:debootstrap"
  # test/lab/tinyproxy.ts: a real HTTP CONNECT proxy for fetch.proxy (test/integration/fetch-proxy.test.ts);
  # tinyproxy-bin is the program without the service
  "tinyproxy-bin:tinyproxy"
)

lab_system_deps() (
  set -u
  have_bin() {
    case "$1" in /*) [ -e "$1" ]; return ;; esac
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
  }

  missing=()
  for pair in "${LAB_SYSTEM_PACKAGES[@]}"; do
    pkg=${pair%%:*}
    bin=${pair#*:}
    have_bin "$bin" || missing+=("$pkg")
  done

  if [ "${#missing[@]}" -gt 0 ]; then
    preseed='postfix postfix/main_mailer_type select No configuration'
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "system-deps: missing ${missing[*]} and apt-get is not available." >&2
      echo "system-deps: install the equivalents of these Debian packages: ${missing[*]}" >&2
      exit 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
      echo "system-deps: the tests need these Debian packages: ${missing[*]}" >&2
      echo "system-deps: run as root:" >&2
      echo "  echo '$preseed' | sudo debconf-set-selections && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}" >&2
      echo "system-deps: (or: sudo bash scripts/system-deps.sh, which also stops the services the packages start)" >&2
      exit 1
    fi

    echo "system-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    echo "$preseed" | debconf-set-selections

    # Keep maintainer scripts from starting daemons (Debian policy-rc.d convention), unless the
    # machine already has its own policy-rc.d. Removed again on any exit of this subshell.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
      trap 'rm -f "$policy"' EXIT
    fi

    if ! apt-get -qq update; then
      echo "system-deps: apt-get update failed" >&2
      exit 1
    fi
    if ! apt-get -y -q install --no-install-recommends "${missing[@]}" >/dev/null; then
      echo "system-deps: apt-get install ${missing[*]} failed" >&2
      exit 1
    fi

    # Whatever the packages started anyway: stop it and keep it from starting at boot.
    for svc in postfix nsd redis-server unbound postgresql redis-sentinel; do
      case " ${missing[*]} " in *" $svc "*) ;; *) continue ;; esac
      if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
      fi
      service "$svc" stop >/dev/null 2>&1 || true
      if command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d "$svc" disable >/dev/null 2>&1 || true
      fi
    done

    still=()
    for pair in "${LAB_SYSTEM_PACKAGES[@]}"; do
      have_bin "${pair#*:}" || still+=("${pair%%:*}")
    done
    if [ "${#still[@]}" -gt 0 ]; then
      echo "system-deps: still missing after install: ${still[*]}" >&2
      exit 1
    fi
  fi

  # The lab gives every test world its own 127.x.y.z: all of 127/8 must be local (Linux default).
  ipbin=$(command -v ip || echo /usr/sbin/ip)
  if ! "$ipbin" -4 route show table local 2>/dev/null | grep -q '^local 127\.0\.0\.0/8 '; then
    echo "system-deps: 127.0.0.0/8 is not routed to lo; as root run: ip addr add 127.0.0.0/8 dev lo" >&2
    exit 1
  fi
  exit 0
)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  lab_system_deps
  return $?
else
  lab_system_deps
  exit $?
fi
