/**
 * Unix socket files get the configured mode, owner and group (names or ids), never world-writable by
 * default; a name the system does not know is an error naming the listener.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { startListeners, type Listeners } from '../../src/server/listen.js';
import { resolveOwnership } from '../../src/server/unix-owner.js';

const silent = pino({ level: 'silent' });
const open: Listeners[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const l of open.splice(0)) await l.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function socketWith(ownership: { owner: string | null; group: string | null } | undefined, mode = 0o660) {
  const dir = await mkdtemp(join(tmpdir(), 'unix-owner-'));
  dirs.push(dir);
  const path = join(dir, 'map.sock');
  const listeners = await startListeners([`unix:${path}`], () => {}, { maxConnections: 10, unixMode: mode, ...(ownership ? { unixOwnership: ownership } : {}) }, silent);
  open.push(listeners);
  return stat(path);
}

describe('unix socket mode and ownership', () => {
  it('default: mode 0660, the daemon user and group, nobody else may write', async () => {
    const st = await socketWith(undefined);
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.mode & 0o002).toBe(0);
    expect([st.uid, st.gid]).toEqual([process.getuid!(), process.getgid!()]);
  });

  it('owner and group by name (passwd/group), mode as configured', async () => {
    const st = await socketWith({ owner: 'nobody', group: 'nogroup' }, 0o620);
    expect([st.uid, st.gid]).toEqual([65534, 65534]);
    expect(st.mode & 0o777).toBe(0o620);
  });

  it('group only, by numeric id', async () => {
    const st = await socketWith({ owner: null, group: '65534' });
    expect([st.uid, st.gid]).toEqual([process.getuid!(), 65534]);
  });

  it('an unknown name fails the listener, naming it and the name', async () => {
    await expect(socketWith({ owner: null, group: 'no-such-group-here' })).rejects.toThrow(/listen unix:.*map\.sock: cannot set mode or owner: no group "no-such-group-here" in \/etc\/group/);
  });

  it('resolveOwnership reads passwd(5) and group(5) lines', () => {
    expect(resolveOwnership({ owner: 'root', group: 'nogroup' })).toEqual({ uid: 0, gid: 65534 });
    expect(resolveOwnership({ owner: null, group: null })).toEqual({ uid: -1, gid: -1 });
  });

  it('config: socketmap.unix_owner / unix_group take names or ids, default null; the TCP default is loopback', () => {
    const c = parseConfig('socketmap: { unix_owner: nobody, unix_group: 105 }\nexim: { unix_group: Debian-exim }\n');
    expect([c.socketmap.unix_owner, c.socketmap.unix_group, c.exim.unix_group]).toEqual(['nobody', '105', 'Debian-exim']);
    const d = parseConfig('');
    expect([d.socketmap.unix_owner, d.socketmap.unix_group, d.socketmap.unix_mode]).toEqual([null, null, 0o660]);
    expect(d.socketmap.listen).toEqual(['tcp:127.0.0.1:8461']);
    expect(() => parseConfig('socketmap: { unix_group: "a b" }\n')).toThrow(/socketmap.unix_group: must be a user or group name/);
  });
});
