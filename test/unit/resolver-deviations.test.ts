/**
 * A policy accepted only by forgiving deviations from RFC 8461 §3.2 (docs/decisions.md) is served like any
 * other, and never silently: one warning per domain and policy id, naming each deviation and its line, and
 * each rule counted once through the observer. Counted on the real pino output.
 */
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { DeviationRule } from '../../src/sts/types.js';
import { OPTIONS, policyText, world } from './resolver-world.js';

const MESSAGE = 'policy accepted with deviations from RFC 8461 §3.2 (strict senders refuse it)';

function capture() {
  const lines: Array<{ level: number; msg: string; domain?: string; id?: string; deviations?: string[] }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines, warnings: () => lines.filter((l) => l.level === 40 && l.msg === MESSAGE) };
}
const flush = () => new Promise((r) => setImmediate(r));

function counted() {
  const seen: Array<[DeviationRule, string]> = [];
  return { seen, observer: { deviation: (rule: DeviationRule, domain: string) => void seen.push([rule, domain]) } };
}

describe('resolver: forgiven deviations are logged and counted', () => {
  it('an enforce policy with empty lines at the end and a trailing-dot mx is served, warned once, each rule counted once', async () => {
    const log = capture();
    const count = counted();
    const w = world(undefined, undefined, count.observer, log.logger);
    w.publish('example.com', 'a1', `${policyText('enforce', 86400, 'mx1.example.com.')}\n\n`);
    expect(await w.resolver.lookup('example.com')).toMatchObject({ kind: 'policy', entry: { policy: { mode: 'enforce', mx: [{ wildcard: false, domain: 'mx1.example.com' }] } } });
    // Refetched for the same id (past refetchAtFraction of max_age) and looked up again: no new warning.
    w.advance(86_400_000 * OPTIONS.refetchAtFraction + 1);
    await w.resolver.refresh('example.com');
    await w.resolver.lookup('example.com');
    await flush();
    expect(w.calls.fetch).toBe(2);
    expect(log.warnings()).toEqual([expect.objectContaining({ domain: 'example.com', id: 'a1', deviations: ['mx-trailing-dot:3', 'empty-line:5', 'empty-line:6'] })]);
    expect(count.seen).toEqual([
      ['mx-trailing-dot', 'example.com'],
      ['empty-line', 'example.com'],
    ]);
  });

  it('a new policy id with deviations is news again; a clean policy is not', async () => {
    const log = capture();
    const count = counted();
    const w = world(undefined, undefined, count.observer, log.logger);
    w.publish('example.com', 'a1', `\n${policyText()}`);
    await w.resolver.lookup('example.com');
    w.publish('example.com', 'a2', `${policyText('testing')}\n`);
    w.advance(OPTIONS.recheckIntervalMs + 1);
    await w.resolver.refresh('example.com');
    w.publish('clean.example', 'c1', policyText());
    await w.resolver.lookup('clean.example');
    await flush();
    expect(log.warnings().map((l) => [l.id, l.deviations])).toEqual([
      ['a1', ['empty-line:1']],
      ['a2', ['empty-line:5']],
    ]);
    expect(count.seen).toEqual([
      ['empty-line', 'example.com'],
      ['empty-line', 'example.com'],
    ]);
  });

  it('a deviation that is not forgiven is still no policy', async () => {
    const log = capture();
    const count = counted();
    const w = world(undefined, undefined, count.observer, log.logger);
    w.publish('example.com', 'a1', policyText('enforced'));
    expect(await w.resolver.lookup('example.com')).toMatchObject({ kind: 'none' });
    await flush();
    expect(log.warnings()).toEqual([]);
    expect(count.seen).toEqual([]);
  });
});
