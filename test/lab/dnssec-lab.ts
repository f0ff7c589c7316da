/**
 * A DNSSEC-signed DNS world on loopback for the DANE tests: zones signed at test time with Debian's
 * `ldnsutils` (ldns-keygen, ldns-signzone), served by the lab's NSD (dns-server.ts) together with a
 * signed lab root zone that delegates to them, and a validating Unbound (unbound.ts) whose only trust
 * anchor is that root's key. Nothing leaves loopback: the root is ours.
 *
 * Each zone says how it is signed:
 *   'valid'    signed, its DS in the root: answers are authenticated (AD);
 *   'unsigned' delegated without DS: insecure, answers come without AD (RFC 4035 §5.2);
 *   'wrong-ds' signed, but the root's DS names another key: bogus, SERVFAIL;
 *   'expired'  signed with signatures that expired yesterday: bogus, SERVFAIL (RFC 4035 §5.3.1).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startDnsServer, type DnsRecord, type DnsServer, type Zones } from './dns-server.js';
import { allocateLoopback, releaseLoopback } from './loopback.js';
import { startUnbound, type Unbound } from './unbound.js';

const run = promisify(execFile);

export type Signing = 'valid' | 'unsigned' | 'wrong-ds' | 'expired';

export interface SignedZone {
  signing: Signing;
  /** Owner names relative to the zone ('@' = apex) or absolute; TTL 0 unless given. */
  records: DnsRecord[];
}

export interface DnssecLab {
  /** The validating resolver: what `dns.servers` points at. */
  readonly resolver: string;
  /** The authoritative NSD (no validation: for tests that need an answer without AD from a non-validator). */
  readonly authority: string;
  readonly unbound: Unbound;
  readonly nsd: DnsServer;
  stop(): Promise<void>;
}

/** Name server name of every lab zone, with its address as glue in the root. */
const NS_NAME = 'ns.lab.';
const DAY_S = 86_400;

export interface DnssecLabOptions {
  /**
   * Where the validating resolver listens, when it must be a given address (test/e2e: the one its
   * network namespace's resolv.conf names); default: a fresh loopback address of its own.
   */
  resolverAddress?: string;
}

export async function startDnssecLab(zones: Record<string, SignedZone>, options: DnssecLabOptions = {}): Promise<DnssecLab> {
  const dir = await mkdtemp(join(tmpdir(), 'mta-sts-lab-dnssec-'));
  const nsdAddress = await allocateLoopback();
  const resolverAddress = options.resolverAddress ?? (await allocateLoopback());
  let nsd: DnsServer | undefined;
  let unbound: Unbound | undefined;
  try {
    const now = Math.floor(Date.now() / 1000);
    const served: Zones = {};
    const rootRecords: string[] = [`${NS_NAME} 0 IN A ${nsdAddress}`];
    for (const [zone, spec] of Object.entries(zones)) {
      const origin = zone.toLowerCase().replace(/\.$/, '');
      const text = zoneText(origin, spec.records);
      rootRecords.push(`${origin}. 0 IN NS ${NS_NAME}`);
      if (spec.signing === 'unsigned') {
        served[origin] = { text };
        continue;
      }
      const key = await keygen(dir, origin);
      const [inception, expiration] = spec.signing === 'expired' ? [now - 30 * DAY_S, now - DAY_S] : [now - DAY_S, now + 30 * DAY_S];
      served[origin] = { text: await sign(dir, origin, text, key, inception, expiration) };
      // 'wrong-ds': the parent vouches for a key that signed nothing, so the chain of trust breaks.
      const dsKey = spec.signing === 'wrong-ds' ? await keygen(dir, origin) : key;
      rootRecords.push(await readDs(dir, dsKey));
    }
    const rootKey = await keygen(dir, '.');
    const rootText = zoneText('', []) + rootRecords.join('\n') + '\n';
    served['.'] = { text: await sign(dir, '.', rootText, rootKey, now - DAY_S, now + 30 * DAY_S) };
    nsd = await startDnsServer({ address: nsdAddress, zones: served });
    const anchor = (await readDs(dir, rootKey)).replace(/\s+/g, ' ');
    unbound = await startUnbound({ address: resolverAddress, authority: nsdAddress, trustAnchor: anchor });
  } catch (err) {
    await unbound?.stop();
    await nsd?.stop();
    releaseLoopback(nsdAddress);
    releaseLoopback(resolverAddress);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const n = nsd;
  const u = unbound;
  return {
    resolver: resolverAddress,
    authority: nsdAddress,
    unbound: u,
    nsd: n,
    async stop() {
      await u.stop();
      await n.stop();
      releaseLoopback(nsdAddress);
      releaseLoopback(resolverAddress);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A zone file: SOA (negative TTL 0, RFC 2308 §5, so nothing is cached between cases), NS, records. */
function zoneText(origin: string, records: DnsRecord[]): string {
  const apex = origin === '' ? '.' : `${origin}.`;
  const lines = [
    `$ORIGIN ${apex}`,
    '$TTL 0',
    `@ 0 IN SOA ${NS_NAME} hostmaster.lab. 1 3600 600 86400 0`,
    `@ 0 IN NS ${NS_NAME}`,
  ];
  for (const r of records) {
    const value = Array.isArray(r.value) ? r.value.map((v) => JSON.stringify(v)).join(' ') : r.type === 'TXT' ? JSON.stringify(r.value) : r.value;
    lines.push(`${r.name} ${r.ttl ?? 0} IN ${r.type} ${value}`);
  }
  return lines.join('\n') + '\n';
}

/** A key-signing key (flags 257) used as the zone's only key: ldns-signzone signs every RRset with it. */
async function keygen(dir: string, origin: string): Promise<string> {
  const name = origin === '.' ? '.' : `${origin}.`;
  const { stdout } = await run('ldns-keygen', ['-a', 'ECDSAP256SHA256', '-k', '-r', '/dev/urandom', name], { cwd: dir });
  return join(dir, stdout.trim());
}

async function sign(dir: string, origin: string, text: string, key: string, inception: number, expiration: number): Promise<string> {
  const file = join(dir, `${origin === '.' ? 'root' : origin}.zone`);
  await writeFile(file, text);
  await run('ldns-signzone', ['-i', String(inception), '-e', String(expiration), '-f', `${file}.signed`, file, key], { cwd: dir });
  return readFile(`${file}.signed`, 'utf8');
}

async function readDs(dir: string, key: string): Promise<string> {
  return (await readFile(`${key}.ds`, 'utf8')).trim();
}
