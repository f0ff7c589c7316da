/** The lab SMTP server itself: plain delivery, STARTTLS with the chosen certificate, no STARTTLS. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createTestCa, type TestCa } from '../lab/ca.js';
import { startSmtpServer } from '../lab/smtp-server.js';

let ca: TestCa;
beforeAll(async () => {
  ca = await createTestCa();
});

/** A minimal client: send lines, collect replies. */
function conversation(sock: Socket) {
  let buf = '';
  const waiters: Array<() => void> = [];
  sock.on('data', (b: Buffer) => {
    buf += b.toString();
    waiters.splice(0).forEach((w) => w());
  });
  return {
    async expect(code: string): Promise<string> {
      for (let i = 0; i < 100; i++) {
        const m = new RegExp(`^${code} .*\\r\\n`, 'm').exec(buf);
        if (m) {
          const out = buf.slice(0, m.index + m[0].length);
          buf = buf.slice(m.index + m[0].length);
          return out;
        }
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
      throw new Error(`no ${code} reply; have ${JSON.stringify(buf)}`);
    },
    send: (line: string) => sock.write(`${line}\r\n`),
  };
}

describe('lab SMTP server', () => {
  it('offers STARTTLS and records a message delivered over TLS with SNI', async () => {
    const cert = await ca.issue({ dnsNames: ['mx1.lab.test'] });
    const smtp = await startSmtpServer({ address: '127.0.0.1', port: 0, cert });
    try {
      const plain = connect(smtp.port, '127.0.0.1');
      const c1 = conversation(plain);
      await c1.expect('220');
      c1.send('EHLO client');
      expect(await c1.expect('250')).toContain('STARTTLS');
      c1.send('STARTTLS');
      await c1.expect('220');
      plain.removeAllListeners('data');
      const secure = tlsConnect({ socket: plain, servername: 'mx1.lab.test', ca: [ca.certPem] });
      await new Promise((r) => secure.once('secureConnect', r));
      const c2 = conversation(secure as unknown as Socket);
      c2.send('EHLO client');
      expect(await c2.expect('250')).not.toContain('STARTTLS');
      c2.send('MAIL FROM:<a@lab.test>');
      await c2.expect('250');
      c2.send('RCPT TO:<b@lab.test>');
      await c2.expect('250');
      c2.send('DATA');
      await c2.expect('354');
      c2.send('Subject: hi\r\n\r\nbody\r\n.');
      await c2.expect('250');
      c2.send('QUIT');
      const m = await smtp.waitForMessage(() => true, 2000);
      expect(m).toMatchObject({ tls: true, sni: 'mx1.lab.test', to: ['<b@lab.test>'] });
      expect(m.data).toContain('Subject: hi');
      secure.destroy();
    } finally {
      await smtp.stop();
    }
  });

  it('without a certificate it does not offer STARTTLS', async () => {
    const smtp = await startSmtpServer({ address: '127.0.0.1', port: 0, cert: null });
    try {
      const sock = connect(smtp.port, '127.0.0.1');
      const c = conversation(sock);
      await c.expect('220');
      c.send('EHLO client');
      expect(await c.expect('250')).not.toContain('STARTTLS');
      c.send('STARTTLS');
      await c.expect('502');
      sock.destroy();
    } finally {
      await smtp.stop();
    }
  });
});
