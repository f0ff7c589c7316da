/**
 * The policy parser against real policies: every file under test/corpus/policies/ is a policy body a
 * domain publishes (or published) from a public repository, listed in manifest.json with where it came
 * from and the verdict our rules give it. Each verdict is asserted, so that a parser change shows its
 * effect on real policies; `CORPUS_UPDATE=1 npx vitest run test/corpus/policies.test.ts` rewrites the
 * verdicts after a deliberate change (review the diff of manifest.json before committing it).
 *
 * Bodies are decoded as the fetcher does (strict UTF-8), except that a BOM is kept for the parser to see.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diagnosePolicy, readPolicy } from '../../src/sts/policy.js';
import type { Deviation, Mode } from '../../src/sts/types.js';

type Verdict =
  | { valid: true; mode: Mode; max_age: number; mx: string[]; deviations: Deviation[] }
  | { valid: false; reason: string; deviations: Deviation[] };

interface Entry {
  file: string;
  repository: string;
  path: string;
  commit: string;
  version: string;
  bytes: string;
  checked?: string;
  verdict: Verdict | null;
}

interface Manifest {
  about: string;
  collected: string;
  verdict: string;
  files: Entry[];
}

const DIR = new URL('.', import.meta.url).pathname;
const MANIFEST = join(DIR, 'manifest.json');
const manifest = JSON.parse(readFileSync(MANIFEST, 'utf8')) as Manifest;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const bodyOf = (entry: Entry) => utf8.decode(readFileSync(join(DIR, 'policies', entry.file)));

function verdictOf(text: string): Verdict {
  const d = diagnosePolicy(text);
  if (d.policy === undefined) return { valid: false, reason: d.problems[0]!, deviations: d.deviations };
  const mx = d.policy.mx.map((p) => (p.wildcard ? `*.${p.domain}` : p.domain));
  return { valid: true, mode: d.policy.mode, max_age: d.policy.maxAge, mx, deviations: d.deviations };
}

/** The body as its publisher meant it under RFC 8461 §3.2: no BOM, no empty lines, no final dot on an mx. */
function asMeant(text: string): string {
  return text
    .replace(/^\ufeff/, '')
    .split('\n')
    .filter((line, i, all) => i === all.length - 1 || !/^[ \t]*\r?$/.test(line))
    .map((line, i, all) => (i === all.length - 1 && /^[ \t]*$/.test(line) ? '' : line))
    .map((line) => line.replace(/^(mx:[ \t]*\S*[^.\s])\.([ \t]*\r?)$/, '$1$2'))
    .join('\n');
}

if (process.env.CORPUS_UPDATE === '1') {
  for (const entry of manifest.files) entry.verdict = verdictOf(bodyOf(entry));
  writeFileSync(MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);
}

describe('corpus: real published policies get the verdict recorded in manifest.json', () => {
  it.each(manifest.files.map((e) => [`${e.repository} ${e.path} @${e.commit.slice(0, 7)}`, e] as const))('%s', (_name, entry) => {
    expect(verdictOf(bodyOf(entry))).toEqual(entry.verdict);
  });
});

describe('corpus: what the two forgiven deviations change, and what they do not', () => {
  const all = manifest.files.map((entry) => ({ entry, text: bodyOf(entry), verdict: entry.verdict! }));

  it('a valid policy with deviations is the policy its publisher meant: the same without them, and then strict', () => {
    const forgiven = all.filter(({ verdict }) => verdict.valid && verdict.deviations.length > 0);
    expect(forgiven.length).toBeGreaterThan(0);
    for (const { entry, text } of forgiven) {
      const meant = asMeant(text);
      expect(readPolicy(meant), entry.file).toEqual({ policy: readPolicy(text).policy, deviations: [] });
    }
  });

  it('every file refused is refused for a rule other than the two deviations: removing them does not help', () => {
    const refused = all.filter(({ verdict }) => !verdict.valid);
    expect(refused.length).toBeGreaterThan(0);
    for (const { entry, text } of refused) expect(verdictOf(asMeant(text)).valid, entry.file).toBe(false);
  });

  it('holds the kinds the issue names: empty lines, a trailing-dot mx, enforced, leading whitespace, Priority, alt*, and CRLF', () => {
    const rules = new Set(all.flatMap(({ verdict }) => verdict.deviations.map((d) => d.rule)));
    expect([...rules].sort()).toEqual(['empty-line', 'mx-trailing-dot']);
    const reasons = all.flatMap(({ verdict }) => (verdict.valid ? [] : [verdict.reason]));
    expect(reasons.some((r) => /mode must be/.test(r))).toBe(true);
    expect(reasons.some((r) => /leading whitespace/.test(r))).toBe(true);
    expect(reasons.some((r) => /mx "Priority/.test(r))).toBe(true);
    expect(reasons.some((r) => /mx "alt\*/.test(r))).toBe(true);
    expect(all.some(({ text }) => text.includes('\r\n'))).toBe(true);
  });
});
