import { PassThrough } from 'node:stream';
import { WriteStream } from 'node:tty';
import { styleText } from 'node:util';
import { describe, expect, it } from 'vitest';
import { painter, stepLines, summaryLines, useColour, type ColourTarget } from '../../src/cli/check.js';
import type { CheckReport, Step } from '../../src/check/types.js';

/** A terminal as useColour sees one: a stream with isTTY and Node's own hasColors (which reads only the env given). */
const TERMINAL: ColourTarget = Object.assign(new PassThrough(), { isTTY: true, hasColors: WriteStream.prototype.hasColors });
/** A pipe: a stream that is not a terminal. */
const PIPE: ColourTarget = new PassThrough();
const XTERM = { TERM: 'xterm-256color' };

describe('useColour: Node\'s rules (tty hasColors), NO_COLOR, FORCE_COLOR', () => {
  it.each<[string, ColourTarget, Record<string, string>, boolean]>([
    ['a colour terminal', TERMINAL, XTERM, true],
    ['a pipe', PIPE, XTERM, false],
    ['a terminal without TERM', TERMINAL, {}, false],
    ['TERM=dumb', TERMINAL, { TERM: 'dumb' }, false],
    ['NO_COLOR on a terminal (no-color.org)', TERMINAL, { ...XTERM, NO_COLOR: '1' }, false],
    ['NO_COLOR set but empty: still off, as in Node', TERMINAL, { ...XTERM, NO_COLOR: '' }, false],
    ['NODE_DISABLE_COLORS on a terminal', TERMINAL, { ...XTERM, NODE_DISABLE_COLORS: '1' }, false],
    ['FORCE_COLOR=1 on a pipe', PIPE, { FORCE_COLOR: '1' }, true],
    ['FORCE_COLOR empty on a pipe: on, as in Node', PIPE, { FORCE_COLOR: '' }, true],
    ['FORCE_COLOR=0 on a pipe', PIPE, { FORCE_COLOR: '0' }, false],
    ['FORCE_COLOR=0 turns a terminal off', TERMINAL, { ...XTERM, FORCE_COLOR: '0' }, false],
    ['FORCE_COLOR beats NO_COLOR, as in Node', PIPE, { FORCE_COLOR: '1', NO_COLOR: '1' }, true],
  ])('%s', (_case, stream, env, want) => {
    expect(useColour(stream, env)).toBe(want);
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
    expect(lines).toContain(styleText(['bold', 'red'], 'FAIL', { validateStream: false }));
    expect(lines).toContain('?[2Jgone');
  });

  it('the summary: advice, then the result with counts', () => {
    const report: CheckReport = { domain: 'example.com', status: 'warn', counts: { pass: 3, warn: 1, fail: 0 }, steps: [], advice: ['Do X.'] };
    expect(summaryLines(report, painter(false))).toEqual(['', 'Next steps:', '  * Do X.', '', 'Result: WARN (3 passed, 1 warning(s), 0 failed)']);
  });
});

describe('painter: Node styles, or none', () => {
  const plain = painter(false);
  const colour = painter(true);
  const sgr = (format: Parameters<typeof styleText>[0], text: string) => styleText(format, text, { validateStream: false });

  it.each<[string, string, string]>([
    ['pass', colour.status('pass', 'PASS'), sgr(['bold', 'green'], 'PASS')],
    ['warn', colour.status('warn', 'WARN'), sgr(['bold', 'yellow'], 'WARN')],
    ['fail', colour.status('fail', 'FAIL'), sgr(['bold', 'red'], 'FAIL')],
    ['bold', colour.bold('title'), sgr('bold', 'title')],
    ['dim', colour.dim('fix:'), sgr('dim', 'fix:')],
  ])('%s in colour', (_case, got, want) => {
    expect(got).toBe(want);
    expect(got).toMatch(/^\u001b\[/); // really styled, whatever the stream the tests run on
  });

  it('no escape at all without colour', () => {
    expect([plain.status('fail', 'FAIL'), plain.bold('b'), plain.dim('d')]).toEqual(['FAIL', 'b', 'd']);
  });
});
