/**
 * Values RFC 8461 (and the DNS rules it builds on) fixes: not settings. The config's defaults and bounds
 * build on them (src/config/limits.ts), so they live here, at the bottom of the layers.
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
