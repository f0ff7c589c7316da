/**
 * The Debian package, end to end on this machine: build it from the checkout (`npm run deb`, once),
 * lint it, install it with apt, run the installed daemon the way its systemd unit does (the
 * unit's User= and ExecStart=, with the packaged config), ask it with Postfix's postmap, remove it,
 * purge it, and check that nothing is left.
 *
 * Needs root and Debian's apt (the test command installs the tools through scripts/system-deps.sh).
 * It never touches an existing installation: it fails up front when the package is installed or its
 * user exists. State that an earlier run of the daemon from a checkout left in /var/lib or /etc is moved
 * aside while the package is on the machine and put back afterwards. The package is purged at the end
 * whatever happened. No DNS: the keys asked need no lookup.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postmapQuery } from '../lab/postfix-client.js';
import { childrenOf } from '../lab/processes.js';
import { printed } from '../lab/wait.js';
import { debOfWorkingTree } from './deb-build.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PKG = 'mta-sts-sidecar';
const UNIT = `/lib/systemd/system/${PKG}.service`;
const CONFFILE = `/etc/${PKG}/config.yml`;
const STATE_DIR = `/var/lib/${PKG}`;
/** Every place the package or its daemon may put something (moved aside first if already there). */
const OWN_PATHS = [`/etc/${PKG}`, STATE_DIR, `/run/${PKG}`, `/usr/lib/${PKG}`, `/usr/bin/${PKG}`, UNIT];
/** Where files named after the package are looked for after the purge. */
const SEARCH_ROOTS = ['/etc', '/usr', '/lib', '/var', '/run', '/opt', '/srv', '/home'];
/** Not the package's business: npm's and ccache's caches, apt's downloads, logs. */
const SEARCH_PRUNE = ['/var/cache', '/var/log', '/var/tmp', '/var/spool', '/var/lib/apt/lists'];
const PORTS = [8461, 8462]; // the packaged config's defaults: socketmap.listen, http.listen

const LOCK_FILE = `/var/tmp/${PKG}-deb-test.lock`;
/** Waiting for another run of this test, then one build (cold: npm ci and SQLite's compile). */
const BUILD_TIMEOUT_MS = 15 * 60_000;
const APT_TIMEOUT_MS = 5 * 60_000;
const READY_TIMEOUT_MS = 20_000;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; a non-zero exit is a result, not an exception. */
function run(cmd: string, args: string[], opts: { timeout?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Result> {
  return new Promise((ok, fail) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeout ?? 60_000, maxBuffer: 64 << 20, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') fail(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
        else ok({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
    child.stdin!.on('error', () => {}); // EPIPE when the child exits early: its status tells
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

const aptEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const apt = (...args: string[]) =>
  run('apt-get', ['-y', '-o', 'DPkg::Lock::Timeout=300', '--no-install-recommends', ...args], { env: aptEnv, timeout: APT_TIMEOUT_MS });

/** dpkg's status of the package: `installed`, `config-files`, or `not-installed`. */
async function packageStatus(): Promise<string> {
  const r = await run('dpkg-query', ['-W', '-f=${db:Status-Status}', PKG]);
  return r.code === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : 'not-installed';
}

async function getent(db: 'passwd' | 'group' | 'shadow' | 'gshadow', name: string): Promise<string[] | null> {
  const r = await run('getent', [db, name]);
  return r.code === 0 ? r.stdout.trim().split(':') : null;
}

function portInUse(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      ok(true);
    });
    socket.once('error', () => ok(false));
  });
}

/** Every path below SEARCH_ROOTS whose name contains the package name. */
async function pathsNamedAfterPackage(): Promise<string[]> {
  const prune = SEARCH_PRUNE.flatMap((p) => ['-path', p, '-o']).slice(0, -1);
  const r = await run('find', [...SEARCH_ROOTS.filter(existsSync), '-xdev', '(', ...prune, ')', '-prune', '-o', '-name', `*${PKG}*`, '-print'], { timeout: 120_000 });
  return r.stdout.split('\n').filter(Boolean).sort();
}

async function filesOwnedBy(uid: string, gid: string): Promise<string[]> {
  const r = await run('find', [...SEARCH_ROOTS.filter(existsSync), '-xdev', '(', '-uid', uid, '-o', '-gid', gid, ')', '-print'], { timeout: 120_000 });
  return r.stdout.split('\n').filter(Boolean);
}

let deb: string;
let movedAside: Array<[string, string]> = [];
let namedBefore: string[] = [];
let daemon: ChildProcess | undefined;
let daemonOut = '';
let userIds: { uid: string; gid: string } | undefined;
let preconditionsMet = false;

/**
 * The package, its user and the default ports are one per machine: a second run of this file (another
 * checkout's test suite) waits here until the first has purged. The lock is held by a child `flock`
 * process and released when it ends, also if this process dies.
 */
let lockHolder: ChildProcess | undefined;
async function lockMachine(): Promise<void> {
  lockHolder = spawn('flock', [LOCK_FILE, 'sh', '-c', 'echo locked; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((ok, fail) => {
    lockHolder!.stdout!.once('data', () => ok());
    lockHolder!.once('exit', (code) => fail(new Error(`flock ${LOCK_FILE} exited with ${code}`)));
  });
}

beforeAll(async () => {
  expect(process.getuid?.(), 'the package test installs a .deb: run it as root').toBe(0);
  await lockMachine();
  const status = await packageStatus();
  if (status !== 'not-installed') throw new Error(`${PKG} is already on this machine (dpkg: ${status}); this test will not touch it`);
  if (await getent('passwd', PKG)) throw new Error(`user ${PKG} exists without the package; this test would delete it on purge`);
  if (await getent('group', PKG)) throw new Error(`group ${PKG} exists without the package; this test would delete it on purge`);
  preconditionsMet = true;

  // A daemon run from a checkout on embedded defaults leaves /var/lib/mta-sts-sidecar behind (as root):
  // keep it out of the package's way and put it back at the end.
  for (const path of OWN_PATHS) {
    if (existsSync(path) || isSymlink(path)) {
      const aside = `${path}.deb-test-${process.pid}`;
      renameSync(path, aside);
      movedAside.push([path, aside]);
    }
  }
  namedBefore = await pathsNamedAfterPackage();

  // With the documented command (`npm run deb`), one build for this file and deb-trixie.test.ts
  // (deb-build.ts: reused while its inputs are unchanged); its log goes to build/deb-test.log.
  deb = await debOfWorkingTree(join(ROOT, 'build/deb-test.log'));
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  try {
    if (daemon && daemon.exitCode === null) {
      // runuser's child is the daemon: end it first (by its pid), then runuser.
      for (const child of childrenOf(daemon.pid!)) process.kill(child, 'SIGKILL');
      daemon.kill('SIGKILL');
    }
    if (!preconditionsMet) return;
    if ((await packageStatus()) !== 'not-installed') await run('dpkg', ['--purge', PKG], { env: aptEnv, timeout: APT_TIMEOUT_MS });
    for (const [path, aside] of movedAside) {
      rmSync(path, { recursive: true, force: true });
      renameSync(aside, path);
    }
  } finally {
    lockHolder?.stdin!.end();
  }
}, APT_TIMEOUT_MS);

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function debContents(): Promise<Result> {
  return run('dpkg-deb', ['--contents', deb]);
}

describe('the .deb', () => {
  it('is named <package>_<version>_<arch>.deb after package.json and this machine', async () => {
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
    const arch = (await run('dpkg', ['--print-architecture'])).stdout.trim();
    expect(deb).toBe(join(ROOT, 'build/deb', `${PKG}_${version}_${arch}.deb`));
    expect(existsSync(deb)).toBe(true);
    const fields = (await run('dpkg-deb', ['--field', deb, 'Package', 'Version', 'Architecture'])).stdout;
    expect(fields).toBe(`Package: ${PKG}\nVersion: ${version}\nArchitecture: ${arch}\n`);
  });

  it('depends on Node.js from the engines floor up to the major the addon was built for, and adduser', async () => {
    const floor = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).engines.node as string).replace(/^>=\s*/, '');
    const major = Number(process.versions.node.split('.')[0]);
    const depends = (await run('dpkg-deb', ['--field', deb, 'Depends'])).stdout.trim().split(/,\s*/);
    expect(depends).toEqual(expect.arrayContaining(['adduser', `nodejs (>= ${floor})`, `nodejs (<< ${major + 1})`]));
    expect(depends.some((d) => d.startsWith('libc6 '))).toBe(true); // dh_shlibdeps saw the native addon
  });

  it('marks the config file as a conffile', async () => {
    expect((await run('dpkg-deb', ['--info', deb, 'conffiles'])).stdout.trim()).toBe(CONFFILE);
  });

  it('ships the daemon, production dependencies only, the compiled addon, unit and man pages', async () => {
    const lines = (await debContents()).stdout.split('\n');
    const paths = lines.map((l) => l.split(/\s+/)[5]).filter(Boolean) as string[];
    for (const p of [
      `./usr/lib/${PKG}/package.json`,
      `./usr/lib/${PKG}/dist/cli/main.js`,
      `./usr/lib/${PKG}/dist/bundle/main.js`,
      `./usr/lib/${PKG}/bin/${PKG}`,
      `./usr/lib/${PKG}/node_modules/better-sqlite3/build/Release/better_sqlite3.node`,
      `./usr/lib/${PKG}/node_modules/undici/package.json`,
      `.${CONFFILE}`,
      `.${UNIT}`,
      `./usr/share/man/man8/${PKG}.8.gz`,
      `./usr/share/man/man5/${PKG}.yml.5.gz`,
      `./usr/share/doc/${PKG}/copyright`,
    ]) {
      expect(paths, p).toContain(p);
    }
    const link = lines.find((l) => l.includes(`./usr/bin/${PKG} `));
    expect(link).toMatch(new RegExp(`^l.* \\./usr/bin/${PKG} -> \\.\\./lib/${PKG}/bin/${PKG}$`));
    const devDependencies = Object.keys(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).devDependencies);
    for (const dev of devDependencies) {
      expect(paths.filter((p) => p.startsWith(`./usr/lib/${PKG}/node_modules/${dev}/`)), dev).toEqual([]);
    }
    expect(paths.filter((p) => /\.(ts|mts|cts|map)$/.test(p))).toEqual([]);
  });

  it('has copyright and license text for every bundled npm package', async () => {
    const paths = (await debContents()).stdout.split('\n').map((l) => l.split(/\s+/)[5] ?? '');
    const prefix = `./usr/lib/${PKG}/node_modules/`;
    const bundled = new Set(
      paths.filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length).split('/')).map((s) => (s[0]!.startsWith('@') ? `${s[0]}/${s[1]}` : s[0]!)).filter((n) => n && !n.endsWith('/')),
    );
    expect(bundled.size).toBeGreaterThan(10);
    const tar = await run('sh', ['-c', `dpkg-deb --fsys-tarfile "$1" | tar -xOf - ./usr/share/doc/${PKG}/copyright`, 'sh', deb]);
    const stanzas = tar.stdout.split('\n\n');
    for (const name of bundled) {
      const stanza = stanzas.find((s) => s.startsWith(`Files: node_modules/${name}/*\n`));
      expect(stanza, name).toBeDefined();
      expect(stanza!, name).toMatch(/\nLicense: \S/);
    }
  });

  it('lintian: no errors and no warnings', async () => {
    const r = await run('lintian', ['--fail-on', 'error,warning', deb], { timeout: 180_000 });
    expect(r.stdout.split('\n').filter((l) => /^[EW]: /.test(l))).toEqual([]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }, 200_000);
});

describe('installed with apt', () => {
  it('installs exactly this package: no dependency is missing on this machine', async () => {
    const r = await apt('install', deb);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\b0 upgraded, 1 newly installed, 0 to remove\b/);
    expect(await packageStatus()).toBe('installed');
  }, APT_TIMEOUT_MS);

  it('creates the system user and group, and the state directory for it', async () => {
    const user = await getent('passwd', PKG);
    expect(user).not.toBeNull();
    const [, , uid, gid, , home, shell] = user!;
    expect(Number(uid)).toBeLessThan(1000);
    expect((await getent('group', PKG))![2]).toBe(gid);
    expect(home).toBe(STATE_DIR);
    expect(shell).toBe('/usr/sbin/nologin');
    userIds = { uid: uid!, gid: gid! };
    const st = statSync(STATE_DIR);
    expect({ uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8) }).toEqual({ uid: Number(uid), gid: Number(gid), mode: '750' });
  });

  it('puts the packaged config in place, every key commented out', () => {
    expect(readFileSync(CONFFILE, 'utf8')).toBe(readFileSync(join(ROOT, 'packaging/config.yml'), 'utf8'));
  });

  it('has man pages that man renders', async () => {
    for (const [section, page, text] of [
      ['8', PKG, 'MTA-STS (RFC 8461) policy daemon for Postfix'],
      ['5', `${PKG}.yml`, 'socketmap.listen'],
    ] as const) {
      const r = await run('man', [section, page], { env: { ...process.env, MANPAGER: 'cat', PAGER: 'cat', MANWIDTH: '100', MAN_KEEP_FORMATTING: '' } });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.replace(/.\x08/g, '')).toContain(text);
    }
  });

  it('has a unit that systemd-analyze verifies, hardened to an exposure of at most 2.0', async () => {
    const verify = await run('systemd-analyze', ['verify', UNIT]);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    const security = await run('systemd-analyze', ['security', '--offline=yes', UNIT]);
    const score = /Overall exposure level for \S+: ([\d.]+)/.exec(security.stdout);
    expect(score, security.stdout + security.stderr).not.toBeNull();
    expect(Number(score![1])).toBeLessThanOrEqual(2.0);
  });
});

describe('the installed daemon, run as its unit runs it', () => {
  let pid = 0;

  it("starts as the unit's User= with the unit's ExecStart= and the packaged config", async () => {
    const unit = readFileSync(UNIT, 'utf8');
    const user = /^User=(.+)$/m.exec(unit)![1]!;
    const execStart = /^ExecStart=(.+)$/m.exec(unit)![1]!.trim().split(/\s+/);
    expect(user).toBe(PKG);
    expect(execStart).toEqual([`/usr/bin/${PKG}`, 'serve', '--config', CONFFILE]);

    // The packaged config listens on the default ports; wait out another test's daemon if one holds them.
    const deadline = Date.now() + 60_000;
    while ((await Promise.all(PORTS.map(portInUse))).some(Boolean)) {
      if (Date.now() > deadline) throw new Error(`ports ${PORTS.join(', ')} stay in use: cannot run the packaged config`);
      await new Promise((r) => setTimeout(r, 500));
    }

    // What systemd sets from the unit's StateDirectory= (systemd.exec(5)): where the default cache.path goes
    // (by hand, without it, the daemon would use the user's ~/.local/state).
    expect(/^StateDirectory=(.+)$/m.exec(unit)![1]!.trim()).toBe(PKG);
    const env = { ...process.env, STATE_DIRECTORY: STATE_DIR };
    daemon = spawn('runuser', ['-u', user, '--', ...execStart], { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/', env });
    daemon.stdout!.on('data', (b: Buffer) => (daemonOut += b.toString()));
    daemon.stderr!.on('data', (b: Buffer) => (daemonOut += b.toString()));
    const ready = await printed(daemon, () => daemonOut, '"msg":"mta-sts-sidecar ready"', READY_TIMEOUT_MS);
    expect(ready, daemonOut).toBe(true);

    // runuser forks: the daemon is its child, running the Node.js the package depends on.
    const children = childrenOf(daemon.pid!);
    expect(children).toHaveLength(1);
    pid = children[0]!;
    expect(readlinkSync(`/proc/${pid}/exe`)).toBe('/usr/bin/node');
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, 3)).toEqual(['/usr/bin/node', `/usr/bin/${PKG}`, 'serve']);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(/^Uid:\s+(\d+)/m.exec(status)![1]).toBe(userIds!.uid);
    expect(/^Gid:\s+(\d+)/m.exec(status)![1]).toBe(userIds!.gid);
  }, 90_000);

  it('answers postmap: NOTFOUND for keys that need no lookup and for a key that is not a domain', async () => {
    const map = 'socketmap:inet:127.0.0.1:8461:postfix';
    expect(await postmapQuery('.example.com', map)).toMatchObject({ code: 1, stdout: '' });
    expect(await postmapQuery('[192.0.2.1]', map)).toMatchObject({ code: 1, stdout: '' });
    expect(await postmapQuery('[192.0.2.1]:587', map)).toMatchObject({ code: 1, stdout: '' });
    // Never PERM for a key (Postfix defers on it; issue 13): postmap exits 1, "not found", no error.
    expect(await postmapQuery('not a domain', map)).toMatchObject({ code: 1, stdout: '', stderr: '' });
    expect(await postmapQuery('[smtp_relay.corp]', map)).toMatchObject({ code: 1, stdout: '', stderr: '' });
    expect(await postmapQuery('.example.net', map)).toMatchObject({ code: 1, stdout: '' });
  });

  it('serves health and metrics on the packaged http.listen', async () => {
    const health = await fetch('http://127.0.0.1:8462/healthz');
    expect(health.status).toBe(200);
    const metrics = await (await fetch('http://127.0.0.1:8462/metrics')).text();
    expect(metrics).toMatch(/^# TYPE \S+ /m);
  });

  it('keeps its cache in the state directory, as its user', () => {
    const db = join(STATE_DIR, 'cache.db');
    expect(existsSync(db)).toBe(true);
    expect(statSync(db).uid).toBe(Number(userIds!.uid));
  });

  it('reloads on SIGHUP (ExecReload=) and stops cleanly on SIGTERM', async () => {
    expect(readFileSync(UNIT, 'utf8')).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    const before = daemonOut.length;
    process.kill(pid, 'SIGHUP');
    const deadline = Date.now() + 10_000;
    while (!daemonOut.slice(before).includes('config reloaded') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(daemonOut.slice(before)).toContain('"msg":"config reloaded: nothing changed"');
    expect(await postmapQuery('.example.org', 'socketmap:inet:127.0.0.1:8461:postfix')).toMatchObject({ code: 1, stdout: '' });

    const exited = new Promise<number | null>((ok) => daemon!.once('exit', (code) => ok(code)));
    process.kill(pid, 'SIGTERM');
    expect(await exited).toBe(0);
    expect(daemonOut).toContain('"msg":"stopped"');
  }, 40_000);
});

describe('reinstalled, removed, then purged', () => {
  it('reinstall (as an upgrade would): the same user, the cache and an edited config stay', async () => {
    const edited = readFileSync(CONFFILE, 'utf8') + '#  (edited by the administrator)\n';
    writeFileSync(CONFFILE, edited);
    const r = await apt('install', '--reinstall', deb);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await packageStatus()).toBe('installed');
    const user = await getent('passwd', PKG);
    expect({ uid: user![2], gid: user![3] }).toEqual(userIds);
    expect(readFileSync(CONFFILE, 'utf8')).toBe(edited);
    expect(statSync(join(STATE_DIR, 'cache.db')).uid).toBe(Number(userIds!.uid));
  }, APT_TIMEOUT_MS);

  it('remove: the user, the cache and the config stay; the program goes', async () => {
    const r = await apt('remove', PKG);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await packageStatus()).toBe('config-files');
    expect(await getent('passwd', PKG)).not.toBeNull();
    expect(existsSync(join(STATE_DIR, 'cache.db'))).toBe(true);
    expect(existsSync(CONFFILE)).toBe(true);
    expect(existsSync(`/usr/lib/${PKG}`)).toBe(false);
    expect(isSymlink(`/usr/bin/${PKG}`) || existsSync(`/usr/bin/${PKG}`)).toBe(false);
  }, APT_TIMEOUT_MS);

  it('purge: nothing is left behind', async () => {
    const r = await apt('purge', PKG);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await packageStatus()).toBe('not-installed');
    for (const db of ['passwd', 'group', 'shadow', 'gshadow'] as const) expect(await getent(db, PKG), db).toBeNull();
    for (const path of OWN_PATHS) expect(existsSync(path) || isSymlink(path), path).toBe(false);
    // Beyond the package's own paths: anything named after it (systemd enablement links, dpkg info,
    // man pages) and anything its user or group owned.
    const namedAfter = (await pathsNamedAfterPackage()).filter((p) => !movedAside.some(([, aside]) => p === aside || p.startsWith(`${aside}/`)));
    const namedBeforeOwn = namedBefore.filter((p) => !movedAside.some(([, aside]) => p === aside || p.startsWith(`${aside}/`)));
    expect(namedAfter).toEqual(namedBeforeOwn);
    expect(await filesOwnedBy(userIds!.uid, userIds!.gid)).toEqual([]);
  }, APT_TIMEOUT_MS);
});
