/** The reason classes are a closed, documented set: each one has its row in docs/errors.md. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { REASONS } from '../../src/errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

describe('reason classes', () => {
  it.each(Object.keys(REASONS))('%s is documented in docs/errors.md', (reason) => {
    expect(doc).toMatch(new RegExp(`^\\| \`${reason}\` \\|`, 'm'));
  });

  it('docs/errors.md documents no class the code does not have', () => {
    const documented = [...doc.matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.keys(REASONS).sort());
  });
});
