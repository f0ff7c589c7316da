/** The command line as an operator uses it: the built binary, real lab servers, exit codes and output. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startDnsServer, type DnsServer } from '../lab/dns-server.js';
import { startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { assertBuilt, runCli } from '../lab/sidecar.js';

const cli = (...args: string[]) => runCli(args);

const POLICY = 'version: STSv1\nmode: enforce\nmx: mx1.cli.test\nmx: *.pool.cli.test\nmax_age: 604800\n';
let address: string;
let dns: DnsServer;
let https: PolicyServer;
let dir: string;
let config: string;

beforeAll(async () => {
  assertBuilt();
  address = await allocateLoopback();
  https = await startPolicyServer({ address });
  https.setRoute('mta-sts.good.cli.test', { body: POLICY });
  https.setRoute('mta-sts.html.cli.test', { body: POLICY, headers: { 'content-type': 'text/html' } });
  dns = await startDnsServer({
    address,
    zones: {
      'cli.test': {
        records: [
          { name: '_mta-sts.good', type: 'TXT', value: ['v=STSv1; id=20261129'] },
          { name: 'mta-sts.good', type: 'A', value: address },
          { name: '_mta-sts.html', type: 'TXT', value: ['v=STSv1; id=1'] },
          { name: 'mta-sts.html', type: 'A', value: address },
        ],
      },
    },
  });
  dir = await mkdtemp(join(tmpdir(), 'cli-'));
  await writeFile(join(dir, 'ca.pem'), https.ca.certPem);
  config = join(dir, 'config.yml');
  await writeFile(config, `dns: { servers: ["${address}"] }\nfetch: { ca_file: "${join(dir, 'ca.pem')}", allow_private_addresses: true }\n`);
});

afterAll(async () => {
  await dns?.stop();
  await https?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  if (address) releaseLoopback(address);
});

describe('mta-sts-sidecar --version', () => {
  it("prints package.json's version, the one source the Debian build checks its changelog against", async () => {
    const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const run = await cli('--version');
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(version);
  });
});

describe('mta-sts-sidecar query', () => {
  it('prints the policy and the exact Postfix reply', async () => {
    const r = await cli('query', 'good.cli.test', '--config', config);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^mode: +enforce$/m);
    expect(r.stdout).toMatch(/^txt id: +20261129$/m);
    expect(r.stdout).toMatch(/^mx: +mx1\.cli\.test, \*\.pool\.cli\.test$/m);
    expect(r.stdout).toContain('postfix: "OK secure match=mx1.cli.test:.pool.cli.test servername=hostname"');
    // tlsrpt: auto, decided by this machine's Postfix (Debian 12's 3.7, which the test command installs).
    const version = execFileSync('postconf', ['-d', '-h', 'mail_version'], { encoding: 'utf8' }).trim();
    expect(r.stdout).toMatch(new RegExp(`^tlsrpt: +tlsrpt: auto, local Postfix ${version.replace(/\./g, '\\.')} `, 'm'));
    expect(r.stdout).toMatch(/^mx rule: +.*smtp_dns_reply_filter = socketmap:inet:127\.0\.0\.1:8461:mx-filter/m);
  });

  it('--json gives the same facts to scripts', async () => {
    const r = await cli('query', 'GOOD.cli.test.', '--json', '--config', config);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({
      domain: 'good.cli.test',
      result: 'policy',
      id: '20261129',
      policy: { mode: 'enforce', maxAge: 604800, mx: ['mx1.cli.test', '*.pool.cli.test'] },
      postfix: 'OK secure match=mx1.cli.test:.pool.cli.test servername=hostname',
    });
  });

  it('names the reason class when the fetch fails, and exits 1', async () => {
    const r = await cli('query', 'html.cli.test', '--json', '--config', config);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ result: 'none', why: 'failed', error: { reason: 'content-type' }, postfix: 'NOTFOUND ' });
  });

  it('a domain without a policy is a clean absence (exit 0)', async () => {
    const r = await cli('query', 'nothing.cli.test', '--config', config);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/no policy: no _mta-sts TXT record/);
    expect(r.stdout).toContain('postfix: "NOTFOUND "');
  });

  it('a [host]:port next hop is reported as not applicable', async () => {
    const r = await cli('query', '[mx1.cli.test]:25', '--config', config);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/does not apply/);
  });
});

describe('errors are one line and exit non-zero', () => {
  it.each<[string, string, RegExp]>([
    ['unknown key', 'fetch:\n  timeout: 5\n', /^mta-sts-sidecar: .*bad\.yml: fetch\.timeout: unknown key/],
    ['wrong type', 'cache:\n  store: 5\n', /^mta-sts-sidecar: .*bad\.yml: cache\.store: must be one of/],
    ['broken YAML', 'dns: [\n', /^mta-sts-sidecar: .*bad\.yml line \d+: invalid YAML/],
    ['unreadable CA file', 'fetch:\n  ca_file: /nonexistent/ca.pem\n', /^mta-sts-sidecar: fetch\.ca_file: cannot read \/nonexistent\/ca\.pem: ENOENT/],
  ])('%s', async (_case, yaml, want) => {
    const file = join(dir, 'bad.yml');
    await writeFile(file, yaml);
    const r = await cli('query', 'good.cli.test', '--config', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(want);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a CA file whose certificate does not parse stops serve at start, naming the key (the TLS context comes later)', async () => {
    const ca = join(dir, 'broken-ca.pem');
    await writeFile(ca, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
    const file = join(dir, 'broken-ca.yml');
    await writeFile(file, `fetch:\n  ca_file: ${ca}\n`);
    const r = await cli('serve', '--config', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/fetch\.ca_file: .*broken-ca\.pem: certificate 1 of 1 cannot be read/);
  });

  it('a missing config file', async () => {
    const r = await cli('serve', '--config', join(dir, 'missing.yml'));
    expect(r).toMatchObject({ code: 1, stderr: expect.stringMatching(/cannot read config file .*missing\.yml: ENOENT/) });
  });

  it('an invalid domain argument', async () => {
    const r = await cli('query', 'not a domain', '--config', config);
    expect(r).toMatchObject({ code: 1, stderr: expect.stringMatching(/^mta-sts-sidecar: invalid domain "not a domain"/) });
  });
});
