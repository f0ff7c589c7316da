/**
 * Facts other specifications fix, which the config's defaults and bounds build on. Not settings: the
 * settings, with their defaults, are declared once in src/config/schema.ts.
 */

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
