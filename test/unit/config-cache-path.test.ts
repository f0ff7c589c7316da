/**
 * The default cache path follows where the daemon runs (src/config/cache-path.ts), and a path that
 * cannot be written is one line naming cache.path and what to do.
 */
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkCachePathWritable, defaultCachePath, type Runtime } from '../../src/config/cache-path.js';
import { parseConfig } from '../../src/config/load.js';

const user = (env: Runtime['env'], uid: number | undefined = 1000): Runtime => ({ env, uid, home: '/home/ann' });

describe('defaultCachePath', () => {
  it.each<[string, Runtime, string]>([
    ['systemd StateDirectory= (systemd.exec(5))', user({ STATE_DIRECTORY: '/var/lib/mta-sts-sidecar' }), '/var/lib/mta-sts-sidecar/cache.db'],
    ['several StateDirectory= entries: the first', user({ STATE_DIRECTORY: '/var/lib/a:/var/lib/b' }), '/var/lib/a/cache.db'],
    ['$STATE_DIRECTORY wins over root', user({ STATE_DIRECTORY: '/srv/state' }, 0), '/srv/state/cache.db'],
    ['root (FHS /var/lib)', user({}, 0), '/var/lib/mta-sts-sidecar/cache.db'],
    ['root ignores $XDG_STATE_HOME', user({ XDG_STATE_HOME: '/root/.state' }, 0), '/var/lib/mta-sts-sidecar/cache.db'],
    ['a user with $XDG_STATE_HOME', user({ XDG_STATE_HOME: '/home/ann/state' }), '/home/ann/state/mta-sts-sidecar/cache.db'],
    ['a user without it: ~/.local/state (XDG Base Directory)', user({}), '/home/ann/.local/state/mta-sts-sidecar/cache.db'],
    ['an empty $XDG_STATE_HOME counts as unset', user({ XDG_STATE_HOME: '' }), '/home/ann/.local/state/mta-sts-sidecar/cache.db'],
    ['a relative $XDG_STATE_HOME is invalid and ignored', user({ XDG_STATE_HOME: 'state' }), '/home/ann/.local/state/mta-sts-sidecar/cache.db'],
    ['an empty $STATE_DIRECTORY counts as unset', user({ STATE_DIRECTORY: '' }), '/home/ann/.local/state/mta-sts-sidecar/cache.db'],
    ['no uid (not POSIX): not root', user({}, undefined), '/home/ann/.local/state/mta-sts-sidecar/cache.db'],
  ])('%s', (_rule, runtime, want) => {
    expect(defaultCachePath(runtime).path).toBe(want);
  });

  it('is what the config holds when cache.path is not set, and a set path wins', () => {
    const runtime = user({ XDG_STATE_HOME: '/home/ann/state' });
    expect(parseConfig('', 'c', runtime).cache.path).toBe('/home/ann/state/mta-sts-sidecar/cache.db');
    expect(parseConfig('cache: { path: /tmp/x.db }', 'c', runtime).cache.path).toBe('/tmp/x.db');
  });
});

describe('checkCachePathWritable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cache-path-'));
  const aFile = join(dir, 'plain-file');
  writeFileSync(aFile, '');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a directory that does not exist yet under a writable one: fine, and check creates nothing', () => {
    const path = join(dir, 'state', 'mta-sts-sidecar', 'cache.db');
    checkCachePathWritable(path, { create: false });
    expect(existsSync(join(dir, 'state'))).toBe(false);
  });

  it('with create: the directories and the file are made', () => {
    const path = join(dir, 'made', 'cache.db');
    checkCachePathWritable(path, { create: true });
    expect(existsSync(path)).toBe(true);
  });

  // A regular file where a directory must be: refused even for root, who passes every permission check.
  it.each<[string, { create: boolean }]>([
    ['checking', { create: false }],
    ['creating', { create: true }],
  ])('%s under a path that is a file: one line naming cache.path and what to do', (_how, options) => {
    const path = join(aFile, 'sub', 'cache.db');
    let message = '';
    try {
      checkCachePathWritable(path, options);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^cache\.path: .*cache\.db: cannot (create|write in) directory .* \((ENOTDIR|EEXIST)\); set cache\.path to a file this user may write/);
    expect(message).not.toContain('\n');
  });
});
