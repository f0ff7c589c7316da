/**
 * A writer process killed mid-write never leaves an unreadable database. Integration, not unit: it spawns
 * a child process running the real SqliteStore and SIGKILLs it, twenty times.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import Database from 'better-sqlite3';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/cache/sqlite-store.js';
import type { CacheEntry } from '../../src/cache/store.js';
import { sleep } from '../lab/wait.js';
import { recordingLogger } from './recording-logger.js';

const REPO = resolve(import.meta.dirname, '../..');
/** How long the writer may take to report its first commits (start-up, open, migration). */
const REPORT_TIMEOUT_MS = 10_000;

/**
 * A child process runs the real SqliteStore (transpiled from src/ into a temporary tree) and writes in a
 * tight loop, reporting each committed total on stdout. We SIGKILL it at a random moment, then check the
 * file opens without being moved aside, passes integrity_check, holds at least every reported commit, and
 * that every row is intact.
 */
describe('SqliteStore crash safety', () => {
  const ROUNDS = 20;

  /** The child's entry for index i, generation gen (rewrites bump gen); the parent rebuilds it to compare. */
  const ENTRY_JS = `
    function crashEntry(i, gen) {
      const domain = 'd' + i + '.crash.example';
      return {
        domain, id: 'id' + i + 'g' + gen,
        policy: { version: 'STSv1', mode: i % 2 ? 'enforce' : 'testing', maxAge: 86400 + i, mx: [{ wildcard: true, domain: 'mx' + i + '.example' }], extensions: [] },
        text: ('policy ' + i + ' gen ' + gen + ';').repeat(1 + ((i * 7 + gen) % 150)),
        fetchedAt: 1000 + i, expiresAt: 2000 + i, checkedAt: 3000 + gen,
        lastError: gen % 3 ? { reason: 'dns', message: 'gen ' + gen, at: gen } : null,
        failures: gen,
      };
    }`;
  const crashEntry = new Function(`${ENTRY_JS}; return crashEntry;`)() as (i: number, gen: number) => CacheEntry;

  const CHILD_JS = `
    import { SqliteStore } from './src/cache/sqlite-store.js';
    ${ENTRY_JS}
    const store = new SqliteStore({ path: process.argv[2], flushIntervalMs: 1, flushMaxEntries: 25 });
    let n = await store.count();
    for (let round = 1; round <= 1_000_000; round++) {
      for (let k = 0; k < 20; k++) await store.put(crashEntry(n + k, 0));
      for (let k = 0; k < 5 && n > 0; k++) await store.put(crashEntry((round * 37 + k) % n, round));
      await store.flush();
      n += 20;
      process.stdout.write(n + '\\n');
      if (round % 10 === 0) await new Promise((r) => setImmediate(r));
    }
  `;

  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'mta-sts-crash-'));
    transpileTree(join(REPO, 'src/cache/sqlite-store.ts'), work);
    symlinkSync(join(REPO, 'node_modules'), join(work, 'node_modules'));
    writeFileSync(join(work, 'package.json'), '{ "type": "module" }\n');
    writeFileSync(join(work, 'writer.js'), CHILD_JS);
  });
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  it(`a writer SIGKILLed at ${ROUNDS} random moments never leaves an unreadable database`, { timeout: 120_000 }, async () => {
    const dir = join(work, 'db');
    mkdirSync(dir);
    const path = join(dir, 'cache.db');
    let committed = 0;
    let killedMidWrite = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Every fifth round the kill may land during start-up (open, migration); the rest land mid-loop.
      const early = round % 5 === 0;
      const run = await runAndKill(work, path, early ? 0 : 1, Math.random() * (early ? 150 : 60));
      if (run.reported > 0) killedMidWrite++;
      committed = Math.max(committed, run.reported);

      if (existsSync(path)) {
        const raw = new Database(path, { readonly: true });
        expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
        raw.close();
      } else {
        expect(run.reported).toBe(0); // killed before it even created the file
      }

      const log = recordingLogger();
      const store = new SqliteStore({ path, logger: log });
      try {
        expect(log.lines).toEqual([]);
        const count = await store.count();
        expect(count).toBeGreaterThanOrEqual(committed);
        committed = count;
        if (count > 0) {
          const i = Math.floor(Math.random() * count);
          const got = await store.get(`d${i}.crash.example`);
          expect(got).toStrictEqual(crashEntry(i, got!.failures));
        }
        let listed = 0;
        for await (const entry of store.list()) {
          listed++;
          const i = Number(/^d(\d+)\./.exec(entry.domain)![1]);
          expect(entry).toStrictEqual(crashEntry(i, entry.failures));
        }
        expect(listed).toBe(count);
      } finally {
        await store.close();
      }
    }
    expect(readdirSync(dir).filter((f) => f.includes('corrupt'))).toEqual([]);
    expect(killedMidWrite).toBeGreaterThanOrEqual(ROUNDS - ROUNDS / 5);
    expect(committed).toBeGreaterThan(0);
  });
});

/** Spawn the writer; once it has reported `afterLines` commits, wait `delayMs` and SIGKILL it. */
async function runAndKill(work: string, path: string, afterLines: number, delayMs: number): Promise<{ reported: number }> {
  const child = spawn(process.execPath, [join(work, 'writer.js'), path], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => {
    if (err.length < 4096) err += c.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => res({ code, signal })),
  );
  try {
    const outcome = await reported(child, () => out.split('\n').length - 1 >= afterLines, exited);
    if (outcome === 'exited') throw new Error(`writer exited on its own (${child.exitCode}): ${err}`);
    if (outcome === 'timeout') throw new Error(`writer reported nothing within ${REPORT_TIMEOUT_MS} ms: ${err}`);
    // Behaviour under test, not synchronisation: the kill lands at a random moment of the write loop.
    await sleep(delayMs);
  } finally {
    child.kill('SIGKILL');
  }
  const { signal } = await exited;
  expect(signal).toBe('SIGKILL');
  const lines = out.split('\n').filter((l) => l !== '');
  return { reported: lines.length === 0 ? 0 : Number(lines.at(-1)) };
}

/** Waits for the writer's output to satisfy `enough` (checked at each chunk), its exit, or REPORT_TIMEOUT_MS. */
function reported(child: ChildProcess, enough: () => boolean, exited: Promise<unknown>): Promise<'reported' | 'exited' | 'timeout'> {
  if (enough()) return Promise.resolve('reported');
  return new Promise((done) => {
    const onData = (): void => {
      if (enough()) finish('reported');
    };
    const timer = setTimeout(() => finish('timeout'), REPORT_TIMEOUT_MS);
    const finish = (how: 'reported' | 'exited' | 'timeout'): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      done(how);
    };
    // Registered after runAndKill's own listener, so `out` already holds the chunk when this runs.
    child.stdout?.on('data', onData);
    void exited.then(() => finish('exited'));
  });
}

/** Transpile `entry` and every relative import it reaches into `outDir`, keeping paths relative to the repo. */
function transpileTree(entry: string, outDir: string): void {
  const todo = [entry];
  const done = new Set<string>();
  for (let i = 0; i < 200 && todo.length > 0; i++) {
    const file = todo.pop()!;
    if (done.has(file)) continue;
    done.add(file);
    const source = readFileSync(file, 'utf8');
    const { outputText } = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    const target = join(outDir, relative(REPO, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
    for (const m of outputText.matchAll(/from\s+['"](\.{1,2}\/[^'"]+)\.js['"]/g)) {
      todo.push(resolve(dirname(file), `${m[1]}.ts`));
    }
  }
  if (todo.length > 0) throw new Error('transpileTree: import graph larger than expected');
}
