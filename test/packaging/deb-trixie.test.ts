/**
 * The Debian package on Debian 13 (trixie), as a new user would meet it: the .deb built from this
 * checkout (`npm run deb`, on this machine; the same build as deb.test.ts's, test/packaging/deb-build.ts) installed with apt into scripts/trixie-lab.sh's minimal
 * trixie tree, whose nodejs (20.19) and Postfix (3.10) are Debian 13's own; the daemon run the way the
 * unit runs it (systemd is not PID 1 in a chroot: the unit's User= and ExecStart= by hand, with runuser);
 * asked with trixie's own postmap; `config check` shows `tlsrpt: auto` turned on by the local
 * Postfix 3.10; then purged.
 *
 * The tree runs under an overlay of this test's own, in a network namespace with only lo
 * (test/lab/trixie.ts): the cached tree is never changed, and the packaged config's default ports are
 * free there whatever this machine runs (test/packaging/deb.test.ts uses them on the host at the same
 * time). No DNS: the keys asked need no lookup, or get none in that namespace. Needs root.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childrenOf } from '../lab/processes.js';
import { printed } from '../lab/wait.js';
import { openTrixie, type TrixieTree } from '../lab/trixie.js';
import { debOfWorkingTree } from './deb-build.js';

const ROOT = resolve(import.meta.dirname, '../..');
const PKG = 'mta-sts-sidecar';
const UNIT = `/lib/systemd/system/${PKG}.service`;
const CONFFILE = `/etc/${PKG}/config.yml`;
const STATE_DIR = `/var/lib/${PKG}`;
/** The packaged config's socketmap.listen (free in the tree's own network namespace). */
const MAP = 'socketmap:inet:127.0.0.1:8461:postfix';
/** Debian 13's Postfix reads the TLSRPT attributes from 3.10 on (what `tlsrpt: auto` decides by). */
const TLSRPT_MIN_POSTFIX = '3.10';
/** Waiting for another build (one at a time on the machine), then ours; the tree, when not cached. */
const SETUP_TIMEOUT_MS = 20 * 60_000;
const APT_TIMEOUT_MS = 5 * 60_000;
const READY_TIMEOUT_MS = 30_000;

let tree: TrixieTree | undefined;
let deb: string;
let postfixVersion: string;
let daemon: ChildProcess | undefined;
let daemonOut = '';
let daemonPid: number;

beforeAll(async () => {
  expect(process.getuid?.(), 'the trixie package test chroots and mounts: run it as root').toBe(0);
  // The tree first (scripts/test made it already; built here when this file runs on its own).
  tree = await openTrixie({ network: 'own' });

  if (process.env.MTA_STS_TRIXIE_DEB) {
    // For working on this file: a .deb built before (e.g. DEB_REF=<commit> DEB_OUT=... npm run deb).
    deb = resolve(process.env.MTA_STS_TRIXIE_DEB);
  } else {
    // The one build of this run (deb-build.ts: deb.test.ts asks for the same and waits for it).
    deb = await debOfWorkingTree(join(ROOT, 'build/deb-trixie-test.log'));
  }
  await tree.copyIn(deb, `/tmp/${basename(deb)}`);
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
  await tree?.close();
}, 60_000);

const inTree = (argv: string[], opts?: Parameters<TrixieTree['run']>[1]) => tree!.run(argv, opts);
const apt = (...args: string[]) =>
  inTree(['apt-get', '-y', '--no-install-recommends', ...args], { env: { DEBIAN_FRONTEND: 'noninteractive' }, timeout: APT_TIMEOUT_MS, cwd: '/tmp' });
const getent = async (db: string, name: string) => {
  const r = await inTree(['getent', db, name]);
  return r.code === 0 ? r.stdout.trim().split(':') : null;
};
const postmap = (key: string) => inTree(['postmap', '-q', key, MAP]);

describe('Debian 13 (trixie)', () => {
  it("has Debian's Postfix 3.10 and a nodejs that the .deb's Depends accept", async () => {
    postfixVersion = (await inTree(['postconf', '-d', '-h', 'mail_version'])).stdout.trim();
    expect(postfixVersion).toMatch(/^3\.10\.\d+$/);
    const node = (await inTree(['dpkg-query', '-W', '-f=${Version}', 'nodejs'])).stdout.trim();
    expect(node).toMatch(/^20\./);
    // Each `nodejs (OP VERSION)` of the .deb, asked of trixie's dpkg.
    const depends = (await run('dpkg-deb', ['--field', deb, 'Depends'])).split(/,\s*/);
    const nodeRules = depends.map((d) => /^nodejs \((>=|<<) ([^)]+)\)$/.exec(d)).filter((m) => m !== null);
    expect(nodeRules.map((m) => m[1]).sort()).toEqual(['<<', '>=']);
    for (const [, op, version] of nodeRules) {
      const cmp = await inTree(['dpkg', '--compare-versions', node, op === '>=' ? 'ge' : 'lt', version!]);
      expect(cmp.code, `nodejs ${node} ${op} ${version}`).toBe(0);
    }
  });

  it('apt-get install ./<the .deb>: exactly this package, nothing to download', async () => {
    // The tree has no network: every dependency must already be there (nodejs, adduser, libc6, ...).
    const r = await apt('install', `./${basename(deb)}`);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // apt 3 (trixie) words its summary differently from apt 2.
    expect(r.stdout).toMatch(/\b0 upgraded, 1 newly installed, 0 to remove\b|\bUpgrading: 0, Installing: 1, Removing: 0\b/);
    expect((await inTree(['dpkg-query', '-W', '-f=${db:Status-Status}', PKG])).stdout).toBe('installed');
  }, APT_TIMEOUT_MS);

  it('created the system user and its state directory', async () => {
    const user = await getent('passwd', PKG);
    expect(user).not.toBeNull();
    expect(Number(user![2])).toBeLessThan(1000);
    expect(user![5]).toBe(STATE_DIR);
    expect(user![6]).toBe('/usr/sbin/nologin');
    const st = await inTree(['stat', '-c', '%U %G %a', STATE_DIR]);
    expect(st.stdout.trim()).toBe(`${PKG} ${PKG} 750`);
  });

  it(`config check, as the package's user: tlsrpt: auto is on, by the local Postfix (>= ${TLSRPT_MIN_POSTFIX})`, async () => {
    const r = await inTree(['runuser', '-u', PKG, '--', `/usr/bin/${PKG}`, 'config', 'check', '--config', CONFFILE]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`# zones.default.tlsrpt: on (tlsrpt: auto, local Postfix ${postfixVersion} >= ${TLSRPT_MIN_POSTFIX}: on)\n`);
  });

  it("main.cf as an admin writes it (Debian's \"No configuration\" leaves none; postmap needs one)", async () => {
    const mainCf = `myhostname = mail.example.org\ncompatibility_level = 3.10\nsmtp_tls_policy_maps = ${MAP}\n`;
    expect((await inTree(['sh', '-c', 'cat > /etc/postfix/main.cf'], { input: mainCf })).code).toBe(0);
    expect((await inTree(['postconf', '-h', 'smtp_tls_policy_maps'])).stdout.trim()).toBe(MAP);
  });

  it("runs as the unit's User= with the unit's ExecStart=, on Debian's node", async () => {
    const unit = (await inTree(['cat', UNIT])).stdout;
    const user = /^User=(.+)$/m.exec(unit)![1]!;
    const execStart = /^ExecStart=(.+)$/m.exec(unit)![1]!.trim().split(/\s+/);
    expect([user, ...execStart]).toEqual([PKG, `/usr/bin/${PKG}`, 'serve', '--config', CONFFILE]);
    // What systemd would set from StateDirectory= (systemd.exec(5)): where the default cache.path goes.
    const stateDirectory = /^StateDirectory=(.+)$/m.exec(unit)![1]!.trim();
    expect(`/var/lib/${stateDirectory}`).toBe(STATE_DIR);

    daemon = tree!.spawn(['runuser', '-u', user, '--', ...execStart], { env: { STATE_DIRECTORY: STATE_DIR } });
    daemon.stdout!.on('data', (b: Buffer) => (daemonOut += b.toString()));
    daemon.stderr!.on('data', (b: Buffer) => (daemonOut += b.toString()));
    const ready = await printed(daemon, () => daemonOut, '"msg":"mta-sts-sidecar ready"', READY_TIMEOUT_MS);
    expect(ready, daemonOut).toBe(true);

    // nsenter, chroot, env and sh exec one another: the spawned pid is runuser, the daemon its child.
    const children = childrenOf(daemon.pid!);
    expect(children).toHaveLength(1);
    daemonPid = children[0]!;
    expect(readFileSync(`/proc/${daemonPid}/cmdline`, 'utf8').split('\0').slice(0, 3)).toEqual(['/usr/bin/node', `/usr/bin/${PKG}`, 'serve']);
    const uid = (await getent('passwd', PKG))![2];
    expect(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${daemonPid}/status`, 'utf8'))![1]).toBe(uid);
    // The same decision in the start-up log.
    const decision = daemonOut.split('\n').find((l) => l.includes('"msg":"TLSRPT attributes in Postfix replies"') && l.includes('"zone":"default"'));
    expect(decision, daemonOut).toBeDefined();
    expect(JSON.parse(decision!)).toMatchObject({ tlsrpt: true, why: `tlsrpt: auto, local Postfix ${postfixVersion} >= ${TLSRPT_MIN_POSTFIX}: on` });
  }, READY_TIMEOUT_MS + 10_000);

  it("answers trixie's postmap: NOTFOUND for keys that need no lookup, for a domain without DNS, for a non-domain", async () => {
    for (const key of ['.example.com', '[192.0.2.1]', '[192.0.2.1]:587']) {
      expect(await postmap(key), key).toMatchObject({ code: 1, stdout: '', stderr: '' });
    }
    // No DNS in this namespace: no policy can be known, and only a policy may stop mail (RFC 8461 §5).
    expect(await postmap('example.com')).toMatchObject({ code: 1, stdout: '', stderr: '' });
    // Never PERM for a key (Postfix would defer on it; issue 13).
    expect(await postmap('not a domain')).toMatchObject({ code: 1, stdout: '', stderr: '' });
  }, 30_000);

  it('keeps its cache in the state directory, as its user', async () => {
    const st = await inTree(['stat', '-c', '%U', `${STATE_DIR}/cache.db`]);
    expect(st.stdout.trim(), st.stderr).toBe(PKG);
  });

  it('stops cleanly on SIGTERM', async () => {
    const exited = new Promise<number | null>((ok) => daemon!.once('exit', (code) => ok(code)));
    process.kill(daemonPid, 'SIGTERM');
    expect(await exited).toBe(0);
    expect(daemonOut).toContain('"msg":"stopped"');
  }, 20_000);

  it('apt-get purge: the user, the state and the config go', async () => {
    const r = await apt('purge', PKG);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await inTree(['dpkg-query', '-W', '-f=${db:Status-Status}', PKG])).stdout).not.toBe('installed');
    expect(await getent('passwd', PKG)).toBeNull();
    expect(await getent('group', PKG)).toBeNull();
    for (const path of [STATE_DIR, `/etc/${PKG}`, `/usr/lib/${PKG}`, `/usr/bin/${PKG}`, UNIT]) {
      expect((await inTree(['test', '-e', path])).code, path).not.toBe(0);
    }
  }, APT_TIMEOUT_MS);
});

/** A host command's stdout; fails on a non-zero exit. */
async function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((ok, fail) =>
    execFile(cmd, args, { encoding: 'utf8' }, (err, stdout, stderr) => (err ? fail(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : ok(stdout))),
  );
}
