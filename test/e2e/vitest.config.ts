// The real-Postfix end-to-end tests: run only by scripts/e2e-postfix.sh, inside the test world's own
// network namespace (the main vitest run excludes test/e2e).
import { defineConfig } from 'vitest/config';
import { resolve } from 'node:path';

export default defineConfig({
  root: resolve(import.meta.dirname, '../..'),
  test: {
    include: ['test/e2e/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 90_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
