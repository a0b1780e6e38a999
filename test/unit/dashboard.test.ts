/**
 * The Grafana dashboard's variables (README "Dashboard": "Variables: data source, job,
 * namespace") do what a user picking them expects: every panel reads the chosen data source,
 * every series the chosen job, and every per-namespace series the chosen namespaces. Pure JSON
 * checks; test/integration/monitoring.test.ts checks the queries' metrics and PromQL.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allPanels, DASHBOARD_FILE, type Dashboard } from '../monitoring/promql.ts';

const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
/** Series of the process, not of a namespace: no namespace label to filter by. */
const PROCESS_WIDE = /^(snapcron_leader|snapcron_webhook_\w+|process_\w+|nodejs_\w+)$/;

describe('the Grafana dashboard’s variables', () => {
  it('are data source, job and namespace; namespaces are those of the chosen job', () => {
    const list = dashboard.templating?.list ?? [];
    expect(list.map((v) => v.name)).toEqual(['datasource', 'job', 'namespace']);
    const query = (name: string): string => {
      const q = list.find((v) => v.name === name)?.query;
      return typeof q === 'string' ? q : (q?.query ?? '');
    };
    expect(query('job')).toBe('label_values(snapcron_leader, job)');
    expect(query('namespace')).toBe('label_values(snapcron_stale_pvcs{job=~"$job"}, namespace)');
  });

  it('filter every panel: its data source, each series by job, per-namespace series by namespace', () => {
    const panels = allPanels(dashboard).filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThan(10);
    let selectors = 0;
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      for (const { expr = '' } of p.targets ?? []) {
        for (const [, metric = '', labels = ''] of expr.matchAll(
          /\b((?:snapcron|process|nodejs)_[a-z0-9_]+)(\{[^}]*\})?(?![a-z0-9_(])/g,
        )) {
          selectors++;
          expect(labels, `${metric} in "${p.title}": ${expr}`).toContain('job=~"$job"');
          if (!PROCESS_WIDE.test(metric))
            expect(labels, `${metric} in "${p.title}": ${expr}`).toContain('namespace=~"$namespace"');
        }
      }
    }
    expect(selectors).toBeGreaterThan(25);
  });
});
