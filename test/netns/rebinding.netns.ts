/**
 * Runs inside a network namespace made by test/faults/rebinding-netns.test.ts (`unshare --net`), where
 * 192.0.3.1 is a local address that isPublicAddress() counts as public. There a policy host can "move"
 * from a public address to loopback between two fetches, as a hostile DNS would make it: the fetcher
 * looks the host up again for every connection and refuses the loopback answer; and a mixed answer
 * (loopback and public) only ever reaches the public address.
 */
import { createServer, type Server } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPolicyFetcher } from '../../src/net/policy-fetch.js';
import type { Address, DnsClient } from '../../src/net/dns.js';
import { StsError } from '../../src/errors.js';
import { createTestCa, type TestCa } from '../lab/ca.js';

const PUBLIC = '192.0.3.1';
const LOOPBACK = '127.0.0.1';
const HOST = 'mta-sts.rebind.example';
const BODY = 'version: STSv1\nmode: enforce\nmx: mx.rebind.example\nmax_age: 86400\n';

if (process.env.MTA_STS_NETNS !== '1') throw new Error('run from test/faults/rebinding-netns.test.ts, inside unshare --net');

let ca: TestCa;
const servers: Server[] = [];
const hits = new Map<string, number>();

beforeAll(async () => {
  ca = await createTestCa();
  const { certPem, keyPem } = await ca.issue({ dnsNames: [HOST] });
  for (const address of [PUBLIC, LOOPBACK]) {
    const server = createServer({ cert: certPem, key: keyPem }, (req, res) => {
      hits.set(address, (hits.get(address) ?? 0) + 1);
      res.writeHead(200, { 'content-type': 'text/plain' }).end(BODY);
    });
    await new Promise<void>((ok) => server.listen(443, address, ok));
    servers.push(server);
  }
});

afterAll(async () => {
  for (const s of servers) await new Promise<void>((ok) => s.close(() => ok()));
});

/** A DNS view that gives the next answer of `answers` at each lookup (the last one repeats). */
function scriptedDns(answers: Address[][]): DnsClient {
  let n = 0;
  return {
    async txt() {
      return { kind: 'nodata' };
    },
    async addresses() {
      return answers[Math.min(n++, answers.length - 1)]!;
    },
  };
}

const fetcherFor = (dns: DnsClient) =>
  createPolicyFetcher(dns, { extraCaPem: ca.certPem, allowPrivateAddresses: false, timeoutMs: 3_000, maxBytes: 65_536, userAgent: 'test' });

describe('DNS that changes between fetches (default: private addresses refused)', () => {
  it('first fetch from the public address, second refused once the name points at loopback', async () => {
    hits.clear();
    const fetcher = fetcherFor(scriptedDns([[{ address: PUBLIC, family: 4 }], [{ address: LOOPBACK, family: 4 }]]));
    try {
      expect((await fetcher.fetch('rebind.example')).text).toBe(BODY);
      const second = await fetcher.fetch('rebind.example').catch((e: unknown) => e);
      expect(second).toBeInstanceOf(StsError);
      expect((second as StsError).reason).toBe('address');
      expect(hits.get(PUBLIC)).toBe(1);
      expect(hits.get(LOOPBACK) ?? 0).toBe(0);
    } finally {
      await fetcher.close();
    }
  });

  it('a mixed answer (loopback first, public second) only ever reaches the public address', async () => {
    hits.clear();
    const fetcher = fetcherFor(scriptedDns([[{ address: LOOPBACK, family: 4 }, { address: '::1', family: 6 }, { address: PUBLIC, family: 4 }]]));
    try {
      for (let i = 0; i < 3; i++) expect((await fetcher.fetch('rebind.example')).text).toBe(BODY);
      expect(hits.get(PUBLIC)).toBe(3);
      expect(hits.get(LOOPBACK) ?? 0).toBe(0);
    } finally {
      await fetcher.close();
    }
  });
});
