/**
 * Every test file runs in exactly one vitest project (test/projects.ts): a new file nobody classified
 * would otherwise never run, and one listed twice would run twice.
 */
import { readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { E2E, PROJECTS, projectsOf } from '../projects.js';

const REPO = resolve(import.meta.dirname, '../..');

/** Every `*.test.ts` under test/, as repository paths. Bounded: at most 10,000 directory entries. */
function testFiles(): string[] {
  const found: string[] = [];
  const todo = [join(REPO, 'test')];
  let seen = 0;
  while (todo.length > 0 && seen < 10_000) {
    const dir = todo.pop()!;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      seen++;
      const path = join(dir, e.name);
      if (e.isDirectory()) todo.push(path);
      else if (e.name.endsWith('.test.ts')) found.push(relative(REPO, path).split('\\').join('/'));
    }
  }
  return found.sort();
}

describe('vitest projects', () => {
  it('every test file outside test/e2e is in exactly one project', () => {
    const files = testFiles().filter((f) => !f.startsWith(E2E));
    expect(files.length).toBeGreaterThan(20);
    const wrong = files.map((f) => [f, projectsOf(f)] as const).filter(([, p]) => p.length !== 1);
    expect(wrong, 'add the file to one project in test/projects.ts').toEqual([]);
  });

  it('every entry names a file or folder that exists, once, and test/e2e is in none', () => {
    const files = testFiles();
    const stale = Object.values(PROJECTS)
      .flat()
      .filter((e) => !files.some((f) => (e.endsWith('/') ? f.startsWith(e) : f === e)));
    expect(stale, 'remove or fix these entries in test/projects.ts').toEqual([]);
    const entries = Object.values(PROJECTS).flat();
    expect(entries.filter((e, i) => entries.indexOf(e) !== i), 'entries listed twice').toEqual([]);
    expect(files.filter((f) => f.startsWith(E2E) && projectsOf(f).length > 0)).toEqual([]);
  });
});
