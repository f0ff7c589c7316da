/**
 * The daemon as a system service: read the config, start, tell systemd, then SIGHUP reloads the config
 * file and SIGTERM/SIGINT stop within a bound. `serve` is this plus argument parsing.
 */
import type { Logger } from 'pino';
import { readConfig, type LoadedConfig } from '../config/load.js';
import { validateConfig, type Config } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { startDaemon, type Daemon } from './daemon.js';
import { createLogger } from './log.js';
import { clearListenEnv, InheritedSockets, listenFdsFromEnv } from '../server/socket-activation.js';
import { SystemdNotifier } from './notifier.js';

/** Added to the drain and fetch timeouts to bound a stop: flushing the store, closing clients. */
const STOP_MARGIN_MS = 5_000;

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

  // Signals before the daemon is up are remembered, not fatal (SIGHUP's default action ends a process).
  let stopSignal: string | undefined;
  let reloadAsked = false;
  let onStop: ((signal: string) => void) | undefined;
  let onReload: (() => void) | undefined;
  const stopHandler = (signal: string) => () => (onStop ? onStop(signal) : (stopSignal ??= signal));
  const reloadHandler = () => (onReload ? onReload() : (reloadAsked = true));
  const handlers = { SIGTERM: stopHandler('SIGTERM'), SIGINT: stopHandler('SIGINT'), SIGHUP: reloadHandler };
  for (const [signal, handler] of Object.entries(handlers)) process.on(signal, handler);
  const removeHandlers = () => {
    for (const [signal, handler] of Object.entries(handlers)) process.off(signal, handler);
  };

  const notifier = new SystemdNotifier(logger, env);
  let daemon: Daemon;
  try {
    const fds = listenFdsFromEnv(env, process.pid);
    clearListenEnv(env);
    const inherited = await InheritedSockets.adopt(fds, logger);
    try {
      daemon = await startDaemon(loaded.config, logger, inherited.size > 0 ? { inherited } : {});
    } finally {
      await inherited.closeUnused();
    }
  } catch (err) {
    removeHandlers();
    throw err;
  }
  const addresses = () => [...daemon.socketmap.addresses, ...(daemon.exim?.addresses ?? [])].map((a) => a.spec).join(', ');
  let stopping = false;
  // READY=1 goes first; a reload asked for meanwhile runs after it (its RELOADING=1 must not come first).
  let reloads = notifier.ready(`answering on ${addresses()}`);
  onReload = () => {
    if (stopping) return;
    reloads = reloads.then(() => reloadFromFile(daemon, options.configFile, override, logger, notifier, addresses));
  };
  if (reloadAsked) onReload();

  const code = await new Promise<number>((resolve) => {
    onStop = (signal) => {
      if (stopping) {
        logger.warn({ signal }, 'second stop signal; exiting now');
        resolve(1);
        return;
      }
      stopping = true;
      const deadline = stopDeadlineMs(daemon.config);
      logger.info({ signal, deadlineMs: deadline }, 'stopping: no new connections; finishing replies in progress');
      // STOPPING=1 is sent while draining; the exit waits for it (it is bounded too).
      const notified = notifier.stopping();
      const force = setTimeout(() => {
        logger.error({ deadlineMs: deadline }, 'stop deadline passed; exiting');
        resolve(1);
      }, deadline);
      Promise.all([daemon.close(), notified]).then(
        () => {
          clearTimeout(force);
          logger.info('stopped');
          resolve(0);
        },
        (err: unknown) => {
          clearTimeout(force);
          logger.error({ err }, 'error while stopping');
          resolve(1);
        },
      );
    };
    if (stopSignal) onStop(stopSignal);
  });
  removeHandlers();
  return code;
}

async function reloadFromFile(
  daemon: Daemon,
  file: string | undefined,
  override: (c: Config) => void,
  logger: Logger,
  notifier: SystemdNotifier,
  addresses: () => string,
): Promise<void> {
  await notifier.reloading();
  logger.info({ file }, 'SIGHUP: reloading the config');
  try {
    const loaded = readConfig(file);
    override(loaded.config);
    reportConfig(loaded, logger);
    const report = await daemon.reload(loaded.config);
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
  await notifier.ready(`answering on ${addresses()}`);
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
    if (err instanceof ConfigError) {
      throw new Error(err.message.replace(/^log\.(level|format)|^http\.listen(\[\d+\])?/, (m, k?: string) => (k ? `--log-${k}` : '--http-listen')));
    }
    throw err;
  }
  return (config) => {
    if (options.logLevel !== undefined) config.log.level = checked.log.level;
    if (options.logFormat !== undefined) config.log.format = checked.log.format;
    if (options.httpListen !== undefined) config.http.listen = [...checked.http.listen];
  };
}
