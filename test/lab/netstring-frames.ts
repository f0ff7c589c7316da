/** Reading replies in tests with the daemon's own netstring decoder (src/server/postfix/netstring.ts). */
import type { NetstringDecoder } from '../../src/server/postfix/netstring.js';

/**
 * Decodes one chunk and hands each completed payload to `onFrame`, in order; the payloads before a
 * framing error are handed over before the NetstringError is rethrown.
 */
export function decodeFrames(decoder: NetstringDecoder, chunk: Buffer, onFrame: (payload: Buffer) => void): void {
  const out: Buffer[] = [];
  try {
    decoder.decodeInto(chunk, out);
  } finally {
    for (const payload of out) onFrame(payload);
  }
}
