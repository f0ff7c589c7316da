/**
 * scripts/postfix-lab.sh, the cached private Postfix build for test/e2e: built once, rebuilt only when
 * the vendored tarball's checksum changes, never from a tarball that does not match its `.sha256`.
 *
 * Run on a copy of the script in a temp "repository" whose vendor/postfix holds a stand-in release: a
 * tarball with a Makefile that answers the script's three make steps in a few milliseconds and installs
 * a `postconf` that reports the stand-in's version. Building real Postfix is what test/e2e does.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SCRIPT = join(import.meta.dirname, '..', '..', 'scripts', 'postfix-lab.sh');
const VERSION = '9.9.9';
const TIMEOUT_MS = 30_000;

let repo: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function lab(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('bash', [join(repo, 'scripts', 'postfix-lab.sh'), ...args], { timeout: TIMEOUT_MS }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/**
 * A stand-in release tarball: `make makefiles`, `make`, `make non-interactive-package install_root=R`
 * succeed; the last installs R/usr/sbin/postconf (printing `version`) and counts itself in
 * <repo>/builds (install_root is <repo>/.cache/postfix-<v>/root).
 */
async function standInRelease(version: string, marker: string): Promise<Buffer> {
  const work = await mkdtemp(join(tmpdir(), 'postfix-lab-standin-'));
  const top = join(work, `postfix-${version}`);
  await mkdir(top);
  const makefile = [
    `# stand-in ${marker}`,
    'default:',
    '\t@true',
    'makefiles:',
    '\t@true',
    'non-interactive-package:',
    '\tmkdir -p $(install_root)/usr/sbin',
    `\tprintf '#!/bin/sh\\necho ${version}\\n' > $(install_root)/usr/sbin/postconf`,
    '\tchmod 755 $(install_root)/usr/sbin/postconf',
    '\techo built >> $(install_root)/../../../builds',
    '',
  ].join('\n');
  await writeFile(join(top, 'Makefile'), makefile);
  const tarball = join(work, 'out.tar.gz');
  await new Promise<void>((resolve, reject) =>
    execFile('tar', ['-czf', tarball, '-C', work, `postfix-${version}`], (err) => (err ? reject(err) : resolve())),
  );
  const bytes = await readFile(tarball);
  await rm(work, { recursive: true, force: true });
  return bytes;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const vendorDir = () => join(repo, 'vendor', 'postfix');
const tarballPath = (version = VERSION) => join(vendorDir(), `postfix-${version}.tar.gz`);

async function vendor(bytes: Buffer, sum = sha256(bytes), version = VERSION): Promise<void> {
  await writeFile(tarballPath(version), bytes);
  await writeFile(`${tarballPath(version)}.sha256`, `${sum}  postfix-${version}.tar.gz\n`);
}

const builds = async () => (await readFile(join(repo, 'builds'), 'utf8').catch(() => '')).split('\n').filter(Boolean).length;

beforeEach(async () => {
  repo = await mkdtemp(join(tmpdir(), 'postfix-lab-'));
  await mkdir(join(repo, 'scripts'));
  await copyFile(SCRIPT, join(repo, 'scripts', 'postfix-lab.sh'));
  await mkdir(vendorDir(), { recursive: true });
});

afterEach(async () => {
  await rm(repo, { recursive: true, force: true });
});

describe('scripts/postfix-lab.sh', () => {
  it('builds once into .cache/postfix-<version>/root, then is quiet and builds nothing', async () => {
    await vendor(await standInRelease(VERSION, 'a'));
    const first = await lab('--root');
    expect(first).toMatchObject({ code: 0, stdout: `${join(repo, '.cache', `postfix-${VERSION}`, 'root')}\n` });
    expect(first.stderr).toContain(`Postfix ${VERSION} ready in .cache/postfix-${VERSION}/root`);
    expect(await builds()).toBe(1);
    // The source tree is not kept; the stamp holds the tarball's checksum.
    expect(existsSync(join(repo, '.cache', `postfix-${VERSION}`, 'src'))).toBe(false);

    expect(await lab()).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await builds()).toBe(1);
  });

  it('rebuilds when the tarball (and so its checksum) changes', async () => {
    await vendor(await standInRelease(VERSION, 'a'));
    expect((await lab()).code).toBe(0);
    await vendor(await standInRelease(VERSION, 'b'));
    expect((await lab()).code).toBe(0);
    expect(await builds()).toBe(2);
  });

  it('rebuilds when the cached postconf no longer reports the version', async () => {
    await vendor(await standInRelease(VERSION, 'a'));
    expect((await lab()).code).toBe(0);
    await writeFile(join(repo, '.cache', `postfix-${VERSION}`, 'root', 'usr', 'sbin', 'postconf'), '#!/bin/sh\necho 1.0.0\n');
    expect((await lab()).code).toBe(0);
    expect(await builds()).toBe(2);
  });

  // [case, how vendor/postfix is set up, what the script says]
  it.each<[string, () => Promise<void>, RegExp]>([
    [
      'tarball does not match its .sha256',
      async () => vendor(await standInRelease(VERSION, 'a'), 'ab'.repeat(32)),
      /has SHA-256 [0-9a-f]{64}, .* says (ab){32}: not building it/,
    ],
    [
      'no .sha256 beside the tarball',
      async () => writeFile(tarballPath(), await standInRelease(VERSION, 'a')),
      /\.sha256 is missing or holds no SHA-256/,
    ],
    ['no tarball at all', async () => undefined, /expected exactly one postfix-\*\.tar\.gz in vendor\/postfix, found 0/],
    [
      'two releases',
      async () => {
        await vendor(await standInRelease(VERSION, 'a'));
        await vendor(await standInRelease('9.9.8', 'a'), undefined, '9.9.8');
      },
      /found 2/,
    ],
  ])('%s: refuses, builds nothing', async (_case, setUp, message) => {
    await setUp();
    const r = await lab();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(await builds()).toBe(0);
    expect(existsSync(join(repo, '.cache', `postfix-${VERSION}`, 'root'))).toBe(false);
  });
});
