#!/usr/bin/env bash
# npm run bench [-- --scenario 1,3 --duration 4 --rounds 2 ...]   (options: see bench/run.ts)
#
# Builds what is measured (npm run build: the daemon users run), the runner (tsc into bench/.build) and
# the native load client (cc), then runs bench/run.ts. As root, everything runs inside a network
# namespace of its own (loopback only, nothing leaves the machine) whose resolv.conf names the lab NSD,
# so that postfix-mta-sts-resolver, which resolves through the system resolver, sees the lab's DNS too.
# The namespace and its /etc/netns entry are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run --silent build
npx tsc -p bench/tsconfig.json
mkdir -p bench/.build
cc -O2 -Wall -Wextra -o bench/.build/socketmap-load bench/client/socketmap-load.c

RUNNER=(node bench/.build/bench/run.js "$@")
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null 2>&1; then
  echo "bench: not root (or no iproute2): running on host loopback, without postfix-mta-sts-resolver" >&2
  exec "${RUNNER[@]}"
fi

NS="mta-sts-bench-$$"
DNS_ADDRESS=127.53.0.1
WEB_ADDRESS=127.44.3.1
cleanup() {
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "/etc/netns/$NS"
}
trap cleanup EXIT
ip netns add "$NS"
mkdir -p "/etc/netns/$NS"
echo "nameserver $DNS_ADDRESS" >"/etc/netns/$NS/resolv.conf"
ip netns exec "$NS" ip link set lo up
status=0
BENCH_NETNS="$NS" BENCH_DNS_ADDRESS="$DNS_ADDRESS" BENCH_WEB_ADDRESS="$WEB_ADDRESS" \
  ip netns exec "$NS" "${RUNNER[@]}" || status=$?
exit "$status"
