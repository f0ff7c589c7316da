/** From a lookup result to the plain verdict the reply formatters take. */
import type { LookupResult } from '../resolver/types.js';
import type { Verdict } from './postfix.js';

export function verdictOf(result: LookupResult): Verdict {
  if (result.kind === 'none') return { kind: 'none' };
  return { kind: 'policy', domain: result.domain, policy: result.entry.policy, text: result.entry.text };
}
