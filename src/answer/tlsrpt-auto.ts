/**
 * Whether a zone's Postfix replies carry the TLSRPT attributes (`zones.NAME.tlsrpt`). Postfix 3.10 reads
 * them, and from 3.10.5 on they also make it apply RFC 8461 §4.1's exact MX matching itself; Postfix
 * before 3.10 refuses a reply that carries them (a table error, so the mail defers). `auto`, the default,
 * turns them on exactly when the local Postfix is 3.10 or newer. Pure: the version is found in src/app.
 */

export type TlsrptSetting = boolean | 'auto';

/** The first Postfix release that parses the TLSRPT attributes of a policy table reply. */
export const TLSRPT_MIN_POSTFIX: readonly [number, number] = [3, 10];

export interface TlsrptDecision {
  on: boolean;
  /** Why, in words, for the start-up log, `config check` and `query`. */
  why: string;
}

/** `3.10.13` -> [3, 10, 13]; undefined for anything that is not a Postfix mail_version. */
export function parsePostfixVersion(text: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})(?:\.(\d{1,4}))?(?:[-.][0-9A-Za-z.-]*)?$/.exec(text.trim());
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), ...(m[3] === undefined ? [] : [Number(m[3])])];
}

function atLeast(version: readonly number[], floor: readonly number[]): boolean {
  for (let i = 0; i < floor.length; i++) {
    const v = version[i] ?? 0;
    if (v !== floor[i]) return v > floor[i]!;
  }
  return true;
}

/**
 * `postfixVersion` is the local `postconf -h mail_version`, or undefined when there is no local Postfix
 * (a daemon serving Postfix on other hosts): then `auto` stays off, the safe side for an old Postfix.
 */
export function decideTlsrpt(setting: TlsrptSetting, postfixVersion: string | undefined): TlsrptDecision {
  if (setting === true) return { on: true, why: 'tlsrpt: true' };
  if (setting === false) return { on: false, why: 'tlsrpt: false' };
  if (postfixVersion === undefined) return { on: false, why: 'tlsrpt: auto, and no local Postfix answered (postconf -d mail_version): off' };
  const version = parsePostfixVersion(postfixVersion);
  if (version === undefined) return { on: false, why: `tlsrpt: auto, and Postfix's mail_version ${JSON.stringify(postfixVersion)} is not a version: off` };
  const floor = TLSRPT_MIN_POSTFIX.join('.');
  return atLeast(version, TLSRPT_MIN_POSTFIX)
    ? { on: true, why: `tlsrpt: auto, local Postfix ${postfixVersion} >= ${floor}: on` }
    : { on: false, why: `tlsrpt: auto, local Postfix ${postfixVersion} < ${floor} (it would refuse the attributes): off` };
}

/** The first Postfix release that applies RFC 8461 §4.1 itself, given the TLSRPT attributes. */
export const EXACT_MX_MIN_POSTFIX: readonly [number, number, number] = [3, 10, 5];

/**
 * Who makes Postfix deliver only to the MX hosts a policy lists (RFC 8461 §4.1), in words for `query` and
 * `check`: Postfix itself from 3.10.5 with the TLSRPT attributes; before that only the DNS reply filter
 * (`match=` constrains the certificate, not the host connected to: docs/decisions.md).
 */
export function mxEnforcement(postfixVersion: string | undefined, tlsrptOn: boolean, filterName: string): string {
  const version = postfixVersion === undefined ? undefined : parsePostfixVersion(postfixVersion);
  const filterLine = `smtp_dns_reply_filter = socketmap:inet:127.0.0.1:8461:${filterName} in main.cf`;
  if (version !== undefined && atLeast(version, EXACT_MX_MIN_POSTFIX) && tlsrptOn) {
    return `Postfix ${postfixVersion} applies it itself (TLSRPT attributes on); ${filterLine} does no harm`;
  }
  const who = postfixVersion === undefined ? 'a Postfix of unknown version' : `Postfix ${postfixVersion}`;
  return `${who} checks the certificate, not the MX host name: add ${filterLine} (any Postfix >= 3.0)`;
}
