/** The check runner's orchestration, with fakes of the src/net interfaces (the lab test covers the real ones). */
import { describe, expect, it } from 'vitest';
import { runCheck, type CheckDeps, type CheckOptions } from '../../src/check/run-check.js';
import type { CheckEvent, CheckReport } from '../../src/check/types.js';
import { StsError } from '../../src/errors.js';
import type { Address, MxAnswer, TxtAnswer } from '../../src/net/dns.js';
import type { StartTlsProbe } from '../../src/net/starttls-probe.js';
import { sleep, within } from '../lab/wait.js';

const D = 'example.com';
const NOW = Date.parse('2026-11-29T12:00:00Z');
const POLICY = 'version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: mx2.example.com\nmax_age: 604800\n';
const GOOD: StartTlsProbe = {
  kind: 'tls',
  protocol: 'TLSv1.3',
  cipher: 'TLS_AES_128_GCM_SHA256',
  authorized: true,
  authorizationError: null,
  certificate: {
    subject: 'CN=x',
    issuer: 'CN=ca',
    dnsNames: ['mx1.example.com', 'mx2.example.com'],
    validFrom: new Date(NOW - 86_400_000).toISOString(),
    validTo: new Date(NOW + 90 * 86_400_000).toISOString(),
    fingerprint256: 'AA',
  },
};

interface World {
  txt: Record<string, TxtAnswer | Error>;
  addresses: Record<string, string[] | Error>;
  mx: MxAnswer | Error;
  policy: string | StsError | (() => Promise<string>);
  probe?: (host: string, address: string) => Promise<StartTlsProbe>;
}

function world(over: Partial<World> = {}): World {
  return {
    txt: {
      [`_mta-sts.${D}`]: { kind: 'records', records: [['v=STSv1; id=1']] },
      [`_smtp._tls.${D}`]: { kind: 'records', records: [['v=TLSRPTv1; rua=mailto:r@example.com']] },
    },
    addresses: { [`mta-sts.${D}`]: ['192.0.1.1'], 'mx1.example.com': ['192.0.1.25'], 'mx2.example.com': ['192.0.1.26'] },
    mx: { kind: 'records', records: [{ exchange: 'mx1.example.com', priority: 10 }, { exchange: 'mx2.example.com', priority: 20 }] },
    policy: POLICY,
    ...over,
  };
}

function depsOf(w: World, calls: { fetch: number; probes: string[] }): CheckDeps {
  const answer = <T>(v: T | Error | undefined, name: string): Promise<T> =>
    v instanceof Error ? Promise.reject(v) : v === undefined ? Promise.reject(new StsError('dns', `${name}: no answer`)) : Promise.resolve(v);
  return {
    dns: {
      txt: async (name) => answer(w.txt[name] ?? { kind: 'nxdomain' }, name),
      addresses: async (name) => {
        const a = w.addresses[name];
        if (a instanceof Error) throw a;
        if (!a) throw new StsError('dns', `${name}: no A or AAAA record`);
        return a.map((address): Address => ({ address, family: 4 }));
      },
      mx: async () => answer(w.mx, 'mx'),
    },
    fetcher: {
      fetch: async () => {
        calls.fetch += 1;
        if (w.policy instanceof StsError) throw w.policy;
        return { text: typeof w.policy === 'function' ? await w.policy() : w.policy };
      },
    },
    probe: async (host, address) => {
      calls.probes.push(`${host} ${address}`);
      return w.probe ? w.probe(host, address) : GOOD;
    },
    now: () => NOW,
  };
}

const OPTIONS: CheckOptions = { allowPrivateAddresses: false, probeConcurrency: 8, maxAddressesPerMx: 4 };

async function run(w: World, options: Partial<CheckOptions> = {}) {
  const calls = { fetch: 0, probes: [] as string[] };
  const events: CheckEvent[] = [];
  const gen = runCheck(D, depsOf(w, calls), { ...OPTIONS, ...options });
  let next = await gen.next();
  while (!next.done) {
    events.push(next.value);
    next = await gen.next();
  }
  return { events, report: next.value as CheckReport, calls };
}

const ids = (r: CheckReport) => r.steps.map((s) => (s.mx ? `${s.id} ${s.mx}` : s.id));

describe('runCheck', () => {
  it('yields a progress message before each stage, and the steps in rollout order', async () => {
    const { events, report } = await run(world());
    expect(report.status).toBe('pass');
    expect(ids(report)).toEqual([
      'txt', 'tlsrpt', 'policy-host-dns', 'policy-host-tls', 'policy-host-http', 'policy', 'mx-records',
      'mx-covered mx1.example.com', 'mx-dns mx1.example.com', 'mx-starttls mx1.example.com', 'mx-certificate mx1.example.com', 'mx-tls-version mx1.example.com',
      'mx-covered mx2.example.com', 'mx-dns mx2.example.com', 'mx-starttls mx2.example.com', 'mx-certificate mx2.example.com', 'mx-tls-version mx2.example.com',
    ]);
    const flat = events.map((e) => (e.type === 'progress' ? `> ${e.message}` : e.step.id));
    expect(flat.slice(0, 4)).toEqual(['> looking up _mta-sts.example.com TXT', 'txt', '> looking up _smtp._tls.example.com TXT', 'tlsrpt']);
    // Each probe's progress line comes right before that probe's STARTTLS step.
    const probing = events.flatMap((e, i) => (e.type === 'progress' && e.message.startsWith('probing ') ? [i] : []));
    expect(probing.map((i) => events[i]!.type === 'progress' && events[i]!.message)).toEqual([
      'probing mx1.example.com (192.0.1.25) port 25: STARTTLS and certificate',
      'probing mx2.example.com (192.0.1.26) port 25: STARTTLS and certificate',
    ]);
    expect(probing.map((i) => events[i + 1])).toEqual([
      { type: 'step', step: expect.objectContaining({ id: 'mx-starttls', mx: 'mx1.example.com' }) },
      { type: 'step', step: expect.objectContaining({ id: 'mx-starttls', mx: 'mx2.example.com' }) },
    ]);
    // Every step is yielded exactly once, as it is judged.
    expect(events.filter((e) => e.type === 'step')).toHaveLength(report.steps.length);
  });

  it('reports MX hosts in MX order even when a later probe finishes first', async () => {
    let mx2Done!: () => void;
    const mx2Finished = new Promise<void>((r) => (mx2Done = r));
    const probe = async (host: string) => {
      if (host === 'mx1.example.com') await within(mx2Finished, 'the mx2 probe to finish');
      else mx2Done();
      return GOOD;
    };
    const { report } = await run(world({ probe }));
    const starttls = report.steps.filter((s) => s.id === 'mx-starttls').map((s) => s.mx);
    expect(starttls).toEqual(['mx1.example.com', 'mx2.example.com']);
  });

  it('starts the MX probes in the background, before the policy fetch has finished', async () => {
    let probed!: () => void;
    const probeStarted = new Promise<void>((r) => (probed = r));
    const policy = async () => {
      // Deadlocks (and times out) unless a probe is already running while the policy is fetched.
      await within(probeStarted, 'a probe to start during the policy fetch', 2_000);
      return POLICY;
    };
    const probe = async () => {
      probed();
      return GOOD;
    };
    const { report } = await run(world({ policy, probe }));
    expect(report.status).toBe('pass');
  });

  it('runs at most probeConcurrency probes at once', async () => {
    const hosts = ['a', 'b', 'c', 'd', 'e'].map((l) => `${l}.mx.example.com`);
    let running = 0;
    let peak = 0;
    const probe = async () => {
      running += 1;
      peak = Math.max(peak, running);
      // Behaviour under test, not synchronisation: a probe that takes a while, so that probes overlap.
      await sleep(20);
      running -= 1;
      return GOOD;
    };
    const w = world({
      probe,
      mx: { kind: 'records', records: hosts.map((exchange, i) => ({ exchange, priority: i })) },
      addresses: { [`mta-sts.${D}`]: ['192.0.1.1'], ...Object.fromEntries(hosts.map((h, i) => [h, [`192.0.1.${30 + i}`]])) },
    });
    const { calls } = await run(w, { probeConcurrency: 2 });
    expect(calls.probes).toHaveLength(5);
    expect(peak).toBe(2);
  });

  it('probes at most maxAddressesPerMx addresses of one MX', async () => {
    const many = ['192.0.1.40', '192.0.1.41', '192.0.1.42', '192.0.1.43', '192.0.1.44', '192.0.1.45'];
    const { calls } = await run(world({ addresses: { [`mta-sts.${D}`]: ['192.0.1.1'], 'mx1.example.com': many, 'mx2.example.com': ['192.0.1.26'] } }));
    expect(calls.probes.filter((p) => p.startsWith('mx1.'))).toEqual(many.slice(0, 4).map((a) => `mx1.example.com ${a}`));
  });

  it('never probes a non-public MX address unless allowed', async () => {
    const addresses = { [`mta-sts.${D}`]: ['192.0.1.1'], 'mx1.example.com': ['10.1.2.3', '192.0.1.25'], 'mx2.example.com': ['127.0.0.1'] };
    const strict = await run(world({ addresses }));
    expect(strict.calls.probes).toEqual(['mx1.example.com 192.0.1.25']);
    expect(strict.report.steps.find((s) => s.id === 'mx-dns' && s.mx === 'mx2.example.com')).toMatchObject({ status: 'fail' });
    const lab = await run(world({ addresses }), { allowPrivateAddresses: true });
    expect(lab.calls.probes.sort()).toEqual(['mx1.example.com 10.1.2.3', 'mx1.example.com 192.0.1.25', 'mx2.example.com 127.0.0.1']);
  });

  it('does not fetch when the policy host does not resolve, and still checks the MX hosts', async () => {
    const { report, calls } = await run(world({ addresses: { 'mx1.example.com': ['192.0.1.25'], 'mx2.example.com': ['192.0.1.26'] } }));
    expect(calls.fetch).toBe(0);
    expect(ids(report)).not.toContain('policy');
    expect(ids(report)).not.toContain('mx-covered mx1.example.com');
    expect(report.steps.filter((s) => s.id === 'mx-starttls')).toHaveLength(2);
  });

  it('a fetch failure is judged from its reason class', async () => {
    const { report } = await run(world({ policy: new StsError('content-type', 'https://mta-sts.example.com/.well-known/mta-sts.txt: Content-Type "text/html", want text/plain') }));
    expect(report.steps.find((s) => s.id === 'policy-host-http')).toMatchObject({ status: 'fail', details: { reason: 'content-type' } });
    expect(ids(report)).not.toContain('policy');
  });

  it('a body that is not UTF-8 is a policy failure', async () => {
    const { report } = await run(world({ policy: new StsError('parse', 'https://mta-sts.example.com/.well-known/mta-sts.txt: body is not valid UTF-8') }));
    expect(report.steps.find((s) => s.id === 'policy')).toMatchObject({ status: 'fail', reason: expect.stringMatching(/not valid UTF-8/) });
  });

  it('a policy accepted with deviations is warned about, and its MX hosts are checked against what it meant', async () => {
    const policy = 'version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com.\r\nmx: mx2.example.com\r\nmax_age: 604800\r\n\r\n';
    const { report } = await run(world({ policy }));
    expect(report.steps.find((s) => s.id === 'policy')).toMatchObject({
      status: 'warn',
      reason: expect.stringMatching(/line 3: mx value "mx1\.example\.com\." ends in a dot; line 6: empty line at the end/),
      fix: expect.stringMatching(/remove the empty line at the end: strict senders such as mox treat this policy as missing/),
      details: { deviations: [{ rule: 'mx-trailing-dot', line: 3 }, { rule: 'empty-line', line: 6 }] },
    });
    expect(report.steps.filter((s) => s.id === 'mx-covered').map((s) => s.status)).toEqual(['pass', 'pass']);
  });

  it('mode none has no mx patterns to match: no coverage steps', async () => {
    const { report } = await run(world({ policy: 'version: STSv1\nmode: none\nmax_age: 86400\n' }));
    expect(report.steps.filter((s) => s.id === 'mx-covered')).toHaveLength(0);
    expect(report.status).toBe('warn');
  });

  it('DNS failures are steps, not the end of the check', async () => {
    const servfail = new StsError('dns', 'ESERVFAIL');
    const { report } = await run(world({ txt: { [`_mta-sts.${D}`]: servfail }, mx: servfail }));
    expect(report.steps.find((s) => s.id === 'txt')).toMatchObject({ status: 'fail', reason: expect.stringMatching(/failed: ESERVFAIL/) });
    expect(report.steps.find((s) => s.id === 'mx-records')).toMatchObject({ status: 'fail' });
    expect(report.steps.find((s) => s.id === 'policy')).toMatchObject({ status: 'pass' });
  });

  it('a probe that throws (a bug) becomes a failed step, not an unhandled rejection', async () => {
    const probe = async (): Promise<StartTlsProbe> => {
      throw new Error('boom');
    };
    const { report } = await run(world({ probe }));
    expect(report.steps.find((s) => s.id === 'mx-starttls')).toMatchObject({ status: 'fail', reason: expect.stringMatching(/boom/) });
  });

  it('the advice comes from the whole run', async () => {
    const { report } = await run(world({ txt: { [`_smtp._tls.${D}`]: { kind: 'records', records: [['v=TLSRPTv1; rua=mailto:r@example.com']] } } }));
    expect(report.advice[0]).toMatch(/^The policy is served: publish _mta-sts\.example\.com\. TXT "v=STSv1; id=20261129120000"/);
  });
});
