/**
 * What Postfix is told at the two reserved socketmap names beside the TLS policy map (DESIGN.md):
 *
 * - `mx-filter`, for `smtp_dns_reply_filter` (Postfix >= 3.0): `OK IGNORE` drops an MX record whose host
 *   the domain's enforced policy does not list (RFC 8461 §4.1); when every MX is dropped Postfix defers
 *   the mail ("DNS reply filter drops all results"), which is what §4.2 asks for an enforce policy.
 * - `requiretls`, for `smtp_requiretls_policy` (Postfix >= 3.11): `OK enforce` for a domain whose policy
 *   is enforced, so a REQUIRETLS message goes only over TLS with a matching certificate; the configured
 *   action for every other domain.
 *
 * Pure. Only a valid enforced policy drops an MX or asks for `enforce`; anything else is NOTFOUND, which
 * leaves Postfix's own behaviour in place.
 */
import type { RequireTlsAction } from '../config/limits.js';
import { policyAllowsMx } from '../sts/mx.js';
import { isEnforced, NOTFOUND, type Verdict } from './postfix.js';

/** socketmap(5) reply telling dns_rr_filter_execute() to drop the record (its IGNORE action). */
export const IGNORE_REPLY = 'OK IGNORE';

/** Whether `verdict` carries a policy the MTA must enforce. */
function enforced(verdict: Verdict, strictTesting: boolean): boolean {
  return verdict.kind === 'policy' && isEnforced(verdict.policy, strictTesting);
}

/** The filter's answer for MX host `exchange` (lower case, no trailing dot) of the verdict's domain. */
export function mxFilterReply(verdict: Verdict, exchange: string, strictTesting: boolean): string {
  if (verdict.kind === 'none' || !isEnforced(verdict.policy, strictTesting)) return NOTFOUND;
  // RFC 8461 §4.1: the MX host must match a pattern (exact name, or "*." plus exactly one label).
  return policyAllowsMx(verdict.policy, exchange) ? NOTFOUND : IGNORE_REPLY;
}

/** The REQUIRETLS action for the verdict's domain; `otherwise` for every domain without an enforced policy. */
export function requireTlsReply(verdict: Verdict, strictTesting: boolean, otherwise: RequireTlsAction): string {
  return `OK ${enforced(verdict, strictTesting) ? 'enforce' : otherwise}`;
}
