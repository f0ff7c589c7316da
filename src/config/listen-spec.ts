/**
 * Listen addresses as the config writes them (`socketmap.listen`, `exim.listen`, `http.listen`):
 *
 *   tcp:HOST:PORT      HOST an IPv4 address or a host name (RFC 1123 §2.1 letters, digits, hyphens)
 *   tcp:[IPV6]:PORT    the brackets of RFC 3986 §3.2.2, so that the port's colon is unambiguous
 *   unix:/absolute/path
 *
 * Pure, and the only parser of them: config validation (`config check`, and `serve` before it binds)
 * and the listeners (src/server/listen.ts) both call parseListenSpec, so what one accepts the other
 * binds.
 */
import net from 'node:net';
import { posix } from 'node:path';

export type ListenSpec =
  | { kind: 'tcp'; spec: string; host: string; port: number }
  | { kind: 'unix'; spec: string; path: string };

const TCP_PREFIX = 'tcp:';
const UNIX_PREFIX = 'unix:';
/** TCP ports are 16 bits (RFC 9293 §3.1). */
export const MAX_PORT = 65_535;
/** Linux sockaddr_un.sun_path is 108 bytes including the terminating NUL (unix(7)). */
export const UNIX_PATH_MAX_BYTES = 107;
/** RFC 1035 §2.3.4: a name of at most 253 octets in text form, labels of at most 63. */
const HOST_MAX_OCTETS = 253;
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
export const LISTEN_FORMS = 'tcp:HOST:PORT, tcp:[IPv6]:PORT or unix:/absolute/path';

export interface ListenSpecOptions {
  /**
   * Port 0 asks the kernel for any free port: useful to tests that bind and then read the port back,
   * useless in a config (the MTA could not know where to connect), so config validation refuses it.
   */
  allowPortZero?: boolean;
}

/** A listen address that does not parse; `why` says what is wrong with it, without the address. */
export class ListenSpecError extends Error {
  override readonly name = 'ListenSpecError';
  constructor(
    readonly spec: string,
    readonly why: string,
  ) {
    super(`invalid listen address ${JSON.stringify(spec)}: ${why} (expected ${LISTEN_FORMS})`);
  }
}

/** `tcp:HOST:PORT`, `tcp:[IPv6]:PORT` or `unix:/absolute/path`; throws ListenSpecError. */
export function parseListenSpec(spec: string, options: ListenSpecOptions = {}): ListenSpec {
  const bad = (why: string): ListenSpecError => new ListenSpecError(spec, why);
  if (spec.startsWith(UNIX_PREFIX)) {
    const file = spec.slice(UNIX_PREFIX.length);
    if (file === '') throw bad('empty path');
    if (!posix.isAbsolute(file)) throw bad('the path must be absolute');
    if (file.includes('\0')) throw bad('the path contains a NUL byte');
    if (Buffer.byteLength(file) > UNIX_PATH_MAX_BYTES) throw bad(`the path is longer than ${UNIX_PATH_MAX_BYTES} bytes (unix(7) sun_path)`);
    return { kind: 'unix', spec, path: file };
  }
  if (!spec.startsWith(TCP_PREFIX)) throw bad('unknown scheme');
  const rest = spec.slice(TCP_PREFIX.length);
  let host: string;
  let portText: string;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw bad('missing "]"');
    host = rest.slice(1, close);
    if (!net.isIPv6(host)) throw bad(`"${host}" is not an IPv6 address`);
    if (rest[close + 1] !== ':') throw bad('missing ":PORT"');
    portText = rest.slice(close + 2);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon < 0) throw bad('missing ":PORT"');
    host = rest.slice(0, colon);
    portText = rest.slice(colon + 1);
    if (host === '') throw bad('empty host');
    if (host.includes(':')) throw bad('IPv6 addresses must be in brackets');
    if (!isIPv4OrHostName(host)) throw bad(`bad host "${host}" (an IP address or a host name of letters, digits, hyphens and dots)`);
  }
  if (!/^\d{1,5}$/.test(portText)) throw bad(`bad port "${portText}"`);
  const port = Number(portText);
  const min = options.allowPortZero === false ? 1 : 0;
  if (port < min || port > MAX_PORT) throw bad(`bad port "${portText}" (${min} to ${MAX_PORT})`);
  return { kind: 'tcp', spec, host, port };
}

/**
 * An IPv4 address, or a host name per RFC 1123 §2.1 (so no `_`, which only service labels use, RFC
 * 8552). A name whose last label is all digits is not a host name (RFC 3696 §2), which keeps a
 * mistyped address such as `127.0.0.256` from being looked up as a name.
 */
function isIPv4OrHostName(host: string): boolean {
  if (net.isIPv4(host)) return true;
  if (host.length > HOST_MAX_OCTETS) return false;
  const labels = host.split('.');
  return labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1]!);
}
