/**
 * Self-tests for the test lab (test/lab): real NSD, real HTTPS server with a
 * test CA, loopback-only addresses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Resolver } from 'node:dns/promises';
import { request, type RequestOptions } from 'node:https';
import type { LookupFunction } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type ConnectionOptions } from 'node:tls';
import { allocateLoopback, isLoopback, releaseLoopback } from '../lab/loopback.js';
import {
  quoteCharacterString,
  startBlackholeDns,
  startDnsServer,
  type DnsServer,
  type Zones,
} from '../lab/dns-server.js';
import { createTestCa, type TestCa } from '../lab/ca.js';
import { POLICY_PATH, startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { waitFor } from '../lab/wait.js';

const LONG = 'x'.repeat(255);
const TRICKY = 'quote " backslash \\ semi ; tab\t é';
// 2000 bytes of TXT: too big for a UDP answer, so the resolver retries over TCP.
const BIG = Array.from({ length: 10 }, (_, i) => String(i).repeat(200));

function zones(policyAddress: string, id = '1'): Zones {
  return {
    'example.test': {
      records: [
        { name: '_mta-sts', type: 'TXT', value: ['v=STSv1; ', `id=${id}`] },
        { name: 'mta-sts', type: 'A', value: policyAddress },
        { name: '@', type: 'MX', value: '10 mx1.example.test.' },
        { name: '@', type: 'MX', value: '20 mx2.example.test.' },
        { name: 'alias', type: 'CNAME', value: 'target.example.test.' },
        { name: 'target', type: 'TXT', value: ['target ', 'txt'] },
        { name: 'long', type: 'TXT', value: [LONG, 'tail'] },
        { name: 'tricky', type: 'TXT', value: TRICKY },
        { name: 'big', type: 'TXT', value: BIG },
        { name: 'dangling', type: 'CNAME', value: 'nothing-here.example.test.' },
      ],
    },
    'broken.test': { servfail: true },
  };
}

function errCode(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'resolved',
    (e: NodeJS.ErrnoException) => e.code ?? String(e),
  );
}

describe('loopback allocation', () => {
  it('hands out distinct, usable 127/8 addresses, never 127.0.x.x', async () => {
    const a = await allocateLoopback();
    const b = await allocateLoopback();
    try {
      for (const x of [a, b]) {
        expect(isLoopback(x)).toBe(true);
        expect(x.startsWith('127.0.')).toBe(false);
      }
      expect(a).not.toBe(b);
    } finally {
      releaseLoopback(a);
      releaseLoopback(b);
    }
  });
});

describe('lab DNS (NSD)', () => {
  let addr: string;
  let policyAddr: string;
  let dns: DnsServer;
  let r: Resolver;

  beforeAll(async () => {
    addr = await allocateLoopback();
    policyAddr = await allocateLoopback();
    dns = await startDnsServer({ address: addr, zones: zones(policyAddr) });
    r = new Resolver({ timeout: 2000, tries: 1 });
    r.setServers([addr]);
  });
  afterAll(async () => {
    await dns?.stop();
    releaseLoopback(addr);
    releaseLoopback(policyAddr);
  });

  it('answers TXT with the character-strings kept separate', async () => {
    expect(await r.resolveTxt('_mta-sts.example.test')).toEqual([['v=STSv1; ', 'id=1']]);
    expect(await r.resolveTxt('long.example.test')).toEqual([[LONG, 'tail']]);
    expect(await r.resolveTxt('big.example.test')).toEqual([BIG]);
    // node:dns hands TXT bytes back as latin1 strings: the wire bytes are the UTF-8 of TRICKY.
    const [[tricky]] = (await r.resolveTxt('tricky.example.test')) as [[string]];
    expect(Buffer.from(tricky, 'latin1').toString('utf8')).toBe(TRICKY);
  });

  it('refuses TXT strings over 255 bytes at zone-writing time', () => {
    expect(() => quoteCharacterString('y'.repeat(256))).toThrow(/255/);
    expect(quoteCharacterString('a"b\\c\n')).toBe('"a\\"b\\\\c\\010"');
  });

  it('answers A and MX', async () => {
    expect(await r.resolve4('mta-sts.example.test')).toEqual([policyAddr]);
    const mx = await r.resolveMx('example.test');
    expect(mx.sort((x, y) => x.priority - y.priority)).toEqual([
      { priority: 10, exchange: 'mx1.example.test' },
      { priority: 20, exchange: 'mx2.example.test' },
    ]);
  });

  it('chases CNAMEs: TXT of an alias is the target TXT', async () => {
    expect(await r.resolveCname('alias.example.test')).toEqual(['target.example.test']);
    expect(await r.resolveTxt('alias.example.test')).toEqual([['target ', 'txt']]);
  });

  it('distinguishes NXDOMAIN (ENOTFOUND) from NODATA (ENODATA)', async () => {
    expect(await errCode(r.resolveTxt('nope.example.test'))).toBe('ENOTFOUND');
    expect(await errCode(r.resolveTxt('mta-sts.example.test'))).toBe('ENODATA');
    expect(await errCode(r.resolveTxt('dangling.example.test'))).toBe('ENOTFOUND');
  });

  it('answers SERVFAIL (ESERVFAIL) for a servfail zone, REFUSED outside its zones', async () => {
    expect(await errCode(r.resolveTxt('_mta-sts.broken.test'))).toBe('ESERVFAIL');
    expect(await errCode(r.resolveTxt('broken.test'))).toBe('ESERVFAIL');
    expect(await errCode(r.resolveTxt('example.org'))).toBe('EREFUSED');
  });

  it('reload() replaces the zones on the same address', async () => {
    await dns.reload(zones(policyAddr, '2'));
    expect(await r.resolveTxt('_mta-sts.example.test')).toEqual([['v=STSv1; ', 'id=2']]);
    await dns.reload({ 'example.test': { records: [] } });
    expect(await errCode(r.resolveTxt('_mta-sts.example.test'))).toBe('ENOTFOUND');
    await dns.reload(zones(policyAddr));
    expect(await r.resolveTxt('_mta-sts.example.test')).toEqual([['v=STSv1; ', 'id=1']]);
  });

  it('refuses non-loopback addresses', async () => {
    await expect(startDnsServer({ address: '192.0.2.1', zones: {} })).rejects.toThrow(/non-loopback/);
  });
});

describe('blackhole DNS', () => {
  it('reads queries and never answers: ETIMEOUT', async () => {
    const addr = await allocateLoopback();
    const bh = await startBlackholeDns(addr);
    try {
      const r = new Resolver({ timeout: 200, tries: 1 });
      r.setServers([addr]);
      const t0 = Date.now();
      expect(await errCode(r.resolveTxt('_mta-sts.example.test'))).toBe('ETIMEOUT');
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(bh.queries()).toBeGreaterThanOrEqual(1);
    } finally {
      await bh.stop();
      releaseLoopback(addr);
    }
  });
});

/* ------------------------------------------------------------------ HTTPS */

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  tlsVersion: string | null;
  ms: number;
}

function fixedLookup(address: string): LookupFunction {
  return ((_host: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    if (opts?.all) cb(null, [{ address, family: 4 }]);
    else cb(null, address, 4);
  }) as unknown as LookupFunction;
}

function get(
  address: string,
  host: string,
  opts: Partial<RequestOptions & ConnectionOptions> & { path?: string; timeoutMs?: number } = {},
): Promise<Got> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: 443,
        path: opts.path ?? POLICY_PATH,
        method: 'GET',
        lookup: fixedLookup(address),
        agent: false,
        ...opts,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('aborted', () => reject(Object.assign(new Error('aborted'), { code: 'ABORTED' })));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            tlsVersion: (res.socket as import('node:tls').TLSSocket).getProtocol?.() ?? null,
            ms: Date.now() - t0,
          }),
        );
      },
    );
    req.setTimeout(opts.timeoutMs ?? 5000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', reject);
    req.end();
  });
}

describe('lab HTTPS policy server', () => {
  let addr: string;
  let ca: TestCa;
  let srv: PolicyServer;
  const POLICY = 'version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmax_age: 86400\r\n';

  beforeAll(async () => {
    addr = await allocateLoopback();
    ca = await createTestCa();
    srv = await startPolicyServer({ address: addr, ca });
  });
  afterAll(async () => {
    await srv?.stop();
    releaseLoopback(addr);
  });

  it('serves a route over a certificate the test CA vouches for', async () => {
    srv.setRoute('mta-sts.ok.test', { body: POLICY });
    const got = await get(addr, 'mta-sts.ok.test', { ca: [ca.certPem] });
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('text/plain');
    expect(got.body).toBe(POLICY);
    expect(got.tlsVersion).toMatch(/^TLSv1\.[23]$/);
  });

  it('without the test CA the certificate is not trusted', async () => {
    srv.setRoute('mta-sts.ok.test', { body: POLICY });
    await expect(get(addr, 'mta-sts.ok.test')).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  });

  it.each([
    ['wrong-name', 'ERR_TLS_CERT_ALTNAME_INVALID'],
    ['expired', 'CERT_HAS_EXPIRED'],
    ['not-yet-valid', 'CERT_NOT_YET_VALID'],
    ['self-signed', 'DEPTH_ZERO_SELF_SIGNED_CERT'],
    ['other-ca', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
  ] as const)('rejects a %s certificate (%s)', async (cert, code) => {
    const host = `mta-sts.${cert}.test`;
    srv.setRoute(host, { body: POLICY, cert });
    await expect(get(addr, host, { ca: [ca.certPem] })).rejects.toMatchObject({ code });
  });

  it('status, headers and body come from the route; unknown host and other paths are 404', async () => {
    srv.setRoute('mta-sts.html.test', {
      status: 503,
      headers: { 'content-type': 'text/html; charset=utf-8', 'x-lab': 'yes' },
      body: '<p>down</p>',
    });
    const got = await get(addr, 'mta-sts.html.test', { ca: [ca.certPem] });
    expect(got.status).toBe(503);
    expect(got.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(got.headers['x-lab']).toBe('yes');
    expect(got.body).toBe('<p>down</p>');

    expect((await get(addr, 'mta-sts.unknown.test', { ca: [ca.certPem] })).status).toBe(404);
    expect((await get(addr, 'mta-sts.html.test', { ca: [ca.certPem], path: '/other' })).status).toBe(404);
  });

  it('redirects with 301 + Location', async () => {
    srv.setRoute('mta-sts.redir.test', { redirect: 'https://mta-sts.ok.test/.well-known/mta-sts.txt' });
    const got = await get(addr, 'mta-sts.redir.test', { ca: [ca.certPem] });
    expect(got.status).toBe(301);
    expect(got.headers.location).toBe('https://mta-sts.ok.test/.well-known/mta-sts.txt');
  });

  it('counts requests per host', async () => {
    srv.setRoute('mta-sts.count.test', { body: POLICY });
    expect(srv.requests('mta-sts.count.test')).toBe(0);
    for (let i = 0; i < 3; i++) await get(addr, 'mta-sts.count.test', { ca: [ca.certPem] });
    expect(srv.requests('mta-sts.count.test')).toBe(3);
    expect(srv.requests('MTA-STS.Count.Test.')).toBe(3);
    const log = srv.requestLog('mta-sts.count.test');
    expect(log).toHaveLength(3);
    expect(log[0]).toMatchObject({ method: 'GET', path: POLICY_PATH, sni: 'mta-sts.count.test' });
    // failed handshakes never reach HTTP: not counted
    expect(srv.requests('mta-sts.expired.test')).toBe(0);
  });

  it('delays headers and trickles the body', async () => {
    srv.setRoute('mta-sts.slow.test', { body: POLICY, delayMs: 300 });
    const a = await get(addr, 'mta-sts.slow.test', { ca: [ca.certPem] });
    expect(a.body).toBe(POLICY);
    expect(a.ms).toBeGreaterThanOrEqual(280);

    srv.setRoute('mta-sts.slow.test', { body: 'abcdefghij', slowBody: { bytes: 2, intervalMs: 60 } });
    const b = await get(addr, 'mta-sts.slow.test', { ca: [ca.certPem] });
    expect(b.body).toBe('abcdefghij');
    expect(b.ms).toBeGreaterThanOrEqual(4 * 60 - 20);
  });

  it('resets the connection mid-body', async () => {
    srv.setRoute('mta-sts.reset.test', { body: POLICY, resetAfterBytes: 10 });
    const err = await get(addr, 'mta-sts.reset.test', { ca: [ca.certPem] }).then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err).not.toBeNull();
    expect(['ABORTED', 'ECONNRESET']).toContain(err?.code);
  });

  it('never-ending body hangs until the client gives up', async () => {
    srv.setRoute('mta-sts.hang.test', { body: POLICY, neverEnd: true });
    await expect(get(addr, 'mta-sts.hang.test', { ca: [ca.certPem], timeoutMs: 300 })).rejects.toMatchObject({
      code: 'TIMEOUT',
    });
  });

  it('can play a TLS 1.0/1.1-only host', async () => {
    srv.setRoute('mta-sts.legacy.test', { body: POLICY, tls: 'legacy' });
    // A default (TLS 1.2+) client refuses it...
    const err = await get(addr, 'mta-sts.legacy.test', { ca: [ca.certPem] }).then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    );
    expect(err?.code).toMatch(/^(EPROTO|ERR_SSL_.*)$/);
    expect(err?.message).toMatch(/protocol/i);
    // ...while a client that allows old TLS gets the policy over TLS 1.1.
    const got = await get(addr, 'mta-sts.legacy.test', {
      ca: [ca.certPem],
      minVersion: 'TLSv1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    expect(got.status).toBe(200);
    expect(got.tlsVersion).toBe('TLSv1.1');
    // Other hosts on the same address are unaffected.
    const ok = await get(addr, 'mta-sts.ok.test', { ca: [ca.certPem] });
    expect(ok.tlsVersion).toMatch(/^TLSv1\.[23]$/);
  });

  it('stop() closes hanging connections promptly', async () => {
    const a2 = await allocateLoopback();
    const s2 = await startPolicyServer({ address: a2, ca, routes: { 'mta-sts.hang.test': { neverEnd: true, body: 'x' } } });
    try {
      const pending = get(a2, 'mta-sts.hang.test', { ca: [ca.certPem], timeoutMs: 10_000 }).then(
        () => 'ended',
        (e: NodeJS.ErrnoException) => e.code ?? 'error',
      );
      await waitFor(() => s2.requests('mta-sts.hang.test') > 0, 'the request to arrive');
      expect(s2.requests('mta-sts.hang.test')).toBe(1);
      const t0 = Date.now();
      await s2.stop();
      expect(await pending).not.toBe('ended');
      expect(Date.now() - t0).toBeLessThan(2000);
    } finally {
      await s2.stop();
      releaseLoopback(a2);
    }
  });
});

describe('test CA with plain node:tls', () => {
  it('accepts a valid chain only when the issuing CA is trusted', async () => {
    const addr = await allocateLoopback();
    const ca1 = await createTestCa();
    const ca2 = await createTestCa('second CA');
    const leaf = await ca2.issue({ dnsNames: ['tls.example.test'] });
    const server = createTlsServer({ key: leaf.keyPem, cert: leaf.certPem }, (s) => s.end('hi'));
    await new Promise<void>((r) => server.listen(0, addr, () => r()));
    const port = (server.address() as { port: number }).port;
    const attempt = (trust: string) =>
      new Promise<string>((resolve) => {
        const s = tlsConnect({ host: addr, port, servername: 'tls.example.test', ca: [trust] }, () => {
          s.destroy();
          resolve('ok');
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
    try {
      expect(await attempt(ca2.certPem)).toBe('ok');
      expect(await attempt(ca1.certPem)).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      releaseLoopback(addr);
    }
  });
});

describe('a whole world: lab DNS points at the lab policy server', () => {
  it('resolves mta-sts.<domain> via NSD and fetches the policy over HTTPS', async () => {
    const dnsAddr = await allocateLoopback();
    const webAddr = await allocateLoopback();
    const ca = await createTestCa();
    const dns = await startDnsServer({ address: dnsAddr, zones: zones(webAddr) });
    const web = await startPolicyServer({ address: webAddr, ca });
    try {
      web.setRoute('mta-sts.example.test', { body: 'version: STSv1\n' });
      const r = new Resolver({ timeout: 2000, tries: 1 });
      r.setServers([dnsAddr]);
      const [ip] = await r.resolve4('mta-sts.example.test');
      expect(ip).toBe(webAddr);
      const got = await get(ip!, 'mta-sts.example.test', { ca: [ca.certPem] });
      expect(got.body).toBe('version: STSv1\n');
      expect(web.requests('mta-sts.example.test')).toBe(1);
    } finally {
      await web.stop();
      await dns.stop();
      releaseLoopback(dnsAddr);
      releaseLoopback(webAddr);
    }
  });
});
