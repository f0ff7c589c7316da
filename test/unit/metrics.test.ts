/**
 * The Prometheus registry as a scraper sees it: what each resolver event and each reply adds to the
 * exposition text, with closed label sets.
 */
import { describe, expect, it } from 'vitest';
import type { LookupTier } from '../../src/resolver/observer.js';
import type { LookupResult } from '../../src/resolver/types.js';
import { answerClass, cacheOutcomes, combineObservers, eximAnswerClass, Metrics, type AnswerClass } from '../../src/app/metrics.js';
import type { EximRequest } from '../../src/server/exim/session.js';
import { pino } from 'pino';

const NONE: LookupResult = { kind: 'none', domain: 'example.com', why: 'no-record' };

/** The value of one series in the exposition text, or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function metrics(): Metrics {
  return new Metrics({ processMetrics: false });
}

describe('answerClass: the first word of a reply', () => {
  it.each<[string, AnswerClass]>([
    ['OK secure match=mx.example.com servername=hostname', 'secure'],
    ['NOTFOUND ', 'notfound'],
    ['NOTFOUND', 'notfound'],
    ['PERM invalid domain key: empty label', 'perm'],
    ['TEMP lookup failed', 'temp'],
    ['OK dane-only', 'dane-only'],
    ['OK dane', 'dane'],
    ['TEMP DANE lookup failed; MTA-STS may not override DANE (RFC 8461 section 2)', 'temp'],
    ['', 'temp'],
    ['OKAY', 'temp'],
  ])('%j -> %s', (reply, want) => {
    expect(answerClass(reply)).toBe(want);
  });
});

describe('eximAnswerClass: an Exim reply in the socketmap classes', () => {
  it.each<[string, AnswerClass]>([
    ['mode=enforce mx="mx1.example.com" id=a1 max_age=86400', 'secure'],
    ['allowed=no mode=enforce mx="mx1.example.com"', 'secure'],
    ['allowed=yes mode=enforce mx="mx1.example.com"', 'secure'],
    ['mode=testing mx="mx1.example.com" id=a1 max_age=86400', 'notfound'],
    ['mode=none reason=no-record', 'notfound'],
    ['error="invalid domain"', 'perm'],
    ['', 'temp'],
  ])('%j -> %s', (reply, want) => {
    expect(eximAnswerClass(reply)).toBe(want);
  });
});

describe('cacheOutcomes: hits and misses per tier from the tier that answered', () => {
  it.each<[LookupTier, string]>([
    ['memory', 'memory:hit'],
    ['negative', 'memory:hit'],
    ['store', 'memory:miss store:hit'],
    ['resolve', 'memory:miss store:miss'],
    ['overload', 'memory:miss store:miss'],
  ])('%s', (tier, want) => {
    expect(cacheOutcomes(tier).map(([t, o]) => `${t}:${o}`).join(' ')).toBe(want);
  });
});

describe('Metrics', () => {
  it('every fetch outcome, refresh outcome and cache tier is exported at 0 before anything happens', async () => {
    const text = await metrics().render();
    for (const outcome of ['ok', 'dns', 'txt', 'address', 'connect', 'tls', 'http-status', 'content-type', 'size', 'timeout', 'parse']) {
      expect(sample(text, `mta_sts_sidecar_fetches_total{outcome="${outcome}"}`)).toBe(0);
    }
    for (const outcome of ['unchanged', 'changed', 'failed', 'no-record']) {
      expect(sample(text, `mta_sts_sidecar_refreshes_total{outcome="${outcome}"}`)).toBe(0);
    }
    expect(sample(text, 'mta_sts_sidecar_cache_hits_total{tier="store"}')).toBe(0);
    expect(sample(text, 'mta_sts_sidecar_cache_misses_total{tier="memory"}')).toBe(0);
  });

  it('resolver events count fetches by outcome, refreshes, cache tiers and policy updates', async () => {
    const m = metrics();
    m.observer.fetch!('ok', 'a.example');
    m.observer.fetch!('tls', 'b.example');
    m.observer.fetch!('tls', 'c.example');
    m.observer.refresh!('changed', 'a.example');
    m.observer.lookup!(NONE, 'negative');
    m.observer.lookup!(NONE, 'store');
    m.observer.lookup!(NONE, 'resolve');
    m.observer.policy!('a.example', 'enforce');
    m.observer.policy!('a.example', undefined);
    const text = await m.render();
    expect(sample(text, 'mta_sts_sidecar_fetches_total{outcome="ok"}')).toBe(1);
    expect(sample(text, 'mta_sts_sidecar_fetches_total{outcome="tls"}')).toBe(2);
    expect(sample(text, 'mta_sts_sidecar_refreshes_total{outcome="changed"}')).toBe(1);
    expect(sample(text, 'mta_sts_sidecar_cache_hits_total{tier="memory"}')).toBe(1);
    expect(sample(text, 'mta_sts_sidecar_cache_misses_total{tier="memory"}')).toBe(2);
    expect(sample(text, 'mta_sts_sidecar_cache_hits_total{tier="store"}')).toBe(1);
    expect(sample(text, 'mta_sts_sidecar_cache_misses_total{tier="store"}')).toBe(1);
    expect(sample(text, 'mta_sts_sidecar_policy_updates_total{event="enforce"}')).toBe(1);
    expect(sample(text, 'mta_sts_sidecar_policy_updates_total{event="expired"}')).toBe(1);
  });

  it('countReplies counts each reply by class and configured zone, and times it', async () => {
    const m = metrics();
    const zones = new Set(['default', 'strict']);
    const replies: Record<string, string> = { 'a.example': 'OK secure match=mx.a.example', 'b.example': 'NOTFOUND ', bad: 'PERM invalid domain key' };
    const handler = m.countReplies('socketmap', async (_name, key) => replies[key]!, (name) => (zones.has(name) ? name : 'default'));
    m.declareZones('socketmap', zones);
    expect(await handler('strict', 'a.example')).toBe(replies['a.example']);
    await handler('postfix', 'a.example'); // an unknown map name counts under the default zone
    await handler('postfix', 'b.example');
    await handler('strict', 'bad');
    const text = await m.render();
    const q = (answer: string, zone: string) => sample(text, `mta_sts_sidecar_queries_total{protocol="socketmap",answer="${answer}",zone="${zone}"}`);
    expect([q('secure', 'strict'), q('secure', 'default'), q('notfound', 'default'), q('perm', 'strict'), q('temp', 'strict')]).toEqual([1, 1, 1, 1, 0]);
    expect(text).not.toContain('zone="postfix"');
    expect(sample(text, 'mta_sts_sidecar_answer_duration_seconds_count{protocol="socketmap"}')).toBe(4);
    // Buckets fine enough to tell hot-tier answers (tens of microseconds) from store reads and resolutions.
    const bounds = [...text.matchAll(/answer_duration_seconds_bucket\{le="([^"]+)"/g)].map((x) => x[1]);
    expect(bounds.slice(0, 5)).toEqual(['0.00005', '0.0001', '0.00025', '0.0005', '0.001']);
    expect(bounds.at(-1)).toBe('+Inf');
    expect(sample(text, 'mta_sts_sidecar_answer_duration_seconds_bucket{le="+Inf",protocol="socketmap"}')).toBe(4);
  });

  it('countEximReplies counts Exim answers under protocol="exim", failures as temp', async () => {
    const m = metrics();
    const replies: Record<string, string> = { 'a.example': 'mode=enforce mx="mx.a.example" id=1 max_age=60', 'b.example': 'mode=none reason=no-record', bad: 'error="invalid domain"' };
    const handler = m.countEximReplies(async (request: EximRequest) => {
      if (request.domain === 'boom.example') throw new Error('boom');
      return replies[request.domain]!;
    });
    const log = pino({ level: 'silent' });
    for (const domain of ['a.example', 'a.example', 'b.example', 'bad']) await handler({ verb: 'policy', domain }, log);
    await expect(handler({ verb: 'policy', domain: 'boom.example' }, log)).rejects.toThrow('boom');
    const text = await m.render();
    const q = (answer: string) => sample(text, `mta_sts_sidecar_queries_total{protocol="exim",answer="${answer}",zone="default"}`);
    expect([q('secure'), q('notfound'), q('perm'), q('temp')]).toEqual([2, 1, 1, 1]);
    expect(sample(text, 'mta_sts_sidecar_answer_duration_seconds_count{protocol="exim"}')).toBe(5);
  });

  it('storeObserver counts store calls by kind, operation and result, and sums their time', async () => {
    const m = metrics();
    m.storeObserver.storeOperation('redis', 'get', 2, true);
    m.storeObserver.storeOperation('redis', 'get', 3, true);
    m.storeObserver.storeOperation('redis', 'put', 500, false);
    const text = await m.render();
    expect(sample(text, 'mta_sts_sidecar_store_operations_total{store="redis",op="get",result="ok"}')).toBe(2);
    expect(sample(text, 'mta_sts_sidecar_store_operations_total{store="redis",op="put",result="error"}')).toBe(1);
    expect(sample(text, 'mta_sts_sidecar_store_operation_seconds_total{store="redis",op="get"}')).toBeCloseTo(0.005, 6);
  });

  it('a handler that fails counts as temp and the failure goes on to the caller', async () => {
    const m = metrics();
    const handler = m.countReplies('socketmap', async () => Promise.reject(new Error('boom')), () => 'default');
    await expect(handler('postfix', 'x.example')).rejects.toThrow('boom');
    expect(sample(await m.render(), 'mta_sts_sidecar_queries_total{protocol="socketmap",answer="temp",zone="default"}')).toBe(1);
  });

  it('policies by mode and open connections are read from their sources at scrape time', async () => {
    const m = metrics();
    let counts = { enforce: 3, testing: 1, none: 0 };
    let open = 2;
    m.setSources({ policyCounts: () => counts, connections: () => ({ socketmap: open, http: 1 }) });
    let text = await m.render();
    expect(sample(text, 'mta_sts_sidecar_policies{mode="enforce"}')).toBe(3);
    expect(sample(text, 'mta_sts_sidecar_open_connections{protocol="socketmap"}')).toBe(2);
    counts = { enforce: 0, testing: 0, none: 5 };
    open = 0;
    text = await m.render();
    expect(sample(text, 'mta_sts_sidecar_policies{mode="enforce"}')).toBe(0);
    expect(sample(text, 'mta_sts_sidecar_policies{mode="none"}')).toBe(5);
    expect(sample(text, 'mta_sts_sidecar_open_connections{protocol="socketmap"}')).toBe(0);
  });

  it('reloads are counted by result', async () => {
    const m = metrics();
    m.countReload('ok');
    m.countReload('failed');
    m.countReload('failed');
    const text = await m.render();
    expect(sample(text, 'mta_sts_sidecar_config_reloads_total{result="ok"}')).toBe(1);
    expect(sample(text, 'mta_sts_sidecar_config_reloads_total{result="failed"}')).toBe(2);
  });

  it('process metrics carry the same prefix, and the registry is the daemon\'s own', async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.observer.fetch!('ok', 'x');
    expect(await a.render()).toMatch(/^mta_sts_sidecar_process_cpu_seconds_total /m);
    expect(sample(await b.render(), 'mta_sts_sidecar_fetches_total{outcome="ok"}')).toBe(0);
    expect(a.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });
});

describe('combineObservers', () => {
  it('calls every observer, skipping methods one of them lacks', () => {
    const seen: string[] = [];
    const both = combineObservers({ fetch: (o) => seen.push(`a:${o}`) }, undefined, { fetch: (o) => seen.push(`b:${o}`), refresh: (o) => seen.push(`b:${o}`) });
    both.fetch!('ok', 'x');
    both.refresh!('failed', 'x');
    both.lookup!(NONE, 'memory');
    expect(seen).toEqual(['a:ok', 'b:ok', 'b:failed']);
  });
});

describe('DANE (issue 16)', () => {
  it('DANE lookups by state and why, every outcome present from the start; the validating gauge', async () => {
    const m = metrics();
    let validating = false;
    m.setSources({ dnssecValidating: () => validating });
    const before = await m.render();
    expect(before).toMatch(/^mta_sts_sidecar_dane_lookups_total\{state="temp",why="host-lookup-failed"\} 0$/m);
    expect(before).toMatch(/^mta_sts_sidecar_dnssec_validating 0$/m);
    m.daneObserver({ domain: 'example.com', state: 'dane-only', why: 'all-usable', hosts: [], expiresAt: 0 });
    m.daneObserver({ domain: 'example.net', state: 'dane-only', why: 'all-usable', hosts: [], expiresAt: 0 });
    validating = true;
    const after = await m.render();
    expect(after).toMatch(/^mta_sts_sidecar_dane_lookups_total\{state="dane-only",why="all-usable"\} 2$/m);
    expect(after).toMatch(/^mta_sts_sidecar_dnssec_validating 1$/m);
  });
});
