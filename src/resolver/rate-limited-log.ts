/**
 * "Say it once, say it loud enough": a condition that can repeat on every lookup (a store that cannot be
 * read, the pending-resolution cap) is logged at its level at most once per interval, and the line
 * says how many occurrences were not logged since the previous one.
 */

/** One warning per this interval at most, for each rate-limited condition. */
export const RATE_LIMITED_LOG_INTERVAL_MS = 60_000;

export class RateLimitedLog {
  #lastAt = -Infinity;
  #suppressed = 0;

  constructor(
    private readonly now: () => number,
    private readonly intervalMs = RATE_LIMITED_LOG_INTERVAL_MS,
  ) {}

  /**
   * Call once per occurrence. Returns the number of occurrences suppressed since the last line when this
   * one should be logged, undefined when it should not (it is then counted for the next line).
   */
  take(): number | undefined {
    const now = this.now();
    if (now - this.#lastAt < this.intervalMs) {
      this.#suppressed++;
      return undefined;
    }
    const suppressed = this.#suppressed;
    this.#lastAt = now;
    this.#suppressed = 0;
    return suppressed;
  }
}
