/** `mta-sts-sidecar serve`: run until SIGTERM/SIGINT, then drain and exit. */
import { pino } from 'pino';
import type { Config } from '../config/schema.js';
import { startDaemon } from '../server/daemon.js';

/** SIGTERM must not hang: after this, exit even if something is still draining. */
const STOP_DEADLINE_MS = 10_000;

export async function runServe(config: Config): Promise<void> {
  const logger = pino({ level: config.log.level, base: { service: 'mta-sts-sidecar' } });
  const daemon = await startDaemon(config, logger);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'stopping');
      const force = setTimeout(() => {
        logger.error('stop deadline passed; exiting');
        process.exit(1);
      }, STOP_DEADLINE_MS);
      force.unref();
      daemon.close().then(resolve, (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
