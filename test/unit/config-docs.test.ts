/**
 * The README's configuration table, the key sections of mta-sts-sidecar.yml(5) and the Debian conffile
 * are made from the schema (src/config/docs.ts): these fail when a committed file differs from what the
 * schema says, so a key added, removed or changed in src/config/schema.ts cannot leave them behind.
 * To bring them up to date: UPDATE_CONFIG_DOCS=1 npx vitest run test/unit/config-docs.test.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { conffile, manPageSections, readmeTable } from '../../src/config/docs.js';

const ROOT = resolve(import.meta.dirname, '../..');
const UPDATE = process.env.UPDATE_CONFIG_DOCS === '1';
const HOW = 'generated from src/config/schema.ts: run UPDATE_CONFIG_DOCS=1 npx vitest run test/unit/config-docs.test.ts';

/** Compares the part of `file` between `start` and `end` (both kept) with `want`; rewrites it in update mode. */
function region(file: string, start: string, end: string, want: string): { got: string; want: string } {
  const path = join(ROOT, file);
  const text = readFileSync(path, 'utf8');
  const from = text.indexOf(start);
  const to = text.indexOf(end, from + start.length);
  expect(from, `${file}: "${start}" not found`).toBeGreaterThanOrEqual(0);
  expect(to, `${file}: "${end}" not found after "${start}"`).toBeGreaterThan(from);
  const got = text.slice(from + start.length, to);
  if (UPDATE && got !== want) writeFileSync(path, text.slice(0, from + start.length) + want + text.slice(to));
  return { got: UPDATE ? want : got, want };
}

describe('config docs, derived from the schema', () => {
  it('README.md: the configuration table', () => {
    const { got, want } = region('README.md', '<!-- config-table:begin -->\n', '<!-- config-table:end -->', readmeTable());
    expect(got, `README.md's table is ${HOW}`).toBe(want);
  });

  it('docs/mta-sts-sidecar.yml.5.md: one entry per key, from SOCKETMAP up to EXAMPLE', () => {
    const { got, want } = region('docs/mta-sts-sidecar.yml.5.md', '\n# SOCKETMAP', '\n# EXAMPLE', manPageSections().slice('# SOCKETMAP'.length));
    expect(got, `the man page's key sections are ${HOW}`).toBe(want);
  });

  it('packaging/config.yml: the whole conffile', () => {
    const path = join(ROOT, 'packaging/config.yml');
    const want = conffile();
    if (UPDATE && readFileSync(path, 'utf8') !== want) writeFileSync(path, want);
    expect(readFileSync(path, 'utf8'), `packaging/config.yml is ${HOW}`).toBe(want);
  });
});
