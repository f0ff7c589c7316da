/** `mta-sts-sidecar query DOMAIN`: resolve now and show the policy and the exact Postfix reply. */
import { pino } from 'pino';
import { DEFAULT_ZONE, type Config } from '../config/schema.js';
import { mxEnforcement } from '../answer/tlsrpt-auto.js';
import { decideZones } from '../app/zones.js';
import { postfixDaneAnswer } from '../answer/postfix.js';
import { daneVerdictOf, verdictOf } from '../answer/verdict.js';
import { createSecureDnsClient, detectValidation } from '../net/secure-dns.js';
import { DaneResolver, type DaneResult } from '../resolver/dane.js';
import { tlsaText } from '../resolver/tlsa.js';
import { assembleResolver } from '../resolver/assemble.js';
import type { LookupResult } from '../resolver/types.js';
import { normalizeDomainKey } from '../sts/domain.js';
import { patternText } from '../sts/mx.js';
import { REASONS } from '../errors.js';

export interface QueryOptions {
  json: boolean;
  zone: string;
}

const WHY_TEXT = {
  'not-applicable': 'MTA-STS does not apply to this key',
  'no-record': 'no _mta-sts TXT record with v=STSv1',
  'invalid-record': 'the _mta-sts TXT record is unusable',
  failed: 'discovery or fetch failed',
  deadline: 'no answer within the deadline',
  paced: 'the policy host was fetched moments ago and its policy has already expired',
  overload: 'too many resolutions under way (resolver.max_pending); not resolved',
} as const;

/** Returns the process exit status: 0 policy or clean absence, 1 failure. */
export async function runQuery(key: string, config: Config, opts: QueryOptions, out: (s: string) => void): Promise<number> {
  const decided = await decideZones(config);
  const zoneName = Object.hasOwn(decided.zones, opts.zone) ? opts.zone : DEFAULT_ZONE;
  const zone = decided.zones[zoneName]!;
  const tlsrpt = decided.tlsrpt[zoneName]!;
  const answerOptions = { strictTesting: zone.strict_testing, tlsrpt: tlsrpt.on, maxReplyBytes: config.socketmap.max_reply_bytes };
  const postfix: PostfixContext = {
    tlsrpt: tlsrpt.why,
    mxEnforcement: mxEnforcement(decided.postfixVersion, tlsrpt.on, config.socketmap.mx_filter_name),
  };
  const normal = normalizeDomainKey(key);
  if (normal.kind === 'invalid') throw new Error(`invalid domain ${JSON.stringify(key)}: ${normal.why}`);

  let result: LookupResult;
  let dane: DaneFinding = { checked: false, why: 'not a domain to look up' };
  if (normal.kind === 'skip') {
    result = { kind: 'none', domain: key, why: 'not-applicable' };
  } else {
    const logger = pino({ level: 'silent' });
    const { resolver, fetcher } = assembleResolver(config, null, logger);
    try {
      // DANE (RFC 7672) beside MTA-STS, as the daemon does for the zone (src/server/postfix/map.ts).
      [result, dane] = await Promise.all([resolver.resolveNow(normal.domain), daneFinding(normal.domain, config, zone.dane)]);
    } finally {
      await fetcher.close();
    }
  }
  const reply = postfixDaneAnswer(daneVerdictOf(dane.checked ? dane.result : undefined), verdictOf(result), answerOptions).reply;
  out(opts.json ? JSON.stringify({ ...toJson(result, reply), dane: daneJson(dane), postfixSetup: postfix }, null, 2) : toText(result, reply, postfix, dane));
  const daneFailed = dane.checked && dane.result.state === 'temp';
  return daneFailed || (result.kind === 'none' && (result.why === 'failed' || result.why === 'deadline' || result.why === 'invalid-record')) ? 1 : 0;
}

/** What `query` learned about DANE: the result, or why it was not looked up. */
type DaneFinding = { checked: true; result: DaneResult } | { checked: false; why: string };

async function daneFinding(domain: string, config: Config, setting: 'auto' | 'off'): Promise<DaneFinding> {
  if (setting === 'off') return { checked: false, why: 'the zone says dane: off' };
  const client = createSecureDnsClient({ servers: config.dns.servers, timeoutMs: config.dns.timeout_ms, tries: config.dns.tries });
  const validation = await detectValidation(client);
  if (!validation.validates) return { checked: false, why: `the resolver does not validate DNSSEC (${validation.detail})` };
  return { checked: true, result: await new DaneResolver(client, { maxEntries: 1 }).resolve(domain) };
}

const DANE_STATE_TEXT = {
  'dane-only': 'every MX host has usable TLSA records: Postfix is told dane-only',
  dane: 'some MX hosts have TLSA records: Postfix is told dane',
  none: 'DANE does not apply: MTA-STS decides',
  'null-mx': 'null MX: the domain takes no mail',
  temp: 'a DANE lookup failed: never downgraded to the MTA-STS answer',
} as const;

function daneJson(dane: DaneFinding) {
  if (!dane.checked) return { checked: false, why: dane.why };
  const { state, why, detail, hosts } = dane.result;
  return {
    checked: true,
    state,
    why,
    ...(detail ? { detail } : {}),
    hosts: hosts.map((h) => ({
      name: h.name,
      state: h.state,
      ...(h.tlsaName ? { tlsaName: h.tlsaName } : {}),
      ...(h.detail ? { detail: h.detail } : {}),
      records: h.records.map((r) => ({ record: tlsaText(r.record), usable: r.unusable === null, ...(r.unusable ? { why: r.unusable } : {}) })),
    })),
  };
}

function daneLines(dane: DaneFinding): Array<[string, string]> {
  if (!dane.checked) return [['dane', `not checked: ${dane.why}`]];
  const r = dane.result;
  const lines: Array<[string, string]> = [['dane', `${r.state} (${r.why}): ${DANE_STATE_TEXT[r.state]}${r.detail ? `; ${r.detail}` : ''}`]];
  for (const h of r.hosts) {
    const usable = h.records.filter((x) => x.unusable === null).length;
    const records = h.records.length > 0 ? `, ${usable} of ${h.records.length} usable: ${h.records.map((x) => tlsaText(x.record) + (x.unusable ? ` (${x.unusable})` : '')).join('; ')}` : '';
    lines.push([`dane ${h.name}`, `${h.state}${h.detail ? ` (${h.detail})` : ''}${records}`]);
  }
  return lines;
}

function toJson(result: LookupResult, reply: string) {
  if (result.kind === 'none') {
    return {
      domain: result.domain,
      result: 'none',
      why: result.why,
      ...(result.error ? { error: { reason: result.error.reason, message: result.error.message } } : {}),
      postfix: reply,
    };
  }
  const { entry } = result;
  return {
    domain: result.domain,
    result: 'policy',
    source: result.source,
    id: entry.id,
    policy: { ...entry.policy, mx: entry.policy.mx.map(patternText) },
    fetchedAt: new Date(entry.fetchedAt).toISOString(),
    expiresAt: new Date(entry.expiresAt).toISOString(),
    text: entry.text,
    postfix: reply,
  };
}

/** What about the local Postfix shapes the reply: TLSRPT attributes, and who enforces the MX list. */
interface PostfixContext {
  tlsrpt: string;
  mxEnforcement: string;
}

function toText(result: LookupResult, reply: string, postfix: PostfixContext, dane: DaneFinding): string {
  const lines: Array<[string, string]> = [['domain', result.domain]];
  if (result.kind === 'none') {
    lines.push(['result', `no policy: ${WHY_TEXT[result.why]}`]);
    if (result.error) lines.push(['reason', `${result.error.reason} (${REASONS[result.error.reason]}): ${result.error.message}`]);
  } else {
    const { entry } = result;
    lines.push(
      ['result', 'policy'],
      ['txt id', entry.id],
      ['mode', entry.policy.mode],
      ['max_age', `${entry.policy.maxAge} s (until ${new Date(entry.expiresAt).toISOString()})`],
      ['mx', entry.policy.mx.map(patternText).join(', ') || '(none)'],
    );
  }
  lines.push(...daneLines(dane));
  lines.push(['postfix', JSON.stringify(reply)], ['tlsrpt', postfix.tlsrpt], ['mx rule', postfix.mxEnforcement]);
  const width = Math.max(...lines.map(([k]) => k.length)) + 1;
  return lines.map(([k, v]) => `${(k + ':').padEnd(width)} ${v}`).join('\n');
}
