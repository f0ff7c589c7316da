/**
 * Shared settings for the property-based fuzz tests (fast-check).
 *
 * - FUZZ_RUNS (default 100000): inputs per target. CI runs the default; `FUZZ_RUNS=1000000 npx vitest run
 *   test/fuzz` digs deeper.
 * - FUZZ_SEED: replay a failure. fast-check's error message (shown by vitest) names the seed and the path
 *   of the failing case: `{ seed: 123, path: "45:2:0" }`; both can be given back here.
 */
import fc from 'fast-check';

export const RUNS = positiveInt(process.env.FUZZ_RUNS) ?? 100_000;

/** fc.assert parameters: `runs` inputs, the replay seed/path if given, and the seed always in the message. */
export function params<T>(runs = RUNS): fc.Parameters<T> {
  const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
  const path = process.env.FUZZ_PATH;
  return {
    numRuns: runs,
    ...(seed !== undefined && Number.isInteger(seed) ? { seed } : {}),
    ...(path ? { path } : {}),
    // Shrinking a failure of a 100k-run property must not take minutes.
    interruptAfterTimeLimit: 60_000,
    markInterruptAsFailure: true,
  };
}

/** A vitest timeout that leaves room for `runs` inputs at roughly `perRunMicros` each, with margin. */
export function timeoutFor(runs: number, perRunMicros: number): number {
  return Math.max(30_000, Math.ceil((runs * perRunMicros) / 1000) * 4);
}

/** Mutations that turn a near-valid text into an almost-valid one: insert, delete, replace, cut. */
export function mutated(base: fc.Arbitrary<string>, pool: readonly string[]): fc.Arbitrary<string> {
  const edit = fc.record({
    kind: fc.constantFrom('insert', 'delete', 'replace', 'cut'),
    at: fc.nat(),
    piece: fc.constantFrom(...pool),
  });
  return fc.tuple(base, fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 2, arbitrary: fc.array(edit, { minLength: 1, maxLength: 3 }) })).map(([text, edits]) => {
    let s = text;
    for (const e of edits) {
      const at = s.length === 0 ? 0 : e.at % (s.length + 1);
      if (e.kind === 'insert') s = s.slice(0, at) + e.piece + s.slice(at);
      else if (e.kind === 'delete') s = s.slice(0, at) + s.slice(at + 1);
      else if (e.kind === 'replace') s = s.slice(0, at) + e.piece + s.slice(at + 1);
      else if (e.kind === 'cut') s = s.slice(0, at);
    }
    return s;
  });
}

function positiveInt(v: string | undefined): number | undefined {
  if (v === undefined || !/^[0-9]+$/.test(v)) return undefined;
  const n = Number(v);
  return n > 0 ? n : undefined;
}
