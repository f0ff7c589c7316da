/**
 * Facts other specifications fix, which the config's defaults and bounds build on. Not settings: the
 * settings, with their defaults, are declared once in src/config/schema.ts.
 */

/** Values fixed by RFC 8461; not configurable. */
export const RFC8461 = {
  /** §3.1: id is 1*32(ALPHA / DIGIT). */
  ID_MAX_LENGTH: 32,
  /** §3.2: max_age is 1*10(DIGIT), "up to 31557600". */
  MAX_AGE_MAX_SECONDS: 31_557_600,
  MAX_AGE_MAX_DIGITS: 10,
  /** §3.1 sts-version and §3.2 sts-policy-version-value: the only version defined. */
  VERSION: 'STSv1',
  /** §3.1 sts-ext-name and §3.2 sts-policy-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."). */
  EXT_NAME_MAX_LENGTH: 32,
  /** §3.3: "policy bodies ... SHOULD NOT exceed 64 KiB" and senders may discard larger ones. */
  POLICY_MAX_BYTES: 64 * 1024,
  /** §3.3: the well-known path, on port 443 of mta-sts.<domain>. */
  POLICY_PATH: '/.well-known/mta-sts.txt',
  POLICY_HOST_PREFIX: 'mta-sts.',
  POLICY_PORT: 443,
  /** §3.1: the TXT record lives at _mta-sts.<domain>. */
  TXT_PREFIX: '_mta-sts.',
  /** RFC 1035 §2.3.4 */
  DOMAIN_MAX_OCTETS: 253,
  LABEL_MAX_OCTETS: 63,
} as const;

/** Postfix socketmap(5) facts. */
export const SOCKETMAP = {
  /**
   * Postfix's socketmap_max_reply default (postconf(5)); a reply longer than this is an error on the
   * Postfix side. The default of the setting socketmap.max_reply_bytes, which must match Postfix's.
   */
  MAX_REPLY_BYTES: 100_000,
} as const;

/** The actions Postfix 3.11's smtp_requiretls_policy accepts from a lookup table (postconf(5)). */
export const REQUIRETLS_ACTIONS = ['enforce', 'opportunistic+starttls', 'opportunistic'] as const;
export type RequireTlsAction = (typeof REQUIRETLS_ACTIONS)[number];
