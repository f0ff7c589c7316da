/**
 * `mta-sts-sidecar config check` and `serve` with postfix-mta-sts-resolver's config, as an operator runs
 * them: the built binary, exit codes, stdout and stderr.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { defaultConfig, validateConfig } from '../../src/config/schema.js';
import { assertBuilt, freePort, runCli, startSidecar } from '../lab/sidecar.js';
import { connectSocketmap } from '../lab/socketmap-client.js';


const cli = (...args: string[]) => runCli(args);
/** As a user other than root would run it, with the cache under `state` (XDG_STATE_HOME). */
const cliAsUserWithState = (state: string, ...args: string[]) => {
  const { STATE_DIRECTORY: _ignored, ...env } = process.env;
  return runCli(args, { env: { ...env, XDG_STATE_HOME: state } });
};

const RESOLVER_YML = `
host: 127.0.0.1
port: 8461
reuse_port: true
shutdown_timeout: 20
cache:
  type: internal
  options:
    cache_size: 10000
default_zone:
  strict_testing: false
  timeout: 4
zones:
  myzone:
    strict_testing: true
    timeout: 4
`;

let dir: string;
const file = async (name: string, content: string) => {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
};

beforeAll(async () => {
  assertBuilt();
  dir = await mkdtemp(join(tmpdir(), 'config-check-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('mta-sts-sidecar config check', () => {
  it('prints the effective settings of our config, defaults filled in, as YAML that reads back the same', async () => {
    const path = await file('ours.yml', 'socketmap: { listen: ["unix:/run/mta-sts/s.sock"], unix_mode: "0600" }\nzones: { strict: { strict_testing: true } }\n');
    const r = await cli('config', 'check', '--config', path);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout.split('\n')[0]).toBe(`# mta-sts-sidecar effective configuration: ${path}`);
    const printed = parse(r.stdout) as Record<string, Record<string, unknown>>;
    expect(printed.socketmap).toMatchObject({ listen: ['unix:/run/mta-sts/s.sock'], unix_mode: '0600', max_request_bytes: 1024 });
    expect(printed.http).toEqual({ listen: ['tcp:127.0.0.1:8462'], max_connections: 64, unix_mode: '0660', shutdown_grace_ms: 5000 });
    expect(validateConfig(printed)).toEqual(loadConfig(path));
  });

  it('without --config: the embedded defaults', async () => {
    const r = await cli('config', 'check');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('# mta-sts-sidecar effective configuration: embedded defaults');
    expect(validateConfig(parse(r.stdout))).toEqual(defaultConfig());
  });

  it('reads postfix-mta-sts-resolver\'s file, prints it in our format, and warns about what does not carry over', async () => {
    const path = await file('mta-sts-daemon.yml', RESOLVER_YML);
    const r = await cli('config', 'check', '--config', path);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^# converted from postfix-mta-sts-resolver format \(docs\/migration\.md\)$/m);
    const printed = parse(r.stdout) as Record<string, Record<string, unknown>>;
    expect(printed.socketmap).toMatchObject({ listen: ['tcp:127.0.0.1:8461'], shutdown_grace_ms: 20_000 });
    expect(printed.cache).toMatchObject({ store: 'memory' });
    expect(printed.zones).toEqual({ default: { strict_testing: false, tlsrpt: 'auto', dane: 'auto' }, myzone: { strict_testing: true, tlsrpt: 'auto', dane: 'auto' } });
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^mta-sts-sidecar: warning: reuse_port: no equivalent/)]);
    // What it printed is a config of ours: saved as a file, it means the same.
    const converted = await file('converted.yml', r.stdout);
    expect(loadConfig(converted)).toEqual(loadConfig(path));
  });

  it.each<[string, string, RegExp]>([
    ['an unknown key', 'fetch: { timeout: 5 }\n', /^mta-sts-sidecar: .*bad\.yml: fetch\.timeout: unknown key/],
    ['a bad value in their format, named as they write it', 'port: 0\n', /^mta-sts-sidecar: .*bad\.yml: port: must be a whole number from 1 to 65535, got 0$/],
    ['both formats mixed', 'host: 127.0.0.1\nlog: { level: info }\n', /^mta-sts-sidecar: .*bad\.yml: mixes postfix-mta-sts-resolver options/],
  ])('%s: one line on stderr, exit 1', async (_rule, yaml, message) => {
    const path = await file('bad.yml', yaml);
    const r = await cli('config', 'check', '--config', path);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  // issue 13: each of these passed `config check` and then stopped `serve` at bind time.
  it.each<[string, string, RegExp]>([
    ['a port above 65535', 'socketmap: { listen: ["tcp:127.0.0.1:99999"] }\n', /: socketmap\.listen\[0\]: .*got "tcp:127\.0\.0\.1:99999": bad port "99999" \(1 to 65535\)$/],
    ['a host with an underscore', 'exim: { listen: ["tcp:relay_1.example:8463"] }\n', /: exim\.listen\[0\]: .*: bad host "relay_1\.example"/],
    ['a unix path longer than sun_path', `http: { listen: ["unix:/run/${'s'.repeat(110)}.sock"] }\n`, /: http\.listen\[0\]: .*: the path is longer than 107 bytes/],
  ])('refuses what serve would refuse: %s, naming the key', async (_rule, yaml, message) => {
    const path = await file('listen.yml', yaml);
    for (const command of [['config', 'check'], ['serve']]) {
      const r = await cli(...command, '--config', path);
      expect(r.code, command.join(' ')).toBe(1);
      expect(r.stderr.trim(), command.join(' ')).toMatch(message);
    }
  });

  it('prints single values as lists, the cache path chosen, and no Redis password', async () => {
    const state = join(dir, 'xdg-state');
    const path = await file('normalised.yml', 'http: { listen: "tcp:127.0.0.1:9462" }\ncache: { redis_url: "redis://app:hunter2@127.0.0.1:6379/0" }\n');
    const r = process.getuid?.() === 0 ? await cli('config', 'check', '--config', path) : await cliAsUserWithState(state, 'config', 'check', '--config', path);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).not.toContain('hunter2');
    const printed = parse(r.stdout) as Record<string, Record<string, unknown>>;
    expect(printed.http!.listen).toEqual(['tcp:127.0.0.1:9462']);
    expect(printed.cache!.redis_url).toBe('redis://app:***@127.0.0.1:6379/0');
    expect(printed.cache!.path).toBe(loadConfig(path).cache.path);
    expect(r.stdout).toMatch(/^# cache\.path: the default here \(.+\)$/m);
  });

  it('a cache path that cannot be created: one line naming cache.path and what to do', async () => {
    const blocker = await file('not-a-directory', '');
    const path = await file('unwritable.yml', `cache: { path: ${join(blocker, 'cache.db')} }\n`);
    const r = await cli('config', 'check', '--config', path);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toMatch(/^mta-sts-sidecar: cache\.path: .*cache\.db: cannot .* \(ENOTDIR\); set cache\.path to a file this user may write/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    // A store that is not a file does not need one.
    const memory = await file('memory.yml', `cache: { store: memory, path: ${join(blocker, 'cache.db')} }\n`);
    expect((await cli('config', 'check', '--config', memory)).code).toBe(0);
  });

  it('a missing file', async () => {
    const r = await cli('config', 'check', '--config', join(dir, 'missing.yml'));
    expect(r).toMatchObject({ code: 1, stderr: expect.stringMatching(/cannot read config file .*missing\.yml: ENOENT/) });
  });
});

describe('serve: command-line settings are checked like config keys, and named as flags', () => {
  it.each<[string[], RegExp]>([
    [['--http-listen', 'localhost'], /^mta-sts-sidecar: --http-listen: must be tcp:HOST:PORT or unix:\/absolute\/path, got "localhost": unknown scheme$/],
    [['--log-level', 'loud'], /^mta-sts-sidecar: --log-level: must be one of fatal, error/],
    [['--log-format', 'xml'], /^mta-sts-sidecar: --log-format: must be one of json, pretty, got "xml"$/],
  ])('%j', async (args, message) => {
    const r = await cli('serve', ...args);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(message);
  });
});

describe('serve with postfix-mta-sts-resolver\'s config', () => {
  it('starts where that daemon listened and logs each option it could not carry over', async () => {
    const port = await freePort();
    // That format has no http section: --http-listen sets the metrics address (the default, 8462, is
    // one per machine, and test files run in parallel).
    const httpPort = await freePort();
    const sidecar = await startSidecar(RESOLVER_YML.replace('port: 8461', `port: ${port}`), {}, { args: ['--http-listen', `tcp:127.0.0.1:${httpPort}`] });
    try {
      const c = await connectSocketmap({ port });
      expect(await c.query('postfix', '[192.0.2.1]')).toBe('NOTFOUND ');
      c.close();
      const lines = sidecar
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ msg: 'config file is in postfix-mta-sts-resolver format; converted (docs/migration.md)' }),
          expect.objectContaining({ level: 40, msg: 'config option not carried over as is', option: 'reuse_port' }),
        ]),
      );
      const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
      expect(res.status).toBe(200);
    } finally {
      expect(await sidecar.stop()).toBe(0);
    }
  });
});
