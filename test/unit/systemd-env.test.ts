/** sd_listen_fds(3) environment: which descriptors, if any, systemd passed to this process. */
import { describe, expect, it } from 'vitest';
import { clearListenEnv, listenFdsFromEnv } from '../../src/server/socket-activation.js';

const PID = 4242;

describe('listenFdsFromEnv', () => {
  it.each<[string, NodeJS.ProcessEnv, string]>([
    ['not socket-activated', {}, ''],
    ['one socket, no names', { LISTEN_PID: '4242', LISTEN_FDS: '1' }, '3:unknown'],
    ['two named sockets', { LISTEN_PID: '4242', LISTEN_FDS: '2', LISTEN_FDNAMES: 'socketmap:http' }, '3:socketmap 4:http'],
    ['fewer names than sockets', { LISTEN_PID: '4242', LISTEN_FDS: '2', LISTEN_FDNAMES: 'socketmap' }, '3:socketmap 4:unknown'],
    ['meant for another process (inherited variables)', { LISTEN_PID: '1', LISTEN_FDS: '1' }, ''],
    ['LISTEN_FDS without LISTEN_PID', { LISTEN_FDS: '1' }, ''],
    ['zero sockets', { LISTEN_PID: '4242', LISTEN_FDS: '0' }, ''],
  ])('%s', (_rule, env, want) => {
    expect(listenFdsFromEnv(env, PID).map((f) => `${f.fd}:${f.name}`).join(' ')).toBe(want);
  });

  it.each<[string, NodeJS.ProcessEnv, RegExp]>([
    ['LISTEN_PID not a number', { LISTEN_PID: 'me', LISTEN_FDS: '1' }, /^LISTEN_PID is not a process id: "me"$/],
    ['LISTEN_FDS not a number', { LISTEN_PID: '4242', LISTEN_FDS: 'two' }, /^LISTEN_FDS is not a count: "two"$/],
  ])('%s is an error', (_rule, env, message) => {
    expect(() => listenFdsFromEnv(env, PID)).toThrow(message);
  });

  it('clearListenEnv removes the three variables and nothing else', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '1', LISTEN_FDS: '1', LISTEN_FDNAMES: 'x', NOTIFY_SOCKET: '/run/n' };
    clearListenEnv(env);
    expect(env).toEqual({ NOTIFY_SOCKET: '/run/n' });
  });
});
