/**
 * `mta-sts-sidecar check DOMAIN` as a domain owner runs it: the built binary against a lab world of
 * real servers on loopback (NSD, the HTTPS policy host, SMTP servers on port 25 with STARTTLS and good
 * and bad certificates). Nothing leaves the machine: every name is under check.test, served by the lab
 * NSD, and every address is a 127/8 address from allocateLoopback().
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { styleText } from 'node:util';
import { createTestCa, type TestCa } from '../lab/ca.js';
import { startDnsServer, type DnsRecord, type DnsServer } from '../lab/dns-server.js';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startPolicyServer, type PolicyRoute, type PolicyServer } from '../lab/policy-server.js';
import { assertBuilt, BIN, runCli, type CliRun as Run } from '../lab/sidecar.js';
import { startSmtpServer, type SmtpServer } from '../lab/smtp-server.js';
import type { CheckReport, Step } from '../../src/check/types.js';

/** `text` in Node's style `format`: what the CLI prints in colour. */
const styled = (format: Parameters<typeof styleText>[0], text: string) => styleText(format, text, { validateStream: false });

// CLI processes under a loaded machine: each test may wait for queued runs.
vi.setConfig({ testTimeout: 120_000 });


function cli(args: string[], env: Record<string, string> = {}) {
  // The colour switches come from the case, never from the environment the tests run in.
  const base = { ...process.env };
  delete base.FORCE_COLOR;
  delete base.NO_COLOR;
  return runCli(args, { env: { ...base, ...env }, timeoutMs: 60_000 });
}

const ZONE = 'check.test';
const DAY = 86_400_000;
const RUA = 'v=TLSRPTv1; rua=mailto:tlsrpt@check.test';
const policyText = (mode: string, mx: string[], maxAge = 604800) =>
  `version: STSv1\nmode: ${mode}\n${mx.map((m) => `mx: ${m}\n`).join('')}max_age: ${maxAge}\n`;

/** One domain of the world: its records under check.test and its policy host route. */
interface DomainSpec {
  txt?: string[];
  tlsrpt?: string | null;
  mx?: string[];
  policy?: string | null;
  route?: PolicyRoute;
}

const MX = {
  good: 'mx-good.check.test',
  extra: 'mx-extra.check.test',
  plain: 'mx-plain.check.test',
  expired: 'mx-expired.check.test',
  soon: 'mx-soon.check.test',
  wrongname: 'mx-wrongname.check.test',
  legacy: 'mx-legacy.check.test',
  cnonly: 'mx-cnonly.check.test',
} as const;

const DOMAINS: Record<string, DomainSpec> = {
  clean: { policy: policyText('enforce', [MX.good]) },
  testing: { policy: policyText('testing', [MX.good]) },
  notxt: { txt: [], policy: policyText('testing', [MX.good]) },
  twotxt: { txt: ['v=STSv1; id=1', 'v=STSv1; id=2'], policy: policyText('enforce', [MX.good]) },
  badrpt: { tlsrpt: 'v=TLSRPTv1; rua=tlsrpt@check.test', policy: policyText('enforce', [MX.good]) },
  norpt: { tlsrpt: null, policy: policyText('enforce', [MX.good]) },
  wrongcert: { policy: policyText('enforce', [MX.good]), route: { cert: 'wrong-name' } },
  cnonlyhost: { policy: policyText('enforce', [MX.good]), route: { cert: 'cn-only' } },
  html: { policy: policyText('enforce', [MX.good]), route: { headers: { 'content-type': 'text/html' } } },
  oldtls: { policy: policyText('enforce', [MX.good]), route: { tls: 'legacy' } },
  redirect: { policy: policyText('enforce', [MX.good]), route: { redirect: 'https://www.check.test/mta-sts.txt' } },
  big: { policy: policyText('enforce', [MX.good]) + `x-padding: ${'x'.repeat(1000)}\n`.repeat(70), route: {} },
  uncovered: { mx: [`10 ${MX.good}.`, `20 ${MX.extra}.`], policy: policyText('enforce', [MX.good]) },
  plain: { mx: [`10 ${MX.plain}.`], policy: policyText('testing', [MX.plain]) },
  expired: { mx: [`10 ${MX.expired}.`], policy: policyText('enforce', [MX.expired]) },
  soon: { mx: [`10 ${MX.soon}.`], policy: policyText('enforce', [MX.soon]) },
  wrongname: { mx: [`10 ${MX.wrongname}.`], policy: policyText('enforce', [MX.wrongname]) },
  legacy: { mx: [`10 ${MX.legacy}.`], policy: policyText('enforce', [MX.legacy]) },
  cnonly: { mx: [`10 ${MX.cnonly}.`], policy: policyText('enforce', [MX.cnonly]) },
  shortage: { policy: policyText('enforce', [MX.good], 3600) },
};

let ca: TestCa;
let main: string;
const extraAddresses: string[] = [];
let dns: DnsServer;
let https: PolicyServer;
const smtp: Record<keyof typeof MX | string, SmtpServer> = {};
let dir: string;
let config: string;
let strictConfig: string;
const runs = new Map<string, Promise<Run>>();

async function smtpServer(cert: Parameters<typeof startSmtpServer>[0]['cert'], hostname: string, address?: string, legacy = false): Promise<SmtpServer> {
  let at = address;
  if (!at) {
    at = await allocateLoopback();
    extraAddresses.push(at);
  }
  return startSmtpServer({ address: at, port: 25, cert, hostname, ...(legacy ? { maxTlsVersion: 'TLSv1.1' as const } : {}) });
}

function records(): DnsRecord[] {
  const out: DnsRecord[] = [];
  for (const [name, spec] of Object.entries(DOMAINS)) {
    for (const txt of spec.txt ?? ['v=STSv1; id=20261129']) out.push({ name: `_mta-sts.${name}`, type: 'TXT', value: txt });
    const rpt = spec.tlsrpt === undefined ? RUA : spec.tlsrpt;
    if (rpt !== null) out.push({ name: `_smtp._tls.${name}`, type: 'TXT', value: rpt });
    out.push({ name: `mta-sts.${name}`, type: 'A', value: main });
    for (const mx of spec.mx ?? [`10 ${MX.good}.`]) out.push({ name, type: 'MX', value: mx });
  }
  for (const [key, host] of Object.entries(MX)) {
    const server = smtp[key === 'extra' ? 'good' : key]!;
    out.push({ name: `${host}.`, type: 'A', value: server.address });
  }
  return out;
}

const PARALLEL_RUNS = 3;
let active = 0;
const queue: Array<() => void> = [];
/** At most PARALLEL_RUNS CLI processes at once, so the lab servers in this process keep up. */
async function limited<T>(task: () => Promise<T>): Promise<T> {
  if (active >= PARALLEL_RUNS) await new Promise<void>((r) => queue.push(r));
  else active += 1;
  try {
    return await task();
  } finally {
    const next = queue.shift();
    if (next) next();
    else active -= 1;
  }
}

/** The --json report of `check <name>.check.test`, run once and shared by the tests that read it. */
function check(name: string): Promise<Run> {
  let run = runs.get(name);
  if (!run) {
    run = limited(() => cli(['check', `${name}.${ZONE}`, '--json', '--config', config]));
    runs.set(name, run);
  }
  return run;
}

async function report(name: string): Promise<{ run: Run; report: CheckReport }> {
  const run = await check(name);
  return { run, report: JSON.parse(run.stdout) as CheckReport };
}

/** The steps that did not pass, as "status id [mx]"; on a mismatch the message carries their reasons. */
function expectProblems(r: CheckReport, want: string[]): void {
  const bad = r.steps.filter((s) => s.status !== 'pass');
  expect(bad.map((s) => [s.status, s.id, s.mx].filter(Boolean).join(' ')), JSON.stringify(bad.map((s) => s.reason))).toEqual(want);
}

const find = (r: CheckReport, id: Step['id'], mx?: string) => r.steps.filter((s) => s.id === id && (mx === undefined || s.mx === mx));
const one = (r: CheckReport, id: Step['id'], mx?: string): Step => {
  const found = find(r, id, mx);
  expect(found, `exactly one ${id} step${mx ? ` for ${mx}` : ''}`).toHaveLength(1);
  return found[0]!;
};

beforeAll(async () => {
  assertBuilt();
  ca = await createTestCa();
  main = await allocateLoopback();
  const now = Date.now();
  smtp.good = await smtpServer(await ca.issue({ dnsNames: [MX.good, MX.extra] }), MX.good, main);
  smtp.plain = await smtpServer(null, MX.plain);
  smtp.expired = await smtpServer(await ca.issue({ dnsNames: [MX.expired], notBefore: new Date(now - 90 * DAY), notAfter: new Date(now - 2 * DAY) }), MX.expired);
  smtp.soon = await smtpServer(await ca.issue({ dnsNames: [MX.soon], notAfter: new Date(now + 5 * DAY + 3_600_000) }), MX.soon);
  smtp.wrongname = await smtpServer(await ca.issue({ dnsNames: ['other.check.test'] }), MX.wrongname);
  smtp.legacy = await smtpServer(await ca.issue({ dnsNames: [MX.legacy] }), MX.legacy, undefined, true);
  // The MX name only in the subject CN: RFC 9525 no longer accepts CN-IDs.
  smtp.cnonly = await smtpServer(await ca.issue({ dnsNames: [MX.cnonly], subjectAltName: false }), MX.cnonly);

  https = await startPolicyServer({ address: main, ca });
  for (const [name, spec] of Object.entries(DOMAINS)) {
    if (spec.policy !== null && spec.policy !== undefined) https.setRoute(`mta-sts.${name}.${ZONE}`, { body: spec.policy, ...spec.route });
  }
  dns = await startDnsServer({ address: main, zones: { [ZONE]: { records: records() } } });

  dir = await mkdtemp(join(tmpdir(), 'check-'));
  await writeFile(join(dir, 'ca.pem'), ca.certPem);
  config = join(dir, 'config.yml');
  // Generous deadlines: a loaded CI machine must not turn a lab answer into a timeout step.
  await writeFile(config, `dns: { servers: ["${main}"] }\nfetch: { ca_file: "${join(dir, 'ca.pem')}", allow_private_addresses: true, timeout_ms: 30000 }\n`);
  strictConfig = join(dir, 'strict.yml');
  await writeFile(strictConfig, `dns: { servers: ["${main}"] }\nfetch: { ca_file: "${join(dir, 'ca.pem')}", timeout_ms: 30000 }\n`);
  // Start every domain's check, a few at a time; each test then awaits its own report.
  for (const name of Object.keys(DOMAINS)) void check(name);
});

afterAll(async () => {
  await dns?.stop();
  await https?.stop();
  for (const server of Object.values(smtp)) await server.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  if (main) releaseLoopback(main);
  for (const a of extraAddresses) releaseLoopback(a);
});

describe('check: a clean domain', () => {
  it('enforce with everything right passes every step, in rollout order, and exits 0', async () => {
    const { run, report: r } = await report('clean');
    expectProblems(r, []);
    expect(run.code).toBe(0);
    expect(r).toMatchObject({ domain: 'clean.check.test', status: 'pass', counts: { warn: 0, fail: 0 } });
    expect(r.steps.map((s) => s.id)).toEqual([
      'txt', 'tlsrpt', 'policy-host-dns', 'policy-host-tls', 'policy-host-http', 'policy',
      'mx-records', 'mx-covered', 'mx-dns', 'mx-starttls', 'mx-certificate', 'mx-tls-version',
    ]);
    expect(r.steps.every((s) => s.status === 'pass' && s.fix === undefined)).toBe(true);
    expect(one(r, 'txt').details).toMatchObject({ id: '20261129' });
    expect(one(r, 'tlsrpt').details).toMatchObject({ rua: ['mailto:tlsrpt@check.test'] });
    expect(one(r, 'policy').details).toMatchObject({ mode: 'enforce', max_age: 604800, mx: [MX.good] });
    expect(one(r, 'mx-starttls')).toMatchObject({ mx: MX.good, address: smtp.good!.address });
    expect(one(r, 'mx-certificate').details).toMatchObject({ dns_names: [MX.good, MX.extra] });
    expect(one(r, 'mx-tls-version').details).toMatchObject({ protocol: expect.stringMatching(/^TLSv1\.[23]$/) });
    expect(r.advice.join('\n')).toMatch(/Enforced and clean/);
    expect(r.advice.join('\n')).toMatch(/update the file first, then the TXT id/);
  });

  it('the MX probe upgraded with STARTTLS and sent the MX name as SNI', async () => {
    await check('clean');
    expect(smtp.good!.sessions().some((s) => s.tls && s.sni === MX.good)).toBe(true);
    // A probe delivers nothing.
    expect(smtp.good!.messages()).toHaveLength(0);
  });

  it('testing mode passes, and the advice is to move to enforce and bump the id', async () => {
    const { run, report: r } = await report('testing');
    expectProblems(r, []);
    expect(run.code).toBe(0);
    expect(r.status).toBe('pass');
    expect(one(r, 'policy').details).toMatchObject({ mode: 'testing' });
    expect(r.advice.join('\n')).toMatch(/switch to "mode: enforce".*then change the TXT id/);
  });
});

describe('check: DNS records', () => {
  it('a missing _mta-sts TXT record fails, while the served policy is still checked', async () => {
    const { run, report: r } = await report('notxt');
    expectProblems(r, ['fail txt']);
    expect(run.code).toBe(1);
    expect(one(r, 'txt')).toMatchObject({ status: 'fail', reason: 'no TXT record at _mta-sts.notxt.check.test', fix: expect.stringMatching(/^publish _mta-sts\.notxt\.check\.test\. TXT "v=STSv1; id=\d{14}"/) });
    expect(one(r, 'policy').status).toBe('pass');
    expect(r.advice[0]).toMatch(/The policy is served: publish _mta-sts\.notxt\.check\.test\. TXT/);
  });

  it('two v=STSv1 records fail: senders see no policy', async () => {
    const { run, report: r } = await report('twotxt');
    expectProblems(r, ['fail txt']);
    expect(run.code).toBe(1);
    expect(one(r, 'txt')).toMatchObject({ status: 'fail', reason: expect.stringMatching(/^2 v=STSv1 records/), fix: expect.stringMatching(/exactly one/) });
    expect(r.counts.fail).toBe(1);
  });

  it('a malformed TLS-RPT record fails', async () => {
    const { run, report: r } = await report('badrpt');
    expectProblems(r, ['fail tlsrpt']);
    expect(run.code).toBe(1);
    expect(one(r, 'tlsrpt')).toMatchObject({ status: 'fail', reason: expect.stringMatching(/not a URI with a scheme/) });
    expect(r.counts.fail).toBe(1);
  });

  it('no TLS-RPT record is a warning, and warnings alone exit 0', async () => {
    const { run, report: r } = await report('norpt');
    expectProblems(r, ['warn tlsrpt']);
    expect(run.code).toBe(0);
    expect(r.status).toBe('warn');
    expect(one(r, 'tlsrpt')).toMatchObject({ status: 'warn', fix: expect.stringMatching(/_smtp\._tls\.norpt\.check\.test\. TXT "v=TLSRPTv1; rua=mailto:/) });
  });
});

describe('check: the policy host and the policy', () => {
  it('a certificate for the wrong name fails the HTTPS step, and nothing after it is judged', async () => {
    const { run, report: r } = await report('wrongcert');
    expectProblems(r, ['fail policy-host-tls']);
    expect(run.code).toBe(1);
    expect(one(r, 'policy-host-tls')).toMatchObject({
      status: 'fail',
      reason: 'certificate not valid for mta-sts.wrongcert.check.test (ERR_TLS_CERT_ALTNAME_INVALID)',
      fix: expect.stringMatching(/subjectAltName includes mta-sts\.wrongcert\.check\.test/),
    });
    expect(find(r, 'policy-host-http')).toHaveLength(0);
    expect(find(r, 'policy')).toHaveLength(0);
    // Without a policy there are no mx patterns to match, but the MX hosts are still probed.
    expect(find(r, 'mx-covered')).toHaveLength(0);
    expect(one(r, 'mx-starttls').status).toBe('pass');
    expect(r.advice[0]).toMatch(/^Serve the policy at https:\/\/mta-sts\.wrongcert\.check\.test\/\.well-known\/mta-sts\.txt first/);
  });

  it('a certificate naming the policy host only in its subject CN fails the HTTPS step (RFC 9525: no CN-ID)', async () => {
    const { run, report: r } = await report('cnonlyhost');
    expectProblems(r, ['fail policy-host-tls']);
    expect(run.code).toBe(1);
    expect(one(r, 'policy-host-tls')).toMatchObject({
      status: 'fail',
      reason: 'certificate not valid for mta-sts.cnonlyhost.check.test (ERR_TLS_CERT_ALTNAME_INVALID)',
      fix: expect.stringMatching(/subjectAltName includes mta-sts\.cnonlyhost\.check\.test/),
      details: { reason: 'tls', message: expect.stringMatching(/ERR_TLS_CERT_ALTNAME_INVALID/) },
    });
    expect(find(r, 'policy')).toHaveLength(0);
  });

  it('a policy served as text/html fails the response step', async () => {
    const { run, report: r } = await report('html');
    expectProblems(r, ['fail policy-host-http']);
    expect(run.code).toBe(1);
    expect(one(r, 'policy-host-tls').status).toBe('pass');
    expect(one(r, 'policy-host-http')).toMatchObject({ status: 'fail', reason: expect.stringMatching(/Content-Type "text\/html"/), details: { reason: 'content-type' } });
  });

  it.each<[string, string, RegExp, RegExp]>([
    ['TLS 1.0/1.1 only', 'oldtls', /^no TLS 1\.2 or newer \(ERR_SSL_/, /enable TLS 1\.2 and 1\.3/],
  ])('a policy host with %s fails the HTTPS step', async (_case, name, reason, fix) => {
    const { run, report: r } = await report(name);
    expectProblems(r, ['fail policy-host-tls']);
    expect(run.code).toBe(1);
    expect(one(r, 'policy-host-tls')).toMatchObject({ reason: expect.stringMatching(reason), fix: expect.stringMatching(fix) });
  });

  it.each<[string, string, RegExp, RegExp]>([
    ['a redirect', 'redirect', /^HTTP 301 \(redirect to https:\/\/www\.check\.test\/mta-sts\.txt\)$/, /senders do not follow redirects/],
    ['a body over 64 KiB', 'big', /exceeds 65536 bytes/, /under 65536 bytes/],
  ])('a policy host answering with %s fails the response step', async (_case, name, reason, fix) => {
    const { run, report: r } = await report(name);
    expectProblems(r, ['fail policy-host-http']);
    expect(run.code).toBe(1);
    expect(one(r, 'policy-host-http')).toMatchObject({ reason: expect.stringMatching(reason), fix: expect.stringMatching(fix) });
  });

  it('enforce with max_age under a day is a warning (exit 0)', async () => {
    const { run, report: r } = await report('shortage');
    expectProblems(r, ['warn policy']);
    expect(run.code).toBe(0);
    expect(r.status).toBe('warn');
    expect(one(r, 'policy')).toMatchObject({ status: 'warn', reason: expect.stringMatching(/max_age 3600 s \(1 h\).*under a day/), fix: expect.stringMatching(/604800/) });
  });
});

describe('check: every MX', () => {
  it('an MX that no policy pattern covers fails, the covered one passes, both are probed', async () => {
    const { run, report: r } = await report('uncovered');
    expectProblems(r, [`fail mx-covered ${MX.extra}`]);
    expect(run.code).toBe(1);
    expect(one(r, 'mx-records').reason).toBe(`10 ${MX.good}, 20 ${MX.extra}`);
    expect(one(r, 'mx-covered', MX.good)).toMatchObject({ status: 'pass', reason: `matches mx: ${MX.good}` });
    expect(one(r, 'mx-covered', MX.extra)).toMatchObject({ status: 'fail', fix: expect.stringMatching(`add "mx: ${MX.extra}"`) });
    expect(one(r, 'mx-certificate', MX.extra).status).toBe('pass');
    expect(r.counts.fail).toBe(1);
  });

  it('an MX without STARTTLS fails, with no certificate step', async () => {
    const { run, report: r } = await report('plain');
    expectProblems(r, [`fail mx-starttls ${MX.plain}`]);
    expect(run.code).toBe(1);
    expect(one(r, 'mx-starttls', MX.plain)).toMatchObject({ status: 'fail', reason: 'STARTTLS is not offered in the EHLO reply', details: { extensions: expect.arrayContaining(['PIPELINING']) } });
    expect(find(r, 'mx-certificate')).toHaveLength(0);
    expect(r.advice.join('\n')).toMatch(/Fix the failures above before switching to enforce/);
  });

  it.each<[string, 'fail' | 'warn', RegExp, number]>([
    ['expired', 'fail', /^expired on \d{4}-\d\d-\d\d$/, 1],
    ['soon', 'warn', /^expires in 5 day\(s\), on \d{4}-\d\d-\d\d$/, 0],
    ['wrongname', 'fail', /^not valid for mx-wrongname\.check\.test \(names: other\.check\.test\)$/, 1],
    ['cnonly', 'fail', /^no DNS names in subjectAltName$/, 1],
  ])('an MX certificate that is %s: %s', async (name, status, reason, code) => {
    const { run, report: r } = await report(name);
    const mx = MX[name as keyof typeof MX];
    expectProblems(r, [`${status} mx-certificate ${mx}`]);
    expect(run.code).toBe(code);
    expect(one(r, 'mx-starttls', mx).status).toBe('pass');
    expect(one(r, 'mx-certificate', mx)).toMatchObject({ status, reason: expect.stringMatching(reason), fix: expect.any(String) });
  });

  it('an MX that speaks only TLS 1.0/1.1 fails the TLS version step', async () => {
    const { run, report: r } = await report('legacy');
    expectProblems(r, [`fail mx-tls-version ${MX.legacy}`]);
    expect(run.code).toBe(1);
    expect(one(r, 'mx-certificate', MX.legacy).status).toBe('pass');
    expect(one(r, 'mx-tls-version', MX.legacy)).toMatchObject({ status: 'fail', reason: expect.stringMatching(/^negotiated TLSv1(\.1)?: .*RFC 8996/) });
  });
});

describe('check: addresses', () => {
  it('without fetch.allow_private_addresses, loopback policy and MX hosts are refused, and never probed', async () => {
    await Promise.all(runs.values());
    const before = smtp.good!.sessions().length;
    const fetches = https.requests(`mta-sts.clean.${ZONE}`);
    const run = await cli(['check', `clean.${ZONE}`, '--json', '--config', strictConfig]);
    expect(run.code).toBe(1);
    const r = JSON.parse(run.stdout) as CheckReport;
    expect(one(r, 'policy-host-dns')).toMatchObject({ status: 'fail', reason: expect.stringMatching(/only to non-public addresses/) });
    expect(one(r, 'mx-dns', MX.good)).toMatchObject({ status: 'fail', details: { refused: [smtp.good!.address] } });
    expect(find(r, 'mx-starttls')).toHaveLength(0);
    expect(smtp.good!.sessions().length).toBe(before);
    expect(https.requests(`mta-sts.clean.${ZONE}`)).toBe(fetches);
  });
});

describe('check: the terminal output', () => {
  it('prints every step with its status as it goes, progress on stderr, and the result', async () => {
    const run = await cli(['check', `plain.${ZONE}`, '--config', config]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^MTA-STS check of plain\.check\.test$/m);
    for (const title of ['_mta-sts TXT record', 'TLS-RPT record', 'policy host DNS', 'policy host HTTPS', 'policy host response', 'policy file', 'MX records']) {
      expect(run.stdout).toMatch(new RegExp(`^PASS  ${title.replace('.', '\\.')}: `, 'm'));
    }
    expect(run.stdout).toMatch(new RegExp(`^FAIL  MX STARTTLS ${MX.plain} \\(${smtp.plain!.address.replaceAll('.', '\\.')}\\): STARTTLS is not offered`, 'm'));
    expect(run.stdout).toMatch(/^ {6}fix: offer STARTTLS on port 25/m);
    expect(run.stdout).toMatch(/^Next steps:$/m);
    expect(run.stdout).toMatch(/^Result: FAIL \(\d+ passed, 0 warning\(s\), 1 failed\)$/m);
    // Progress lines, one per stage, on stderr (not a terminal here).
    expect(run.stderr).toMatch(/^\.\.\. looking up _mta-sts\.plain\.check\.test TXT$/m);
    expect(run.stderr).toMatch(/^\.\.\. fetching https:\/\/mta-sts\.plain\.check\.test\/\.well-known\/mta-sts\.txt$/m);
    expect(run.stderr).toMatch(new RegExp(`^\\.\\.\\. probing ${MX.plain} \\(${smtp.plain!.address.replaceAll('.', '\\.')}\\) port 25`, 'm'));
    // No colour when stdout is not a terminal.
    expect(run.stdout).not.toContain('\u001b[');
  });

  it('on a terminal: colour, and one progress line rewritten in place; NO_COLOR and FORCE_COLOR=0 turn colour off', async () => {
    // util-linux script(1) gives the CLI a real pseudo-terminal for stdout and stderr.
    const onTty = (env: Record<string, string>) =>
      new Promise<string>((resolve) => {
        // A colour terminal, whatever the environment the tests run in (CI, TERM, a colour switch).
        const base: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color' };
        for (const k of ['FORCE_COLOR', 'NO_COLOR', 'NODE_DISABLE_COLORS', 'CI', 'TMUX', 'COLORTERM', 'TERM_PROGRAM']) delete base[k];
        const command = `${process.execPath} ${BIN} check clean.${ZONE} --config ${config}`;
        execFile('script', ['-qec', command, '/dev/null'], { timeout: 60_000, env: { ...base, ...env } }, (_err, stdout) => resolve(stdout));
      });
    const coloured = await onTty({});
    expect(coloured).toContain(`${styled(['bold', 'green'], 'PASS')}  ${styled('bold', '_mta-sts TXT record')}`);
    // Progress is written without a newline, then erased (cursor to column 1, erase to the end of the
    // line: readline's cursorTo and clearLine) before the next output.
    expect(coloured).toMatch(/\.\.\. probing mx-good\.check\.test \([0-9.]+\) port 25: STARTTLS and certificate\u001b\[1G\u001b\[0K/);
    expect(coloured).not.toMatch(/\.\.\. probing [^\u001b]*\r?\n/);
    const plain = await onTty({ NO_COLOR: '1' });
    expect(plain).toMatch(/(^|\u001b\[0K)PASS  _mta-sts TXT record: /m);
    expect(plain).not.toContain(styled(['bold', 'green'], 'PASS'));
    const forcedOff = await onTty({ FORCE_COLOR: '0' });
    expect(forcedOff).toMatch(/(^|\u001b\[0K)PASS  _mta-sts TXT record: /m);
    expect(forcedOff).not.toContain(styled(['bold', 'green'], 'PASS'));
  });

  it('FORCE_COLOR colours the statuses, even on a pipe', async () => {
    const run = await cli(['check', `soon.${ZONE}`, '--config', config], { FORCE_COLOR: '1' });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(styled(['bold', 'green'], 'PASS'));
    expect(run.stdout).toContain(styled(['bold', 'yellow'], 'WARN'));
  });

  it('--json keeps stdout to one JSON document; progress still goes to stderr', async () => {
    const run = await check('clean');
    expect(() => JSON.parse(run.stdout)).not.toThrow();
    expect(run.stderr).toMatch(/^\.\.\. probing mx-good\.check\.test/m);
  });
});

describe('check: usage errors exit 2', () => {
  it.each<[string, string[], RegExp]>([
    ['an invalid domain', ['check', 'not a domain'], /invalid domain "not a domain": white space/],
    ['an address literal', ['check', '[192.0.2.1]'], /invalid domain "\[192\.0\.2\.1\]": MTA-STS does not apply/],
    ['a missing domain', ['check'], /missing required argument 'domain'/],
    ['an unknown option', ['check', 'clean.check.test', '--bogus'], /unknown option '--bogus'/],
    ['a bad --smtp-timeout', ['check', 'clean.check.test', '--smtp-timeout', 'soon'], /whole number of milliseconds/],
    ['a missing config file', ['check', 'clean.check.test', '--config', '/nonexistent/config.yml'], /cannot read config file \/nonexistent\/config\.yml: ENOENT/],
  ])('%s', async (_case, args, message) => {
    const run = await cli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stdout).toBe('');
  });
});
