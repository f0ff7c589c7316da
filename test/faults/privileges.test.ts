/**
 * The daemon needs no root at run time: started as nobody:nogroup (setpriv, no capabilities, no
 * supplementary groups) it binds its TCP port on loopback and its unix socket (mode 0660, group nogroup),
 * keeps its sqlite cache, and answers over both. Started as root it says, once, that root is not needed.
 */
import { spawn } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, assertBuilt, freePort } from '../lab/sidecar.js';
import { connectSocketmap } from '../lab/socketmap-client.js';
import { ZONE, eventually, secure, startDaemon, startWorld, type World } from './world.js';

const NOBODY = 65534;
let world: World;
let dir: string;

beforeAll(async () => {
  assertBuilt();
  world = await startWorld(['priv']);
  dir = mkdtempSync(join(tmpdir(), 'privileges-'));
  chownSync(dir, NOBODY, NOBODY);
}, 60_000);

afterAll(async () => {
  await world?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('privileges', () => {
  it('runs as nobody:nogroup: loopback TCP, a 0660 unix socket of its group, a sqlite cache, correct answers', async () => {
    const port = await freePort();
    const sock = join(dir, 'run', 'socketmap.sock');
    mkdirSync(join(dir, 'run'));
    chownSync(join(dir, 'run'), NOBODY, NOBODY);
    writeFileSync(join(dir, 'ca.pem'), world.https.ca.certPem);
    const config = join(dir, 'config.yml');
    writeFileSync(
      config,
      `
socketmap: { listen: ["tcp:127.0.0.1:${port}", "unix:${sock}"], unix_group: nogroup }
dns: { servers: ["${world.dnsAddress}"], timeout_ms: 1000, tries: 1 }
fetch: { ca_file: "${join(dir, 'ca.pem')}", allow_private_addresses: true, timeout_ms: 2000 }
cache: { store: sqlite, path: "${join(dir, 'cache', 'cache.db')}" }
http: { listen: [] }
`,
    );
    const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', process.execPath, BIN, 'serve', '--config', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (out += b));
    try {
      await eventually(() => out.includes('"msg":"mta-sts-sidecar ready"') || child.exitCode !== null, 'the daemon to start', 15_000);
      expect(out).toContain('"msg":"mta-sts-sidecar ready"');
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(String(NOBODY));
      expect(/^CapEff:\s+(\S+)/m.exec(status)?.[1]).toBe('0000000000000000');
      expect(out).not.toContain('running as root');

      const st = statSync(sock);
      expect([st.uid, st.gid, st.mode & 0o777]).toEqual([NOBODY, NOBODY, 0o660]);
      const tcp = await connectSocketmap({ port });
      const unix = await connectSocketmap({ path: sock });
      expect(await tcp.query('postfix', `priv.${ZONE}`)).toBe(secure('priv'));
      expect(await unix.query('postfix', `priv.${ZONE}`)).toBe(secure('priv'));
      tcp.close();
      unix.close();
      await eventually(() => {
        try {
          return statSync(join(dir, 'cache', 'cache.db')).uid === NOBODY;
        } catch {
          return false;
        }
      }, 'the cache file, owned by nobody');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    }
  });

  it('run as root, it warns once that root is not needed', async () => {
    const daemon = await startDaemon(world, { yaml: 'cache: { store: memory }' });
    try {
      await eventually(() => daemon.logs().some((l) => l.msg.startsWith('running as root')), 'the warning');
      expect(daemon.logs().filter((l) => l.msg.startsWith('running as root'))).toHaveLength(1);
    } finally {
      await daemon.stop();
    }
  });
});
