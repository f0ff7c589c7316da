/**
 * The daemon as a system service: read the config, start, tell systemd, then SIGHUP reloads the config
 * file and SIGTERM/SIGINT stop within a bound. `serve` is this plus argument parsing.
 */
import type { Logger } from 'pino';
import { readConfig, type LoadedConfig } from '../config/load.js';
import { validateConfig, type Config } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { Daemon } from './daemon.js';
import { createLogger } from './log.js';
import { clearListenEnv, InheritedSockets, listenFdsFromEnv } from '../server/socket-activation.js';
import { SystemdNotifier } from './notifier.js';

/** Added to the drain and fetch timeouts to bound a stop: flushing the store, closing clients. */
const STOP_MARGIN_MS = 5_000;
/** Signals remembered while nobody is waiting for one. */
const MAX_QUEUED_SIGNALS = 16;

export interface ServiceOptions {
  /** YAML config file (ours or postfix-mta-sts-resolver's); undefined = embedded defaults. */
  configFile: string | undefined;
  /** Command-line settings; they win over the file, at start and at every reload. */
  logLevel?: string;
  logFormat?: string;
  /** `http.listen` from the command line (a postfix-mta-sts-resolver file cannot say it); [] = off. */
  httpListen?: string[];
  env?: NodeJS.ProcessEnv;
}

/**
 * How long a stop may take before the process exits anyway: connections get shutdown_grace_ms to finish
 * their replies, a fetch still running gets up to fetch.timeout_ms, and the rest STOP_MARGIN_MS.
 */
export function stopDeadlineMs(config: Config): number {
  return config.socketmap.shutdown_grace_ms + config.fetch.timeout_ms + STOP_MARGIN_MS;
}

/** Runs until stopped; resolves with the exit status (0 after a clean stop). Throws if it cannot start. */
export async function runService(options: ServiceOptions): Promise<number> {
  const env = options.env ?? process.env;
  const override = commandLineOverrides(options);
  const loaded = readConfig(options.configFile);
  override(loaded.config);
  const logger = createLogger(loaded.config.log);
  reportConfig(loaded, logger);

  // Signals before the daemon is up wait in the inbox, not fatal (SIGHUP's default action ends a process).
  const inbox = new SignalInbox(['SIGTERM', 'SIGINT', 'SIGHUP']);
  const notifier = new SystemdNotifier(logger, env);
  let daemon: Daemon;
  try {
    const fds = listenFdsFromEnv(env, process.pid);
    clearListenEnv(env);
    const inherited = await InheritedSockets.adopt(fds, logger);
    try {
      daemon = await Daemon.start(loaded.config, logger, inherited.size > 0 ? { inherited } : {});
    } finally {
      await inherited.closeUnused();
    }
  } catch (err) {
    inbox.close();
    throw err;
  }
  const status = () => `answering on ${[...daemon.socketmap.addresses, ...daemon.exim.addresses].join(', ')}`;
  // READY=1 goes first; reloads run one after another behind it (a RELOADING=1 must not come first).
  let reloads = notifier.ready(status());
  for (;;) {
    const signal = await inbox.next();
    if (signal === 'SIGHUP') {
      reloads = reloads.then(() => reloadFromFile(daemon, options.configFile, override, logger, notifier, status));
      continue;
    }
    const code = await stop(daemon, signal, logger, notifier, inbox);
    inbox.close();
    return code;
  }
}

/**
 * Stops within stopDeadlineMs: no new connections, replies in progress finished, the store flushed. A
 * second stop signal meanwhile exits at once (status 1), as does the deadline passing.
 */
async function stop(daemon: Daemon, signal: string, logger: Logger, notifier: SystemdNotifier, inbox: SignalInbox): Promise<number> {
  const deadline = stopDeadlineMs(daemon.config);
  logger.info({ signal, deadlineMs: deadline }, 'stopping: no new connections; finishing replies in progress');
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<number>((resolve) => {
    timer = setTimeout(() => {
      logger.error({ deadlineMs: deadline }, 'stop deadline passed; exiting');
      resolve(1);
    }, deadline);
  });
  const again = (async () => {
    for (;;) {
      const next = await inbox.next();
      if (next !== 'SIGHUP') {
        logger.warn({ signal: next }, 'second stop signal; exiting now');
        return 1;
      }
    }
  })();
  // STOPPING=1 is sent while draining; the exit waits for it (it is bounded too).
  const stopped = Promise.all([daemon.close(), notifier.stopping()]).then(
    () => {
      logger.info('stopped');
      return 0;
    },
    (err: unknown) => {
      logger.error({ err }, 'error while stopping');
      return 1;
    },
  );
  try {
    return await Promise.race([stopped, expired, again]);
  } finally {
    clearTimeout(timer);
  }
}

/** Process signals as a queue: delivered in order to whoever awaits next(), remembered until then. */
class SignalInbox {
  private readonly received: string[] = [];
  private waiting: ((signal: string) => void) | undefined;
  private readonly handlers = new Map<string, () => void>();

  constructor(signals: readonly NodeJS.Signals[]) {
    for (const signal of signals) {
      const handler = () => this.deliver(signal);
      this.handlers.set(signal, handler);
      process.on(signal, handler);
    }
  }

  next(): Promise<string> {
    const first = this.received.shift();
    if (first !== undefined) return Promise.resolve(first);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  close(): void {
    for (const [signal, handler] of this.handlers) process.off(signal, handler);
    this.handlers.clear();
  }

  private deliver(signal: string): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting) waiting(signal);
    // Bounded: a signal storm keeps only what fits (the first stop signal is what matters).
    else if (this.received.length < MAX_QUEUED_SIGNALS) this.received.push(signal);
  }
}

async function reloadFromFile(
  daemon: Daemon,
  file: string | undefined,
  override: (c: Config) => void,
  logger: Logger,
  notifier: SystemdNotifier,
  status: () => string,
): Promise<void> {
  await notifier.reloading();
  logger.info({ file }, 'SIGHUP: reloading the config');
  try {
    const loaded = readConfig(file);
    override(loaded.config);
    reportConfig(loaded, logger);
    const report = await daemon.apply(loaded.config);
    daemon.metrics.countReload('ok');
    logger.info(
      {
        changed: report.changed,
        listeners: report.listeners,
        resolverRebuilt: report.resolverRebuilt,
        storeReopened: report.storeReopened,
        ...(report.restartNeeded.length > 0 ? { restartNeeded: report.restartNeeded } : {}),
      },
      report.changed.length === 0 ? 'config reloaded: nothing changed' : 'config reloaded',
    );
    if (report.restartNeeded.length > 0) {
      logger.warn({ settings: report.restartNeeded }, 'these settings take effect only after a restart');
    }
  } catch (err) {
    daemon.metrics.countReload('failed');
    logger.error({ err: (err as Error).message }, 'config reload failed; the running config stays');
  }
  await notifier.ready(status());
}

/** One warning per option a converted postfix-mta-sts-resolver file could not carry over exactly. */
function reportConfig(loaded: LoadedConfig, logger: Logger): void {
  if (loaded.format !== 'mta-sts-sidecar') {
    logger.info({ file: loaded.file, format: loaded.format }, 'config file is in postfix-mta-sts-resolver format; converted (docs/migration.md)');
  }
  for (const warning of loaded.warnings) {
    const colon = warning.indexOf(': ');
    logger.warn({ file: loaded.file, option: warning.slice(0, colon), detail: warning.slice(colon + 2) }, 'config option not carried over as is');
  }
}

/** The command-line flag that sets a config key path (`http.listen[0]` is --http-listen). */
const FLAGS: Record<string, string> = { 'log.level': '--log-level', 'log.format': '--log-format', 'http.listen': '--http-listen' };

function flagOf(path: string): string {
  return FLAGS[path.replace(/\[\d+\]$/, '')] ?? path;
}

/** Validates the command-line settings once, naming the flag; returns what applies them to a config. */
function commandLineOverrides(options: ServiceOptions): (config: Config) => void {
  const log: Record<string, string> = {};
  if (options.logLevel !== undefined) log.level = options.logLevel;
  if (options.logFormat !== undefined) log.format = options.logFormat;
  const http = options.httpListen === undefined ? {} : { listen: options.httpListen };
  let checked: Config;
  try {
    checked = validateConfig({ log, http });
  } catch (err) {
    if (err instanceof ConfigError) throw new Error(`${flagOf(err.path)}: ${err.problem}`);
    throw err;
  }
  return (config) => {
    if (options.logLevel !== undefined) config.log.level = checked.log.level;
    if (options.logFormat !== undefined) config.log.format = checked.log.format;
    if (options.httpListen !== undefined) config.http.listen = [...checked.http.listen];
  };
}
