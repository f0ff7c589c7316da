// The ceiling: the least a Node.js socketmap server can do. It frames netstrings and answers every
// request with one fixed reply held in memory (no parsing of the request, no lookup, no timers).
// Usage: node bench/bare-responder.mjs HOST PORT [REPLY]   (prints "listening PORT" when ready)
import net from 'node:net';

const [host = '127.0.0.1', portText = '0', replyText = 'OK secure match=mx1.bench.test:.mx.bench.test servername=hostname'] =
  process.argv.slice(2);
const body = Buffer.from(replyText);
const reply = Buffer.concat([Buffer.from(`${body.length}:`), body, Buffer.from(',')]);

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    let buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let off = 0;
    let frames = 0;
    for (;;) {
      const colon = buf.indexOf(0x3a, off);
      if (colon < 0) break;
      const len = Number(buf.latin1Slice(off, colon));
      if (!Number.isInteger(len) || len > 1024) return socket.destroy();
      const end = colon + 1 + len;
      if (end >= buf.length) break;
      if (buf[end] !== 0x2c) return socket.destroy();
      off = end + 1;
      frames++;
    }
    pending = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
    if (frames === 1) socket.write(reply);
    else if (frames > 1) {
      const out = Buffer.allocUnsafe(reply.length * frames);
      for (let i = 0; i < frames; i++) reply.copy(out, i * reply.length);
      socket.write(out);
    }
  });
  socket.on('error', () => {});
});
server.listen(Number(portText), host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
