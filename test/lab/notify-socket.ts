/**
 * A stand-in for systemd's notification socket: a unix datagram socket at a path, whose datagrams
 * (sd_notify(3) messages such as `READY=1\nSTATUS=...`) the test can read. node:dgram has no unix
 * datagram sockets, so a few lines of python3 own it and print each message as one JSON line. File
 * descriptors passed along (systemd-notify's BARRIER=1 pipe) are closed, as systemd does.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const RECEIVER = `
import array, json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("bound"), flush=True)
while True:
    data, anc, _flags, _addr = s.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(json.dumps(data.decode("utf-8", "replace")), flush=True)
`;
const START_TIMEOUT_MS = 10_000;

export interface NotifySocket {
  readonly path: string;
  /** Every message received so far, BARRIER=1 messages left out. */
  messages(): string[];
  stop(): Promise<void>;
}

export async function startNotifySocket(path: string): Promise<NotifySocket> {
  const child: ChildProcess = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const received: string[] = [];
  let buffer = '';
  let errors = '';
  child.stderr!.on('data', (b: Buffer) => (errors += b.toString()));
  const bound = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`notify socket did not start: ${errors}`)), START_TIMEOUT_MS);
    child.once('error', (err) => reject(new Error(`python3 is needed for the notify socket: ${err.message}`)));
    child.once('exit', () => reject(new Error(`notify socket exited: ${errors}`)));
    child.stdout!.on('data', (b: Buffer) => {
      buffer += b.toString();
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const message = JSON.parse(buffer.slice(0, nl)) as string;
        buffer = buffer.slice(nl + 1);
        if (message === 'bound') {
          clearTimeout(timer);
          resolve();
        } else if (message !== 'BARRIER=1') {
          received.push(message);
        }
      }
    });
  });
  await bound;
  return {
    path,
    messages: () => [...received],
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
