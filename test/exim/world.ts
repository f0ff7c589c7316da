/**
 * A test world for the real-Exim tests: the lab DNS server (NSD) and HTTPS policy host on one loopback
 * address, and the built daemon with its socketmap and Exim listeners, resolving from them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsServer, type DnsRecord, type DnsServer } from '../lab/dns-server.js';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { freePort, startSidecar, type Sidecar } from '../lab/sidecar.js';
import type { TestCa } from '../lab/ca.js';

export const ZONE = 'mail.test';

export const policyText = (mode: string, ...mx: string[]): string =>
  `version: STSv1\nmode: ${mode}\n${mx.map((m) => `mx: ${m}\n`).join('')}max_age: 86400\n`;

export interface DomainSpec {
  /** Policy body; undefined: no _mta-sts record published. */
  policy?: string;
  /** MX targets (absolute names, without the trailing dot), preference 10, 20, ... */
  mx: string[];
}

export interface World {
  /** The address NSD (port 53) and the policy host (443) listen on. */
  readonly address: string;
  readonly dns: DnsServer;
  readonly https: PolicyServer;
  readonly ca: TestCa;
  readonly sidecar: Sidecar;
  /** Where the daemon's Exim listener is, as an Exim MTA_STS_SOCKET (`inet:127.0.0.1:PORT`). */
  readonly eximSocket: string;
  /** A directory of the test's own, removed by stop(). */
  readonly dir: string;
  stop(): Promise<void>;
}

/**
 * `domains`: label (under mail.test) -> policy and MX hosts; `hosts`: absolute host name -> address
 * (A records); `records`: anything else (TLSA, ...), relative to mail.test.
 */
export async function startWorld(
  domains: Record<string, DomainSpec>,
  hosts: Record<string, string>,
  records: DnsRecord[] = [],
): Promise<World> {
  const address = await allocateLoopback();
  const dir = await mkdtemp(join(tmpdir(), 'exim-world-'));
  const stops: Array<() => Promise<unknown> | void> = [() => rm(dir, { recursive: true, force: true }), () => releaseLoopback(address)];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  try {
    const https = await startPolicyServer({ address });
    stops.push(() => https.stop());
    const zone: DnsRecord[] = [...records];
    for (const [label, spec] of Object.entries(domains)) {
      if (spec.policy !== undefined) {
        zone.push({ name: `_mta-sts.${label}`, type: 'TXT', value: [`v=STSv1; id=${label.replace(/[^A-Za-z0-9]/g, '')}1`] });
        zone.push({ name: `mta-sts.${label}`, type: 'A', value: address });
        https.setRoute(`mta-sts.${label}.${ZONE}`, { body: spec.policy });
      }
      spec.mx.forEach((host, i) => zone.push({ name: label, type: 'MX', value: `${(i + 1) * 10} ${host}.` }));
    }
    for (const [host, ip] of Object.entries(hosts)) zone.push({ name: `${host}.`, type: 'A', value: ip });
    const dns = await startDnsServer({ address, zones: { [ZONE]: { records: zone } } });
    stops.push(() => dns.stop());

    const [socketmapPort, eximPort] = [await freePort(), await freePort()];
    const sidecar = await startSidecar(
      `
socketmap: { listen: ["tcp:127.0.0.1:${socketmapPort}"] }
exim: { listen: ["tcp:127.0.0.1:${eximPort}"] }
http: { listen: [] }
dns: { servers: ["${address}"], timeout_ms: 2000, tries: 1 }
fetch: { ca_file: "$DIR/ca.pem", allow_private_addresses: true, timeout_ms: 3000 }
cache: { store: memory }
log: { level: info }
`,
      { 'ca.pem': https.ca.certPem },
    );
    stops.push(() => sidecar.stop());
    return { address, dns, https, ca: https.ca, sidecar, eximSocket: `inet:127.0.0.1:${eximPort}`, dir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
