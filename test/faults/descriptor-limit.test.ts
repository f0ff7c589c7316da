/**
 * Out of file descriptors: the built daemon's limit lowered (prlimit) below socketmap.max_connections.
 * Accepts then fail with EMFILE. On Linux libuv absorbs that itself (it accepts and closes the waiting
 * connections with a reserved descriptor) and Node reports it as the server's 'error' only when that
 * trick fails, which the daemon then logs (rate-limited) rather than die of. Either way: the daemon keeps
 * answering on the connections it has, and accepts again once descriptors are free.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectSocketmap } from '../lab/socketmap-client.js';
import { ZONE, eventually, secure, startDaemon, startWorld, type Daemon, type World } from './world.js';

/** Descriptors left free under the lowered limit: a few connections fit, the flood does not. */
const HEADROOM = 8;
const FLOOD = 60;
let world: World;
let daemon: Daemon;

beforeAll(async () => {
  world = await startWorld(['good']);
  daemon = await startDaemon(world, { socketmap: 'max_connections: 1000', yaml: 'cache: { store: memory }' });
  expect(await daemon.client.query('postfix', `good.${ZONE}`)).toBe(secure('good'));
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  await world?.close();
});

function openDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

describe('descriptor limit below max_connections', () => {
  it('survives EMFILE on accept, serves open connections, then accepts again', async () => {
    const pid = daemon.sidecar.process.pid!;
    const before = execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--raw', '--noheadings', '--output=SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/);
    const limit = openDescriptors(pid) + HEADROOM;
    // The soft limit only: the hard one stays, so the old limit can be given back.
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}:${before[1]}`]);

    const flood: net.Socket[] = [];
    let closedByDaemon = 0;
    for (let i = 0; i < FLOOD; i++) {
      const s = net.connect(daemon.port, '127.0.0.1');
      s.on('error', () => {});
      s.on('close', () => (closedByDaemon += 1));
      flood.push(s);
    }
    // The limit bites: connections beyond it are closed at once, not held.
    await eventually(() => closedByDaemon >= FLOOD - 2 * HEADROOM, 'connections beyond the descriptor limit to be closed');

    // Alive, and the connection it already had still gets answers.
    expect(() => process.kill(pid, 0)).not.toThrow();
    expect(await daemon.client.query('postfix', `good.${ZONE}`)).toBe(secure('good'));
    // An accept error that does reach Node is logged, rate-limited: never a line per connection.
    expect(daemon.logs().filter((l) => l.msg === 'accepting a connection failed; open connections are still served').length).toBeLessThan(5);

    // Descriptors free again: new connections are accepted and answered.
    for (const s of flood) s.destroy();
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${before[0]}:${before[1]}`]);
    await eventually(async () => {
      try {
        const fresh = await connectSocketmap({ port: daemon.port });
        const reply = await fresh.query('postfix', `good.${ZONE}`);
        fresh.close();
        return reply === secure('good');
      } catch {
        return false;
      }
    }, 'a new connection to be answered');
  });
});
