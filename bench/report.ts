// Benchmark of the retention report at the issue's scale: 1,000 schedules x 10,000 PVCs x
// 100,000 snapshots. Each case is timed against a baseline measured in the same run (parsing
// the three object lists from JSON, i.e. merely reading what a cluster returns), so the
// ratios compare across machines; a half-size run shows how the cost grows. Not a test.
// Usage: npm run bench (after bench/run.ts), or node bench/report.ts [--scale 0.1]
import { parseArgs } from 'node:util';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../src/api/objects.ts';
import type { SnapshotSchedule } from '../src/api/types.generated.ts';
import { buildReport, type ReportInput } from '../src/report/build.ts';
import { ReportMetrics, type CachedObjects } from '../src/report/metrics.ts';
import { renderReport } from '../src/report/render.ts';
import { Registry } from '../src/controller/prometheus.ts';
import { snapshotMetadata, snapshotName } from '../src/snapshot/naming.ts';

const NOW = Date.parse('2026-06-15T12:00:00Z');
const HOUR = 3_600_000;
const iso = (t: number): string => new Date(t).toISOString().replace('.000Z', 'Z');

/**
 * `namespaces` x 10 schedules, each selecting 10 PVCs with 10 snapshots each; 1 PVC in 20
 * unprotected. `together`: the same objects all in one namespace (a label index, not a scan per schedule).
 */
function world(namespaces: number, together = false): Pick<ReportInput, 'schedules' | 'pvcs' | 'snapshots'> {
  const schedules: SnapshotSchedule[] = [];
  const pvcs: PersistentVolumeClaim[] = [];
  const snapshots: VolumeSnapshot[] = [];
  const kinds = [
    { schedule: '0 * * * *', step: HOUR, retention: { maxCount: 10 } },
    { schedule: '30 2 * * *', step: 24 * HOUR, retention: { expires: '9d', minReady: 2 } },
    { schedule: '0 */4 * * *', step: 4 * HOUR, retention: { keep: { hourly: 6, daily: 7, weekly: 4 } } },
  ];
  for (let n = 0; n < namespaces; n++) {
    const namespace = together ? 'all' : `team-${n}`;
    for (let s = 0; s < 10; s++) {
      const kind = kinds[(n + s) % kinds.length] as (typeof kinds)[number];
      const name = together ? `sched-${n}-${s}` : `sched-${s}`;
      schedules.push({
        apiVersion: 'snapcron.io/v1',
        kind: 'SnapshotSchedule',
        metadata: { name, namespace, creationTimestamp: '2026-01-01T00:00:00Z' },
        spec: {
          schedule: kind.schedule,
          timeZone: s % 2 ? 'Asia/Shanghai' : 'UTC',
          claimSelector: { matchLabels: { app: `app-${together ? `${n}-` : ''}${s}` } },
          retention: kind.retention,
        },
        status: { lastScheduleTime: iso(NOW - HOUR), lastSuccessfulTime: iso(NOW - HOUR) },
      });
      for (let p = 0; p < 10; p++) {
        const pvc = together ? `data-${n}-${s}-${p}` : `data-${s}-${p}`;
        pvcs.push({
          metadata: {
            name: pvc,
            namespace,
            labels:
              p === 9 && s % 2 === 0
                ? { app: 'none' }
                : { app: `app-${together ? `${n}-` : ''}${s}`, tier: 'db' },
            creationTimestamp: '2026-01-01T00:00:00Z',
          },
          spec: { resources: { requests: { storage: '20Gi' } } },
          status: { phase: 'Bound' },
        });
        for (let i = 0; i < 10; i++) {
          const at = NOW - (i + 1) * kind.step + 1000;
          const scheduled = new Date(at - 1000);
          const state = (n * 1000 + s * 100 + p * 10 + i) % 97;
          snapshots.push({
            metadata: {
              name: snapshotName(pvc, name, scheduled),
              namespace,
              ...snapshotMetadata(pvc, name, scheduled),
              creationTimestamp: iso(at),
            },
            spec: { source: { persistentVolumeClaimName: pvc } },
            status:
              state === 0
                ? { readyToUse: false, error: { message: 'rpc error: quota', time: iso(at) } }
                : state === 1
                  ? { readyToUse: false }
                  : { readyToUse: true, creationTime: iso(at), restoreSize: '20Gi' },
          });
        }
      }
    }
  }
  return { schedules, pvcs, snapshots };
}

const median = (samples: number[]): number =>
  samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)] as number;

/** Median of `runs` timings, in ms. */
function time(fn: () => void, runs = 3): number {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

const { values } = parseArgs({ options: { scale: { type: 'string', default: '1' } } });
const namespaces = Math.max(2, Math.round(100 * Number(values.scale)));
const now = new Date(NOW);
const rows: string[][] = [];

function measure(label: string, objects: ReturnType<typeof world>): void {
  const text = JSON.stringify(objects);
  const counts = `${objects.schedules.length} schedules, ${objects.pvcs.length} PVCs, ${objects.snapshots.length} snapshots`;
  process.stderr.write(`bench: report of ${counts}…\n`);
  const baseline = time(() => void JSON.parse(text));
  let report = buildReport({ ...objects, now });
  let planned = buildReport({ ...objects, now, plan: true });
  const cases: [string, () => void][] = [
    ['build', () => void (report = buildReport({ ...objects, now }))],
    ['build --plan', () => void (planned = buildReport({ ...objects, now, plan: true }))],
    // What the controller's minutely /metrics refresh builds for a namespace (ReportMetrics.refresh).
    ['build gauges-only (/metrics refresh)', () => void buildReport({ ...objects, now, gaugesOnly: true })],
    ['render json', () => void renderReport(report, 'json')],
    ['render table', () => void renderReport(report, 'table')],
    ['render markdown', () => void renderReport(report, 'markdown')],
    ['render html (every snapshot)', () => void renderReport(planned, 'html')],
    ['build + table (snapcron report)', () => void renderReport(buildReport({ ...objects, now }), 'table')],
    ['build + html (-o html)', () => void renderReport(buildReport({ ...objects, now, plan: true }), 'html')],
  ];
  rows.push([`${label}: ${counts}`, 'JSON.parse of the lists', `${baseline.toFixed(0)}ms`, '', '']);
  for (const [name, fn] of cases) {
    const ms = time(fn);
    rows.push([`  ${name}`, '', '', `${ms.toFixed(0)}ms`, `${(ms / baseline).toFixed(2)}x`]);
  }
  const findings = report.findings.length;
  process.stderr.write(
    `bench: ${findings} findings, html ${(renderReport(planned, 'html').length / 1e6).toFixed(1)} MB\n`,
  );
}

const full = world(namespaces);
const half = world(Math.round(namespaces / 2));
measure('half', half);
measure('full', full);
const grow = (): string => {
  const a = time(() => void buildReport({ ...half, now }));
  const b = time(() => void buildReport({ ...full, now }));
  return `${(b / a).toFixed(2)}x for ${(full.snapshots.length / half.snapshots.length).toFixed(1)}x the objects`;
};
rows.push(['build, full vs half size', '', '', '', grow()]);
{
  const one = world(namespaces, true);
  const text = JSON.stringify(one);
  process.stderr.write('bench: the full size in one namespace…\n');
  const baseline = time(() => void JSON.parse(text));
  const ms = time(() => void buildReport({ ...one, now }));
  rows.push([
    'build, full size in one namespace',
    'JSON.parse of the lists',
    `${baseline.toFixed(0)}ms`,
    `${ms.toFixed(0)}ms`,
    `${(ms / baseline).toFixed(2)}x`,
  ]);
}

// The controller's minutely refresh of the alert gauges over the full size, a minute after the
// last: against building every namespace (the refresh before it kept what had not changed).
{
  const objects = full;
  const byNamespace = new Map<string, ReturnType<typeof world>>();
  const bucket = (ns: string) => {
    let b = byNamespace.get(ns);
    if (!b) byNamespace.set(ns, (b = { schedules: [], pvcs: [], snapshots: [] }));
    return b;
  };
  for (const o of objects.schedules) bucket(o.metadata?.namespace ?? '').schedules.push(o);
  for (const o of objects.pvcs) bucket(o.metadata.namespace ?? '').pvcs.push(o);
  for (const o of objects.snapshots) bucket(o.metadata.namespace ?? '').snapshots.push(o);
  const generations = new Map([...byNamespace.keys()].map((ns) => [ns, 1]));
  const blind: CachedObjects = {
    cachedNamespaces: () => byNamespace.keys(),
    cached: (ns) => byNamespace.get(ns) ?? { schedules: [], pvcs: [], snapshots: [] },
  };
  const source: CachedObjects = { ...blind, generation: (ns) => generations.get(ns) ?? 0 };
  const timeAsync = async (fn: () => Promise<unknown>, runs = 5): Promise<number> => {
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) {
      const start = performance.now();
      await fn();
      samples.push(performance.now() - start);
    }
    return median(samples);
  };
  process.stderr.write('bench: the alert gauges refresh…\n');
  const m = new ReportMetrics(new Registry());
  await m.refresh(source, now);
  const minuteLater = new Date(NOW + 60_000);
  const baseline = await timeAsync(() => new ReportMetrics(new Registry()).refresh(blind, minuteLater));
  const quiet = await timeAsync(() => m.refresh(source, minuteLater));
  let round = 1;
  const tenth = await timeAsync(async () => {
    // A tenth of the namespaces changed since the last refresh.
    round++;
    for (const [i, ns] of [...byNamespace.keys()].entries())
      if (i % 10 === round % 10) generations.set(ns, round);
    await m.refresh(source, minuteLater);
  });
  for (const [name, ms] of [
    ['gauges refresh, nothing changed', quiet],
    ['gauges refresh, a tenth of the namespaces changed', tenth],
  ] as const)
    rows.push([
      name,
      'every namespace built',
      `${baseline.toFixed(0)}ms`,
      `${ms.toFixed(1)}ms`,
      `${(ms / baseline).toFixed(3)}x`,
    ]);
}

const header = ['case', 'baseline', 'baseline', 'snapcron', 'ratio'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
for (const r of [header, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  '));
