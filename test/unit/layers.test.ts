/**
 * The layers of src/, written down once: each folder may import only from its own layer and the ones
 * below it (README.md "Layout" lists them in this order; DESIGN.md draws them). Files directly in src/
 * (errors.ts, version.ts) sit below every layer.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** Top to bottom. */
export const LAYERS = ['cli', 'app', 'check', 'server', 'answer', 'resolver', 'cache', 'net', 'config', 'sts'] as const;
const ROOT_LAYER = LAYERS.length;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The layer index of a file under src/: its first folder, or below everything for src/*.ts. */
function layerOf(file: string): number {
  const parts = relative(SRC, file).split('/');
  if (parts.length === 1) return ROOT_LAYER;
  const i = (LAYERS as readonly string[]).indexOf(parts[0]!);
  if (i < 0) throw new Error(`src/${parts[0]}/ is not in LAYERS: place it in the order`);
  return i;
}

/** Relative import specifiers: static imports and re-exports, and dynamic import(). */
function importsOf(text: string): string[] {
  const found = [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s*['"](\.[^'"]+)['"]/g), ...text.matchAll(/\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g)];
  return found.map((m) => m[1]!);
}

describe('layers', () => {
  const files = sourceFiles(SRC);

  it('every folder of src/ has its place in the order', () => {
    const folders = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    expect([...folders].sort()).toEqual([...LAYERS].sort());
  });

  it('no import points up the layer order', () => {
    const upward: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      for (const spec of importsOf(readFileSync(file, 'utf8'))) {
        const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
        const to = layerOf(target);
        if (to < from) upward.push(`${relative(ROOT, file)} imports ${relative(ROOT, target)} (${LAYERS[from] ?? 'src'} -> ${LAYERS[to]})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('finds the imports it judges (the scan is not vacuous)', () => {
    const daemon = readFileSync(join(SRC, 'app/daemon.ts'), 'utf8');
    expect(importsOf(daemon)).toContain('../server/listen.js');
    expect(importsOf("const m = await import('../cache/redis-store.js');")).toEqual(['../cache/redis-store.js']);
  });

  it("README's Layout names the layers in this order", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const layout = readme.slice(readme.indexOf('## Layout'), readme.indexOf('\n## ', readme.indexOf('## Layout') + 1));
    const named = [...layout.matchAll(/`src\/([a-z]+)\/`/g)].map((m) => m[1]);
    expect(named).toEqual([...LAYERS]);
  });
});
