/**
 * IP address text to bytes, for judging addresses by their bits rather than by how they happen to be
 * written (`64:ff9b::1`, `64:ff9b::0.0.0.1` and `64:ff9b:0:0:0:0:0:1` are one address). Pure, strict,
 * total: anything that is not an address gives null, never an exception.
 */

export interface ParsedAddress {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
  /** RFC 4007 §11 zone index ("fe80::1%eth0"), without the "%"; null when none. */
  zone: string | null;
}

/** One prefix: the address's first `bits` bits. */
export interface Prefix {
  family: 4 | 6;
  bytes: Uint8Array;
  bits: number;
}

/** RFC 791 dotted quad in decimal; no leading zeros (ambiguous: octal to some parsers), no short forms. */
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
/** RFC 4291 §2.2: a 16-bit piece, one to four hex digits. */
const HEXTET = /^[0-9a-fA-F]{1,4}$/;
/** RFC 4007 §11.2: a zone index is any non-empty text; we accept the printable ones only. */
const ZONE = /^[\x21-\x7e]+$/;

export function parseIpv4(text: string): Uint8Array | null {
  const m = IPV4.exec(text);
  if (!m) return null;
  return Uint8Array.of(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]));
}

/**
 * RFC 4291 §2.2 text forms: eight hextets; "::" once, for one or more zero hextets; the last 32 bits
 * in dotted decimal (`::ffff:192.0.2.1`, `::0.0.0.2`); and an RFC 4007 §11 zone index after "%".
 */
export function parseIpv6(text: string): { bytes: Uint8Array; zone: string | null } | null {
  const percent = text.indexOf('%');
  const zone = percent >= 0 ? text.slice(percent + 1) : null;
  if (zone !== null && !ZONE.test(zone)) return null;
  const address = percent >= 0 ? text.slice(0, percent) : text;
  const gap = address.indexOf('::');
  // A second "::" (or ":::") is ambiguous: RFC 4291 §2.2 allows one.
  if (gap >= 0 && address.indexOf('::', gap + 1) >= 0) return null;
  const head = gap >= 0 ? hextets(address.slice(0, gap), false) : hextets(address, true);
  const tail = gap >= 0 ? hextets(address.slice(gap + 2), true) : [];
  if (head === null || tail === null) return null;
  const count = head.length + tail.length;
  if (gap < 0 ? count !== 8 : count > 7) return null;
  const groups = [...head, ...new Array<number>(8 - count).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return { bytes, zone };
}

/** Hextets of one side of "::" ("" is none); a trailing dotted quad counts as two when allowed. */
function hextets(part: string, v4Last: boolean): number[] | null {
  if (part === '') return [];
  const pieces = part.split(':');
  if (pieces.length > 8) return null;
  const out: number[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i]!;
    if (v4Last && i === pieces.length - 1 && piece.includes('.')) {
      const v4 = parseIpv4(piece);
      if (v4 === null) return null;
      out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else if (HEXTET.test(piece)) {
      out.push(parseInt(piece, 16));
    } else {
      return null;
    }
  }
  return out;
}

/** IPv4 or IPv6 text, or null. */
export function parseAddress(text: string): ParsedAddress | null {
  const v4 = parseIpv4(text);
  if (v4 !== null) return { family: 4, bytes: v4, zone: null };
  const v6 = parseIpv6(text);
  return v6 === null ? null : { family: 6, ...v6 };
}

/** "192.0.2.0/24", "2001:db8::/32": the network must have no bits set past the length. */
export function parsePrefix(cidr: string): Prefix {
  const slash = cidr.lastIndexOf('/');
  const parsed = parseAddress(cidr.slice(0, slash));
  const bits = Number(cidr.slice(slash + 1));
  if (parsed === null || parsed.zone !== null || !Number.isInteger(bits) || bits < 0 || bits > parsed.bytes.length * 8) {
    throw new Error(`not a prefix: ${cidr}`);
  }
  const prefix = { family: parsed.family, bytes: parsed.bytes, bits };
  if (!sameAfterMask(parsed.bytes, bits)) {
    throw new Error(`prefix with host bits set: ${cidr}`);
  }
  return prefix;
}

function sameAfterMask(bytes: Uint8Array, bits: number): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - 8 * i));
    if ((bytes[i]! & (0xff >> keep)) !== 0) return false;
  }
  return true;
}

/** True when `bytes` (of the prefix's family) starts with the prefix's first `bits` bits. */
export function inPrefix(bytes: Uint8Array, prefix: Prefix): boolean {
  if (bytes.length !== prefix.bytes.length) return false;
  const whole = prefix.bits >> 3;
  for (let i = 0; i < whole; i++) if (bytes[i] !== prefix.bytes[i]) return false;
  const rest = prefix.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (bytes[whole]! & mask) === (prefix.bytes[whole]! & mask);
}

/** The last four bytes as dotted decimal: the IPv4 address an IPv6 address embeds (RFC 6052 §2.2, /96). */
export function lastIpv4(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(bytes.length - 4)).join('.');
}
