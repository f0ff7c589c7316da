/**
 * The STARTTLS probe against real servers on port 25 of a lab loopback address: the lab SMTP server, and
 * small scripted servers for the ways an MX can misbehave. Every outcome must come back as a value,
 * within the deadline, and the probe must say QUIT where the conversation allows it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import { createTestCa, type TestCa } from '../lab/ca.js';
import { allocateLoopback, releaseLoopback } from '../lab/loopback.js';
import { startSmtpServer } from '../lab/smtp-server.js';
import { waitFor } from '../lab/wait.js';
import { createStartTlsProber, type StartTlsProbe } from '../../src/net/starttls-probe.js';

const HOST = 'mx.probe.test';
let ca: TestCa;
let address: string;

beforeAll(async () => {
  ca = await createTestCa();
  address = await allocateLoopback();
});
afterAll(() => releaseLoopback(address));

const prober = (timeoutMs = 5000, trustLab = true) => createStartTlsProber({ extraCaPem: trustLab ? ca.certPem : null, timeoutMs, ehloName: 'probe.client.test' });

/**
 * A scripted server on port 25: `onLine` answers each command line; every line received is kept.
 * `holdOpen`: our side never closes, not even after the client's FIN (allowHalfOpen), like a hostile MX.
 */
async function scripted(
  greeting: string | null,
  onLine: (line: string, sock: Socket) => void,
  opts: { holdOpen?: boolean; onConnect?: (sock: Socket) => void } = {},
): Promise<{
  lines: string[];
  closed: Promise<void>;
  /** Connections the client has not closed. */
  open(): number;
  /** Our (server) side sockets still open, e.g. held after the client left. */
  held(): number;
  stop(): Promise<void>;
}> {
  const lines: string[] = [];
  const sockets = new Set<Socket>();
  const clientOpen = new Set<Socket>();
  let closedResolve!: () => void;
  const closed = new Promise<void>((r) => (closedResolve = r));
  const server: Server = createServer({ allowHalfOpen: opts.holdOpen === true }, (sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    const gone = () => {
      clientOpen.delete(sock);
      closedResolve();
    };
    clientOpen.add(sock);
    // The client closed: its FIN ('end'; with holdOpen our side stays open), or the socket is gone.
    sock.on('end', gone);
    sock.on('close', () => {
      sockets.delete(sock);
      gone();
    });
    opts.onConnect?.(sock);
    let buf = '';
    sock.on('data', (b: Buffer) => {
      buf += b.toString('latin1');
      for (let nl = buf.indexOf('\r\n'); nl >= 0; nl = buf.indexOf('\r\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        lines.push(line);
        onLine(line, sock);
      }
    });
    if (greeting !== null) sock.write(greeting);
  });
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(25, address, ok));
  return {
    lines,
    closed,
    open: () => clientOpen.size,
    held: () => sockets.size,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A server that answers EHLO with `ehlo`, QUIT with 221, and STARTTLS via `onStartTls`. */
const smtpLike = (ehlo: string, onStartTls?: (sock: Socket) => void) => (line: string, sock: Socket) => {
  const verb = line.split(' ')[0]!.toUpperCase();
  if (verb === 'EHLO') sock.write(ehlo);
  else if (verb === 'QUIT') sock.end('221 bye\r\n');
  else if (verb === 'STARTTLS' && onStartTls) onStartTls(sock);
  else sock.write('502 no\r\n');
};

describe('STARTTLS probe: the lab SMTP server', () => {
  it('a trusted certificate for the MX name: facts of the session, SNI sent', async () => {
    const smtp = await startSmtpServer({ address, cert: await ca.issue({ dnsNames: [HOST, `alt.${HOST}`] }), hostname: HOST });
    try {
      const got = await prober()(HOST, address);
      expect(got).toMatchObject({ kind: 'tls', protocol: 'TLSv1.3', authorized: true, authorizationError: null });
      const facts = got as Extract<StartTlsProbe, { kind: 'tls' }>;
      expect(facts.certificate).toMatchObject({ dnsNames: [HOST, `alt.${HOST}`], subject: expect.stringContaining(`CN=${HOST}`) });
      expect(Date.parse(facts.certificate!.validTo)).toBeGreaterThan(Date.now() + 29 * 86_400_000);
      // The server marks the session once its side of the handshake is done, a moment after ours.
      await waitFor(() => smtp.sessions()[0]?.tls === true, 'the server side of the handshake');
      expect(smtp.sessions()).toMatchObject([{ tls: true, sni: HOST }]);
    } finally {
      await smtp.stop();
    }
  });

  it('an untrusted chain and another name are both reported as facts (src/check judges the name)', async () => {
    const smtp = await startSmtpServer({ address, cert: await ca.issue({ dnsNames: ['other.probe.test'] }), hostname: HOST });
    try {
      const got = await prober(5000, false)(HOST, address);
      expect(got).toMatchObject({ kind: 'tls', authorized: false, authorizationError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', certificate: { dnsNames: ['other.probe.test'] } });
    } finally {
      await smtp.stop();
    }
  });

  it('no STARTTLS in the EHLO reply', async () => {
    const smtp = await startSmtpServer({ address, cert: null, hostname: HOST });
    try {
      expect(await prober()(HOST, address)).toEqual({ kind: 'no-starttls', extensions: ['PIPELINING', 'SIZE', '8BITMIME'] });
    } finally {
      await smtp.stop();
    }
  });
});

describe('STARTTLS probe: misbehaving servers', () => {
  it('nothing listening: connect-failed', async () => {
    expect(await prober()(HOST, address)).toEqual({ kind: 'connect-failed', error: 'ECONNREFUSED' });
  });

  it('a server that never greets: timeout at the banner, within the deadline, connection closed', async () => {
    const server = await scripted(null, () => {});
    try {
      const started = Date.now();
      expect(await prober(300)(HOST, address)).toEqual({ kind: 'timeout', stage: 'banner' });
      expect(Date.now() - started).toBeLessThan(1500);
      await server.closed;
    } finally {
      await server.stop();
    }
  });

  it('a 554 greeting is a refusal, and the probe still says QUIT', async () => {
    const server = await scripted('554 5.7.1 no service \u001b[2J here\r\n', smtpLike(''));
    try {
      expect(await prober()(HOST, address)).toEqual({ kind: 'refused', stage: 'banner', reply: '554 5.7.1 no service ?[2J here' });
      await server.closed;
      expect(server.lines).toEqual(['QUIT']);
    } finally {
      await server.stop();
    }
  });

  it('multi-line EHLO reply without STARTTLS: EHLO with our name, then QUIT', async () => {
    const server = await scripted('220-mx.probe.test\r\n220 ESMTP\r\n', smtpLike('250-mx.probe.test\r\n250-SIZE 100\r\n250 AUTH PLAIN\r\n'));
    try {
      expect(await prober()(HOST, address)).toEqual({ kind: 'no-starttls', extensions: ['SIZE', 'AUTH'] });
      await server.closed;
      expect(server.lines).toEqual(['EHLO probe.client.test', 'QUIT']);
    } finally {
      await server.stop();
    }
  });

  it('STARTTLS advertised but refused with 454', async () => {
    const server = await scripted('220 mx\r\n', smtpLike('250-mx\r\n250 STARTTLS\r\n', (s) => s.write('454 4.7.0 TLS not available\r\n')));
    try {
      expect(await prober()(HOST, address)).toEqual({ kind: 'refused', stage: 'starttls', reply: '454 4.7.0 TLS not available' });
      await server.closed;
      expect(server.lines).toEqual(['EHLO probe.client.test', 'STARTTLS', 'QUIT']);
    } finally {
      await server.stop();
    }
  });

  it('"220" to STARTTLS, then no TLS at all: tls-failed', async () => {
    // Written after the client's ClientHello is on its way, so the TLS layer reads it.
    const garbage = (s: Socket) => {
      s.write('220 go ahead\r\n');
      setTimeout(() => s.write('this is not TLS\r\n'), 100);
    };
    const server = await scripted('220 mx\r\n', smtpLike('250-mx\r\n250 STARTTLS\r\n', garbage));
    try {
      expect(await prober()(HOST, address)).toMatchObject({ kind: 'tls-failed', error: expect.stringMatching(/^ERR_SSL_|ECONNRESET|closed/) });
    } finally {
      await server.stop();
    }
  });

  it('"220" to STARTTLS, then the connection closes: tls-failed, not a hang', async () => {
    const server = await scripted('220 mx\r\n', smtpLike('250-mx\r\n250 STARTTLS\r\n', (s) => s.end('220 go ahead\r\n')));
    try {
      const started = Date.now();
      expect(await prober(5000)(HOST, address)).toMatchObject({ kind: 'tls-failed' });
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await server.stop();
    }
  });

  it('the connection closes after EHLO: broken at the ehlo stage', async () => {
    const server = await scripted('220 mx\r\n', (_line, sock) => sock.destroy());
    try {
      expect(await prober()(HOST, address)).toEqual({ kind: 'broken', stage: 'ehlo', error: 'connection closed' });
    } finally {
      await server.stop();
    }
  });

  it('text sent in clear after the "220" to STARTTLS is never read as TLS or as a reply (RFC 3207 §4.2)', async () => {
    const server = await scripted('220 mx\r\n', smtpLike('250-mx\r\n250 STARTTLS\r\n', (s) => s.write('220 go ahead\r\n250 injected\r\n')));
    try {
      // The injected line is dropped with the plain-text reader; the TLS layer then waits for a ServerHello.
      expect(await prober(500)(HOST, address)).toEqual({ kind: 'timeout', stage: 'handshake' });
    } finally {
      await server.stop();
    }
  });

});

/** TCP and TLS handles of this process (client and server sides alike). */
const socketHandles = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TLSWrap').length;

/**
 * Writes `chunk` again and again while the peer reads, up to `maxBytes` (so the test itself is bounded),
 * and reports how much went out.
 */
function flood(sock: Socket, chunk: string, maxBytes = 64 * 1024 * 1024): { sent(): number } {
  let sent = 0;
  const pump = () => {
    while (!sock.destroyed && sent < maxBytes) {
      sent += chunk.length;
      if (!sock.write(chunk)) return void sock.once('drain', pump);
    }
  };
  pump();
  return { sent: () => sent };
}

describe('STARTTLS probe: bounded whatever the server does (in-process, as a long-lived caller runs it)', () => {
  it('an MX that answers QUIT with 221 and never closes: no socket left once the probe resolves', async () => {
    const server = await scripted('220 mx\r\n', (line, sock) => {
      if (line.startsWith('EHLO')) sock.write('250-mx\r\n250 SIZE 100\r\n');
      else if (line === 'QUIT') sock.write('221 bye, but I stay\r\n');
    }, { holdOpen: true });
    try {
      const before = socketHandles();
      const started = Date.now();
      expect(await prober(10_000)(HOST, address)).toEqual({ kind: 'no-starttls', extensions: ['SIZE'] });
      // Closed by us right after the 221, not at the 10 s deadline (loose bound: a loaded CI machine).
      expect(Date.now() - started).toBeLessThan(2_000);
      await server.closed;
      expect(server.open()).toBe(0);
      expect(server.lines).toEqual(['EHLO probe.client.test', 'QUIT']);
      // This process holds the server's half of the connection (never closed, on purpose), none of ours.
      expect(server.held()).toBe(1);
      expect(socketHandles() - server.held()).toBeLessThanOrEqual(before);
    } finally {
      await server.stop();
    }
  });

  it('an MX that ignores QUIT and never closes: closed after the QUIT wait, before the deadline', async () => {
    const server = await scripted('554 go away\r\n', () => {}, { holdOpen: true });
    try {
      const started = Date.now();
      expect(await prober(10_000)(HOST, address)).toEqual({ kind: 'refused', stage: 'banner', reply: '554 go away' });
      const took = Date.now() - started;
      expect(took).toBeGreaterThanOrEqual(900);
      expect(took).toBeLessThan(3_000);
      await server.closed;
      expect(server.open()).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it('the same over TLS: 221 to QUIT in the TLS session, connection held open, nothing of ours left', async () => {
    const smtp = await startSmtpServer({ address, cert: await ca.issue({ dnsNames: [HOST] }), hostname: HOST, quit: 'hold' });
    try {
      const before = socketHandles();
      const started = Date.now();
      expect(await prober(10_000)(HOST, address)).toMatchObject({ kind: 'tls', authorized: true });
      // Our socket is closed when the probe resolves (a half-closed one, waiting for the server's FIN
      // after our close_notify, would still count). The server side is held open on purpose.
      expect(smtp.heldConnections()).toBe(1);
      expect(socketHandles() - smtp.heldConnections()).toBeLessThanOrEqual(before);
      expect(Date.now() - started).toBeLessThan(2_000);
      await waitFor(() => smtp.openConnections() === 0, 'the server to see the probe connection closed');
    } finally {
      await smtp.stop();
    }
  });

  it('an MX that goes silent mid-conversation and never closes: gone at the deadline, then resolved', async () => {
    const server = await scripted('220 mx\r\n', () => {}, { holdOpen: true });
    try {
      const started = Date.now();
      expect(await prober(400)(HOST, address)).toEqual({ kind: 'timeout', stage: 'ehlo' });
      expect(Date.now() - started).toBeLessThan(1_500);
      await server.closed;
      expect(server.open()).toBe(0);
    } finally {
      await server.stop();
    }
  });

  // [what the server floods, its greeting first (null: the flood is the greeting), the limit the probe
  // names, the stage]. Written 16 KiB or more at a time, so the flooding server (in this process) does not
  // starve the event loop the probe runs on. The conversation cap is a backstop that the cheaper limits
  // reach first on the wire: test/unit/smtp-reply.test.ts shows it.
  const floods: Array<[string, string | null, string, RegExp, string]> = [
    ['endless multi-line EHLO reply', '220 mx\r\n', `250-${'x'.repeat(60)}\r\n`.repeat(256), /^reply of more than 100 lines$/, 'ehlo'],
    ['one endless greeting line, no line end', null, 'x'.repeat(16 * 1024), /^reply longer than 16384 bytes$/, 'banner'],
    ['complete replies nobody asked for', null, '220 hello\r\n'.repeat(1500), /^more than 4 replies the client did not ask for$/, 'banner'],
  ];
  it.each(floods)('a flood (%s) ends the probe at once with the limit named, and the connection', async (_case, greeting, chunk, reason, stage) => {
    let sent = () => 0;
    const server = await scripted(greeting, (line, sock) => {
      if (line.startsWith('EHLO') && greeting !== null) sent = flood(sock, chunk).sent;
    }, { holdOpen: true, onConnect: (sock) => {
      if (greeting === null) sent = flood(sock, chunk).sent;
    } });
    try {
      const heapBefore = process.memoryUsage().heapUsed;
      const started = Date.now();
      const got = await prober(10_000)(HOST, address);
      expect(got).toMatchObject({ kind: 'broken', error: expect.stringMatching(reason) });
      // The stage is the one in progress when the limit passed (a flood before EHLO lands in either).
      if (stage === 'banner') expect(got).toMatchObject({ stage });
      expect(Date.now() - started).toBeLessThan(2_000);
      await server.closed;
      expect(server.open()).toBe(0);
      // The server could not push more than its socket buffers hold past our limit.
      expect(sent()).toBeLessThan(16 * 1024 * 1024);
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024);
    } finally {
      await server.stop();
    }
  });
});
