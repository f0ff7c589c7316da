// `npm run soak`: the bounded soak test (minutes), outside the default `npm test` run.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/soak/**/*.soak.ts'],
    pool: 'forks',
    hookTimeout: 120_000,
  },
});
