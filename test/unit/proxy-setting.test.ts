/**
 * `fetch.proxy` (src/net/proxy.ts, src/config/types.ts): which proxy a setting names, which hosts go
 * around it (NO_PROXY, curl's rule: the name or a name under it), and what the config refuses.
 */
import { describe, expect, it } from 'vitest';
import { redactConfig, validateConfig } from '../../src/config/schema.js';
import { bypassesProxy, parseNoProxy, proxyFromSetting } from '../../src/net/proxy.js';

describe('proxyFromSetting', () => {
  const cases: Array<[string | null, Record<string, string>, ReturnType<typeof proxyFromSetting>, string]> = [
    [null, {}, null, 'null: direct'],
    ['http://proxy.internal:3128', {}, { url: 'http://proxy.internal:3128', noProxy: [] }, 'a URL: that proxy, no exceptions'],
    ['env', {}, null, 'env without HTTPS_PROXY: direct'],
    ['env', { HTTPS_PROXY: 'http://p:8080' }, { url: 'http://p:8080', noProxy: [] }, 'env: HTTPS_PROXY'],
    ['env', { https_proxy: 'http://p:8080', no_proxy: 'a.test,.b.test' }, { url: 'http://p:8080', noProxy: ['a.test', 'b.test'] }, 'env: lower-case names too'],
    ['env', { HTTPS_PROXY: 'http://p:8080', NO_PROXY: '*' }, { url: 'http://p:8080', noProxy: ['*'] }, 'env: NO_PROXY=*'],
  ];
  it.each(cases)('%s %j -> %j (%s)', (setting, env, expected) => {
    expect(proxyFromSetting(setting, env)).toEqual(expected);
  });

  it('env with an HTTPS_PROXY that is not an http:// URL is an error naming the setting', () => {
    expect(() => proxyFromSetting('env', { HTTPS_PROXY: 'socks5://p:1080' })).toThrow(/fetch\.proxy \(HTTPS_PROXY\)/);
  });
});

describe('bypassesProxy (NO_PROXY)', () => {
  const noProxy = parseNoProxy(' example.com, .internal.test:443 *.corp.test ');
  it.each([
    ['mta-sts.example.com', true, 'a name under an entry'],
    ['example.com', true, 'the entry itself'],
    ['mta-sts.badexample.com', false, 'a suffix that is not at a label boundary'],
    ['mta-sts.x.internal.test', true, 'a leading dot and a port are ignored'],
    ['mta-sts.corp.test', true, 'a leading *. is ignored'],
    ['mta-sts.other.test', false, 'not listed'],
  ])('%s -> %s (%s)', (host, expected) => {
    expect(bypassesProxy(host, noProxy)).toBe(expected);
  });
  it('* sends every host direct', () => expect(bypassesProxy('mta-sts.any.test', ['*'])).toBe(true));
});

describe('fetch.proxy in the config', () => {
  it.each<[unknown, string]>([
    ['https://p:8080', 'TLS to the proxy is not offered'],
    ['socks5://p:1080', 'not a CONNECT proxy'],
    ['http://p:8080/path', 'a path means a misunderstanding'],
    ['p:8080', 'not a URL'],
    [3128, 'not text'],
  ])('%j is refused: %s', (value) => {
    expect(() => validateConfig({ fetch: { proxy: value } })).toThrow(/fetch\.proxy/);
  });
  it('a password in the URL is masked in errors and in output', () => {
    expect(() => validateConfig({ fetch: { proxy: 'https://u:secret@p:8080' } })).toThrow(/u:\*\*\*@/);
    const config = validateConfig({ fetch: { proxy: 'http://u:secret@p:8080' } });
    expect(config.fetch.proxy).toBe('http://u:secret@p:8080');
    expect(redactConfig(config).fetch.proxy).toBe('http://u:***@p:8080');
  });
  it('env and null are accepted as they are', () => {
    expect(validateConfig({ fetch: { proxy: 'env' } }).fetch.proxy).toBe('env');
    expect(validateConfig({}).fetch.proxy).toBeNull();
  });
});
