/**
 * One `npm run deb` for the package tests that need the .deb (deb.test.ts on this machine,
 * deb-trixie.test.ts on Debian 13), however many of them run at once: the first builds into build/deb/,
 * the others wait for it (a lock) and take that .deb, since nothing it is made of changed. What it is
 * made of: every file scripts/build-deb.sh exports (tracked, and untracked but not ignored: the
 * working tree as it is), and the Node.js it is built for (its Depends and the compiled addon follow
 * it). The stamp beside the .deb holds their hash and the test run that built it: within one run the
 * .deb is built once, whatever is edited meanwhile (a second build would replace the file the other test
 * is installing); a later run reuses it when nothing changed, else builds again.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { procStat } from '../lab/processes.js';

const ROOT = resolve(import.meta.dirname, '../..');
const OUT = join(ROOT, 'build/deb');
const STAMP = join(OUT, 'inputs.sha256');
const LOCK = join(ROOT, 'build/deb.lock');

/** sha256 over the exported files (path and content) and the Node.js version the addon is built for. */
async function inputsHash(): Promise<string> {
  const list = await new Promise<string>((ok, fail) =>
    execFile('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, maxBuffer: 64 << 20 }, (err, out) =>
      err ? fail(err) : ok(out),
    ),
  );
  const hash = createHash('sha256').update(`node ${process.version}\0`);
  for (const file of list.split('\0').filter(Boolean).sort()) {
    let content: Buffer;
    try {
      content = await readFile(join(ROOT, file));
    } catch {
      continue; // tracked but deleted in the working tree: not exported either
    }
    hash.update(`${file}\0${content.length}\0`).update(content);
  }
  return hash.digest('hex');
}

/**
 * This test run: vitest's main process (every test file's worker is its child, pool `forks`), by pid and
 * start time, so that a later process with the same pid is another run.
 */
function testRun(): string {
  return `${process.ppid}:${procStat(process.ppid)?.start ?? ''}`;
}

/** Holds LOCK (flock, in a child process: released when it ends, also if this process dies). */
async function lock(): Promise<ChildProcess> {
  mkdirSync(join(ROOT, 'build'), { recursive: true });
  const holder = spawn('flock', [LOCK, 'sh', '-c', 'echo locked; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((ok, fail) => {
    holder.stdout!.once('data', () => ok());
    holder.once('exit', (code) => fail(new Error(`flock ${LOCK} exited with ${code}`)));
  });
  return holder;
}

/**
 * The .deb of the working tree as it is: built with `npm run deb` (its output in `logFile`) unless the
 * one in build/deb/ was built from the same inputs. Returns its path.
 */
export async function debOfWorkingTree(logFile: string): Promise<string> {
  const holder = await lock();
  try {
    const inputs = await inputsHash();
    const run = testRun();
    if (existsSync(STAMP)) {
      const [hash, builtBy, deb] = readFileSync(STAMP, 'utf8').trim().split('\n');
      if ((hash === inputs || builtBy === run) && deb !== undefined && existsSync(deb)) {
        writeFileSync(logFile, `reused ${deb}: built ${builtBy === run ? 'in this test run' : 'from the same inputs'} (${hash})\n`);
        return deb;
      }
    }
    rmSync(STAMP, { force: true });
    rmSync(logFile, { force: true });
    let out = '';
    const child = spawn('npm', ['run', '--silent', 'deb'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEB_OUT: OUT } });
    const log = createWriteStream(logFile);
    child.stdout.on('data', (b: Buffer) => ((out += b.toString()), log.write(b)));
    child.stderr.on('data', (b: Buffer) => log.write(b));
    const code = await new Promise<number | null>((ok) => child.once('exit', ok));
    await new Promise((ok) => log.end(ok));
    if (code !== 0) throw new Error(`npm run deb failed (exit ${code}); see ${logFile}`);
    const deb = out.trim().split('\n').pop()!;
    writeFileSync(STAMP, `${inputs}\n${run}\n${deb}\n`);
    return deb;
  } finally {
    holder.stdin!.end();
  }
}
