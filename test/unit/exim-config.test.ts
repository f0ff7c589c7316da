/** The `exim` section of the config: no listener by default, the same listen syntax as socketmap. */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { eximServerOptions } from '../../src/server/exim/session.js';

describe('config exim section', () => {
  it('by default there is no Exim listener', () => {
    expect(validateConfig({}).exim).toEqual({
      listen: [],
      unix_mode: 0o660,
      unix_owner: null,
      unix_group: null,
      max_request_bytes: 1024,
      max_connections: 1000,
      request_timeout_ms: 10_000,
      shutdown_grace_ms: 5_000,
    });
  });

  it('takes tcp and unix listeners and the limits', () => {
    const c = validateConfig({
      exim: {
        listen: ['tcp:127.0.0.1:8463', 'unix:/run/mta-sts-sidecar/exim.sock'],
        unix_mode: '0640',
        max_request_bytes: 512,
        max_connections: 10,
        request_timeout_ms: 2000,
      },
    });
    expect(c.exim).toEqual({
      listen: ['tcp:127.0.0.1:8463', 'unix:/run/mta-sts-sidecar/exim.sock'],
      unix_mode: 0o640,
      unix_owner: null,
      unix_group: null,
      max_request_bytes: 512,
      max_connections: 10,
      request_timeout_ms: 2000,
      shutdown_grace_ms: 5_000,
    });
  });

  it.each<[string, unknown, string]>([
    ['a listen address without scheme', { listen: ['127.0.0.1:8463'] }, 'exim.listen[0]: must be tcp:HOST:PORT or unix:/absolute/path'],
    ['a relative unix path', { listen: ['unix:exim.sock'] }, 'exim.listen[0]:'],
    ['a request limit below 64 bytes', { max_request_bytes: 10 }, 'exim.max_request_bytes:'],
    ['an unknown key', { zone: 'default' }, 'exim.zone: unknown key'],
  ])('refuses %s, naming the key', (_rule, exim, message) => {
    expect(() => validateConfig({ exim })).toThrow(message);
  });

  it('eximServerOptions fills in the defaults', () => {
    expect(eximServerOptions({ requestTimeoutMs: 5 })).toEqual({
      maxRequestBytes: 1024,
      maxConnections: 1000,
      requestTimeoutMs: 5,
      unixMode: 0o660,
    });
  });
});
