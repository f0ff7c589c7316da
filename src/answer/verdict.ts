/** From a lookup result to the plain verdict the reply formatters take. */
import type { LookupResult } from '../resolver/types.js';
import type { DaneResult } from '../resolver/dane.js';
import type { DaneVerdict, Verdict } from './postfix.js';

export function verdictOf(result: LookupResult): Verdict {
  if (result.kind === 'none') return { kind: 'none' };
  return { kind: 'policy', domain: result.domain, policy: result.entry.policy, text: result.entry.text };
}

/** The DANE branch's result as the answer rules take it; `off` when DANE was not looked at. */
export function daneVerdictOf(result: DaneResult | undefined): DaneVerdict {
  return result === undefined ? 'off' : result.state;
}
