import type { ChildProcess } from 'node:child_process';

/**
 * Waiting in tests for something to happen, bounded by a deadline. A fixed sleep standing in for "it
 * has happened by now" fails on a loaded machine and wastes time on an idle one; these return as soon
 * as the event is there, and fail naming what never came.
 *
 * A sleep may stay where the passing of time is itself the behaviour under test (a slow peer, an idle
 * timeout, "nothing more happens during this stretch"); say so in a comment at the sleep.
 */

/** How long a test waits for an event before failing, unless it says otherwise: only a failing test waits
 * this long, so it is generous (a loaded 2-core machine runs several test files at once). */
export const WAIT_MS = 10_000;
/** How often waitFor() checks its condition. */
export const POLL_MS = 5;

/**
 * Resolves once `cond()` holds; rejects naming `what` after `timeoutMs`. Checks at once, then every
 * POLL_MS: bounded, at most timeoutMs / POLL_MS + 1 checks. A `cond` that throws fails the wait.
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const checks = Math.ceil(timeoutMs / POLL_MS);
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i <= checks; i++) {
    if (await cond()) return;
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** `promise`'s outcome, or a rejection naming `what` once `timeoutMs` has passed. */
export function within<T>(promise: Promise<T>, what: string, timeoutMs = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms`: only for a stretch of time that is itself what the test is about (see above). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** How long eventually() waits between tries: each try may be a round trip to a server coming back. */
const RETRY_MS = 50;

/**
 * `op()`'s value once it stops rejecting (a server reachable again after an outage); after `timeoutMs`
 * a rejection with the last error as its cause. Bounded: at most timeoutMs / RETRY_MS + 1 tries.
 */
export async function eventually<T>(op: () => Promise<T>, timeoutMs = WAIT_MS): Promise<T> {
  const tries = Math.ceil(timeoutMs / RETRY_MS);
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i <= tries && Date.now() < deadline; i++) {
    try {
      return await op();
    } catch (err) {
      last = err;
      await sleep(RETRY_MS);
    }
  }
  throw new Error(`still failing after ${timeoutMs} ms`, { cause: last });
}

/**
 * Whether `child` has printed `needle` (looked for in what `output()` has collected from it) within
 * `timeoutMs`: false once it exits first or the time is up, so the caller can fail showing the output.
 */
export function printed(child: ChildProcess, output: () => string, needle: string, timeoutMs = WAIT_MS): Promise<boolean> {
  return new Promise<boolean>((ok) => {
    if (output().includes(needle)) return ok(true);
    const timer = setTimeout(() => ok(false), timeoutMs);
    const check = () => output().includes(needle) && (clearTimeout(timer), ok(true));
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('exit', () => (clearTimeout(timer), ok(false)));
  });
}
