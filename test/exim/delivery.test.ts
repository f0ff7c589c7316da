/**
 * Real deliveries by Debian's Exim 4.96 with contrib/exim (Debian split configuration) to lab SMTP servers
 * with STARTTLS, in a test world of its own: MX records from the lab NSD, policies from the lab HTTPS
 * host, answers from the running daemon. Each message is submitted with `exim -odf` (delivered in the
 * foreground), and the main log, the queue and the receiving servers show what happened.
 *
 * DANE: NSD does not sign zones, so `dns_trust_aa` makes Exim treat its authoritative answers as
 * DNSSEC-validated (Exim spec, dns_trust_aa), and a TLSA record then switches DANE on for one MX host.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa } from '../lab/ca.js';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startSmtpServer, type SmtpServer } from '../lab/smtp-server.js';
import { assertEximLab, debianConfig, mainlog, queued, retryKeys, runExim, type EximConfig, type Scheme } from './exim-lab.js';
import { policyText, startWorld, ZONE, type World } from './world.js';

const Z = ZONE;
/** Host names the well-configured MX's certificate (from the lab CA) is valid for. */
const GOOD_NAMES = [`mx1.enforce.${Z}`, `a.relay.${Z}`, `a.b.relay.${Z}`, `rogue.${Z}`, `mx.danefail.${Z}`, `mx.shared.${Z}`];

let world: World;
let addresses: string[] = [];
/** STARTTLS, certificate from the lab CA valid for GOOD_NAMES. */
let good: SmtpServer;
/** STARTTLS, certificate from the lab CA for another name. */
let wrongName: SmtpServer;
/** No STARTTLS. */
let cleartext: SmtpServer;
/** STARTTLS, self-signed certificate: only DANE can vouch for it. */
let dane: SmtpServer;
let config: EximConfig;
let dir: string;
let counter = 0;

const spkiSha256 = (certPem: string) =>
  createHash('sha256').update(createPublicKey(certPem).export({ type: 'spki', format: 'der' })).digest('hex');

beforeAll(async () => {
  assertEximLab();
  addresses = [await allocateLoopback(), await allocateLoopback(), await allocateLoopback(), await allocateLoopback()];
  const [goodAt, wrongAt, clearAt, daneAt] = addresses as [string, string, string, string];
  const otherCa = await createTestCa('not trusted by exim');
  const daneCert = await otherCa.issue({ dnsNames: [`dane-mx.${Z}`], selfSigned: true });

  world = await startWorld(
    {
      enforce: { policy: policyText('enforce', `mx1.enforce.${Z}`, `*.relay.${Z}`), mx: [`mx1.enforce.${Z}`] },
      wild: { policy: policyText('enforce', `*.relay.${Z}`), mx: [`a.relay.${Z}`] },
      deep: { policy: policyText('enforce', `*.relay.${Z}`), mx: [`a.b.relay.${Z}`] },
      unlisted: { policy: policyText('enforce', `mx.unlisted.${Z}`), mx: [`rogue.${Z}`] },
      badcert: { policy: policyText('enforce', `mx.badcert.${Z}`), mx: [`mx.badcert.${Z}`] },
      notls: { policy: policyText('enforce', `mx.notls.${Z}`), mx: [`mx.notls.${Z}`] },
      testing: { policy: policyText('testing', `mx.testing.${Z}`), mx: [`mx.testing.${Z}`] },
      plain: { mx: [`mx.plain.${Z}`] },
      // No policy, on the MX hosts of badcert and notls.
      'badcert-plain': { mx: [`mx.badcert.${Z}`] },
      'notls-plain': { mx: [`mx.notls.${Z}`] },
      dane: { policy: policyText('enforce', `mx.dane.${Z}`), mx: [`dane-mx.${Z}`] },
      danefail: { policy: policyText('enforce', `mx.danefail.${Z}`), mx: [`mx.danefail.${Z}`] },
      // One MX host for three domains, as at a large provider: no policy; a policy that lists the host;
      // a policy that does not (stale, wrong or hostile).
      'shared-plain': { mx: [`mx.shared.${Z}`] },
      'shared-listed': { policy: policyText('enforce', `mx.shared.${Z}`), mx: [`mx.shared.${Z}`] },
      'shared-unlisted': { policy: policyText('enforce', `mx.elsewhere.${Z}`), mx: [`mx.shared.${Z}`] },
      // Two MX hosts, the policy lists the second only: the first is never tried.
      mixed: { policy: policyText('enforce', `mx1.enforce.${Z}`), mx: [`rogue.${Z}`, `mx1.enforce.${Z}`] },
    },
    {
      ...Object.fromEntries(GOOD_NAMES.map((n) => [n, goodAt])),
      [`mx.badcert.${Z}`]: wrongAt,
      [`mx.notls.${Z}`]: clearAt,
      [`mx.testing.${Z}`]: clearAt,
      [`mx.plain.${Z}`]: clearAt,
      [`dane-mx.${Z}`]: daneAt,
    },
    [
      // RFC 7672 DANE-EE(3) SPKI(1) SHA-256(1).
      { name: `_25._tcp.dane-mx`, type: 'TLSA', value: `3 1 1 ${spkiSha256(daneCert.certPem)}` },
      // A TLSA record that matches nothing the host presents: DANE fails, whatever MTA-STS says.
      { name: `_25._tcp.mx.danefail`, type: 'TLSA', value: `3 1 1 ${'00'.repeat(32)}` },
    ],
  );
  good = await startSmtpServer({ address: goodAt, port: 25, cert: await world.ca.issue({ dnsNames: GOOD_NAMES }) });
  wrongName = await startSmtpServer({ address: wrongAt, port: 25, cert: await world.ca.issue({ dnsNames: ['wrong-name.invalid'] }) });
  cleartext = await startSmtpServer({ address: clearAt, port: 25, cert: null });
  dane = await startSmtpServer({ address: daneAt, port: 25, cert: daneCert });

  dir = await mkdtemp(join(tmpdir(), 'exim-delivery-'));
  config = await labConfig(dir, 'split');
}, 90_000);

/** Debian's configuration (`scheme`) with contrib/exim, pointed at this world, in `dir` (its own spool). */
async function labConfig(dir: string, scheme: Scheme): Promise<EximConfig> {
  const caFile = join(dir, 'lab-ca.pem');
  const made = await debianConfig({
    dir,
    scheme,
    macros: { MTA_STS_SOCKET: world.eximSocket, MTA_STS_TIMEOUT: '10s', MTA_STS_TLS_VERIFY_CERTIFICATES: caFile },
    mainOptions: [`dns_trust_aa = ${Z}`],
  });
  await writeFile(caFile, world.ca.certPem, { mode: 0o644 });
  return made;
}

afterAll(async () => {
  for (const s of [good, wrongName, cleartext, dane]) await s?.stop();
  await world?.stop();
  for (const a of addresses) releaseLoopback(a);
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Outcome {
  /** The main log lines about this recipient. */
  log: string[];
  /** The message id Exim gave it. */
  id: string;
  /** Whether it is still in the queue (deferred). */
  queued: boolean;
}

/** Submits one message to `rcpt` and lets Exim deliver it in the foreground. */
async function send(domain: string, extra: string[] = []): Promise<Outcome & { rcpt: string }> {
  const rcpt = `user${++counter}@${domain}`;
  const body = `From: sender@sender.lab.test\nTo: ${rcpt}\nSubject: MTA-STS lab ${counter}\n\nhello ${rcpt}\n`;
  const r = await runExim(config, [...extra, '-odf', '-oi', '-f', 'sender@sender.lab.test', rcpt], {
    nameserver: { address: world.address, dir },
    input: body,
  });
  expect(r.code, r.stderr).toBe(0);
  const lines = (await mainlog(config)).split('\n');
  // "DATE TIME ID => rcpt ..." (delivered) or "DATE TIME ID == rcpt ..." (deferred): one of them per try.
  const attempt = lines.find((l) => l.includes(` => ${rcpt} `) || l.includes(` == ${rcpt} `));
  expect(attempt, lines.slice(-20).join('\n')).toBeDefined();
  const id = attempt!.split(' ')[2]!;
  const log = lines.filter((l) => l.split(' ')[2] === id);
  return { rcpt, id, log, queued: (await queued(config)).includes(id) };
}

const delivered = (o: Outcome) => o.log.find((l) => / => /.test(l));
const deferred = (o: Outcome) => o.log.find((l) => / == /.test(l));

describe('enforce: delivery only over verified TLS to a listed MX', () => {
  it('a listed MX with a valid certificate: delivered over TLS, certificate verified, SNI sent', async () => {
    const before = good.messages().length;
    const o = await send(`enforce.${Z}`);
    expect(delivered(o), o.log.join('\n')).toMatch(
      new RegExp(`=> ${o.rcpt} R=mta_sts T=remote_smtp_mta_sts H=mx1\\.enforce\\.mail\\.test \\[${good.address}\\] X=TLS\\S+ CV=yes `),
    );
    expect(o.queued).toBe(false);
    const m = good.messages().slice(before).find((x) => x.to.includes(`<${o.rcpt}>`));
    expect(m).toMatchObject({ tls: true, sni: `mx1.enforce.${Z}` });
  });

  it('*.relay in the policy: an MX one label below is allowed', async () => {
    const o = await send(`wild.${Z}`);
    expect(delivered(o), o.log.join('\n')).toMatch(/R=mta_sts T=remote_smtp_mta_sts H=a\.relay\.mail\.test .* CV=yes /);
  });

  it.each<[string, string, string]>([
    ['*.relay in the policy: an MX two labels below is refused (RFC 8461 §4.1)', `deep.${Z}`, `*.relay.${Z}`],
    ['an MX the policy does not list is refused, though its certificate is valid', `unlisted.${Z}`, `mx.unlisted.${Z}`],
  ])('%s: deferred at routing, never connected to', async (_rule, domain, patterns) => {
    const sessions = good.sessions().length;
    const o = await send(domain);
    expect(delivered(o), o.log.join('\n')).toBeUndefined();
    // Exim's log says why: no host left for this domain, and the policy's patterns.
    expect(deferred(o), o.log.join('\n')).toContain(
      `R=mta_sts_no_allowed_mx defer (-32): MTA-STS: no MX host of ${domain} is allowed by its policy or by DANE, or none has an address: mode=enforce mx=${patterns} `,
    );
    expect(deferred(o)).not.toContain(' T=');
    expect(o.queued).toBe(true);
    expect(good.sessions().length).toBe(sessions);
  });

  it('two MX hosts on one address, the policy lists the second: the first is dropped by name, the second gets the mail', async () => {
    const o = await send(`mixed.${Z}`);
    expect(delivered(o), o.log.join('\n')).toMatch(/R=mta_sts T=remote_smtp_mta_sts H=mx1\.enforce\.mail\.test .* CV=yes /);
    expect(o.log.join('\n')).not.toContain(`rogue.${Z}`);
  });

  it('a listed MX whose certificate is for another name: deferred after the TLS handshake', async () => {
    const o = await send(`badcert.${Z}`);
    expect(delivered(o)).toBeUndefined();
    expect(o.log.join('\n')).toMatch(/certificate|TLS/i);
    expect(deferred(o), o.log.join('\n')).toContain('R=mta_sts T=remote_smtp_mta_sts');
    expect(o.queued).toBe(true);
    expect(wrongName.sessions().length).toBeGreaterThan(0);
    expect(wrongName.messages()).toEqual([]);
  });

  it('a listed MX without STARTTLS: deferred, never sent in cleartext', async () => {
    const before = cleartext.messages().length;
    const o = await send(`notls.${Z}`);
    expect(delivered(o)).toBeUndefined();
    expect(deferred(o), o.log.join('\n')).toContain('R=mta_sts T=remote_smtp_mta_sts');
    expect(o.queued).toBe(true);
    expect(cleartext.messages().slice(before).filter((m) => m.to.includes(`<${o.rcpt}>`))).toEqual([]);
  });
});

describe('a listed MX host that fails the TLS the policy requires: only the enforcing domain waits', () => {
  it.each<[string, string, () => SmtpServer]>([
    ['certificate for another name', 'badcert', () => wrongName],
    ['no STARTTLS', 'notls', () => cleartext],
  ])('%s: the policy-less domain on the same host is delivered right after', async (_rule, label, server) => {
    // A spool of its own: no retry hints from the other tests.
    const own = await mkdtemp(join(tmpdir(), `exim-tlsfail-${label}-`));
    try {
      const cfg = await labConfig(own, 'split');
      const submit = async (domain: string) => {
        const rcpt = `user${++counter}@${domain}`;
        const r = await runExim(cfg, ['-odf', '-oi', '-f', 'sender@sender.lab.test', rcpt], {
          nameserver: { address: world.address, dir: own },
          input: `To: ${rcpt}\n\nhi\n`,
        });
        expect(r.code, r.stderr).toBe(0);
        return rcpt;
      };
      const enforced = await submit(`${label}.${Z}`);
      const plain = await submit(`${label}-plain.${Z}`);
      const log = await mainlog(cfg);
      expect(log).toMatch(new RegExp(`== ${enforced} R=mta_sts T=remote_smtp_mta_sts defer `));
      expect(log, log).toMatch(new RegExp(`=> ${plain} R=dnslookup T=remote_smtp H=mx\\.${label}\\.mail\\.test `));
      expect(server().messages().filter((m) => m.to.includes(`<${plain}>`))).toHaveLength(1);
      // The enforcing transport's hint for the host is its own (the interface in the key).
      const host = `T:mx.${label}.${Z}:${server().address}`;
      expect(await retryKeys(cfg)).toEqual([`${host}/0.0.0.0`]);
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });
});

describe('testing and no policy: Debian\'s normal routing and transport', () => {
  it.each<[string, string]>([
    ['a testing policy is not enforced (RFC 8461 §5)', `testing.${Z}`],
    ['no policy published', `plain.${Z}`],
  ])('%s: delivered by dnslookup/remote_smtp, in cleartext to an MX without STARTTLS', async (_rule, domain) => {
    const o = await send(domain);
    expect(delivered(o), o.log.join('\n')).toMatch(/ R=dnslookup T=remote_smtp H=mx\.(testing|plain)\.mail\.test /);
    const m = cleartext.messages().find((x) => x.to.includes(`<${o.rcpt}>`));
    expect(m).toMatchObject({ tls: false });
  });
});

describe('DANE keeps precedence (RFC 8461 §2)', () => {
  it('an MX with a matching TLSA record is verified by DANE, though the policy does not list it', async () => {
    const o = await send(`dane.${Z}`);
    expect(delivered(o), o.log.join('\n')).toMatch(/R=mta_sts T=remote_smtp_mta_sts H=dane-mx\.mail\.test .* CV=dane /);
    expect(dane.messages().find((x) => x.to.includes(`<${o.rcpt}>`))).toMatchObject({ tls: true });
  });

  it('a failing DANE verification is not overridden by a policy that lists the MX and a valid certificate', async () => {
    const before = good.messages().length;
    const o = await send(`danefail.${Z}`);
    expect(delivered(o)).toBeUndefined();
    expect(o.log.join('\n')).toContain(`DANE attempt failed; TLS connection to mx.danefail.${Z}`);
    expect(deferred(o), o.log.join('\n')).toContain('R=mta_sts T=remote_smtp_mta_sts');
    expect(good.messages().slice(before)).toEqual([]);
  });
});

describe('the daemon cannot be reached or gives no answer', () => {
  it('every remote address is deferred at routing, none delivered around the daemon', async () => {
    // Port 9 of this test's own loopback address: nothing listens there.
    const dead = [`-DMTA_STS_SOCKET=inet:${good.address}:9`];
    for (const domain of [`enforce.${Z}`, `plain.${Z}`]) {
      const o = await send(domain, dead);
      expect(delivered(o)).toBeUndefined();
      expect(deferred(o), o.log.join('\n')).toMatch(/== \S+ R=mta_sts_unanswered defer .*condition check lookup defer/);
      expect(o.queued).toBe(true);
    }
  });

  it('once the daemon answers again: queue runs wait for the address\'s retry time, -qff delivers at once', async () => {
    // A configuration of its own: a queue of one message.
    const own = await mkdtemp(join(tmpdir(), 'exim-retry-'));
    try {
      const cfg = await labConfig(own, 'split');
      const exim = (args: string[], input?: string) =>
        runExim(cfg, args, { nameserver: { address: world.address, dir: own }, ...(input === undefined ? {} : { input }) });
      const rcpt = `user${++counter}@plain.${Z}`;
      const down = await exim([`-DMTA_STS_SOCKET=inet:${good.address}:9`, '-odf', '-oi', '-f', 'sender@sender.lab.test', rcpt], `To: ${rcpt}\n\nhi\n`);
      expect(down.code, down.stderr).toBe(0);
      const [id] = await queued(cfg);
      expect(id).toBeDefined();
      // A routing deferral leaves a retry hint for this address only.
      expect(await retryKeys(cfg)).toEqual([`R:${rcpt}`]);

      await exim(['-q']);
      expect(await queued(cfg)).toEqual([id]);
      expect(cleartext.messages().filter((m) => m.to.includes(`<${rcpt}>`))).toEqual([]);

      await exim(['-qff']);
      expect(await queued(cfg)).toEqual([]);
      expect(await mainlog(cfg)).toMatch(new RegExp(`${id} => ${rcpt} R=dnslookup T=remote_smtp `));
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });

  it('an error line from the daemon: deferred, with the answer in the log', async () => {
    const server = createServer((c) => {
      c.on('error', () => {});
      c.on('data', () => {});
      c.on('end', () => c.end('error="lookup failed"\n'));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const { port } = server.address() as { port: number };
      const o = await send(`enforce.${Z}`, [`-DMTA_STS_SOCKET=inet:127.0.0.1:${port}`]);
      expect(deferred(o), o.log.join('\n')).toContain(
        `R=mta_sts_unanswered defer (-1): mta-sts-sidecar has no answer for enforce.${Z}: error="lookup failed"`,
      );
      expect(o.queued).toBe(true);
    } finally {
      await new Promise<void>((ok) => server.close(() => ok()));
    }
  });
});

/**
 * A refusal caused by one domain's policy never affects another domain. Exim keeps retry hints per
 * host (`T:host:ip`, written when a delivery to the host defers, whatever the cause) and skips that
 * host for every message until the retry time ("retry time not reached for any host"). So an MX host
 * that one domain's policy does not list must be dropped at routing, for that domain only, and never
 * be connected to and refused by the transport.
 */
describe.each<Scheme>(['split', 'unsplit'])('one MX host shared by three domains, %s configuration', (scheme) => {
  let shared: EximConfig;
  let sharedDir: string;
  const domains = {
    plain: `shared-plain.${Z}`,
    listed: `shared-listed.${Z}`,
    unlisted: `shared-unlisted.${Z}`,
  } as const;
  type Who = keyof typeof domains;

  beforeAll(async () => {
    sharedDir = await mkdtemp(join(tmpdir(), `exim-shared-${scheme}-`));
    shared = await labConfig(sharedDir, scheme);
  });

  afterAll(async () => {
    if (sharedDir) await rm(sharedDir, { recursive: true, force: true });
  });

  const exim = (args: string[], input?: string) =>
    runExim(shared, args, { nameserver: { address: world.address, dir: sharedDir }, ...(input === undefined ? {} : { input }) });

  /** Queues one message to each domain (`-odq`), then runs the queue once (`-q`, retry times honoured). */
  async function round(): Promise<Record<Who, Outcome & { rcpt: string }>> {
    const sent: Array<[Who, string, string]> = [];
    for (const who of Object.keys(domains) as Who[]) {
      const rcpt = `user${++counter}@${domains[who]}`;
      const before = new Set(await queued(shared));
      const r = await exim(['-odq', '-oi', '-f', 'sender@sender.lab.test', rcpt], `To: ${rcpt}\nSubject: shared MX\n\nhello\n`);
      expect(r.code, r.stderr).toBe(0);
      const id = (await queued(shared)).find((x) => !before.has(x));
      expect(id, `no queued message for ${rcpt}`).toBeDefined();
      sent.push([who, rcpt, id!]);
    }
    const run = await exim(['-q']);
    expect(run.code, run.stderr).toBe(0);
    const lines = (await mainlog(shared)).split('\n');
    const waiting = await queued(shared);
    const out = {} as Record<Who, Outcome & { rcpt: string }>;
    for (const [who, rcpt, id] of sent) {
      out[who] = { rcpt, id, log: lines.filter((l) => l.split(' ')[2] === id), queued: waiting.includes(id) };
    }
    return out;
  }

  const receivedBy = (server: SmtpServer, rcpt: string) => server.messages().filter((m) => m.to.includes(`<${rcpt}>`));

  it('sent together, twice: the policy-less and the listing domain are delivered at once, the other is deferred at routing', async () => {
    for (const pass of [1, 2]) {
      const o = await round();
      const all = Object.values(o).flatMap((x) => x.log).join('\n');
      expect(delivered(o.plain), `pass ${pass}\n${all}`).toMatch(
        new RegExp(`=> ${o.plain.rcpt} R=dnslookup T=remote_smtp H=mx\\.shared\\.mail\\.test \\[${good.address}\\] `),
      );
      expect(delivered(o.listed), `pass ${pass}\n${all}`).toMatch(
        new RegExp(`=> ${o.listed.rcpt} R=mta_sts T=remote_smtp_mta_sts H=mx\\.shared\\.mail\\.test \\[${good.address}\\] X=TLS\\S+ CV=yes `),
      );
      expect(receivedBy(good, o.listed.rcpt)).toMatchObject([{ tls: true, sni: `mx.shared.${Z}` }]);
      expect([o.plain.queued, o.listed.queued]).toEqual([false, false]);

      // Deferred by a router, for this address only: no transport ran, no host was connected to.
      expect(delivered(o.unlisted)).toBeUndefined();
      expect(deferred(o.unlisted), `pass ${pass}\n${all}`).toMatch(
        new RegExp(`== ${o.unlisted.rcpt} R=mta_sts_no_allowed_mx defer \\(-32\\): MTA-STS: no MX host of ${domains.unlisted} `),
      );
      expect(deferred(o.unlisted)).not.toContain(' T=');
      expect(receivedBy(good, o.unlisted.rcpt)).toEqual([]);
      expect(o.unlisted.queued).toBe(true);
    }
    const log = await mainlog(shared);
    expect(log).not.toContain('retry time not reached for any host');
    const keys = await retryKeys(shared);
    // No hint against the shared host; the deferred addresses have routing hints of their own.
    expect(keys.filter((k) => k.startsWith('T:')), keys.join('\n')).toEqual([]);
    expect(keys.filter((k) => k.startsWith('R:') && k.endsWith(`@${domains.unlisted}`))).toHaveLength(2);
  });
});
