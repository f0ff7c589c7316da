#!/usr/bin/env bash
# Real Postfix delivering under MTA-STS, end to end (test/e2e).
#
#   bash scripts/e2e-postfix.sh [vitest args...]     # as root; scripts/test runs it after the main suite
#
# Runs the same delivery cases (test/e2e/delivery-cases.ts) twice, one file after the other: with the
# host's Postfix (delivery.test.ts; Debian 12: 3.7) and with Postfix 3.11.6 (delivery-3.11.test.ts),
# built once from vendor/postfix into .cache by scripts/postfix-lab.sh (called below; quiet when cached).
# And with Debian 13's Postfix (delivery-trixie.test.ts), run in the trixie tree that scripts/trixie-lab.sh
# makes once into .cache (called below too).
# test/e2e/dane.test.ts puts both behind smtp_tls_security_level = dane in a DNSSEC-signed world (its
# validating Unbound takes the address this namespace's resolv.conf names).
#
# Builds the test world's network namespace and runs the e2e vitest files inside it, so that every
# server the tests start (NSD, HTTPS policy hosts, SMTP servers, the daemon, Postfix) lives there and
# nothing can reach, or be reached from, the rest of the machine:
#   - `ip netns add mta-sts-e2e-<pid>`, with its own lo up (its 127.0.0.0/8 is not the host's);
#   - /etc/netns/<name>/resolv.conf naming the world's DNS server, which `ip netns exec` mounts over
#     /etc/resolv.conf for everything it runs: Postfix's libc resolver and the daemon both use it;
#   - TMPDIR set to a directory of this run, so that every temp dir the tests make (Postfix's queue,
#     NSD's zones, the daemon's config) is inside it;
#   - afterwards, even on failure or interrupt: every process still in the namespace is killed (all
#     were started by this run), the namespace, /etc/netns/<name> and the run's TMPDIR are removed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "e2e-postfix: needs root (ip netns, ports 25/53/443, a Postfix instance); run: sudo bash $0" >&2
  exit 1
fi
for bin in ip postfix sendmail postqueue nsd unbound ldns-signzone; do
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
    echo "e2e-postfix: $bin not found; run: bash scripts/system-deps.sh" >&2
    exit 1
  fi
done
export PATH="$PATH:/usr/sbin:/sbin"
bash scripts/postfix-lab.sh
bash scripts/trixie-lab.sh # Debian 13 tree, for delivery-trixie.test.ts (quiet when cached)

prefix=mta-sts-e2e-
name="$prefix$$"
# The world's DNS server (NSD); the test reads it from the environment.
dns=127.0.53.1

remove_netns() {
  local ns=$1
  ip netns delete "$ns" 2>/dev/null || true
  # /etc/netns/<ns> holds only the resolv.conf written below.
  case "$ns" in "$prefix"[0-9]*) rm -rf "/etc/netns/${ns:?}" ;; esac
}

cleanup() {
  local pids pid
  pids=$(ip netns pids "$name" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    echo "e2e-postfix: stopping processes left in $name: $(echo $pids)" >&2
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in $(ip netns pids "$name" 2>/dev/null || true); do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  remove_netns "$name"
  [ -n "${run_tmp:-}" ] && rm -rf "$run_tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Names (not processes) left by an earlier run that was killed before its cleanup: its pid is gone.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
  case "$ns" in "$prefix"[0-9]*) ;; *) continue ;; esac
  owner=${ns#"$prefix"}
  if [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && ! kill -0 "$owner" 2>/dev/null; then
    remove_netns "$ns"
  fi
done

run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/mta-sts-e2e-run.XXXXXX")
chmod 755 "$run_tmp" # Postfix's queue and data directories are below it, used as user postfix
ip netns add "$name"
ip -n "$name" link set lo up
mkdir -p "/etc/netns/$name"
printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$dns" >"/etc/netns/$name/resolv.conf"

# In the background, so that a TERM or INT for this script is handled at once (the trap kills it).
status=0
ip netns exec "$name" env MTA_STS_E2E_NETNS="$name" MTA_STS_E2E_DNS="$dns" TMPDIR="$run_tmp" \
  npx vitest run --config test/e2e/vitest.config.ts "$@" &
wait "$!" || status=$?
exit "$status"
