/**
 * Lookup-key normalisation and the Postfix reply built from it. For any key (random bytes as Postfix
 * could send them, near-valid host names, brackets, ports, IDN, overlong labels):
 * - normalizeDomainKey never throws, and a `domain` it returns is a host name by the reference grammar
 *   (RFC 5321 Domain, RFC 1035 sizes), lower case, and normalises to itself;
 * - every key without a domain has a reason from the closed set KEY_SKIP_REASONS (a bounded metric label);
 * - for plain LDH keys it accepts a domain exactly when the reference grammar does;
 * - the socketmap handler answers every key with a well-formed socketmap(5) reply and never PERM: a key
 *   that cannot carry a policy gets `NOTFOUND ` (PERM is for requests that are not socketmap at all, which
 *   never reach the handler), and its reason is told to onSkippedKey exactly once.
 */
import fc from 'fast-check';
import { isIP } from 'node:net';
import { describe, it } from 'vitest';
import { KEY_SKIP_REASONS, keySkipReason, normalizeDomainKey, type KeySkipReason } from '../../src/sts/domain.js';
import { postfixMapHandler, type HotPolicyLookup } from '../../src/server/postfix/map.js';
import type { LookupResult, PolicyLookup } from '../../src/resolver/types.js';
import { parsePolicy } from '../../src/sts/policy.js';
import { mutated, params, RUNS, timeoutFor } from './fuzz.js';
import { referenceHostname } from './reference-grammar.js';

const label = fc.oneof(
  { weight: 8, arbitrary: fc.string({ unit: fc.constantFrom(...'abzAZ09-'), minLength: 1, maxLength: 6 }) },
  { weight: 1, arbitrary: fc.integer({ min: 62, max: 64 }).map((n) => 'a'.repeat(n)) },
  { weight: 1, arbitrary: fc.constantFrom('xn--bcher-kva', 'xn--zz', 'bücher', 'ＥＸＡＭＰＬＥ', '１２３', 'ß', '日本', '_dmarc', '*', '') },
);
const host = fc.oneof(
  { weight: 8, arbitrary: fc.array(label, { minLength: 1, maxLength: 5 }).map((l) => l.join('.')) },
  { weight: 1, arbitrary: fc.integer({ min: 250, max: 256 }).map((n) => `${'a'.repeat(61)}.`.repeat(5).slice(0, n - 2) + '.b') },
  { weight: 1, arbitrary: fc.constantFrom('192.0.2.1', '::1', '2001:db8::1', '01.2.3.4', '1.2.3', 'localhost', '.', '..', '') },
);
const key = mutated(
  fc.tuple(fc.constantFrom('', '', '', '.', '['), host, fc.constantFrom('', '', '', '.', ']', ']:25', ':25', ':smtp', ':0', ':99999', ':')).map(
    ([pre, h, post]) => pre + h + post,
  ),
  ['.', '-', ':', '[', ']', ' ', '\0', '\t', '\u00a0', 'é', 'A', '\ud800', '\u0085'],
);
const bytesKey = fc.uint8Array({ maxLength: 40 }).map((b) => new TextDecoder().decode(b));

function checkKey(k: string): void {
  const r = normalizeDomainKey(k);
  if (r.kind !== 'domain') {
    if (r.kind === 'invalid' && (typeof r.why !== 'string' || r.why === '')) throw new Error('invalid without a why');
    if (!(KEY_SKIP_REASONS as readonly string[]).includes(keySkipReason(r))) throw new Error(`${JSON.stringify(k)}: reason outside the closed set`);
    return;
  }
  const d = r.domain;
  if (!referenceHostname(d)) throw new Error(`${JSON.stringify(k)} gave ${JSON.stringify(d)}, not a host name by RFC 5321/1035`);
  if (d !== d.toLowerCase() || isIP(d) !== 0 || /^[0-9]+$/.test(d.slice(d.lastIndexOf('.') + 1))) {
    throw new Error(`${JSON.stringify(k)} gave ${JSON.stringify(d)}: upper case, an address, or a numeric TLD`);
  }
  const again = normalizeDomainKey(d);
  if (again.kind !== 'domain' || again.domain !== d) throw new Error(`${JSON.stringify(d)} does not normalise to itself`);
  // An absolute name (trailing dot) is the same domain.
  if (!k.endsWith('.') && !k.includes(':') && !k.startsWith('[')) {
    const dotted = normalizeDomainKey(`${k}.`);
    if (dotted.kind !== 'domain' || dotted.domain !== d) throw new Error(`${JSON.stringify(k)}. differs from ${JSON.stringify(k)}`);
  }
}

/** Plain LDH keys (letters, digits, hyphens, dots): a domain exactly when the reference grammar says so. */
function checkLdh(k: string): void {
  const r = normalizeDomainKey(k);
  const bare = (k.endsWith('.') ? k.slice(0, -1) : k).toLowerCase();
  const tld = bare.slice(bare.lastIndexOf('.') + 1);
  const want = !k.startsWith('.') && referenceHostname(bare) && !/^[0-9]+$/.test(tld);
  if ((r.kind === 'domain') !== want) throw new Error(`${JSON.stringify(k)}: ${r.kind}, reference says ${want ? 'domain' : 'not a domain'}`);
}

const POLICY = parsePolicy('version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 86400\n');
const lookup: PolicyLookup = {
  async lookup(domain): Promise<LookupResult> {
    if (domain.length % 2 === 0) return { kind: 'none', domain, why: 'no-record' };
    const now = Date.now();
    const entry = { domain, id: '1', policy: POLICY, text: '', fetchedAt: now, expiresAt: now + 1e6, checkedAt: now, lastError: null, failures: 0 };
    return { kind: 'policy', domain, entry, source: 'memory' };
  },
};
const skipped: KeySkipReason[] = [];
const handler = postfixMapHandler(
  lookup,
  { default: { strict_testing: false, tlsrpt: false }, tlsrpt: { strict_testing: false, tlsrpt: true } },
  { onSkippedKey: (reason) => skipped.push(reason) },
);
// socketmap(5): OK <data> or NOTFOUND <empty>. Never PERM (Postfix defers on it) nor TEMP: the lookup here
// never fails.
const WELL_FORMED = /^(?:OK secure match=mx1\.example\.com:\.example\.net servername=hostname(?: policy_type=sts [^\x00-\x1f\x7f]*)?|NOTFOUND )$/u;

describe('fuzz: normalizeDomainKey', () => {
  const runs = { near: Math.ceil(RUNS * 0.5), bytes: Math.ceil(RUNS * 0.2), ldh: Math.ceil(RUNS * 0.3) };

  it(`near-valid keys (${runs.near} inputs): never throws; a domain is a host name that normalises to itself`, { timeout: timeoutFor(runs.near, 60) }, () => {
    fc.assert(fc.property(key, (k) => checkKey(k)), params(runs.near));
  });

  it(`random bytes as UTF-8 (${runs.bytes} inputs)`, { timeout: timeoutFor(runs.bytes, 60) }, () => {
    fc.assert(fc.property(bytesKey, (k) => checkKey(k)), params(runs.bytes));
  });

  it(`plain LDH keys (${runs.ldh} inputs): a domain <=> the reference grammar`, { timeout: timeoutFor(runs.ldh, 60) }, () => {
    const ldh = mutated(
      fc.oneof(fc.array(label, { minLength: 1, maxLength: 5 }).map((l) => l.join('.')), host),
      ['.', '-', 'a', '0'],
    ).filter((k) => /^[A-Za-z0-9.-]*$/.test(k));
    fc.assert(fc.property(ldh, (k) => checkLdh(k)), params(runs.ldh));
  });
});

/**
 * A resolver with the memory tier (lookupHot) and one stable policy per domain whose MX names the domain:
 * the answerer's per-zone reply memo must never hand one domain's reply to another (domains collide in its
 * slots), whatever the order of the questions.
 */
function hotWorld() {
  const entries = new Map<string, import('../../src/cache/store.js').CacheEntry>();
  const entryFor = (domain: string) => {
    let e = entries.get(domain);
    if (!e) {
      const policy = parsePolicy(`version: STSv1\nmode: enforce\nmx: mx.${domain}\nmax_age: 86400\n`);
      e = { domain, id: '1', policy, text: '', fetchedAt: 0, expiresAt: 1e15, checkedAt: 0, lastError: null, failures: 0 };
      entries.set(domain, e);
    }
    return e;
  };
  const resolver: HotPolicyLookup = {
    lookupHot: (domain) => ({ kind: 'policy', domain, entry: entryFor(domain), source: 'memory' }),
    async lookup(domain) {
      return { kind: 'policy', domain, entry: entryFor(domain), source: 'memory' };
    },
  };
  return postfixMapHandler(resolver, { default: { strict_testing: false, tlsrpt: false }, tlsrpt: { strict_testing: false, tlsrpt: true } });
}

describe('fuzz: the Postfix socketmap handler', () => {
  it(`the reply memo never answers one domain with another's policy (${Math.ceil(RUNS / 5)} inputs)`, { timeout: 60_000 }, async () => {
    const answer = hotWorld();
    // 3000 domains over 1024 memo slots: collisions are certain.
    const domainArb = fc.nat({ max: 2_999 }).map((n) => `d${n}.example`);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom('postfix', 'tlsrpt'), domainArb), { minLength: 1, maxLength: 20 }), async (questions) => {
        for (const [zone, domain] of questions) {
          const reply = await answer(zone, domain);
          if (!reply.startsWith(`OK secure match=mx.${domain} servername=hostname`)) {
            throw new Error(`${zone} ${domain} answered ${JSON.stringify(reply)}`);
          }
          if (zone === 'tlsrpt' ? !reply.includes(`policy_domain=${domain} `) : reply.includes('policy_type')) {
            throw new Error(`${zone} ${domain}: reply of the wrong zone ${JSON.stringify(reply)}`);
          }
        }
      }),
      params(Math.ceil(RUNS / 5)),
    );
  });

  it(`answers any key with OK or NOTFOUND, never PERM; a key without a domain is told once (${Math.ceil(RUNS / 5)} inputs)`, { timeout: 60_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('postfix', 'tlsrpt', 'x'), fc.oneof(key, bytesKey), async (name, k) => {
        skipped.length = 0;
        const reply = await handler(name, k);
        if (!WELL_FORMED.test(reply)) throw new Error(`reply ${JSON.stringify(reply)} to ${JSON.stringify(k)} is not well-formed`);
        const r = normalizeDomainKey(k);
        const want = r.kind === 'domain' ? [] : [keySkipReason(r)];
        if (r.kind !== 'domain' && reply !== 'NOTFOUND ') throw new Error(`${JSON.stringify(k)} has no domain but got ${JSON.stringify(reply)}`);
        if (skipped.join() !== want.join()) throw new Error(`${JSON.stringify(k)}: told ${JSON.stringify(skipped)}, expected ${JSON.stringify(want)}`);
      }),
      params(Math.ceil(RUNS / 5)),
    );
  });
});
