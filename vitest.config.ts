// Three vitest projects, by what a test needs (test/projects.ts says which file is where, and why):
//   npm run test:unit          pure, no root, no servers: seconds, run it all the time
//   npm run test:integration   lab servers on loopback and the built daemon
//   npm run test:system        root: namespaces, Postfix, Exim, the .deb; then the real-Postfix e2e run
//   npm test                   all three, then e2e, with one closing `tests: N passed, N failed` line
// `npx vitest run test/unit/foo.test.ts` still runs one file, whichever project it is in.
import { defineConfig } from 'vitest/config';
import { includeGlobs, PROJECTS } from './test/projects.js';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: Object.entries(PROJECTS).map(([name, entries]) => ({
      extends: true,
      test: {
        name,
        include: includeGlobs(entries),
        // Real Postfix end to end: runs inside its own network namespace (scripts/e2e-postfix.sh).
        exclude: ['**/node_modules/**', 'test/e2e/**'],
        // Pure tests share a worker's loaded modules instead of importing src/ afresh for each file:
        // about 40% less CPU for the unit project. Only pure code may rely on this (no process-wide
        // state a file must not inherit), which is what the unit project is for.
        ...(name === 'unit' ? { isolate: false } : {}),
      },
    })),
  },
});
