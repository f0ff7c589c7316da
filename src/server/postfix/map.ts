/**
 * The Postfix socketmap handler: map name -> zone, key -> domain, domain -> lookup -> reply. Nothing
 * here decides policy; it only translates between the wire and the resolver.
 */
import type { ZoneConfig } from '../../config/schema.js';
import { NOTFOUND, permReply, postfixReply, type AnswerOptions } from '../../answer/postfix.js';
import { verdictOf } from '../../answer/verdict.js';
import type { CacheEntry } from '../../cache/store.js';
import type { LookupResult, PolicyLookup } from '../../resolver/types.js';
import { normalizeDomainKey } from '../../sts/domain.js';
import type { SocketmapHandler } from './session.js';

/** A PolicyLookup that can also answer from memory at once (Resolver.lookupHot). */
export interface HotPolicyLookup extends PolicyLookup {
  /** The answer when the memory tier has it, else undefined (then lookup() answers). */
  lookupHot(domain: string): LookupResult | undefined;
}

/**
 * Replies already formatted for a zone, in a small direct-mapped table keyed by domain: a domain asked
 * again finds its reply without formatting it, and the table stays the same size however many domains are
 * cached (a WeakMap over a million entries doubled the young-generation GC pauses: BENCHMARKS.md).
 */
const MEMO_SLOTS = 1024;

interface Zone {
  options: AnswerOptions;
  /** The cache entry each slot's reply was formatted from (entries are replaced, never changed). */
  memoEntries: Array<CacheEntry | undefined>;
  memoReplies: string[];
}

/** A slot for a domain: a cheap hash of its length and every third character. */
function memoSlot(domain: string): number {
  let h = domain.length;
  for (let i = 0; i < domain.length; i += 3) h = (Math.imul(h, 31) + domain.charCodeAt(i)) | 0;
  return (h ^ (h >>> 10)) & (MEMO_SLOTS - 1);
}

/**
 * Keys that need no lookup, and domains the resolver answers from memory (when it has lookupHot), get
 * their reply as a string at once, without a turn of the promise queue (BENCHMARKS.md); the rest as a
 * promise.
 */
export function postfixMapHandler(resolver: PolicyLookup | HotPolicyLookup, zones: Record<string, ZoneConfig>): SocketmapHandler {
  const byName = new Map<string, Zone>();
  for (const [name, zone] of Object.entries(zones)) {
    byName.set(name, {
      options: { strictTesting: zone.strict_testing, tlsrpt: zone.tlsrpt },
      memoEntries: new Array<CacheEntry | undefined>(MEMO_SLOTS).fill(undefined),
      memoReplies: new Array<string>(MEMO_SLOTS).fill(''),
    });
  }
  const fallback = byName.get('default')!;
  const hot = 'lookupHot' in resolver ? resolver : undefined;

  return (name, key) => {
    // DESIGN.md: the socketmap name selects a zone; unknown names use the default zone.
    const zone = byName.get(name) ?? fallback;
    const k = normalizeDomainKey(key);
    if (k.kind === 'invalid') return permReply(`invalid domain key: ${k.why}`);
    if (k.kind === 'skip') return NOTFOUND;
    const known = hot?.lookupHot(k.domain);
    if (known !== undefined) return replyOf(known, zone);
    return resolver.lookup(k.domain).then((result) => replyOf(result, zone));
  };
}

function replyOf(result: LookupResult, zone: Zone): string {
  if (result.kind === 'none') return NOTFOUND;
  const { entry } = result;
  // The reply depends only on the zone and the entry (its domain, policy and text).
  if (result.domain !== entry.domain) return postfixReply(verdictOf(result), zone.options);
  const slot = memoSlot(entry.domain);
  if (zone.memoEntries[slot] === entry) return zone.memoReplies[slot]!;
  const reply = postfixReply(verdictOf(result), zone.options);
  zone.memoEntries[slot] = entry;
  zone.memoReplies[slot] = reply;
  return reply;
}
