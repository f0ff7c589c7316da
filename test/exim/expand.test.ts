/**
 * The contrib Exim configuration, as Debian's Exim 4.96 reads it (split and unsplit), against the running
 * daemon: the router condition and the transport's tcp:connect check expanded with `exim -be` for each
 * kind of domain and MX host, and addresses routed with `exim -bt`.
 *
 * `exim -be` has no $domain or $host, so the option text is taken from `exim -bP` (macros already
 * substituted) and the variables are filled in before expanding: the expansion itself is Exim's.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { assertEximLab, debianConfig, runExim, type EximConfig, type Scheme } from './exim-lab.js';
import { policyText, startWorld, ZONE, type World } from './world.js';

/** Where the lab MX host names point (nothing listens: these tests do not deliver). Not 127.0.0.1, which
 * Debian's config lists as a local interface, so Exim would refuse it as the local host. */
let MX_HOST: string;
let world: World;

beforeAll(async () => {
  assertEximLab();
  MX_HOST = await allocateLoopback();
  world = await startWorld(
    {
      enforce: { policy: policyText('enforce', `mx1.enforce.${ZONE}`, `*.relay.${ZONE}`), mx: [`mx1.enforce.${ZONE}`] },
      testing: { policy: policyText('testing', `mx.testing.${ZONE}`), mx: [`mx.testing.${ZONE}`] },
      none: { policy: policyText('none'), mx: [`mx.none.${ZONE}`] },
      plain: { mx: [`mx.plain.${ZONE}`] },
      // MX hosts that a policy's patterns match, and do not match (RFC 8461 §4.1).
      mixed: {
        policy: policyText('enforce', `mx1.enforce.${ZONE}`, `*.relay.${ZONE}`),
        mx: [`rogue.${ZONE}`, `a.b.relay.${ZONE}`, `relay.${ZONE}`, `A.Relay.${ZONE}`, `MX1.Enforce.${ZONE}`],
      },
      // The exact pattern, with the MX name in other case.
      upper: { policy: policyText('enforce', `mx1.enforce.${ZONE}`), mx: [`rogue.${ZONE}`, `MX1.Enforce.${ZONE}`] },
      unlisted: { policy: policyText('enforce', `mx.elsewhere.${ZONE}`), mx: [`rogue.${ZONE}`] },
    },
    Object.fromEntries(
      [
        `mx1.enforce.${ZONE}`,
        `mx.testing.${ZONE}`,
        `mx.none.${ZONE}`,
        `mx.plain.${ZONE}`,
        `rogue.${ZONE}`,
        `a.b.relay.${ZONE}`,
        `relay.${ZONE}`,
        `a.relay.${ZONE}`,
      ].map((h) => [h, MX_HOST]),
    ),
  );
}, 60_000);

afterAll(async () => {
  await world?.stop();
  if (MX_HOST) releaseLoopback(MX_HOST);
});

/** A stand-in for the daemon that counts connections and answers every request with `answer`. */
async function fakeDaemon(answer: string): Promise<{ socket: string; connections: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server: Server = createServer((s) => {
    count += 1;
    s.on('error', () => {});
    s.on('data', () => {});
    s.on('end', () => s.end(answer));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as { port: number };
  return {
    socket: `inet:127.0.0.1:${port}`,
    connections: () => count,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}

/** Nothing listens on port 9 of this test's own loopback address: connections are refused. */
const deadSocket = async (): Promise<string> => `inet:${MX_HOST}:9`;

describe.each<Scheme>(['split', 'unsplit'])('Debian %s configuration with contrib/exim', (scheme) => {
  let config: EximConfig;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `exim-expand-${scheme}-`));
    config = await debianConfig({ dir, scheme, macros: { MTA_STS_SOCKET: world.eximSocket, MTA_STS_TIMEOUT: '5s' } });
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const exim = (args: string[], input?: string) =>
    runExim(config, args, { nameserver: { address: world.address, dir }, ...(input === undefined ? {} : { input }) });

  /** An option of a router or transport as Exim parsed it, macros substituted. */
  async function option(kind: 'router' | 'transport', name: string, key: string, extra: string[] = []): Promise<string> {
    const r = await exim([...extra, '-bP', kind, name]);
    expect(r.code, r.stderr).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith(`${key} = `) || l === key || l === `no_${key}`);
    if (line === undefined) throw new Error(`${kind} ${name} has no ${key}:\n${r.stdout}`);
    return line.startsWith(`${key} = `) ? line.slice(key.length + 3) : line;
  }

  /** `exim -be` of `text` with Exim variables replaced by `vars`: the one result line. */
  async function expand(text: string, vars: Record<string, string>, extra: string[] = []): Promise<string> {
    let filled = text;
    for (const [name, value] of Object.entries(vars)) {
      filled = filled.replace(new RegExp(`\\$${name}(?![A-Za-z0-9_])`, 'g'), value);
    }
    // On stdin: Exim 4.96 refuses command-line arguments over 256 bytes. It answers each line after a
    // "> " prompt.
    const r = await exim([...extra, '-be'], `${filled}\n`);
    expect(r.code, r.stderr).toBe(0);
    const line = r.stdout.split('\n')[0] ?? '';
    expect(line.startsWith('> '), r.stdout).toBe(true);
    return line.slice(2);
  }

  describe('routers mta_sts_unanswered and mta_sts: conditions', () => {
    const enforces = (extra: string[] = []) => option('router', 'mta_sts', 'condition', extra);
    const defers = (extra: string[] = []) => option('router', 'mta_sts_unanswered', 'condition', extra);

    it.each<[string, string, string]>([
      ['enforce: routed to the MTA-STS transport', `enforce.${ZONE}`, 'true'],
      ['testing: declined, normal delivery', `testing.${ZONE}`, ''],
      ['mode none: declined', `none.${ZONE}`, ''],
      ['no policy published: declined', `plain.${ZONE}`, ''],
      ['domain in other case, absolute: the same policy', `ENFORCE.Mail.Test.`, 'true'],
    ])('%s', async (_rule, domain, want) => {
      expect(await expand(await enforces(), { domain })).toBe(want);
      // An answer with a mode: the deferring router declines.
      expect(await expand(await defers(), { domain })).toBe('no');
    });

    it('MTA_STS_ENFORCED_MODES = enforce : testing also routes testing domains', async () => {
      const extra = ['-DMTA_STS_ENFORCED_MODES=enforce : testing'];
      expect(await expand(await enforces(extra), { domain: `testing.${ZONE}` }, extra)).toBe('true');
      expect(await expand(await enforces(extra), { domain: `none.${ZONE}` }, extra)).toBe('');
    });

    it('daemon unreachable: both conditions fail to expand, so the address is deferred', async () => {
      const extra = [`-DMTA_STS_SOCKET=${await deadSocket()}`];
      for (const condition of [await defers(extra), await enforces(extra)]) {
        expect(await expand(condition, { domain: `plain.${ZONE}` }, extra)).toMatch(/^Failed: failed to connect/);
      }
    });

    it.each<[string, string]>([
      ['an error line', 'error="lookup failed"\n'],
      ['an empty answer (connection closed at once)', ''],
      ['an answer without mode', 'allowed=yes\n'],
    ])('%s: the deferring router takes the address', async (_rule, answer) => {
      const fake = await fakeDaemon(answer);
      try {
        const extra = [`-DMTA_STS_SOCKET=${fake.socket}`];
        expect(await expand(await defers(extra), { domain: `enforce.${ZONE}` }, extra)).toBe('yes');
      } finally {
        await fake.close();
      }
    });
  });

  describe('transport remote_smtp_mta_sts: TLS settings as Exim reads them', () => {
    it.each<[string, string]>([
      ['hosts_require_tls', '*'],
      ['tls_tempfail_tryclear', 'no_tls_tempfail_tryclear'],
      ['tls_verify_hosts', '*'],
      ['tls_verify_cert_hostnames', '*'],
      ['tls_verify_certificates', 'system'],
      ['tls_sni', '$host'],
      ['hosts_try_dane', '*'],
      ['hosts_avoid_tls', ''],
      // Host retry hints of its own: "T:host:ip/0.0.0.0" (transport file).
      ['interface', '<; 0.0.0.0 ; ::'],
      // No connect-time check: a host refused there would be skipped for every domain (router file).
      ['event_action', ''],
    ])('%s', async (key, want) => {
      expect(await option('transport', 'remote_smtp_mta_sts', key)).toBe(want);
    });
  });

  describe('the check contrib/exim/README.md gives for after every exim4-config upgrade', () => {
    it('router_list names the three MTA-STS routers, in order, before Debian\'s dnslookup', async () => {
      const r = await exim(['-bP', 'router_list']);
      expect(r.code, r.stderr).toBe(0);
      const names = r.stdout.split('\n').filter((n) => ['mta_sts_unanswered', 'mta_sts', 'mta_sts_no_allowed_mx', 'dnslookup'].includes(n));
      expect(names).toEqual(['mta_sts_unanswered', 'mta_sts', 'mta_sts_no_allowed_mx', 'dnslookup']);
    });
  });

  describe('exim -bt: routing', () => {
    it('enforce: router mta_sts, transport remote_smtp_mta_sts, the MX from DNS', async () => {
      const r = await exim(['-bt', `user@enforce.${ZONE}`]);
      expect(r.stdout).toContain('router = mta_sts, transport = remote_smtp_mta_sts');
      expect(r.stdout).toContain(`host mx1.enforce.${ZONE} [${MX_HOST}] MX=10`);
      expect(r.code).toBe(0);
    });

    /** The hosts `exim -bt` routes `address` to, lower-cased. */
    const routedHosts = (stdout: string) => [...stdout.matchAll(/^\s+host (\S+) \[/gm)].map((m) => m[1]!.toLowerCase());

    it.each<[string, string, string]>([
      // All these MX names have the same address: only their names tell them apart. (Exim then keeps the
      // first of the hosts left for each address, so one host shows.)
      ['unlisted, *. two labels deep, the bare *. domain: dropped; *. one label in other case: kept', `mixed.${ZONE}`, `a.relay.${ZONE}`],
      ['unlisted: dropped; the exact name in other case: kept', `upper.${ZONE}`, `mx1.enforce.${ZONE}`],
    ])('MX hosts the policy does not match are dropped by name (RFC 8461 §4.1): %s', async (_rule, domain, kept) => {
      const r = await exim(['-bt', `user@${domain}`]);
      expect(r.stdout).toContain('router = mta_sts, transport = remote_smtp_mta_sts');
      expect(routedHosts(r.stdout), r.stdout).toEqual([kept]);
      expect(r.code).toBe(0);
    });

    it('no MX host left: deferred by mta_sts_no_allowed_mx, with the policy in the reason', async () => {
      const r = await exim(['-bt', `user@unlisted.${ZONE}`]);
      expect(r.stdout).toContain(
        `user@unlisted.${ZONE} cannot be resolved at this time: MTA-STS: no MX host of unlisted.${ZONE} is allowed by its policy or by DANE, or none has an address: mode=enforce mx=mx.elsewhere.${ZONE} `,
      );
      expect(r.stdout).not.toContain('transport =');
      expect(r.code).not.toBe(0);
    });

    it.each<[string, (address: string) => string]>([
      ['a <; list', (address) => `<; 192.0.2.1 ; ${address}/32`],
      ['a colon list', (address) => `192.0.2.1 : ${address}`],
    ])('MTA_STS_IGNORE_TARGET_HOSTS as %s still drops addresses; Debian\'s dnslookup is not affected', async (_form, list) => {
      // Exim's -D keeps 23 characters of a macro name: this one goes where an administrator puts it.
      const own = await mkdtemp(join(tmpdir(), `exim-ignore-${scheme}-`));
      try {
        const ignoring = await debianConfig({
          dir: own,
          scheme,
          macros: { MTA_STS_SOCKET: world.eximSocket, MTA_STS_TIMEOUT: '5s', MTA_STS_IGNORE_TARGET_HOSTS: list(MX_HOST) },
        });
        const bt = (domain: string) => runExim(ignoring, ['-bt', `user@${domain}`], { nameserver: { address: world.address, dir: own } });
        expect((await bt(`enforce.${ZONE}`)).stdout).toContain(`user@enforce.${ZONE} cannot be resolved at this time: MTA-STS: no MX host`);
        expect((await bt(`plain.${ZONE}`)).stdout).toContain('router = dnslookup, transport = remote_smtp');
      } finally {
        await rm(own, { recursive: true, force: true });
      }
    });

    it.each(['testing', 'none', 'plain'])('%s: Debian\'s dnslookup router and remote_smtp', async (label) => {
      const r = await exim(['-bt', `user@${label}.${ZONE}`]);
      expect(r.stdout).toContain('router = dnslookup, transport = remote_smtp');
      expect(r.code).toBe(0);
    });

    it('daemon unreachable: every remote address is deferred, none routed around the daemon', async () => {
      const extra = [`-DMTA_STS_SOCKET=${await deadSocket()}`];
      for (const label of ['enforce', 'plain']) {
        const r = await exim([...extra, '-bt', `user@${label}.${ZONE}`]);
        // Exim's words for a router condition whose ${readsocket} could not connect.
        expect(r.stdout).toContain(`user@${label}.${ZONE} cannot be resolved at this time: condition check lookup defer`);
        expect(r.stdout).not.toContain('transport =');
      }
    });

    it('an error answer: deferred with the answer as the reason, after one question for both routers', async () => {
      const fake = await fakeDaemon('error="lookup failed"\n');
      try {
        const r = await exim([`-DMTA_STS_SOCKET=${fake.socket}`, '-bt', `user@enforce.${ZONE}`]);
        expect(r.stdout).toContain(
          `user@enforce.${ZONE} cannot be resolved at this time: mta-sts-sidecar has no answer for enforce.${ZONE}: error="lookup failed"`,
        );
        expect(fake.connections()).toBe(1);
      } finally {
        await fake.close();
      }
    });

    it('local domains never ask the daemon', async () => {
      const fake = await fakeDaemon('error=nope\n');
      try {
        const r = await exim([`-DMTA_STS_SOCKET=${fake.socket}`, '-bt', 'postmaster@localhost']);
        expect(r.stdout).not.toContain('mta_sts');
        expect(fake.connections()).toBe(0);
      } finally {
        await fake.close();
      }
    });
  });
});

describe('unsplit: the package\'s exim4.conf.template taken at an upgrade (contrib/exim/README.md)', () => {
  it('MTA-STS is gone without an error: the README\'s check shows it, and enforce domains go out as any other', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'exim-upgraded-'));
    try {
      const config = await debianConfig({ dir, scheme: 'unsplit', include: false, macros: { MTA_STS_SOCKET: world.eximSocket } });
      const exim = (args: string[]) => runExim(config, args, { nameserver: { address: world.address, dir } });
      const routers = await exim(['-bP', 'router_list']);
      expect(routers.code, routers.stderr).toBe(0);
      expect(routers.stdout.split('\n')).not.toContain('mta_sts');
      expect((await exim(['-bt', `user@enforce.${ZONE}`])).stdout).toContain('router = dnslookup, transport = remote_smtp');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
