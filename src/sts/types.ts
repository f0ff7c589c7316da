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
