import { describe, expect, it } from 'vitest';
import { painter, stepLines, summaryLines, useColour } from '../../src/cli/check.js';
import type { CheckReport, Step } from '../../src/check/types.js';

describe('useColour: TTY, NO_COLOR (no-color.org), FORCE_COLOR', () => {
  it.each<[string, Record<string, string>, boolean, boolean]>([
    ['a terminal', {}, true, true],
    ['a pipe', {}, false, false],
    ['NO_COLOR on a terminal', { NO_COLOR: '1' }, true, false],
    ['NO_COLOR empty is unset', { NO_COLOR: '' }, true, true],
    ['FORCE_COLOR on a pipe', { FORCE_COLOR: '1' }, false, true],
    ['FORCE_COLOR=0 does not force', { FORCE_COLOR: '0' }, false, false],
    ['FORCE_COLOR beats NO_COLOR, as in Node', { FORCE_COLOR: '1', NO_COLOR: '1' }, false, true],
  ])('%s', (_case, env, tty, want) => {
    expect(useColour(env, tty)).toBe(want);
  });
});

describe('terminal rendering', () => {
  const step: Step = { id: 'mx-starttls', title: 'MX STARTTLS', mx: 'mx.example.com', address: '192.0.2.1', status: 'fail', reason: 'greeting: "554 \u001b[2Jgone"', fix: 'do it' };

  it('one line per step, the fix indented below it', () => {
    expect(stepLines(step, painter(false))).toEqual(['FAIL  MX STARTTLS mx.example.com (192.0.2.1): greeting: "554 ?[2Jgone"', '      fix: do it']);
  });

  it('never passes control characters from the world to the terminal, even in colour', () => {
    const lines = stepLines(step, painter(true)).join('\n');
    expect(lines).not.toContain('\u001b[2J');
    expect(lines).toContain('\u001b[1;31mFAIL\u001b[0m');
  });

  it('the summary: advice, then the result with counts', () => {
    const report: CheckReport = { domain: 'example.com', status: 'warn', counts: { pass: 3, warn: 1, fail: 0 }, steps: [], advice: ['Do X.'] };
    expect(summaryLines(report, painter(false))).toEqual(['', 'Next steps:', '  * Do X.', '', 'Result: WARN (3 passed, 1 warning(s), 0 failed)']);
  });
});
