/**
 * The bench world: the lab's real NSD (DNS) and HTTPS policy server with a test CA, on loopback only.
 *
 * Names (all under bench.test, one NSD zone):
 * - `bench.test`              the cached domain of scenario 1 (enforce, two MX patterns)
 * - `nopolicy.bench.test`     no _mta-sts record (NXDOMAIN): the negative cache of scenario 5
 * - `c<N>.bench.test`         N < COLD_DOMAINS: distinct enforce domains for the cold start (scenario 3)
 * - `p<N>.bench.test`         not in DNS: policies written straight into the store (scenarios 2 and 4)
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, type KeyAndCert, type TestCa } from '../test/lab/ca.js';
import { startDnsServer, type DnsRecord, type DnsServer } from '../test/lab/dns-server.js';
import { allocateLoopback, assertLoopback, releaseLoopback } from '../test/lab/loopback.js';
import { startPolicyServer, type PolicyServer } from '../test/lab/policy-server.js';

export const ZONE = 'bench.test';
export const CACHED_DOMAIN = 'bench.test';
export const NEGATIVE_DOMAIN = 'nopolicy.bench.test';
export const COLD_DOMAINS = 1000;
export const coldDomain = (n: number): string => `c${n}.${ZONE}`;
export const storedDomain = (n: number): string => `p${n}.${ZONE}`;

/** What our daemon answers for CACHED_DOMAIN (and what the bare responder sends). */
export const CACHED_REPLY = 'OK secure match=mx1.bench.test:.mx.bench.test servername=hostname';

export function policyText(domain: string, maxAgeSeconds = 604_800): string {
  return `version: STSv1\r\nmode: enforce\r\nmx: mx1.${domain}\r\nmx: *.mx.${domain}\r\nmax_age: ${maxAgeSeconds}\r\n`;
}

export interface World {
  dnsAddress: string;
  webAddress: string;
  dns: DnsServer;
  web: PolicyServer;
  ca: TestCa;
  /** Directory holding ca.pem (lab CA) and ca-bundle.pem (system roots + lab CA). */
  dir: string;
  caFile: string;
  caBundleFile: string;
  stop(): Promise<void>;
}

export interface WorldOptions {
  /** Fixed addresses (inside the bench network namespace, where resolv.conf names the DNS address). */
  dnsAddress?: string;
  webAddress?: string;
}

const SYSTEM_ROOTS = '/etc/ssl/certs/ca-certificates.crt';

export async function startWorld(options: WorldOptions = {}): Promise<World> {
  const dnsAddress = options.dnsAddress ?? (await allocateLoopback());
  const webAddress = options.webAddress ?? (await allocateLoopback());
  assertLoopback(dnsAddress);
  assertLoopback(webAddress);
  const records: DnsRecord[] = [
    { name: '_mta-sts', type: 'TXT', value: 'v=STSv1; id=bench1' },
    { name: 'mta-sts', type: 'A', value: webAddress },
    { name: '@', type: 'MX', value: `10 mx1.${ZONE}.` },
  ];
  for (let n = 0; n < COLD_DOMAINS; n++) {
    const label = `c${n}`;
    records.push({ name: `_mta-sts.${label}`, type: 'TXT', value: `v=STSv1; id=cold${n}` });
    records.push({ name: `mta-sts.${label}`, type: 'A', value: webAddress });
  }
  const dns = await startDnsServer({ address: dnsAddress, zones: { [ZONE]: { records } } });
  const ca = await createTestCa('mta-sts-sidecar bench CA');
  const web = await startPolicyServer({ address: webAddress, ca });
  web.setRoute(`mta-sts.${CACHED_DOMAIN}`, { body: policyText(CACHED_DOMAIN) });
  // Certificates are issued before the cold start, so that the lab's own signing is not what we time.
  const certs: KeyAndCert[] = await Promise.all(
    Array.from({ length: COLD_DOMAINS }, (_, n) => ca.issue({ dnsNames: [`mta-sts.${coldDomain(n)}`] })),
  );
  for (let n = 0; n < COLD_DOMAINS; n++) {
    web.setRoute(`mta-sts.${coldDomain(n)}`, { body: policyText(coldDomain(n)), cert: certs[n]! });
  }

  const dir = await mkdtemp(join(tmpdir(), 'mta-sts-bench-'));
  const caFile = join(dir, 'ca.pem');
  const caBundleFile = join(dir, 'ca-bundle.pem');
  await writeFile(caFile, ca.certPem);
  let roots = '';
  try {
    const { readFile } = await import('node:fs/promises');
    roots = await readFile(SYSTEM_ROOTS, 'utf8');
  } catch {
    /* no system bundle: the lab CA alone is enough for the lab */
  }
  await writeFile(caBundleFile, roots + '\n' + ca.certPem);

  let stopped = false;
  return {
    dnsAddress,
    webAddress,
    dns,
    web,
    ca,
    dir,
    caFile,
    caBundleFile,
    async stop() {
      if (stopped) return;
      stopped = true;
      await web.stop();
      await dns.stop();
      if (!options.dnsAddress) releaseLoopback(dnsAddress);
      if (!options.webAddress) releaseLoopback(webAddress);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
