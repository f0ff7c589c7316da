/**
 * Netstrings (https://cr.yp.to/proto/netstrings.txt), the framing of every Postfix socketmap(5) request
 * and reply: `[len] ":" [string] ","`, where [len] is the decimal byte length of [string].
 *
 * The decoder is incremental: it is fed socket chunks of any split and yields payloads as they complete.
 * The size cap is checked digit by digit while the length is read, so a hostile `999999999999:` prefix is
 * refused before a single payload byte is buffered, and a payload buffer is only ever allocated for a
 * length already known to be within the cap.
 */

const DIGIT_ZERO = 0x30; // '0'
const DIGIT_NINE = 0x39; // '9'
const LENGTH_END = 0x3a; // ':' ends [len]
const FRAME_END = 0x2c; // ',' ends the frame
const DECIMAL_BASE = 10;
const FRAME_END_BYTES = Buffer.from([FRAME_END]);
const EMPTY = Buffer.alloc(0);

/** The closed set of framing failures. None of them can be recovered from on the same stream. */
export type NetstringErrorCode =
  /** [len] exceeds the decoder's cap (detected while the digits are still arriving). */
  | 'too-long'
  /** [len] is empty, has a leading zero, or contains a byte other than a digit before ':'. */
  | 'bad-length'
  /** The byte after [string] is not ','. */
  | 'bad-terminator';

export class NetstringError extends Error {
  override readonly name = 'NetstringError';
  constructor(
    readonly code: NetstringErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Where the decoder is within the current frame. */
type Phase = 'length' | 'payload' | 'terminator';

export interface NetstringDecoderOptions {
  /** Largest accepted [string], in bytes. */
  maxPayloadBytes: number;
}

export class NetstringDecoder {
  readonly maxPayloadBytes: number;
  private phase: Phase = 'length';
  /** Digits of [len] seen so far, and their value. */
  private lengthDigits = 0;
  private length = 0;
  /** The payload being assembled when it spans chunks, and how much of it has arrived. */
  private payload: Buffer = EMPTY;
  private received = 0;
  private error: NetstringError | undefined;

  constructor(options: NetstringDecoderOptions) {
    const max = options.maxPayloadBytes;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw new RangeError(`maxPayloadBytes must be a non-negative integer, got ${max}`);
    }
    this.maxPayloadBytes = max;
  }

  /** True while part of a frame has been received: the request timeout runs only then. */
  get midFrame(): boolean {
    return this.phase !== 'length' || this.lengthDigits > 0;
  }

  /** The framing error that killed this decoder, if any. */
  get failure(): NetstringError | undefined {
    return this.error;
  }

  /**
   * Decodes one chunk, appending every payload it completes to `out`, in order. On a framing error the
   * payloads before it are already in `out`, then NetstringError is thrown, now and on every later call,
   * because a byte stream with a bad length cannot be resynchronised. A payload that arrived whole in one
   * chunk is a view into that chunk, not a copy.
   */
  decodeInto(chunk: Buffer, out: Buffer[]): void {
    if (this.error) throw this.error;
    let offset = 0;
    while (offset < chunk.length) {
      if (this.phase === 'length') {
        offset = this.readLength(chunk, offset);
      } else if (this.phase === 'payload') {
        offset = this.readPayload(chunk, offset);
      } else {
        if (chunk[offset] !== FRAME_END) {
          throw this.fail('bad-terminator', `netstring does not end with "," after ${this.length} bytes`);
        }
        offset += 1;
        out.push(this.payload);
        this.reset();
      }
    }
  }

  /** Consumes [len] digits up to and including ':'; returns the new offset. */
  private readLength(chunk: Buffer, start: number): number {
    let offset = start;
    while (offset < chunk.length) {
      const byte = chunk[offset] as number;
      offset += 1;
      if (byte === LENGTH_END) {
        if (this.lengthDigits === 0) throw this.fail('bad-length', 'netstring length is empty');
        this.beginPayload();
        return offset;
      }
      if (byte < DIGIT_ZERO || byte > DIGIT_NINE) {
        throw this.fail('bad-length', `netstring length contains a non-digit byte 0x${hex(byte)}`);
      }
      // netstrings.txt §2: "[len] begins with <30> exactly when [string] is empty".
      if (this.lengthDigits > 0 && this.length === 0) {
        throw this.fail('bad-length', 'netstring length has a leading zero');
      }
      this.length = this.length * DECIMAL_BASE + (byte - DIGIT_ZERO);
      this.lengthDigits += 1;
      if (this.length > this.maxPayloadBytes) {
        throw this.fail('too-long', `netstring longer than ${this.maxPayloadBytes} bytes`);
      }
    }
    return offset;
  }

  private beginPayload(): void {
    this.received = 0;
    this.payload = EMPTY;
    this.phase = this.length === 0 ? 'terminator' : 'payload';
  }

  /** Consumes payload bytes; returns the new offset. */
  private readPayload(chunk: Buffer, offset: number): number {
    const available = chunk.length - offset;
    if (this.received === 0 && available >= this.length) {
      // The whole payload is in this chunk: hand out a view, no copy.
      this.payload = chunk.subarray(offset, offset + this.length);
      this.received = this.length;
      this.phase = 'terminator';
      return offset + this.length;
    }
    // Only allocated once [len] is known to be within the cap.
    if (this.received === 0) this.payload = Buffer.allocUnsafe(this.length);
    const take = Math.min(this.length - this.received, available);
    chunk.copy(this.payload, this.received, offset, offset + take);
    this.received += take;
    if (this.received === this.length) this.phase = 'terminator';
    return offset + take;
  }

  private reset(): void {
    this.phase = 'length';
    this.lengthDigits = 0;
    this.length = 0;
    this.payload = EMPTY;
    this.received = 0;
  }

  private fail(code: NetstringErrorCode, message: string): NetstringError {
    this.error = new NetstringError(code, message);
    return this.error;
  }
}

/** Frames one socketmap(5) reply (or request) payload; strings are sent as UTF-8. */
export function encodeNetstring(payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return Buffer.concat([Buffer.from(`${body.length}:`, 'latin1'), body, FRAME_END_BYTES]);
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}
