/**
 * The zones as the Postfix map handler needs them: `tlsrpt: auto` decided by the local Postfix's version
 * (src/answer/tlsrpt-auto.ts). Used by the daemon at start and reload, and by `query` and `config check`.
 */
import type { Config, ZoneConfig } from '../config/schema.js';
import { decideTlsrpt, type TlsrptDecision } from '../answer/tlsrpt-auto.js';
import { localPostfixVersion } from './postfix-version.js';

export interface DecidedZones {
  /** Every zone with `tlsrpt` true or false. */
  zones: Record<string, ZoneConfig>;
  /** Per zone: whether the TLSRPT attributes are on, and why. */
  tlsrpt: Record<string, TlsrptDecision>;
  /** The local Postfix's mail_version, when it was asked (only when some zone says `auto`). */
  postfixVersion: string | undefined;
}

export async function decideZones(config: Config, askVersion: () => Promise<string | undefined> = localPostfixVersion): Promise<DecidedZones> {
  const needsVersion = Object.values(config.zones).some((z) => z.tlsrpt === 'auto');
  const postfixVersion = needsVersion ? await askVersion() : undefined;
  const zones: Record<string, ZoneConfig> = {};
  const tlsrpt: Record<string, TlsrptDecision> = {};
  for (const [name, zone] of Object.entries(config.zones)) {
    const decision = decideTlsrpt(zone.tlsrpt, postfixVersion);
    tlsrpt[name] = decision;
    zones[name] = { ...zone, tlsrpt: decision.on };
  }
  return { zones, tlsrpt, postfixVersion };
}
