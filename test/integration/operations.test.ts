/**
 * Operating the built daemon the way an operator does: /metrics, /healthz and /readyz over HTTP, log
 * lines, SIGHUP reloads, SIGTERM, systemd readiness notification and socket activation. Policies come
 * from a real DNS server (NSD) and a real HTTPS policy server on a loopback address of this test's own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { join } from 'node:path';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startDnsServer, type DnsRecord, type DnsServer } from '../lab/dns-server.js';
import { startPolicyServer, type PolicyServer } from '../lab/policy-server.js';
import { freePort, startSidecar, type Sidecar, type SidecarOptions } from '../lab/sidecar.js';
import { connectSocketmap, type SocketmapClient } from '../lab/socketmap-client.js';
import { startNotifySocket } from '../lab/notify-socket.js';
import { waitFor } from '../lab/wait.js';

const ZONE = 'ops.test';
const WAIT_MS = 15_000;
const policy = (mode: string, mx: string) => `version: STSv1\nmode: ${mode}\nmx: ${mx}\nmax_age: 86400\n`;
const SECURE_ENFORCE = `OK secure match=mx.enforce.${ZONE} servername=hostname`;
const SECURE_TESTING = `OK secure match=mx.testing.${ZONE} servername=hostname`;

let address: string;
let dns: DnsServer;
let https: PolicyServer;
const sidecars: Sidecar[] = [];
const clients: SocketmapClient[] = [];

beforeAll(async () => {
  address = await allocateLoopback();
  https = await startPolicyServer({ address });
  const records: DnsRecord[] = [];
  const publish = (label: string, route: Parameters<PolicyServer['setRoute']>[1]) => {
    records.push({ name: `_mta-sts.${label}`, type: 'TXT', value: [`v=STSv1; id=${label}1`] });
    records.push({ name: `mta-sts.${label}`, type: 'A', value: address });
    https.setRoute(`mta-sts.${label}.${ZONE}`, route);
  };
  publish('enforce', { body: policy('enforce', `mx.enforce.${ZONE}`) });
  publish('testing', { body: policy('testing', `mx.testing.${ZONE}`) });
  publish('html', { body: policy('enforce', `mx.html.${ZONE}`), headers: { 'content-type': 'text/html' } });
  publish('slow', { body: policy('enforce', `mx.slow.${ZONE}`), delayMs: 1_500 });
  publish('stuck', { body: policy('enforce', `mx.stuck.${ZONE}`), delayMs: 2_500 });
  dns = await startDnsServer({ address, zones: { [ZONE]: { records } } });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of sidecars) await s.stop();
  await dns?.stop();
  await https?.stop();
  if (address) releaseLoopback(address);
});

/** The daemon with the lab's DNS and CA, and the caller's sections on top. */
function configYaml(socketmapPort: number, httpPort: number, extra = ''): string {
  return `
socketmap:
  listen: ["tcp:127.0.0.1:${socketmapPort}"]
  shutdown_grace_ms: 3000
http: { listen: ["tcp:127.0.0.1:${httpPort}"] }
dns: { servers: ["${address}"], timeout_ms: 2000, tries: 1 }
fetch: { ca_file: "$DIR/ca.pem", allow_private_addresses: true, timeout_ms: 4000 }
cache: { store: sqlite, path: "$DIR/cache.db" }
${extra}`;
}

interface Started {
  sidecar: Sidecar;
  socketmapPort: number;
  httpPort: number;
}

async function start(extra = '', options: SidecarOptions = {}, ports?: { socketmap: number; http: number }): Promise<Started> {
  const socketmapPort = ports?.socketmap ?? (await freePort());
  const httpPort = ports?.http ?? (await freePort());
  const sidecar = await startSidecar(configYaml(socketmapPort, httpPort, extra), { 'ca.pem': https.ca.certPem }, options);
  sidecars.push(sidecar);
  return { sidecar, socketmapPort, httpPort };
}

async function client(target: { port: number } | { path: string }): Promise<SocketmapClient> {
  const c = await connectSocketmap(target);
  clients.push(c);
  return c;
}

async function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; type: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') ?? '' };
}

/** The value of one series on /metrics (0 when absent). */
async function metric(port: number, series: string): Promise<number> {
  const { body } = await get(port, '/metrics');
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

function logLines(sidecar: Sidecar): LogLine[] {
  return sidecar
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

/** Waits (bounded) until `cond` holds: the daemon is a separate process, so its effects are polled. */
const until = (cond: () => boolean | Promise<boolean>, what: string, ms = WAIT_MS): Promise<void> => waitFor(cond, what, ms);

/** Sends SIGHUP and waits for the daemon to log the outcome of that reload (the n-th since start). */
async function reload(sidecar: Sidecar, yaml: string): Promise<LogLine> {
  const done = () => logLines(sidecar).filter((l) => /^config reload(ed|ed: nothing changed| failed)/.test(l.msg));
  const before = done().length;
  await sidecar.writeConfig(yaml);
  sidecar.process.kill('SIGHUP');
  await until(() => done().length > before, 'the reload to finish');
  return done()[before]!;
}

function exited(sidecar: Sidecar): Promise<number | null> {
  const child = sidecar.process;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('/healthz, /readyz and /metrics', () => {
  let d: Started;
  beforeAll(async () => {
    d = await start('zones: { strict: { strict_testing: true } }\n');
  });

  it('/healthz answers while the process runs; /readyz lists its checks', async () => {
    expect(await get(d.httpPort, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    // Then facts that do not decide readiness: whether the resolver validates DNSSEC (issue 16).
    expect(await get(d.httpPort, '/readyz')).toMatchObject({ status: 200, body: expect.stringMatching(/^socketmap: ok\nstore: ok\ndnssec: (validating|not validating): .+\n$/) });
  });

  it('other paths are 404, other methods 405, and HEAD has no body', async () => {
    expect((await get(d.httpPort, '/')).status).toBe(404);
    expect((await get(d.httpPort, '/metrics', 'POST')).status).toBe(405);
    expect(await get(d.httpPort, '/healthz', 'HEAD')).toMatchObject({ status: 200, body: '' });
  });

  it('/metrics counts socketmap answers by class and zone, fetches by outcome, cache tiers and policies', async () => {
    const q = (answer: string, zone: string) => `mta_sts_sidecar_queries_total{protocol="socketmap",answer="${answer}",zone="${zone}"}`;
    const series = [
      q('secure', 'default'),
      q('secure', 'strict'),
      q('notfound', 'default'),
      q('perm', 'default'),
      'mta_sts_sidecar_fetches_total{outcome="ok"}',
      'mta_sts_sidecar_fetches_total{outcome="content-type"}',
      'mta_sts_sidecar_cache_hits_total{tier="memory"}',
      'mta_sts_sidecar_cache_misses_total{tier="store"}',
      'mta_sts_sidecar_answer_duration_seconds_count{protocol="socketmap"}',
    ];
    const before = await Promise.all(series.map((s) => metric(d.httpPort, s)));
    const c = await client({ port: d.socketmapPort });
    expect(await c.query('postfix', `enforce.${ZONE}`)).toBe(SECURE_ENFORCE);
    expect(await c.query('postfix', `enforce.${ZONE}`)).toBe(SECURE_ENFORCE);
    expect(await c.query('strict', `testing.${ZONE}`)).toBe(SECURE_TESTING);
    expect(await c.query('postfix', `html.${ZONE}`)).toBe('NOTFOUND ');
    expect(await c.query('anything', `nothing.${ZONE}`)).toBe('NOTFOUND ');
    // A key that cannot carry a policy is NOTFOUND, never PERM (Postfix defers on PERM; issue 13).
    expect(await c.query('postfix', 'bad_key!.example')).toBe('NOTFOUND ');
    const after = await Promise.all(series.map((s) => metric(d.httpPort, s)));
    expect(after.map((v, i) => v - before[i]!)).toEqual([
      2, // enforce twice; `postfix` is no configured zone, so it counts as default
      1, // testing, enforced in the strict zone
      3, // the html failure, the domain without a record, and the key that is no domain
      0, // no PERM for any key
      2, // enforce and testing fetched
      1, // html refused: text/html
      1, // the second enforce lookup
      4, // enforce, testing, html, nothing: not in the store either
      6,
    ]);
    expect(await metric(d.httpPort, 'mta_sts_sidecar_policies{mode="enforce"}')).toBe(1);
    expect(await metric(d.httpPort, 'mta_sts_sidecar_policies{mode="testing"}')).toBe(1);
    expect(await metric(d.httpPort, 'mta_sts_sidecar_open_connections{protocol="socketmap"}')).toBe(1);
    const { body, type } = await get(d.httpPort, '/metrics');
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(body).not.toMatch(/zone="anything"/);
  });

  it('logs one line per policy event, with domain, id and reason, and none per cached answer', async () => {
    const c = await client({ port: d.socketmapPort });
    expect(await c.query('postfix', `enforce.${ZONE}`)).toBe(SECURE_ENFORCE);
    const lines = logLines(d.sidecar);
    expect(lines.filter((l) => l.msg === 'policy learned' && l.domain === `enforce.${ZONE}`)).toEqual([
      expect.objectContaining({ level: 30, id: 'enforce1', mode: 'enforce' }),
    ]);
    expect(lines.filter((l) => l.msg === 'policy discovery failed' && l.domain === `html.${ZONE}`)).toEqual([
      expect.objectContaining({ level: 40, id: 'html1', reason: 'content-type' }),
    ]);
    const infoBefore = logLines(d.sidecar).filter((l) => l.level >= 30).length;
    for (let i = 0; i < 20; i++) expect(await c.query('postfix', `enforce.${ZONE}`)).toBe(SECURE_ENFORCE);
    await get(d.httpPort, '/metrics');
    expect(logLines(d.sidecar).filter((l) => l.level >= 30).length).toBe(infoBefore);
  });
});

describe('SIGHUP reloads the config', () => {
  let d: Started;
  let yaml: (extra: string, socketmapListen?: string) => string;
  beforeAll(async () => {
    d = await start();
    yaml = (extra, socketmapListen = `"tcp:127.0.0.1:${d.socketmapPort}"`) =>
      configYaml(d.socketmapPort, d.httpPort, extra).replace(`["tcp:127.0.0.1:${d.socketmapPort}"]`, `[${socketmapListen}]`);
  });

  it('new zones apply at once, to connections already open; a new listener answers', async () => {
    const c = await client({ port: d.socketmapPort });
    expect(await c.query('postfix', `testing.${ZONE}`)).toBe('NOTFOUND ');
    const line = await reload(d.sidecar, yaml('zones: { default: { strict_testing: true } }\n', `"tcp:127.0.0.1:${d.socketmapPort}", "unix:$DIR/added.sock"`));
    expect(line).toMatchObject({ msg: 'config reloaded', resolverRebuilt: false, storeReopened: false });
    expect(line.changed).toEqual(expect.arrayContaining(['zones', 'socketmap.listen']));
    expect(await c.query('postfix', `testing.${ZONE}`)).toBe(SECURE_TESTING);
    const viaUnix = await client({ path: join(d.sidecar.dir, 'added.sock') });
    expect(await viaUnix.query('postfix', `testing.${ZONE}`)).toBe(SECURE_TESTING);
    expect(await metric(d.httpPort, 'mta_sts_sidecar_config_reloads_total{result="ok"}')).toBe(1);
  });

  it('an invalid config is logged and the running one stays', async () => {
    const c = await client({ port: d.socketmapPort });
    const line = await reload(d.sidecar, 'socketmap: { listen: 5 }\n');
    expect(line).toMatchObject({ level: 50, msg: 'config reload failed; the running config stays', err: expect.stringMatching(/socketmap\.listen\[0\]: must be tcp:HOST:PORT/) });
    expect(await c.query('postfix', `testing.${ZONE}`)).toBe(SECURE_TESTING);
    expect(await metric(d.httpPort, 'mta_sts_sidecar_config_reloads_total{result="failed"}')).toBe(1);
  });

  it('a listener that cannot be bound fails the whole reload: zones stay too', async () => {
    const blocker = net.createServer();
    await new Promise<void>((ok) => blocker.listen(0, '127.0.0.1', ok));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      const line = await reload(d.sidecar, yaml('zones: { default: { strict_testing: false } }\n', `"tcp:127.0.0.1:${d.socketmapPort}", "tcp:127.0.0.1:${taken}"`));
      expect(line).toMatchObject({ msg: 'config reload failed; the running config stays', err: expect.stringContaining(`listen tcp:127.0.0.1:${taken}`) });
    } finally {
      blocker.close();
    }
    const c = await client({ port: d.socketmapPort });
    expect(await c.query('postfix', `testing.${ZONE}`)).toBe(SECURE_TESTING);
  });

  it('resolver settings: a new resolver that still answers from the cache, without refetching', async () => {
    const c = await client({ port: d.socketmapPort });
    expect(await c.query('postfix', `enforce.${ZONE}`)).toBe(SECURE_ENFORCE);
    const fetches = https.requests(`mta-sts.enforce.${ZONE}`);
    const line = await reload(
      d.sidecar,
      yaml('zones: { default: { strict_testing: true } }\nresolver: { answer_deadline_ms: 4000 }\n', `"tcp:127.0.0.1:${d.socketmapPort}", "unix:$DIR/added.sock"`),
    );
    expect(line, JSON.stringify(line)).toMatchObject({ msg: 'config reloaded', changed: ['resolver.answer_deadline_ms'], resolverRebuilt: true, storeReopened: false });
    expect(await c.query('postfix', `enforce.${ZONE}`)).toBe(SECURE_ENFORCE);
    expect(https.requests(`mta-sts.enforce.${ZONE}`)).toBe(fetches);
  });

  it('the log level changes without a restart', async () => {
    const debugLines = () => logLines(d.sidecar).filter((l) => l.msg === 'peer closed in the middle of a request').length;
    const midFrame = async () => {
      const s = net.connect(d.socketmapPort, '127.0.0.1');
      await new Promise<void>((ok) => s.once('connect', ok));
      s.end('20:postfix exa');
      await new Promise<void>((ok) => s.once('close', () => ok()));
    };
    await midFrame();
    expect(debugLines()).toBe(0);
    await reload(
      d.sidecar,
      yaml('zones: { default: { strict_testing: true } }\nresolver: { answer_deadline_ms: 4000 }\nlog: { level: debug }\n', `"tcp:127.0.0.1:${d.socketmapPort}", "unix:$DIR/added.sock"`),
    );
    await midFrame();
    await until(() => debugLines() === 1, 'a debug line');
  });

  it('a removed listener stops: its connections end after their replies, new ones are refused', async () => {
    const onRemoved = await client({ port: d.socketmapPort });
    expect(await onRemoved.query('postfix', `enforce.${ZONE}`)).toBe(SECURE_ENFORCE);
    const line = await reload(d.sidecar, yaml('zones: { default: { strict_testing: true } }\nresolver: { answer_deadline_ms: 4000 }\n', '"unix:$DIR/added.sock"'));
    expect(line.listeners).toEqual({ socketmap: { opened: [], closed: [`tcp:127.0.0.1:${d.socketmapPort}`] } });
    await expect(onRemoved.query('postfix', `enforce.${ZONE}`)).rejects.toThrow(/connection closed|ECONNRESET|EPIPE/);
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(d.socketmapPort, '127.0.0.1');
      s.once('connect', () => resolve('connected'));
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    const viaUnix = await client({ path: join(d.sidecar.dir, 'added.sock') });
    expect(await viaUnix.query('postfix', `enforce.${ZONE}`)).toBe(SECURE_ENFORCE);
  });

  it('cache settings: a new store is opened, and says so', async () => {
    const line = await reload(
      d.sidecar,
      yaml('zones: { default: { strict_testing: true } }\nresolver: { answer_deadline_ms: 4000 }\n', '"unix:$DIR/added.sock"').replace('$DIR/cache.db', '$DIR/other.db'),
    );
    expect(line).toMatchObject({ msg: 'config reloaded', changed: ['cache.path'], storeReopened: true, resolverRebuilt: true });
    expect(logLines(d.sidecar).some((l) => l.msg.startsWith('cache store settings changed'))).toBe(true);
    const viaUnix = await client({ path: join(d.sidecar.dir, 'added.sock') });
    expect(await viaUnix.query('postfix', `testing.${ZONE}`)).toBe(SECURE_TESTING);
    expect(await get(d.httpPort, '/readyz')).toMatchObject({ status: 200 });
  });
});

describe('SIGTERM', () => {
  it('finishes a reply in progress, then exits 0 within its bound', async () => {
    const d = await start();
    const c = await client({ port: d.socketmapPort });
    const answer = c.query('postfix', `slow.${ZONE}`);
    await until(() => https.requests(`mta-sts.slow.${ZONE}`) > 0, 'the fetch to start');
    const t0 = Date.now();
    d.sidecar.process.kill('SIGTERM');
    expect(await answer).toBe(`OK secure match=mx.slow.${ZONE} servername=hostname`);
    expect(await exited(d.sidecar)).toBe(0);
    // The bound: shutdown_grace_ms 3000 + fetch.timeout_ms 4000 + 5000 margin.
    expect(Date.now() - t0).toBeLessThan(12_000);
    expect(logLines(d.sidecar).map((l) => l.msg)).toEqual(expect.arrayContaining(['stopping: no new connections; finishing replies in progress', 'stopped']));
  });

  it('a reply that takes longer than shutdown_grace_ms is cut off, and the exit is still clean', async () => {
    const d = await start().then(async (s) => s);
    await reload(d.sidecar, configYaml(d.socketmapPort, d.httpPort).replace('shutdown_grace_ms: 3000', 'shutdown_grace_ms: 200'));
    const c = await client({ port: d.socketmapPort });
    const answer = c.query('postfix', `stuck.${ZONE}`);
    await until(() => https.requests(`mta-sts.stuck.${ZONE}`) > 0, 'the fetch to start');
    d.sidecar.process.kill('SIGTERM');
    await expect(answer).rejects.toThrow(/connection closed|ECONNRESET/);
    expect(await exited(d.sidecar)).toBe(0);
  });
});

describe('systemd', () => {
  it('sd_notify: READY=1 when listening, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM', async () => {
    const socketmapPort = await freePort();
    const httpPort = await freePort();
    const notifyPath = join(await import('node:os').then((os) => os.tmpdir()), `notify-${process.pid}-${socketmapPort}.sock`);
    const notify = await startNotifySocket(notifyPath);
    try {
      const d = await start('', { env: { NOTIFY_SOCKET: notifyPath } }, { socketmap: socketmapPort, http: httpPort });
      await until(() => notify.messages().length >= 1, 'READY=1');
      expect(notify.messages()[0]).toMatch(new RegExp(`^READY=1\\nSTATUS=answering on tcp:127\\.0\\.0\\.1:${socketmapPort}\\nMAINPID=\\d+$`));
      const mainPid = Number(/MAINPID=(\d+)/.exec(notify.messages()[0]!)![1]);
      expect(mainPid).toBe(d.sidecar.process.pid);
      await reload(d.sidecar, configYaml(socketmapPort, httpPort, 'zones: { default: { tlsrpt: true } }\n'));
      await until(() => notify.messages().length >= 3, 'RELOADING=1 and READY=1');
      expect(notify.messages()[1]).toMatch(/^RELOADING=1\nSTATUS=reloading configuration\nMONOTONIC_USEC=\d+$/);
      expect(notify.messages()[2]).toMatch(/^READY=1\n/);
      d.sidecar.process.kill('SIGTERM');
      expect(await exited(d.sidecar)).toBe(0);
      expect(notify.messages().slice(3)).toEqual(['STOPPING=1\nSTATUS=stopping']);
    } finally {
      await notify.stop();
    }
  });

  it('socket activation: a passed socket whose address is configured is used; an unknown one is closed', async () => {
    const listening = async () => {
      const server = net.createServer();
      await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
      return server;
    };
    const configured = await listening();
    const stray = await listening();
    const ports = new Map([configured, stray].map((s) => [s, (s.address() as net.AddressInfo).port]));
    const port = (s: net.Server) => ports.get(s)!;
    const fd = (s: net.Server) => (s as unknown as { _handle: { fd: number } })._handle.fd;
    const d = await start(
      '',
      { listenPid: true, passFds: [fd(configured), fd(stray)], env: { LISTEN_FDS: '2', LISTEN_FDNAMES: 'socketmap:other' } },
      { socketmap: port(configured), http: await freePort() },
    );
    // From here only the daemon holds the sockets.
    await new Promise<void>((ok) => configured.close(() => ok()));
    await new Promise<void>((ok) => stray.close(() => ok()));
    const lines = logLines(d.sidecar);
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ msg: 'socket passed by the service manager', fd: 3, name: 'socketmap' }),
        expect.objectContaining({ msg: 'listening', listen: `tcp:127.0.0.1:${port(configured)}`, inherited: true }),
        expect.objectContaining({ msg: 'passed socket matches no configured listener (socketmap.listen, http.listen); closing it', fd: 4, name: 'other' }),
      ]),
    );
    const c = await client({ port: port(configured) });
    expect(await c.query('postfix', `enforce.${ZONE}`)).toBe(SECURE_ENFORCE);
    const strayAnswer = await new Promise<string>((resolve) => {
      const s = net.connect(port(stray), '127.0.0.1');
      s.once('connect', () => resolve('connected'));
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(strayAnswer).toBe('ECONNREFUSED');
  });
});
