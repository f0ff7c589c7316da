/**
 * Secrets in settings, masked for `config check` output and for logs. A Redis URL may carry a password
 * (`redis://:secret@host:6379/0`, RFC 3986 §3.2.1 userinfo); everything else is shown as it is.
 */

export const MASK = '***';

const USERINFO = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#]*)@/;

/**
 * The URL with the password of its userinfo replaced by `***` (`redis://user:***@host`). Userinfo
 * without a colon is masked whole: clients differ on whether it is a user name or a password.
 * Works on the text, so that even a URL that does not parse keeps nothing secret; the userinfo ends
 * at the last `@` of the authority, so an unencoded `@` in a password is masked too.
 */
export function maskUrl(url: string): string {
  return url.replace(USERINFO, (_all, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${scheme}${colon < 0 ? MASK : `${userinfo.slice(0, colon)}:${MASK}`}@`;
  });
}
