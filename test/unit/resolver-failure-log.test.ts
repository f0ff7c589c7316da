/**
 * A failing domain is logged once when the failure starts (and when its reason changes), not once per
 * attempt or per query; the recovery is one info line. Counted on the real pino output.
 */
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StsError } from '../../src/errors.js';
import { OPTIONS, policyText, world } from './resolver-world.js';

function capture() {
  const lines: Array<{ level: number; msg: string; domain?: string; reason?: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines, at: (level: number, msg: string) => lines.filter((l) => l.level === level && l.msg === msg) };
}
const WARN = 40;
const INFO = 30;
const flush = () => new Promise((r) => setImmediate(r));

describe('resolver: failure logging', () => {
  it('a cached policy whose host keeps failing: one warning for the run, one info line when it works again', async () => {
    const log = capture();
    const w = world(undefined, undefined, {}, log.logger);
    w.publish('example.com', 'a1', policyText('enforce'));
    await w.resolver.lookup('example.com');
    w.publish('example.com', 'a2', new StsError('tls', 'CERT_HAS_EXPIRED'));
    for (let i = 0; i < 6; i++) {
      w.advance(OPTIONS.failureBackoffMaxMs); // past any backoff: every round is a real attempt
      await w.resolver.refresh('example.com');
    }
    // A new reason is news again.
    w.publish('example.com', 'a2', new StsError('timeout', 'slow'));
    w.advance(OPTIONS.failureBackoffMaxMs);
    await w.resolver.refresh('example.com');
    w.publish('example.com', 'a2', policyText('enforce', 86400, 'mx2.example.com'));
    w.advance(OPTIONS.failureBackoffMaxMs);
    await w.resolver.refresh('example.com');
    await flush();
    expect(w.calls.fetch).toBe(9);
    const warnings = log.at(WARN, 'policy refresh failed; cached policy stays in force');
    expect(warnings.map((l) => l.reason)).toEqual(['tls', 'timeout']);
    expect(log.at(INFO, 'policy discovery works again')).toHaveLength(1);
  });

  it('a domain with nothing cached and DNS failing: one warning however many retries', async () => {
    const log = capture();
    const w = world(undefined, undefined, {}, log.logger);
    w.txtFails('down.example');
    for (let i = 0; i < 5; i++) {
      w.advance(OPTIONS.dnsFailureTtlMs);
      expect(await w.resolver.lookup('down.example')).toMatchObject({ kind: 'none', why: 'failed' });
    }
    await flush();
    expect(w.calls.txt).toBe(5);
    expect(log.at(WARN, 'policy discovery failed')).toHaveLength(1);
  });
});
