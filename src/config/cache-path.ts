/**
 * Where the SQLite cache lives when `cache.path` is not set: where the daemon runs decides, so that the
 * README's first command works for any user.
 *
 *   1. under systemd with StateDirectory=: the first entry of $STATE_DIRECTORY (systemd.exec(5))
 *   2. as root: /var/lib/mta-sts-sidecar (FHS 3.0 §5.8, /var/lib: state information)
 *   3. anyone else: $XDG_STATE_HOME/mta-sts-sidecar, $XDG_STATE_HOME defaulting to ~/.local/state
 *      (XDG Base Directory Specification 0.8)
 *
 * defaultCachePath is pure (environment and uid in, path out); checkCachePathWritable does the I/O that
 * turns "cannot write there" into one line naming cache.path and what to do.
 */
import { accessSync, closeSync, constants, mkdirSync, openSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { ConfigError } from '../errors.js';

/** What the default cache path depends on. */
export interface Runtime {
  env: Readonly<Record<string, string | undefined>>;
  /** Effective user id; undefined where there is none (not POSIX). */
  uid: number | undefined;
  /** The user's home directory, for ~/.local/state when $XDG_STATE_HOME is not set. */
  home: string;
}

export function currentRuntime(): Runtime {
  return { env: process.env, uid: process.geteuid?.(), home: process.env.HOME || homedir() };
}

export const CACHE_FILE = 'cache.db';
export const APP_DIR = 'mta-sts-sidecar';
/** Root's state directory, and the packaged service's StateDirectory=mta-sts-sidecar. */
export const SYSTEM_STATE_DIR = `/var/lib/${APP_DIR}`;

export interface ChosenPath {
  path: string;
  /** Why this one, for `config check`: `$STATE_DIRECTORY (systemd)`. */
  why: string;
}

export function defaultCachePath(runtime: Runtime): ChosenPath {
  // systemd.exec(5): "$STATE_DIRECTORY ... contains the full paths, separated by colons".
  const stateDirectory = runtime.env.STATE_DIRECTORY?.split(':')[0];
  if (stateDirectory) return { path: join(stateDirectory, CACHE_FILE), why: "systemd's $STATE_DIRECTORY" };
  if (runtime.uid === 0) return { path: join(SYSTEM_STATE_DIR, CACHE_FILE), why: 'running as root' };
  // XDG Base Directory: a relative $XDG_STATE_HOME is invalid and must be ignored.
  const xdg = runtime.env.XDG_STATE_HOME;
  if (xdg && isAbsolute(xdg)) return { path: join(xdg, APP_DIR, CACHE_FILE), why: '$XDG_STATE_HOME, not root' };
  return { path: join(runtime.home, '.local', 'state', APP_DIR, CACHE_FILE), why: '~/.local/state, not root' };
}

/** The text the docs show for the default (the docs cannot know where the daemon will run). */
export const DEFAULT_CACHE_PATH_TEXT = `$STATE_DIRECTORY/${CACHE_FILE} under systemd, ${SYSTEM_STATE_DIR}/${CACHE_FILE} as root, else $XDG_STATE_HOME/${APP_DIR}/${CACHE_FILE}`;

const FIX = 'set cache.path to a file this user may write, or run the packaged service (StateDirectory=)';

/**
 * Throws a one-line ConfigError naming cache.path when the SQLite file cannot be created or opened.
 * `create: true` (serve, before opening the store) makes the directories and the file; `create: false`
 * (config check) changes nothing: the nearest existing directory must be writable, and the file, if
 * it exists. SQLite also writes its -wal and -journal files beside the file, so the directory must be
 * writable even when the file exists.
 */
export function checkCachePathWritable(path: string, options: { create: boolean }): void {
  const fail = (what: string, err: unknown): never => {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError('cache.path', `${path}: ${what} (${code}); ${FIX}`);
  };
  const dir = dirname(path);
  if (options.create) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      fail(`cannot create directory ${dir}`, err);
    }
    try {
      closeSync(openSync(path, 'a'));
    } catch (err) {
      fail('cannot open the file for writing', err);
    }
    return;
  }
  let existing = dir;
  // Bounded: each step removes one path component, and dirname('/') is '/'.
  while (!exists(existing)) {
    const parent = dirname(existing);
    if (parent === existing) break;
    existing = parent;
  }
  try {
    if (!statSync(existing).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(existing, constants.W_OK | constants.X_OK);
  } catch (err) {
    fail(existing === dir ? `cannot write in directory ${dir}` : `cannot create directory ${dir} in ${existing}`, err);
  }
  if (exists(path)) {
    try {
      accessSync(path, constants.R_OK | constants.W_OK);
    } catch (err) {
      fail('cannot open the file for writing', err);
    }
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}
