/**
 * A policy host whose DNS answer changes to loopback between two fetches is refused the second time.
 * The test itself (test/netns/rebinding.netns.ts) needs an address that is not loopback yet local to
 * this machine, so it runs in a network namespace of its own (`unshare --net`: root), where 192.0.3.1
 * exists on lo and nothing leaves. The other hostile-peer tests are test/faults/hostile-peers.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('SSRF: DNS rebinding between two fetches', () => {
  it('a policy host whose DNS changes to loopback between two fetches is refused the second time (network namespace)', () => {
    const root = resolve(import.meta.dirname, '../..');
    const script = [
      'set -e',
      'ip link set lo up',
      // A globally routable-looking address, local to this namespace only.
      'ip addr add 192.0.3.1/32 dev lo',
      'exec npx vitest run --config test/netns/vitest.config.ts',
    ].join('\n');
    const run = spawnSync('unshare', ['--net', '--', 'sh', '-c', script], {
      cwd: root,
      env: { ...process.env, MTA_STS_NETNS: '1', NO_COLOR: '1', FORCE_COLOR: '0' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    const out = `${run.stdout}\n${run.stderr}`;
    expect(run.status, out).toBe(0);
    expect(out).toMatch(/Tests\s+2 passed \(2\)/);
  });
});
