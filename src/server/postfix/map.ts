/**
 * The Postfix socketmap handler: map name -> zone, key -> domain, domain -> lookup -> reply. Nothing
 * here decides policy; it only translates between the wire and the resolver.
 */
import type { Logger } from 'pino';
import { SOCKETMAP } from '../../config/defaults.js';
import type { ZoneConfig } from '../../config/schema.js';
import { DANE_ONLY_REPLY, DANE_REPLY, NOTFOUND, postfixAnswer, postfixDaneAnswer, type AnswerOptions } from '../../answer/postfix.js';
import { verdictOf } from '../../answer/verdict.js';
import type { DaneLookup, DaneResult } from '../../resolver/dane.js';
import type { CacheEntry } from '../../cache/store.js';
import type { LookupResult, PolicyLookup } from '../../resolver/types.js';
import { keySkipReason, normalizeDomainKey, type KeySkipReason } from '../../sts/domain.js';
import type { SocketmapHandler } from './session.js';

/** A zone's settings as the handler reads them; without `dane` (a caller that predates it) DANE is off. */
export type MapZone = Pick<ZoneConfig, 'strict_testing' | 'tlsrpt'> & Partial<Pick<ZoneConfig, 'dane'>>;

/** What the handler needs besides the resolver and the zones. */
export interface PostfixMapOptions {
  /** Config socketmap.max_reply_bytes (Postfix's socketmap_max_reply); default SOCKETMAP.MAX_REPLY_BYTES. */
  maxReplyBytes?: number;
  /** Told of every key answered `NOTFOUND ` because it has no policy to look up (a counter by reason). */
  onSkippedKey?: (reason: KeySkipReason) => void;
  /** Skipped keys at debug; replies shortened to fit maxReplyBytes at info (TLSRPT) or warn. */
  logger?: Pick<Logger, 'debug' | 'info' | 'warn'>;
  /**
   * The DANE branch (src/resolver/dane.ts), asked for every domain of a zone with `dane: auto` while
   * `active()` (the resolver validates DNSSEC); without it, or inactive, replies are MTA-STS only.
   */
  dane?: DaneLookup;
}

/** What the handler needs of the DANE branch (declared beside it: the Exim handler takes the same). */
export type { DaneLookup } from '../../resolver/dane.js';

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
  /** `zones.NAME.dane: auto`: DANE first (RFC 8461 §2), when options.dane is active. */
  dane: boolean;
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
  zones: Record<string, MapZone>,
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
      dane: zone.dane === 'auto',
      memoEntries: new Array<CacheEntry | undefined>(MEMO_SLOTS).fill(undefined),
      memoReplies: new Array<string>(MEMO_SLOTS).fill(''),
    });
  }
  const fallback = byName.get('default')!;
  const hot = 'lookupHot' in resolver ? resolver : undefined;
  const dane = options.dane;

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
    if (zone.dane && dane?.active()) return withDane(k.domain, zone, dane);
    const known = hot?.lookupHot(k.domain);
    if (known !== undefined) return replyOf(known, zone);
    return resolver.lookup(k.domain).then((result) => replyOf(result, zone));
  };

  /**
   * DANE and MTA-STS looked up side by side (each with its own cache), the reply made from both every
   * time (src/answer/postfix.ts postfixDaneAnswer): a fresher DANE result takes effect at once.
   */
  function withDane(domain: string, zone: Zone, d: DaneLookup): string | Promise<string> {
    const daneKnown = d.lookupHot(domain);
    // Where DANE applies the MTA-STS policy does not matter to the reply: no need to wait for it.
    if (daneKnown?.state === 'dane-only') return DANE_ONLY_REPLY;
    if (daneKnown?.state === 'dane') return DANE_REPLY;
    const stsKnown = hot?.lookupHot(domain);
    if (daneKnown !== undefined && stsKnown !== undefined) return combine(daneKnown, stsKnown, zone);
    return Promise.all([daneKnown ?? d.lookup(domain), stsKnown ?? resolver.lookup(domain)]).then(([daneResult, sts]) => combine(daneResult, sts, zone));
  }

  function combine(daneResult: DaneResult, sts: LookupResult, zone: Zone): string {
    // DANE proven absent (or null MX): the MTA-STS reply, through the memo as without DANE.
    if (daneResult.state === 'none' || daneResult.state === 'null-mx') return replyOf(sts, zone);
    return postfixDaneAnswer(daneResult.state, verdictOf(sts), zone.options).reply;
  }

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
