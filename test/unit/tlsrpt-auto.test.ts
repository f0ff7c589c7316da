/** `zones.NAME.tlsrpt: auto`: the TLSRPT attributes exactly where the local Postfix reads them (>= 3.10). */
import { describe, expect, it } from 'vitest';
import { decideTlsrpt, mxEnforcement, parsePostfixVersion, type TlsrptSetting } from '../../src/answer/tlsrpt-auto.js';
import { decideZones } from '../../src/app/zones.js';
import { validateConfig } from '../../src/config/schema.js';

describe('parsePostfixVersion: postconf -h mail_version', () => {
  it.each<[string, number[] | undefined]>([
    ['3.7.11', [3, 7, 11]],
    ['3.10.13', [3, 10, 13]],
    ['3.11.6', [3, 11, 6]],
    ['3.12-20260101', [3, 12]],
    ['3.10.5\n', [3, 10, 5]],
    ['', undefined],
    ['postconf: fatal: open /etc/postfix/main.cf', undefined],
  ])('%j -> %j', (text, want) => {
    expect(parsePostfixVersion(text)).toEqual(want);
  });
});

describe('decideTlsrpt', () => {
  it.each<[TlsrptSetting, string | undefined, boolean, string]>([
    [true, undefined, true, 'set on, whatever the Postfix'],
    [false, '3.11.6', false, 'set off, whatever the Postfix'],
    ['auto', '3.7.11', false, 'Debian 12: Postfix before 3.10 refuses the attributes'],
    ['auto', '3.9.9', false, 'just below 3.10'],
    ['auto', '3.10.0', true, '3.10 reads them'],
    ['auto', '3.10.13', true, 'Debian 13'],
    ['auto', '3.11.6', true, '3.11'],
    ['auto', '4.0', true, 'a later major'],
    ['auto', undefined, false, 'no local Postfix: the safe side'],
    ['auto', 'garbage', false, 'an unreadable version: the safe side'],
  ])('%j with Postfix %j -> %j (%s)', (setting, version, on) => {
    const d = decideTlsrpt(setting, version);
    expect(d.on).toBe(on);
    expect(d.why).toMatch(setting === 'auto' ? /^tlsrpt: auto/ : /^tlsrpt: (true|false)$/);
  });
});

describe('mxEnforcement: who keeps mail to the listed MX hosts', () => {
  it.each<[string | undefined, boolean, RegExp]>([
    ['3.10.5', true, /applies it itself/],
    ['3.11.6', true, /applies it itself/],
    ['3.10.4', true, /add smtp_dns_reply_filter = socketmap:inet:127.0.0.1:8461:mx-filter/],
    ['3.11.6', false, /add smtp_dns_reply_filter/],
    ['3.7.11', false, /Postfix 3.7.11 checks the certificate, not the MX host name/],
    [undefined, false, /unknown version/],
  ])('Postfix %j, TLSRPT %j', (version, on, want) => {
    expect(mxEnforcement(version, on, 'mx-filter')).toMatch(want);
  });
});

describe('decideZones', () => {
  it('asks the Postfix version only when a zone says auto, and decides every zone', async () => {
    let asked = 0;
    const ask = async () => {
      asked += 1;
      return '3.10.13';
    };
    const config = validateConfig({ zones: { default: {}, old: { tlsrpt: false }, forced: { tlsrpt: true } } });
    const decided = await decideZones(config, ask);
    expect(asked).toBe(1);
    expect(Object.fromEntries(Object.entries(decided.zones).map(([n, z]) => [n, z.tlsrpt]))).toEqual({ default: true, old: false, forced: true });
    expect(decided.postfixVersion).toBe('3.10.13');

    const none = await decideZones(validateConfig({ zones: { default: { tlsrpt: false } } }), ask);
    expect(asked).toBe(1);
    expect(none.zones.default!.tlsrpt).toBe(false);
  });
});
