// Tests that must run inside a network namespace of their own (they bind non-loopback addresses that
// exist only there). Started by test/faults/rebinding-netns.test.ts through `unshare --net`; never on the host.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/netns/**/*.netns.ts'],
    testTimeout: 30_000,
    pool: 'forks',
  },
});
