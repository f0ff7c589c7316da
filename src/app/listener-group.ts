/**
 * One protocol's listeners (socketmap, exim or http) as the composition root sees them: where they listen
 * and with what limits comes from the config, each protocol from its own section; apply() binds what a new
 * config adds, in two steps so that several groups change all or nothing.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import {
  startListeners,
  type ConnectionCallback,
  type InheritedListeners,
  type ListenerOptions,
  type Listeners,
  type PendingListenerUpdate,
} from '../server/listen.js';

export interface ListenerGroupSpec {
  readonly name: string;
  /** The specs this group listens on under `config` ([] = none). */
  specsOf(config: Config): readonly string[];
  /** The group's listener options under `config`, from its own config section. */
  optionsOf(config: Config): ListenerOptions;
  readonly onConnection: ConnectionCallback;
}

export class ListenerGroup {
  private current: Listeners | undefined;

  constructor(
    private readonly spec: ListenerGroupSpec,
    private readonly logger: Logger,
    private readonly inherited: InheritedListeners | undefined,
  ) {}

  get name(): string {
    return this.spec.name;
  }

  /** The running listeners; undefined before the first apply (and for a group that never listened). */
  get listeners(): Listeners | undefined {
    return this.current;
  }

  get addresses(): readonly string[] {
    return this.current?.addresses.map((a) => a.spec) ?? [];
  }

  get connectionCount(): number {
    return this.current?.connectionCount ?? 0;
  }

  /**
   * Binds what `next` adds (they accept connections at once); commit() stops what it removes and applies
   * its limits, abort() closes the new ones again. The first call starts the group.
   */
  async prepare(next: Config): Promise<PendingListenerUpdate> {
    const specs = this.spec.specsOf(next);
    const options = this.spec.optionsOf(next);
    if (this.current) {
      return this.current.prepareUpdate(specs, {
        maxConnections: options.maxConnections,
        unixMode: options.unixMode,
        ...(options.shutdownGraceMs !== undefined ? { shutdownGraceMs: options.shutdownGraceMs } : {}),
      });
    }
    const started = await startListeners(specs, this.spec.onConnection, { ...options, ...(this.inherited ? { inherited: this.inherited } : {}) }, this.logger);
    return {
      opened: [...specs],
      closed: [],
      commit: () => void (this.current = started),
      abort: () => started.close(),
    };
  }

  async close(): Promise<void> {
    await this.current?.close();
  }
}
