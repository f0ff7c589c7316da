/**
 * The Postfix socketmap handler: map name -> zone, key -> domain, domain -> lookup -> reply. Nothing
 * here decides policy; it only translates between the wire and the resolver.
 */
import type { Logger } from 'pino';
import { SOCKETMAP } from '../../config/defaults.js';
import type { ZoneConfig } from '../../config/schema.js';
import { NOTFOUND, postfixAnswer, type AnswerOptions } from '../../answer/postfix.js';
import { verdictOf } from '../../answer/verdict.js';
import type { CacheEntry } from '../../cache/store.js';
import type { LookupResult, PolicyLookup } from '../../resolver/types.js';
import { keySkipReason, normalizeDomainKey, type KeySkipReason } from '../../sts/domain.js';
import type { SocketmapHandler } from './session.js';

/** What the handler needs besides the resolver and the zones. */
export interface PostfixMapOptions {
  /** Config socketmap.max_reply_bytes (Postfix's socketmap_max_reply); default SOCKETMAP.MAX_REPLY_BYTES. */
  maxReplyBytes?: number;
  /** Told of every key answered `NOTFOUND ` because it has no policy to look up (a counter by reason). */
  onSkippedKey?: (reason: KeySkipReason) => void;
  /** Skipped keys at debug; replies shortened to fit maxReplyBytes at info (TLSRPT) or warn. */
  logger?: Pick<Logger, 'debug' | 'info' | 'warn'>;
}

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
export function postfixMapHandler(
  resolver: PolicyLookup | HotPolicyLookup,
  zones: Record<string, ZoneConfig>,
  options: PostfixMapOptions = {},
): SocketmapHandler {
  const { onSkippedKey, logger } = options;
  const byName = new Map<string, Zone>();
  for (const [name, zone] of Object.entries(zones)) {
    byName.set(name, {
      options: {
        strictTesting: zone.strict_testing,
        // `auto` is decided by the composition root (src/answer/tlsrpt-auto.ts); undecided is off.
        tlsrpt: zone.tlsrpt === true,
        maxReplyBytes: options.maxReplyBytes ?? SOCKETMAP.MAX_REPLY_BYTES,
      },
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
    if (k.kind !== 'domain') {
      // A key that cannot carry a policy never stops a delivery: Postfix defers on PERM (docs/decisions.md
      // "Lookup keys"). PERM stays for requests that are not socketmap at all (session.ts).
      const reason = keySkipReason(k);
      onSkippedKey?.(reason);
      logger?.debug({ key, reason, ...(k.kind === 'invalid' ? { why: k.why } : {}) }, 'socketmap: key has no policy to look up');
      return NOTFOUND;
    }
    const known = hot?.lookupHot(k.domain);
    if (known !== undefined) return replyOf(known, zone);
    return resolver.lookup(k.domain).then((result) => replyOf(result, zone));
  };

  function replyOf(result: LookupResult, zone: Zone): string {
    if (result.kind === 'none') return NOTFOUND;
    const { entry } = result;
    // The reply depends only on the zone and the entry (its domain, policy and text).
    if (result.domain !== entry.domain) return format(result, zone);
    const slot = memoSlot(entry.domain);
    if (zone.memoEntries[slot] === entry) return zone.memoReplies[slot]!;
    const reply = format(result, zone);
    zone.memoEntries[slot] = entry;
    zone.memoReplies[slot] = reply;
    return reply;
  }

  function format(result: LookupResult, zone: Zone): string {
    const { reply, shortened } = postfixAnswer(verdictOf(result), zone.options);
    if (shortened !== undefined && logger !== undefined) {
      // Once per formatting, which the memo makes about once per cached policy.
      const fields = { domain: result.domain, shortened, bytes: Buffer.byteLength(reply), limit: zone.options.maxReplyBytes };
      const message = 'socketmap: policy reply shortened to fit socketmap.max_reply_bytes';
      if (shortened === 'tlsrpt-dropped' || shortened === 'match-compacted') logger.info(fields, message);
      else logger.warn(fields, message);
    }
    return reply;
  }
}
