/**
 * The Exim request handler: request -> domain -> lookup -> reply. Like the Postfix map handler it decides
 * nothing itself; it translates between the wire, the resolver and src/answer/exim.ts.
 */
import { eximErrorReply, eximMxAllowed, eximMxReply, eximPolicyReply, eximVerdictOf, type EximVerdict } from '../../answer/exim.js';
import type { PolicyLookup } from '../../resolver/types.js';
import { normalizeDomainKey } from '../../sts/domain.js';
import { asciiLower, hostnameProblem, patternText } from '../../sts/mx.js';
import type { EximHandler } from './session.js';

export function eximLookupHandler(resolver: PolicyLookup): EximHandler {
  const verdictFor = async (key: string): Promise<EximVerdict | { error: string }> => {
    // Exim's $domain goes through the same normalisation as a Postfix key (docs/decisions.md "Lookup
    // keys"): address literals, parent probes and single labels have no policy, without a lookup.
    const k = normalizeDomainKey(key);
    if (k.kind === 'invalid') return { error: `invalid domain: ${k.why}` };
    if (k.kind === 'skip') return { kind: 'none', why: 'not-applicable' };
    return eximVerdictOf(await resolver.lookup(k.domain));
  };

  return async (request, log) => {
    if (request.verb === 'mx') {
      // RFC 8461 §4.1 compares the MX host name as found in DNS: case-insensitive, an absolute name's
      // trailing dot ignored. Anything that is not a host name cannot match and is a caller's mistake.
      const host = asciiLower(request.host.replace(/\.$/, ''));
      const problem = hostnameProblem(host);
      if (problem !== undefined) return eximErrorReply(`invalid mx host: ${problem}`);
      const verdict = await verdictFor(request.domain);
      if ('error' in verdict) return eximErrorReply(verdict.error);
      if (!eximMxAllowed(verdict, host) && verdict.kind === 'policy') {
        // Exim logs a refused connection only as "defer (-58)" (ERRNO_EVENT): the reason is logged here.
        const { mode, mx } = verdict.policy;
        log.info({ domain: request.domain, host, mode, mx: mx.map(patternText) }, 'exim: MX host not allowed by the MTA-STS policy');
      }
      return eximMxReply(verdict, host);
    }
    const verdict = await verdictFor(request.domain);
    return 'error' in verdict ? eximErrorReply(verdict.error) : eximPolicyReply(verdict);
  };
}
