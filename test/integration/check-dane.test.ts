/**
 * `check DOMAIN` with DANE: the signed lab (test/lab/dnssec-lab.ts) and a real STARTTLS server per MX.
 * Per MX host the TLSA records are shown (usable or not, and why), and a certificate that matches none
 * of the usable records fails (a DANE sender defers mail to that host, whatever MTA-STS says).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCheck, type CheckDeps } from '../../src/check/run-check.js';
import type { CheckReport, Step } from '../../src/check/types.js';
import { StsError } from '../../src/errors.js';
import { createDnsClient } from '../../src/net/dns.js';
import { createSecureDnsClient, detectValidation } from '../../src/net/secure-dns.js';
import { createStartTlsProber } from '../../src/net/starttls-probe.js';
import { DaneResolver } from '../../src/resolver/dane.js';
import { createTestCa } from '../lab/ca.js';
import { startDnssecLab, type DnssecLab } from '../lab/dnssec-lab.js';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startSmtpServer, type SmtpServer } from '../lab/smtp-server.js';

let lab: DnssecLab;
let smtp: SmtpServer;
let smtpAddress: string;
let caPem: string;

beforeAll(async () => {
  const ca = await createTestCa();
  caPem = ca.certPem;
  const leaf = await ca.issue({ dnsNames: ['mx1.match.test', 'mx1.mismatch.test', 'mx1.pkix.test'] });
  const spki = new X509Certificate(leaf.certPem).publicKey.export({ type: 'spki', format: 'der' });
  const spkiSha256 = createHash('sha256').update(spki).digest('hex');
  const caSha256 = createHash('sha256').update(new X509Certificate(ca.certPem).raw).digest('hex');
  smtpAddress = await allocateLoopback();
  // The server sends its CA certificate after the leaf, so DANE-TA(2) can match it (RFC 7672 §3.1.2).
  smtp = await startSmtpServer({ address: smtpAddress, port: 25, cert: { certPem: leaf.certPem + ca.certPem, keyPem: leaf.keyPem }, hostname: 'mx1' });
  const mx = (zone: string, tlsa: string[]) => ({
    signing: 'valid' as const,
    records: [
      { name: '@', type: 'MX', value: '10 mx1' },
      { name: 'mx1', type: 'A', value: smtpAddress },
      ...tlsa.map((value) => ({ name: '_25._tcp.mx1', type: 'TLSA', value })),
    ],
  });
  lab = await startDnssecLab({
    'match.test': mx('match.test', [`3 1 1 ${spkiSha256}`, `2 0 1 ${caSha256}`]),
    'mismatch.test': mx('mismatch.test', [`3 1 1 ${'ab'.repeat(32)}`]),
    'pkix.test': mx('pkix.test', [`1 1 1 ${spkiSha256}`]),
  });
}, 60_000);

afterAll(async () => {
  await smtp?.stop();
  await lab?.stop();
  if (smtpAddress) releaseLoopback(smtpAddress);
});

/** What `check` runs on: the lab's validating resolver, or `secureServer` for the DNSSEC questions. */
function checkDeps(secureServer = lab.resolver): CheckDeps {
  const secure = createSecureDnsClient({ servers: [secureServer], timeoutMs: 2_000, tries: 1 });
  return {
    dns: createDnsClient({ servers: [lab.resolver], timeoutMs: 2_000, tries: 1 }),
    // No MTA-STS in these zones: the policy host has no address, so the fetch is never reached.
    fetcher: { fetch: () => Promise.reject(new StsError('dns', 'no policy host')) },
    probe: createStartTlsProber({ extraCaPem: caPem, timeoutMs: 10_000, ehloName: 'check.lab' }),
    now: Date.now,
    dane: { resolver: new DaneResolver(secure, { maxEntries: 1 }), validation: () => detectValidation(secure) },
  };
}

async function check(domain: string): Promise<CheckReport> {
  const gen = runCheck(domain, checkDeps(), { allowPrivateAddresses: true, probeConcurrency: 2, maxAddressesPerMx: 1 });
  for (;;) {
    const next = await gen.next();
    if (next.done) return next.value;
  }
}

const one = (r: CheckReport, id: string): Step => {
  const found = r.steps.filter((s) => s.id === id);
  expect(found, `${id} in ${JSON.stringify(r.steps.map((s) => s.id))}`).toHaveLength(1);
  return found[0]!;
};

describe('check: DANE', () => {
  it('usable TLSA records that match the certificate: every DANE step passes', async () => {
    const r = await check('match.test');
    expect(one(r, 'dane')).toMatchObject({ status: 'pass', details: { state: 'dane-only' } });
    expect(one(r, 'mx-tlsa')).toMatchObject({ status: 'pass', mx: 'mx1.match.test', details: { name: '_25._tcp.mx1.match.test' } });
    expect((one(r, 'mx-tlsa').details!.records as Array<{ usable: boolean }>).map((x) => x.usable)).toEqual([true, true]);
    expect(one(r, 'mx-tlsa-match')).toMatchObject({ status: 'pass', address: smtpAddress });
    // Both records match (DNS gives an RRset in any order).
    expect(one(r, 'mx-tlsa-match').reason).toMatch(/3 1 1 [0-9a-f]{64}/);
    expect(one(r, 'mx-tlsa-match').reason).toMatch(/2 0 1 [0-9a-f]{64}/);
  }, 30_000);

  it('a TLSA record that does not match the certificate presented: fail, with the record to publish', async () => {
    const r = await check('mismatch.test');
    expect(one(r, 'mx-tlsa').status).toBe('pass');
    const match = one(r, 'mx-tlsa-match');
    expect(match.status).toBe('fail');
    expect(match.fix).toMatch(/3 1 1 [0-9a-f]{64}/);
  }, 30_000);

  it('PKIX-EE records only: present but unusable for SMTP, with the reason', async () => {
    const r = await check('pkix.test');
    expect(one(r, 'dane')).toMatchObject({ status: 'warn', details: { state: 'dane', why: 'records-unusable' } });
    expect(one(r, 'mx-tlsa')).toMatchObject({ status: 'warn' });
    expect(JSON.stringify(one(r, 'mx-tlsa').details)).toMatch(/PKIX-TA\(0\)\/PKIX-EE\(1\)/);
    expect(r.steps.some((s) => s.id === 'mx-tlsa-match')).toBe(false);
  }, 30_000);

  it('a resolver that does not validate: no DANE steps (only a progress line says why)', async () => {
    // The authority answers without validating: no AD bit.
    const messages: string[] = [];
    const gen = runCheck('match.test', checkDeps(lab.authority), { allowPrivateAddresses: true, probeConcurrency: 2, maxAddressesPerMx: 1 });
    let report: CheckReport | undefined;
    while (report === undefined) {
      const next = await gen.next();
      if (next.done) report = next.value;
      else if (next.value.type === 'progress') messages.push(next.value.message);
    }
    expect(report.steps.filter((s) => s.id.startsWith('dane') || s.id.startsWith('mx-tlsa'))).toEqual([]);
    expect(messages.join('\n')).toMatch(/DANE not checked: the resolver does not validate DNSSEC/);
  }, 30_000);
});
