/**
 * Proactive refresh: re-check cached policies before anyone waits for them. Each tick takes the due
 * domains (soonest first, a bounded batch) and refreshes them with bounded concurrency; the resolver's
 * own per-domain backoff keeps a failing host from being hammered.
 */
import type { Logger } from 'pino';
import { ConcurrencyLimit } from './concurrency-limit.js';
import type { Resolver } from './resolver.js';

export interface RefresherOptions {
  tickMs: number;
  batch: number;
  concurrency: number;
}

export class Refresher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private readonly limit: ConcurrencyLimit;

  constructor(
    private readonly resolver: Resolver,
    private readonly options: RefresherOptions,
    private readonly logger: Logger,
  ) {
    this.limit = new ConcurrencyLimit(options.concurrency);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.options.tickMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One round; resolves with the number of domains refreshed. Overlapping calls share the round. */
  tick(): Promise<number> {
    this.running ??= this.round().finally(() => (this.running = undefined));
    return this.running;
  }

  private async round(): Promise<number> {
    const due = this.resolver.dueForRefresh(this.options.batch);
    if (due.length === 0) return 0;
    this.logger.debug({ due: due.length }, 'proactive refresh');
    await Promise.all(due.map((domain) => this.limit.run(() => this.resolver.refresh(domain))));
    return due.length;
  }
}
