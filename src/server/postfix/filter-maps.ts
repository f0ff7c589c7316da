/**
 * The handlers behind the reserved socketmap names (DESIGN.md): `mx-filter` answers Postfix's
 * `smtp_dns_reply_filter` lookups and `requiretls` its `smtp_requiretls_policy` lookups. Like the policy
 * map they only translate: key -> domain -> lookup -> src/answer/postfix-filters.ts.
 */
import { NOTFOUND } from '../../answer/postfix.js';
import { mxFilterReply, requireTlsReply } from '../../answer/postfix-filters.js';
import type { RequireTlsAction } from '../../config/limits.js';
import { verdictOf } from '../../answer/verdict.js';
import type { LookupResult, PolicyLookup } from '../../resolver/types.js';
import { normalizeDomainKey } from '../../sts/domain.js';
import { parseDnsReplyKey } from './dns-reply.js';
import type { HotPolicyLookup } from './map.js';
import type { SocketmapHandler } from './session.js';

export interface ReservedMapNames {
  /** config socketmap.mx_filter_name */
  mxFilter: string;
  /** config socketmap.requiretls_name */
  requireTls: string;
}

export interface FilterOptions {
  /** The default zone's strict_testing: a testing policy drops MX hosts and asks REQUIRETLS only then. */
  strictTesting: boolean;
  /** The REQUIRETLS action for domains without an enforced policy (config socketmap.requiretls_otherwise). */
  requireTlsOtherwise: RequireTlsAction;
}

/** Answers from memory at once when it can, else after the lookup (which joins a resolution under way). */
function answer(resolver: PolicyLookup | HotPolicyLookup, domain: string, reply: (r: LookupResult) => string): string | Promise<string> {
  const known = 'lookupHot' in resolver ? resolver.lookupHot(domain) : undefined;
  if (known !== undefined) return reply(known);
  return resolver.lookup(domain).then(reply);
}

/**
 * `smtp_dns_reply_filter`: an MX record of a domain whose policy we enforce is dropped (`OK IGNORE`) when
 * its host matches no pattern. Every other record, and every key we cannot read, is NOTFOUND at once:
 * only a valid enforced policy may stop a delivery. The first message to a new domain arrives here
 * before the TLS policy lookup; its lookup starts the resolution, which the policy lookup then finds.
 */
export function mxFilterHandler(resolver: PolicyLookup | HotPolicyLookup, options: FilterOptions): (key: string) => string | Promise<string> {
  return (key) => {
    const record = parseDnsReplyKey(key);
    if (record === undefined || record.kind !== 'mx') return NOTFOUND;
    const owner = normalizeDomainKey(record.owner);
    if (owner.kind !== 'domain') return NOTFOUND;
    return answer(resolver, owner.domain, (r) => mxFilterReply(verdictOf(r), record.exchange, options.strictTesting));
  };
}

/**
 * `smtp_requiretls_policy`: the key is the next-hop domain. Postfix treats "no match" as `enforce`, so
 * every key gets an explicit action: `enforce` where the policy is enforced, the configured one elsewhere
 * (including keys that cannot carry a policy).
 */
export function requireTlsHandler(resolver: PolicyLookup | HotPolicyLookup, options: FilterOptions): (key: string) => string | Promise<string> {
  const otherwise = `OK ${options.requireTlsOtherwise}`;
  return (key) => {
    const k = normalizeDomainKey(key);
    if (k.kind !== 'domain') return otherwise;
    return answer(resolver, k.domain, (r) => requireTlsReply(verdictOf(r), options.strictTesting, options.requireTlsOtherwise));
  };
}

/** Sends the reserved names to their handlers and every other name (a zone) to the policy map. */
export function withReservedMaps(
  names: ReservedMapNames,
  reserved: { mxFilter: (key: string) => string | Promise<string>; requireTls: (key: string) => string | Promise<string> },
  policyMap: SocketmapHandler,
): SocketmapHandler {
  return (name, key) => {
    if (name === names.mxFilter) return reserved.mxFilter(key);
    if (name === names.requireTls) return reserved.requireTls(key);
    return policyMap(name, key);
  };
}
