/**
 * Which vitest project each test file belongs to, by what it does (not by its folder's name). An entry
 * ending in `/` is a whole folder; any other entry is one file. test/unit/test-projects.test.ts fails
 * when a test file is in no project, or in two.
 *
 * - unit: pure. No root, no network server (not even on loopback), no spawned process, no built daemon:
 *   src/ imported directly. The whole project takes under 30 s on 2 cores (`npm run test:unit`).
 * - integration: real servers on loopback from test/lab (NSD, the HTTPS policy server, SMTP servers,
 *   redis-server), our own listeners, child processes, and the built daemon (`npm run build` first).
 *   The lab binds ports 53, 443 and 25 on 127.a.b.c: root, CAP_NET_BIND_SERVICE, or
 *   `sysctl net.ipv4.ip_unprivileged_port_start=0`.
 * - system: needs root for more than low ports: network and mount namespaces, tmpfs mounts, other users
 *   and groups, Postfix, Debian's Exim, building and installing the .deb. The real-Postfix end-to-end
 *   run (test/e2e) belongs here too, but runs inside a network namespace of its own through
 *   scripts/e2e-postfix.sh (with test/e2e/vitest.config.ts), so the projects below leave it out.
 *
 * test/netns/*.netns.ts and test/soak/*.soak.ts are not `*.test.ts` files: their own configs run them
 * (the first from test/faults/rebinding-netns.test.ts, the second from `npm run soak`).
 */
export const PROJECTS = {
  unit: [
    'test/unit/',
    'test/corpus/',
    'test/cache/memory-store.test.ts',
    'test/cache/observed-store.test.ts',
    'test/cache/sqlite-store.test.ts',
    'test/cache/sqlite-store-reopen.test.ts',
    'test/fuzz/domain-key.fuzz.test.ts',
    'test/fuzz/netstring.fuzz.test.ts',
    'test/fuzz/postfix-reply.fuzz.test.ts',
    'test/fuzz/sts-policy.fuzz.test.ts',
    'test/fuzz/sts-txt.fuzz.test.ts',
    'test/packaging/config-file.test.ts',
  ],
  integration: [
    'test/integration/',
    'test/cache/postgres-store.test.ts',
    'test/cache/redis-cluster-store.test.ts',
    'test/cache/redis-sentinel-store.test.ts',
    'test/cache/redis-store.test.ts',
    'test/cache/sqlite-store-crash.test.ts',
    'test/fuzz/exim.fuzz.test.ts',
    'test/fuzz/socketmap-wire.fuzz.test.ts',
    'test/faults/hostile-peers.test.ts',
    'test/faults/network-faults.test.ts',
    'test/faults/socket-abuse.test.ts',
    'test/faults/descriptor-limit.test.ts',
    'test/packaging/man-pages.test.ts',
  ],
  system: [
    'test/exim/',
    'test/postfix/',
    'test/system/',
    'test/faults/privileges.test.ts',
    'test/faults/rebinding-netns.test.ts',
    'test/faults/store-faults.test.ts',
    'test/packaging/deb.test.ts',
    'test/packaging/deb-trixie.test.ts',
  ],
} as const satisfies Record<string, readonly string[]>;

export type ProjectName = keyof typeof PROJECTS;

/** Run by scripts/e2e-postfix.sh only, in its own network namespace. */
export const E2E = 'test/e2e/';

/** vitest `include` globs for a project's entries. */
export function includeGlobs(entries: readonly string[]): string[] {
  return entries.map((e) => (e.endsWith('/') ? `${e}**/*.test.ts` : e));
}

/** The projects whose entries cover `file` (a path relative to the repository, with `/`). */
export function projectsOf(file: string): ProjectName[] {
  return (Object.keys(PROJECTS) as ProjectName[]).filter((name) =>
    PROJECTS[name].some((e) => (e.endsWith('/') ? file.startsWith(e) : file === e)),
  );
}
