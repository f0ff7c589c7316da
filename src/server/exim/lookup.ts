/**
 * The Exim request handler: request -> domain -> lookup -> reply. Like the Postfix map handler it decides
 * nothing itself; it translates between the wire, the resolver and src/answer/exim.ts.
 */
import type { Logger } from 'pino';
import { eximMxAllowed, eximMxReply, eximPolicyReply, eximVerdictOf, type EximVerdict } from '../../answer/exim.js';
import type { DaneVerdict } from '../../answer/postfix.js';
import type { DaneLookup } from '../../resolver/dane.js';
import type { PolicyLookup } from '../../resolver/types.js';
import { keySkipReason, normalizeDomainKey, type KeySkipReason } from '../../sts/domain.js';
import { asciiLower, patternText } from '../../sts/mx.js';
import type { EximHandler } from './session.js';

/** What the handler needs besides the resolver. */
export interface EximLookupOptions {
  /** Told of every domain answered `mode=none` because it has no policy to look up (a counter by reason). */
  onSkippedKey?: (reason: KeySkipReason) => void;
  /**
   * The DANE branch: when given and active, `policy` replies gain `dane=yes|no` (src/answer/exim.ts), so
   * the contrib router leaves DANE domains to Exim's own DANE (RFC 8461 §2). Exim has no zones: the
   * composition root decides from the default zone's `dane` whether to pass it.
   */
  dane?: DaneLookup;
}

export function eximLookupHandler(resolver: PolicyLookup, options: EximLookupOptions = {}): EximHandler {
  const { onSkippedKey, dane } = options;
  /** The domain's DANE state for the reply, `off` when DANE is not looked at (or the key is no domain). */
  const daneFor = async (key: string): Promise<DaneVerdict> => {
    if (dane === undefined || !dane.active()) return 'off';
    const k = normalizeDomainKey(key);
    if (k.kind !== 'domain') return 'off';
    return (dane.lookupHot(k.domain) ?? (await dane.lookup(k.domain))).state;
  };
  const verdictFor = async (key: string, log: Logger): Promise<EximVerdict> => {
    // Exim's $domain goes through the same normalisation as a Postfix key (docs/decisions.md "Lookup
    // keys"): a key with no policy to look up is `mode=none reason=<class>`, never an error.
    const k = normalizeDomainKey(key);
    if (k.kind !== 'domain') {
      const reason = keySkipReason(k);
      onSkippedKey?.(reason);
      log.debug({ domain: key, reason, ...(k.kind === 'invalid' ? { why: k.why } : {}) }, 'exim: domain has no policy to look up');
      return { kind: 'none', why: reason };
    }
    return eximVerdictOf(await resolver.lookup(k.domain));
  };

  return async (request, log) => {
    if (request.verb === 'mx') {
      // RFC 8461 §4.1 compares the MX host name as found in DNS: case-insensitive, an absolute name's
      // trailing dot ignored. A name that is no host name matches no pattern (eximMxAllowed): refused
      // under a policy, allowed without one, never an error that would defer mail with no policy.
      const host = asciiLower(request.host.replace(/\.$/, ''));
      const verdict = await verdictFor(request.domain, log);
      if (!eximMxAllowed(verdict, host) && verdict.kind === 'policy') {
        // Exim logs a refused connection only as "defer (-58)" (ERRNO_EVENT): the reason is logged here.
        const { mode, mx } = verdict.policy;
        log.info({ domain: request.domain, host, mode, mx: mx.map(patternText) }, 'exim: MX host not allowed by the MTA-STS policy');
      }
      return eximMxReply(verdict, host);
    }
    const [verdict, daneState] = await Promise.all([verdictFor(request.domain, log), daneFor(request.domain)]);
    return eximPolicyReply(verdict, daneState);
  };
}
