/**
 * DANE first with a real Postfix (issue 16, RFC 8461 §2): Postfix set up as people who care about mail
 * TLS set it up (`smtp_dns_support_level = dnssec`, `smtp_tls_security_level = dane`), the daemon as its
 * `smtp_tls_policy_maps`, and a DNSSEC-signed world (test/lab/dnssec-lab.ts: zones signed at test time
 * under a lab root, NSD, and a validating Unbound on the address the namespace's resolv.conf names, which
 * both Postfix and the daemon use). Run by scripts/e2e-postfix.sh, inside its own network namespace,
 * with the host's Postfix and with the Postfix 3.11 build.
 *
 *   danewins  TLSA matches the MX's key; the certificate names neither the MX nor the MTA-STS pattern:
 *             delivered (DANE wins; the MTA-STS answer alone would have deferred it)
 *   danefail  TLSA matches nothing; the certificate is valid for the MX, which the policy lists:
 *             deferred (a failing DANE validation is not overridden by MTA-STS)
 *   stsonly   signed, no TLSA, an enforce policy listing the MX, a valid certificate: delivered
 *   stsbad    signed, no TLSA, an enforce policy, a certificate for another name: deferred (as without
 *             DANE: the daemon still adds MTA-STS where DANE does not apply)
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa, type KeyAndCert, type TestCa } from '../lab/ca.js';
import { startDnssecLab, type DnssecLab, type SignedZone } from '../lab/dnssec-lab.js';
import { startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { freePort, startSidecar, type Sidecar } from '../lab/sidecar.js';
import { startSmtpServer, type SmtpServer } from '../lab/smtp-server.js';
import { hostPostfix, labPostfix, startPostfix, type Mail, type Postfix, type PostfixInstall } from './postfix.js';

const POLICY_ADDRESS = '127.0.45.3';
const DELIVERY_TIMEOUT_MS = 45_000;

interface Case {
  /** The domain is `<label>.test`, its one MX `mx.<label>.test`. */
  label: string;
  /** TLSA `3 1 1` of the MX's own key, of another key, or none. */
  tlsa: 'match' | 'other' | null;
  /** The name in the MX's certificate (from the lab CA, which Postfix trusts). */
  certName: (mx: string) => string;
  /** The `mx:` of the enforce policy. */
  policyMx: (mx: string) => string;
  /** The daemon's reply, and what Postfix then does. */
  reply: string | RegExp;
  outcome: 'sent' | 'deferred';
}

const CASES: Case[] = [
  { label: 'danewins', tlsa: 'match', certName: () => 'not-the-mx.invalid', policyMx: () => 'mx.elsewhere.test', reply: 'OK dane-only', outcome: 'sent' },
  { label: 'danefail', tlsa: 'other', certName: (mx) => mx, policyMx: (mx) => mx, reply: 'OK dane-only', outcome: 'deferred' },
  { label: 'stsonly', tlsa: null, certName: (mx) => mx, policyMx: (mx) => mx, reply: /^OK secure match=mx\.stsonly\.test /, outcome: 'sent' },
  { label: 'stsbad', tlsa: null, certName: () => 'other-host.stsbad.test', policyMx: (mx) => mx, reply: /^OK secure match=mx\.stsbad\.test /, outcome: 'deferred' },
];

const mxOf = (c: Case) => `mx.${c.label}.test`;
const mxAddress = (i: number) => `127.0.27.${10 + i}`;

function spkiSha256(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}

function daneCases(install: PostfixInstall): void {
  describe(`DANE first with ${install.label}`, () => {
    let worldDir: string;
    let ca: TestCa;
    let lab: DnssecLab;
    let web: PolicyServer;
    const smtp: SmtpServer[] = [];
    let sidecar: Sidecar;
    let postfix: Postfix;
    let policyMap: string;
    const mails = new Map<string, Mail>();

    beforeAll(async () => {
      const dnsAddress = process.env.MTA_STS_E2E_DNS;
      if (!process.env.MTA_STS_E2E_NETNS || !dnsAddress) {
        throw new Error('test/e2e runs inside its own network namespace: use `bash scripts/e2e-postfix.sh` (npm test does)');
      }
      expect(readFileSync('/etc/resolv.conf', 'utf8')).toContain(`nameserver ${dnsAddress}`);
      worldDir = await mkdtemp(join(tmpdir(), 'mta-sts-e2e-dane-'));
      await chmod(worldDir, 0o755);
      ca = await createTestCa('mta-sts e2e DANE CA');
      web = await startPolicyServer({ address: POLICY_ADDRESS, ca });
      const zones: Record<string, SignedZone> = {};
      for (const [i, c] of CASES.entries()) {
        const mx = mxOf(c);
        const cert: KeyAndCert = await ca.issue({ dnsNames: [c.certName(mx)] });
        smtp.push(await startSmtpServer({ address: mxAddress(i), port: 25, cert, hostname: mx }));
        const records: SignedZone['records'] = [
          { name: '@', type: 'MX', value: `10 ${mx}.` },
          { name: `${mx}.`, type: 'A', value: mxAddress(i) },
          { name: '_mta-sts', type: 'TXT', value: `v=STSv1; id=${c.label}1;` },
          { name: 'mta-sts', type: 'A', value: POLICY_ADDRESS },
        ];
        if (c.tlsa !== null) {
          const hash = c.tlsa === 'match' ? spkiSha256(cert.certPem) : randomBytes(32).toString('hex');
          records.push({ name: `_25._tcp.${mx}.`, type: 'TLSA', value: `3 1 1 ${hash}` });
        }
        zones[`${c.label}.test`] = { signing: 'valid', records };
        web.setRoute(`mta-sts.${c.label}.test`, { body: `version: STSv1\nmode: enforce\nmx: ${c.policyMx(mx)}\nmax_age: 86400\n` });
      }
      lab = await startDnssecLab(zones, { resolverAddress: dnsAddress });

      const port = await freePort();
      policyMap = `socketmap:inet:127.0.0.1:${port}:postfix`;
      sidecar = await startSidecar(
        `
socketmap: { listen: ["tcp:127.0.0.1:${port}"] }
fetch: { ca_file: "$DIR/ca.pem", allow_private_addresses: true }
cache: { store: memory }
zones: { default: { tlsrpt: false }, nodane: { dane: "off" } }
`,
        { 'ca.pem': ca.certPem },
      );
      postfix = await startPostfix({
        dir: join(worldDir, 'postfix'),
        policyMap,
        caPem: ca.certPem,
        install,
        settings: { smtp_dns_support_level: 'dnssec', smtp_tls_security_level: 'dane' },
      });
      for (const c of CASES) {
        const mail = { from: 'sender@sender.e2e.invalid', to: `user@${c.label}.test`, subject: `DANE e2e ${c.label}`, messageId: `${c.label}.${process.pid}.${Date.now()}@sender.e2e.invalid` };
        mails.set(c.label, mail);
        await postfix.submit(mail);
      }
    }, 120_000);

    afterAll(async () => {
      // MTA_STS_E2E_LOG=FILE keeps Postfix's maillog, as delivery-cases.ts does: FILE.dane.<version>.
      const keep = process.env.MTA_STS_E2E_LOG;
      if (keep && postfix) await writeFile(`${keep}.dane.${install.version.join('.')}`, postfix.log()).catch((err: unknown) => console.error('e2e log copy:', err));
      await postfix?.stop();
      await sidecar?.stop();
      for (const s of smtp) await s.stop();
      await lab?.stop();
      await web?.stop();
      if (worldDir) await rm(worldDir, { recursive: true, force: true });
    });

    it('the daemon found a validating resolver', () => {
      expect(sidecar.output()).toMatch(/the resolver validates DNSSEC/);
    });

    it.each(CASES.map((c, i) => [c.label, c, i] as const))('%s', async (_label, c, i) => {
      const answer = await postfix.postmap(`${c.label}.test`, policyMap);
      if (typeof c.reply === 'string') expect(answer.stdout.trim()).toBe(c.reply.replace(/^OK /, ''));
      else expect(`OK ${answer.stdout.trim()}`).toMatch(c.reply);
      const mail = mails.get(c.label)!;
      const line = await postfix.waitForDelivery(mail.messageId, DELIVERY_TIMEOUT_MS);
      expect(line.status, line.line).toBe(c.outcome);
      const got = smtp[i]!.messages().filter((m) => m.data.includes(`Message-ID: <${mail.messageId}>`));
      if (c.outcome === 'sent') {
        expect(got).toHaveLength(1);
        expect(got[0]!.tls).toBe(true);
      } else {
        expect(got).toHaveLength(0);
      }
    });

    it('the control: without DANE first (zone dane: off) danewins would get an MTA-STS answer its MX fails', async () => {
      const answer = await postfix.postmap('danewins.test', policyMap.replace(/:postfix$/, ':nodane'));
      expect(answer.stdout.trim()).toBe('secure match=mx.elsewhere.test servername=hostname');
    });

    it('danewins went through DANE (Postfix logged a verified DANE connection), danefail failed it', () => {
      const log = postfix.log();
      expect(log).toMatch(new RegExp(`Verified TLS connection established to ${mxOf(CASES[0]!).replace(/\./g, '\\.')}`));
      const danefail = postfix.log().split('\n').filter((l) => l.includes(mxOf(CASES[1]!)));
      // Both Postfix 3.7 and 3.11 say exactly this when DANE-EE records match nothing (tls_verify.c).
      expect(danefail.join('\n')).toMatch(/server certificate verification failed for mx\.danefail\.test\[[\d.]+\]:25: num=65:no matching DANE TLSA records/);
    });
  });
}

daneCases(hostPostfix());
daneCases(labPostfix());
