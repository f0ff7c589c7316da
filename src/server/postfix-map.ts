/**
 * The Postfix socketmap handler: map name -> zone, key -> domain, domain -> lookup -> reply. Nothing
 * here decides policy; it only translates between the wire and the resolver.
 */
import type { ZoneConfig } from '../config/schema.js';
import { NOTFOUND, permReply, postfixReply, type AnswerOptions } from '../answer/postfix.js';
import { verdictOf } from '../answer/verdict.js';
import type { PolicyLookup } from '../resolver/types.js';
import { normalizeDomainKey } from '../sts/domain.js';

export type MapHandler = (name: string, key: string) => Promise<string>;

export function postfixMapHandler(resolver: PolicyLookup, zones: Record<string, ZoneConfig>): MapHandler {
  const answerOptions = new Map<string, AnswerOptions>();
  for (const [name, zone] of Object.entries(zones)) {
    answerOptions.set(name, { strictTesting: zone.strict_testing, tlsrpt: zone.tlsrpt });
  }
  const fallback = answerOptions.get('default')!;

  return async (name, key) => {
    // DESIGN.md: the socketmap name selects a zone; unknown names use the default zone.
    const options = answerOptions.get(name) ?? fallback;
    const k = normalizeDomainKey(key);
    if (k.kind === 'invalid') return permReply(`invalid domain key: ${k.why}`);
    if (k.kind === 'skip') return NOTFOUND;
    return postfixReply(verdictOf(await resolver.lookup(k.domain)), options);
  };
}
