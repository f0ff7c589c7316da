/**
 * Readiness notification under systemd (sd_notify(3): READY=1, RELOADING=1, STOPPING=1 to
 * $NOTIFY_SOCKET).
 *
 * NOTIFY_SOCKET is a unix datagram socket, which Node.js cannot send to (node:dgram is UDP only) and we
 * take no native modules; so notifications go through systemd's own `systemd-notify` binary, which is
 * there wherever systemd is. The unit needs `NotifyAccess=all`, because the message comes from that
 * child process, not from the main PID (docs/operations.md).
 */
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';
import { clearListenEnv } from '../server/socket-activation.js';

/** A notification that systemd-notify cannot deliver within this is given up (and logged). */
const NOTIFY_TIMEOUT_MS = 5_000;

/**
 * sd_notify(3) through `systemd-notify`. Does nothing without NOTIFY_SOCKET. Messages leave in call
 * order; a failure is logged (once per kind of failure) and never stops the daemon.
 */
export class SystemdNotifier {
  private queue: Promise<void> = Promise.resolve();
  private readonly reported = new Set<string>();
  private readonly socket: string | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly command = 'systemd-notify',
  ) {
    this.socket = env.NOTIFY_SOCKET || undefined;
  }

  get enabled(): boolean {
    return this.socket !== undefined;
  }

  /** The service is up (also after a reload). `MAINPID` lets systemd attribute it to us. */
  ready(status: string): Promise<void> {
    return this.send(['READY=1', `STATUS=${status}`, `MAINPID=${process.pid}`]);
  }

  /** A reload starts; READY=1 must follow. Type=notify-reload wants the monotonic time with it. */
  reloading(): Promise<void> {
    return this.send(['RELOADING=1', 'STATUS=reloading configuration', `MONOTONIC_USEC=${monotonicUsec()}`]);
  }

  stopping(): Promise<void> {
    return this.send(['STOPPING=1', 'STATUS=stopping']);
  }

  private send(fields: string[]): Promise<void> {
    if (!this.socket) return Promise.resolve();
    const env = { ...this.env, NOTIFY_SOCKET: this.socket };
    clearListenEnv(env);
    this.queue = this.queue.then(
      () =>
        new Promise<void>((resolve) => {
          execFile(this.command, fields, { env, timeout: NOTIFY_TIMEOUT_MS }, (err, _stdout, stderr) => {
            if (err) this.reportOnce(err, stderr, fields[0]!);
            else this.logger.debug({ notify: fields[0] }, 'service manager notified');
            resolve();
          });
        }),
    );
    return this.queue;
  }

  private reportOnce(err: Error & { code?: string | number | null }, stderr: string, what: string): void {
    const kind = err.code === 'ENOENT' ? 'missing' : String(err.code ?? 'failed');
    if (this.reported.has(kind)) return;
    this.reported.add(kind);
    const why = err.code === 'ENOENT' ? `${this.command} not found in PATH` : stderr.trim() || err.message;
    this.logger.warn({ notify: what, err: why }, 'could not notify the service manager (NOTIFY_SOCKET is set)');
  }
}

/** CLOCK_MONOTONIC in microseconds: libuv's hrtime reads that clock. */
function monotonicUsec(): string {
  return (process.hrtime.bigint() / 1000n).toString();
}
