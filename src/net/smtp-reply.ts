/**
 * SMTP replies read from a server that may be hostile (RFC 5321 §4.2): one or more lines "ddd-text"
 * ending with a line "ddd text" (or a bare "ddd"). Everything the reader holds is bounded: a server that
 * floods it is cut off with a reason naming the limit it passed, and nothing more is buffered.
 */

export const SMTP_REPLY_LIMITS = {
  /**
   * One reply, all its lines. RFC 5321 §4.5.3.1.5 caps a reply line at 512 octets; an EHLO reply is one
   * line per extension (a few dozen are registered), so 16 KiB is room for any real server.
   */
  REPLY_BYTES: 16 * 1024,
  /** Lines of one multi-line reply: 100 is several times the longest EHLO reply real servers send. */
  REPLY_LINES: 100,
  /**
   * Complete replies received and not yet asked for. The probe never pipelines (RFC 2920), so a server
   * is at most one reply ahead; more is a server talking to itself.
   */
  UNREAD_REPLIES: 4,
  /** Everything read in one conversation (greeting, EHLO, STARTTLS, QUIT): 64 KiB. */
  CONVERSATION_BYTES: 64 * 1024,
} as const;

export interface Reply {
  code: number;
  /** The text of each line, after "ddd-" / "ddd ". */
  lines: string[];
  /** The whole reply for messages, lines joined with " | ". */
  text: string;
}

const REPLY_BYTES_REASON = `reply longer than ${SMTP_REPLY_LIMITS.REPLY_BYTES} bytes`;
const CONVERSATION_REASON = `more than ${SMTP_REPLY_LIMITS.CONVERSATION_BYTES} bytes from the server in one conversation`;

/** Control characters (terminal escapes among them) never leave this reader. */
const CONTROL = /[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f]/g;

/**
 * Replies are handed out in order by `next()`. A closed connection, or a limit passed, rejects the
 * waiting `next()` and every later one; a limit passed also calls `onLimit` once, so the owner can drop
 * the connection at once instead of reading on.
 */
export class ReplyReader {
  private buffer = '';
  private lines: string[] = [];
  private pendingBytes = 0;
  private received = 0;
  private readonly ready: Reply[] = [];
  private readonly waiting: Array<{ resolve: (r: Reply) => void; reject: (e: Error) => void }> = [];
  private closed: string | null = null;

  constructor(private readonly onLimit: (why: string) => void = () => {}) {}

  push(chunk: Buffer): void {
    if (this.closed !== null) return;
    // latin1: every byte maps to one character, so a hostile byte never breaks decoding.
    this.buffer += chunk.toString('latin1').replace(CONTROL, '?');
    // Bounded: each turn consumes one line of the buffer, which holds at most one socket read more than
    // the limits allow. Limits are checked line by line, so the reason does not depend on how the
    // network cut the stream.
    for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.received += nl + 1;
      if (this.received > SMTP_REPLY_LIMITS.CONVERSATION_BYTES) return this.overflow(CONVERSATION_REASON);
      this.lines.push(line);
      this.pendingBytes += nl + 1;
      if (this.lines.length > SMTP_REPLY_LIMITS.REPLY_LINES) return this.overflow(`reply of more than ${SMTP_REPLY_LIMITS.REPLY_LINES} lines`);
      if (this.pendingBytes > SMTP_REPLY_LIMITS.REPLY_BYTES) return this.overflow(REPLY_BYTES_REASON);
      if (/^\d{3}-/.test(line)) continue;
      const reply: Reply = { code: Number(line.slice(0, 3)) || 0, lines: this.lines.map((l) => l.slice(4)), text: this.lines.join(' | ') };
      this.lines = [];
      this.pendingBytes = 0;
      const waiter = this.waiting.shift();
      if (waiter) waiter.resolve(reply);
      else if (this.ready.push(reply) > SMTP_REPLY_LIMITS.UNREAD_REPLIES) {
        return this.overflow(`more than ${SMTP_REPLY_LIMITS.UNREAD_REPLIES} replies the client did not ask for`);
      }
    }
    // A line still without its end.
    if (this.pendingBytes + this.buffer.length > SMTP_REPLY_LIMITS.REPLY_BYTES) return this.overflow(REPLY_BYTES_REASON);
    if (this.received + this.buffer.length > SMTP_REPLY_LIMITS.CONVERSATION_BYTES) this.overflow(CONVERSATION_REASON);
  }

  /** No more replies: waiting and later `next()` calls reject with `why`. */
  close(why: string): void {
    if (this.closed !== null) return;
    this.closed = why;
    this.buffer = '';
    this.lines = [];
    for (const w of this.waiting.splice(0)) w.reject(new Error(why));
  }

  next(): Promise<Reply> {
    const reply = this.ready.shift();
    if (reply) return Promise.resolve(reply);
    if (this.closed !== null) return Promise.reject(new Error(this.closed));
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private overflow(why: string): void {
    this.ready.length = 0;
    this.close(why);
    this.onLimit(why);
  }
}
