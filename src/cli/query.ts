/** `mta-sts-sidecar query DOMAIN`: resolve now and show the policy and the exact Postfix reply. */
import { pino } from 'pino';
import { DEFAULT_ZONE, type Config } from '../config/schema.js';
import { mxEnforcement } from '../answer/tlsrpt-auto.js';
import { decideZones } from '../app/zones.js';
import { postfixReply } from '../answer/postfix.js';
import { verdictOf } from '../answer/verdict.js';
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
  if (normal.kind === 'skip') {
    result = { kind: 'none', domain: key, why: 'not-applicable' };
  } else {
    const logger = pino({ level: 'silent' });
    const { resolver, fetcher } = assembleResolver(config, null, logger);
    try {
      result = await resolver.resolveNow(normal.domain);
    } finally {
      await fetcher.close();
    }
  }
  const reply = postfixReply(verdictOf(result), answerOptions);
  out(opts.json ? JSON.stringify({ ...toJson(result, reply), postfixSetup: postfix }, null, 2) : toText(result, reply, postfix));
  return result.kind === 'none' && (result.why === 'failed' || result.why === 'deadline' || result.why === 'invalid-record') ? 1 : 0;
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

function toText(result: LookupResult, reply: string, postfix: PostfixContext): string {
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
  lines.push(['postfix', JSON.stringify(reply)], ['tlsrpt', postfix.tlsrpt], ['mx rule', postfix.mxEnforcement]);
  const width = Math.max(...lines.map(([k]) => k.length)) + 1;
  return lines.map(([k, v]) => `${(k + ':').padEnd(width)} ${v}`).join('\n');
}
