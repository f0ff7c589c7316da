/** SMTP replies read under named limits (src/net/smtp-reply.ts): RFC 5321 §4.2 replies, bounded buffers. */
import { describe, expect, it } from 'vitest';
import { ReplyReader, SMTP_REPLY_LIMITS } from '../../src/net/smtp-reply.js';

/** Feeds `input` cut into `chunk`-byte pieces, asking for a reply before each piece (as the probe does). */
async function read(input: string, chunk = input.length || 1, asks = 8): Promise<{ replies: string[]; error: string | null; limit: string | null }> {
  let limit: string | null = null;
  const reader = new ReplyReader((why) => (limit = why));
  const replies: string[] = [];
  let error: string | null = null;
  const pending: Array<Promise<void>> = [];
  for (let i = 0; i < asks; i++) {
    pending.push(
      reader.next().then(
        (r) => void replies.push(`${r.code}:${r.lines.join('/')}`),
        (e: Error) => void (error ??= e.message),
      ),
    );
  }
  const bytes = Buffer.from(input, 'latin1');
  for (let at = 0; at < bytes.length; at += chunk) reader.push(bytes.subarray(at, at + chunk));
  reader.close('connection closed');
  await Promise.all(pending);
  return { replies, error, limit };
}

describe('ReplyReader: RFC 5321 §4.2 replies', () => {
  it.each<[string, string, string[]]>([
    ['one-line reply', '220 mx ESMTP\r\n', ['220:mx ESMTP']],
    ['multi-line reply (ddd- then ddd SP)', '250-mx\r\n250-SIZE 100\r\n250 STARTTLS\r\n', ['250:mx/SIZE 100/STARTTLS']],
    ['bare LF line ends are read too', '220 a\n250 b\n', ['220:a', '250:b']],
    ['a bare code ends a reply', '250-x\r\n250\r\n', ['250:x/']],
    ['control characters never leave the reader', '220 a\u001b[2Jb\r\n', ['220:a?[2Jb']],
  ])('%s', async (_rule, input, want) => {
    for (const chunk of [input.length, 1, 3]) expect((await read(input, chunk)).replies).toEqual(want);
  });
});

describe('ReplyReader: limits, whatever the chunking', () => {
  const line = (code: string, n: number) => `${code}${'y'.repeat(n - code.length - 2)}\r\n`;
  it.each<[string, string, string]>([
    ['a reply of more than REPLY_LINES lines', `250-x\r\n`.repeat(SMTP_REPLY_LIMITS.REPLY_LINES) + '250 end\r\n', `reply of more than ${SMTP_REPLY_LIMITS.REPLY_LINES} lines`],
    ['a reply over REPLY_BYTES, in long lines', line('250-', 200).repeat(90), `reply longer than ${SMTP_REPLY_LIMITS.REPLY_BYTES} bytes`],
    ['one line over REPLY_BYTES with no end', 'z'.repeat(SMTP_REPLY_LIMITS.REPLY_BYTES + 1), `reply longer than ${SMTP_REPLY_LIMITS.REPLY_BYTES} bytes`],
    ['more than UNREAD_REPLIES replies nobody asked for', '220 x\r\n'.repeat(8 + SMTP_REPLY_LIMITS.UNREAD_REPLIES + 1) + '250 never read\r\n', `more than ${SMTP_REPLY_LIMITS.UNREAD_REPLIES} replies the client did not ask for`],
    [
      'more than CONVERSATION_BYTES in replies each under the per-reply limits',
      (line('250-', 160).repeat(95) + '250 end\r\n').repeat(5),
      `more than ${SMTP_REPLY_LIMITS.CONVERSATION_BYTES} bytes from the server in one conversation`,
    ],
  ])('%s: cut off with the limit named', async (_rule, input, reason) => {
    for (const chunk of [input.length, 4096, 7]) {
      const got = await read(input, chunk);
      expect(got.limit).toBe(reason);
      // Every reply asked for after the limit is refused with it, never with a later reply.
      if (got.replies.length < 8) expect(got.error).toBe(reason);
      expect(got.replies.join()).not.toMatch(/never read/);
    }
  });

  it('after a limit nothing more is buffered or handed out', async () => {
    let limit = '';
    const reader = new ReplyReader((why) => (limit = why));
    reader.push(Buffer.from('x'.repeat(SMTP_REPLY_LIMITS.REPLY_BYTES + 1)));
    reader.push(Buffer.from('220 late\r\n'));
    expect(limit).toMatch(/^reply longer than/);
    await expect(reader.next()).rejects.toThrow(limit);
  });
});
