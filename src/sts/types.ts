/** RFC 8461 nouns as plain data. Nothing here does I/O. */

/** §5: what a sender does with a policy. */
export type Mode = 'enforce' | 'testing' | 'none';

/** §3.1: the `_mta-sts` TXT record: `v=STSv1; id=...` plus extensions. */
export interface StsRecord {
  version: 'STSv1';
  id: string;
  /** Extension fields, in order, as given. */
  extensions: Array<[name: string, value: string]>;
}

/**
 * §3.2 / §4.1: an allowed MX. `*.example.net` is `{ wildcard: true, domain: 'example.net' }` and matches
 * exactly one extra leftmost label. `domain` is lower case, A-label form, no trailing dot.
 */
export interface MxPattern {
  wildcard: boolean;
  domain: string;
}

/** §3.2: a parsed, valid policy. */
export interface Policy {
  version: 'STSv1';
  mode: Mode;
  /** Seconds, 0..31557600. */
  maxAge: number;
  /** Empty only when mode is none. */
  mx: MxPattern[];
  /** Unknown keys, kept in order (§3.2: "ignored" by senders, but shown by `query`). */
  extensions: Array<[key: string, value: string]>;
}

/**
 * A departure from the RFC 8461 §3.2 grammar that the policy parser forgives, because the publisher's
 * intent is unambiguous (docs/decisions.md, "What the policy parser forgives"). Strict senders (mox,
 * go-mtasts, postfix-tlspol) refuse the whole policy over any of them, so each one is reported: counted
 * and logged by the resolver, and a warning with its fix in `check`.
 * - `bom`: a UTF-8 byte order mark before the first field (line 1).
 * - `empty-line`: a line that is empty or only SP/HTAB, anywhere.
 * - `mx-trailing-dot`: one final "." after an mx value (`mx: mx1.example.net.`, `mx: *.example.net.`).
 */
export const DEVIATION_RULES = ['bom', 'empty-line', 'mx-trailing-dot'] as const;
export type DeviationRule = (typeof DEVIATION_RULES)[number];

/** One forgiven deviation, on its 1-based line of the policy body. */
export interface Deviation {
  rule: DeviationRule;
  line: number;
}

/** A parsed policy: what its publisher meant, and every deviation forgiven to read it. */
export interface ParsedPolicy {
  policy: Policy;
  /** In line order; empty for a policy that follows the grammar exactly. */
  deviations: Deviation[];
}
