/** `mta-sts-sidecar serve`: run the daemon until SIGTERM/SIGINT (src/app/service.ts), then exit. */
import { runService, type ServiceOptions } from '../app/service.js';

export async function runServe(options: ServiceOptions): Promise<void> {
  const code = await runService(options);
  // Exit now rather than when the event loop drains: a stop is bounded, whatever handle is left.
  process.exit(code);
}
