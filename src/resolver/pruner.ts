/**
 * Scheduled pruning: every `cache.prune_interval_ms` drop what has expired from the memory tier and from
 * the persistent store. RFC 8461 §5.1: a policy past max_age is never used again (the resolver already
 * refuses to answer with one), so keeping it only costs memory and disk. Each run removes at most `limit`
 * store entries; whatever is left goes at the next run.
 */
import { PRUNE_LIMIT, type PolicyStore } from '../cache/store.js';

/** What the pruner needs from the resolver (the memory tier). */
export interface MemoryTier {
  /** Drops expired entries; returns how many policies went. */
  pruneMemory(now: number): number;
}

/** The subset of a pino logger the pruner uses. */
export interface PrunerLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface PrunerOptions {
  /** cache.prune_interval_ms. */
  intervalMs: number;
  /** Store entries removed per run at most. Default PRUNE_LIMIT. */
  limit?: number;
  /** Milliseconds since the epoch; injectable so tests need not sleep. */
  now?: () => number;
}

export interface PruneResult {
  /** Policies dropped from the memory tier. */
  memory: number;
  /** Entries removed from the store (0 when it could not be pruned). */
  store: number;
}

export class Pruner {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<PruneResult> | undefined;
  /** True while store prunes fail: the first failure is a warning, repeats debug, the recovery info. */
  private failing = false;
  private readonly now: () => number;

  constructor(
    private readonly memory: MemoryTier | null,
    private readonly store: PolicyStore | null,
    private readonly options: PrunerOptions,
    private readonly logger: PrunerLogger,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Run every intervalMs from now on (the first run one interval after start). Idempotent. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.run(), this.options.intervalMs);
    this.timer.unref();
  }

  /** No further runs; resolves once a run under way has finished. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One run now; overlapping calls share it. Never rejects. */
  run(): Promise<PruneResult> {
    this.running ??= this.once().finally(() => (this.running = undefined));
    return this.running;
  }

  private async once(): Promise<PruneResult> {
    const now = this.now();
    const memory = this.memory?.pruneMemory(now) ?? 0;
    let store = 0;
    if (this.store) {
      try {
        store = await this.store.prune(now, this.options.limit ?? PRUNE_LIMIT);
        if (this.failing) {
          this.failing = false;
          this.logger.info({ store: this.store.kind }, 'cache store pruning works again');
        }
      } catch (err) {
        const fields = { store: this.store.kind, err: (err as Error)?.message ?? String(err) };
        if (this.failing) this.logger.debug(fields, 'cache store prune failed');
        else this.logger.warn(fields, 'cache store prune failed; expired entries stay until the next run');
        this.failing = true;
      }
    }
    if (memory > 0 || store > 0) this.logger.info({ memory, store }, 'expired policies pruned');
    else this.logger.debug({ memory, store }, 'expired policies pruned');
    return { memory, store };
  }
}
