/** The daemon's log lines: JSON by default, one readable line per event with `pretty`. */
import { describe, expect, it } from 'vitest';
import { createLogger, prettyLine } from '../../src/app/log.js';

const T = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const json = (o: object) => JSON.stringify({ level: 30, time: T, service: 'mta-sts-sidecar', ...o }) + '\n';

describe('prettyLine', () => {
  it.each<[string, string, string]>([
    ['time, level, message, then the fields', json({ msg: 'policy learned', domain: 'example.com', id: '2024', mode: 'enforce' }), '2026-01-02T03:04:05.678Z INFO  policy learned domain=example.com id=2024 mode=enforce\n'],
    ['values with spaces are quoted', json({ level: 40, msg: 'policy discovery failed', domain: 'x.test', err: 'connect ECONNREFUSED 192.0.2.1:443' }), '2026-01-02T03:04:05.678Z WARN  policy discovery failed domain=x.test err="connect ECONNREFUSED 192.0.2.1:443"\n'],
    ['numbers, booleans and lists', json({ msg: 'config reloaded', resolverRebuilt: false, loaded: 3, changed: ['zones'] }), '2026-01-02T03:04:05.678Z INFO  config reloaded resolverRebuilt=false loaded=3 changed=["zones"]\n'],
    ['an empty string is visible', json({ level: 20, msg: 'x', reply: '' }), '2026-01-02T03:04:05.678Z DEBUG x reply=""\n'],
    ['not JSON passes through', 'plain text', 'plain text\n'],
  ])('%s', (_rule, input, want) => {
    expect(prettyLine(input)).toBe(want);
  });

  it('an error shows its message inline and its stack below', () => {
    const line = prettyLine(json({ level: 50, msg: 'http endpoint failed', err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at f (x.js:1:1)' } }));
    expect(line).toBe('2026-01-02T03:04:05.678Z ERROR http endpoint failed err=boom\n    Error: boom\n        at f (x.js:1:1)\n');
  });
});

describe('createLogger', () => {
  it('json: one JSON object per line with the service name', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', format: 'json' }, { write: (s) => lines.push(s) });
    logger.info({ domain: 'example.com', id: '1' }, 'policy learned');
    logger.debug('not at info');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, service: 'mta-sts-sidecar', domain: 'example.com', id: '1', msg: 'policy learned' });
  });

  it('pretty: the same event as one readable line; the level can change at run time', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'warn', format: 'pretty' }, { write: (s) => lines.push(s) });
    logger.info('hidden');
    logger.level = 'info';
    logger.info({ domain: 'example.com' }, 'policy expired');
    expect(lines).toEqual([expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO  policy expired domain=example\.com\n$/)]);
  });
});
