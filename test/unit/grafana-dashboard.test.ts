/** contrib/grafana's dashboard queries only series the daemon exports, with label names it uses. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/app/metrics.js';

const FILE = join(import.meta.dirname, '../../contrib/grafana/mta-sts-sidecar.json');

interface Panel {
  title: string;
  targets?: Array<{ expr: string }>;
}

describe('contrib/grafana/mta-sts-sidecar.json', () => {
  const dashboard = JSON.parse(readFileSync(FILE, 'utf8')) as { panels: Panel[]; uid: string };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

  it('has queries', () => {
    expect(exprs.length).toBeGreaterThan(10);
  });

  it('every metric it queries is exported, and every label it groups by exists on that metric', async () => {
    const m = new Metrics();
    m.setSources({ policyCounts: () => ({ enforce: 1, testing: 0, none: 0 }), connections: () => ({ socketmap: 1 }) });
    await m.countReplies('socketmap', async () => 'NOTFOUND ', () => 'default')('postfix', 'example.com');
    m.observer.policy!('example.com', 'enforce');
    const exposition = await m.render();
    const labelsOf = new Map<string, Set<string>>();
    for (const line of exposition.split('\n')) {
      const match = /^(mta_sts_sidecar_\w+?)(?:\{([^}]*)\})? /.exec(line);
      if (!match) continue;
      const labels = labelsOf.get(match[1]!) ?? new Set<string>();
      for (const pair of (match[2] ?? '').split(',').filter(Boolean)) labels.add(pair.split('=')[0]!);
      labelsOf.set(match[1]!, labels);
    }
    for (const { panel, expr } of exprs) {
      for (const [, name] of expr.matchAll(/(mta_sts_sidecar_\w+)/g)) {
        expect(labelsOf.has(name!), `${panel}: ${name} is not exported`).toBe(true);
      }
      for (const [, by] of expr.matchAll(/by \(([^)]*)\)/g)) {
        const metricsInExpr = [...expr.matchAll(/(mta_sts_sidecar_\w+)/g)].map((x) => x[1]!);
        for (const label of by!.split(',').map((s) => s.trim())) {
          if (label === 'le') continue;
          expect(metricsInExpr.some((n) => labelsOf.get(n)?.has(label)), `${panel}: no metric has label ${label}`).toBe(true);
        }
      }
    }
  });
});
