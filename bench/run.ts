// Benchmarks: each case times a baseline and snapcron's code in the same run and
// prints the ratio, so the figures compare across machines. Not a test: it asserts nothing
// (it only refuses to run when a baseline's answer differs from snapcron's, see each case).
// Usage: npm run bench
import { CronExpressionParser } from 'cron-parser';
import * as prom from 'prom-client';
import { DateTime } from 'luxon';
import { LABEL_HOLD, LABEL_SCHEDULE, SNAPSHOT_GROUP, SNAPSHOT_KIND } from '../src/api/constants.ts';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../src/api/objects.ts';
import type { KeepRules, SnapshotSchedule } from '../src/api/types.generated.ts';
import { decide } from '../src/controller/decide.ts';
import * as ownMetrics from '../src/controller/prometheus.ts';
import { planRetention, type RetentionInput } from '../src/retention/plan.ts';
import { parseDuration } from '../src/schedule/duration.ts';
import { dueRun, nextFireTimes, parseSchedule, type DueRun } from '../src/schedule/cron.ts';
import { snapshotMetadata, snapshotName } from '../src/snapshot/naming.ts';

/** Mean milliseconds per run, over at least `minMs` and 5 runs (garbage collection included), after a warm-up. */
function time(fn: () => void, minMs = 300): number {
  fn(); // warm-up
  let runs = 0;
  const start = performance.now();
  while (runs < 5 || performance.now() - start < minMs) {
    fn();
    runs++;
  }
  return (performance.now() - start) / runs;
}

/** Milliseconds as the table shows them: µs below 10 ms, else ms. */
const duration = (ms: number): string => (ms < 10 ? `${(ms * 1000).toFixed(1)}µs` : `${ms.toFixed(1)}ms`);

/** {@link time} for work that answers with a promise (a /metrics scrape). */
async function timeAsync(fn: () => Promise<unknown>, minMs = 300): Promise<number> {
  await fn(); // warm-up
  let runs = 0;
  const start = performance.now();
  while (runs < 5 || performance.now() - start < minMs) {
    await fn();
    runs++;
  }
  return (performance.now() - start) / runs;
}

const rows: string[][] = [];
function addRow(
  name: string,
  baselineName: string,
  b: number,
  o: number,
): { baseline: number; ours: number } {
  rows.push([
    name,
    baselineName,
    duration(b),
    duration(o),
    o / b >= 0.01 ? `${(o / b).toFixed(2)}x` : `${(o / b).toExponential(1)}x (${Math.round(b / o)}x faster)`,
  ]);
  return { baseline: b, ours: o };
}
/** Times both and adds a row; returns the mean milliseconds per run of each. */
function bench(
  name: string,
  baselineName: string,
  baseline: () => void,
  ours: () => void,
): { baseline: number; ours: number } {
  process.stderr.write(`bench: ${name}…\n`);
  return addRow(name, baselineName, time(baseline), time(ours));
}

// 1. Next 100 fire times: cron-parser alone in UTC vs snapcron with zone + DST mapping.
const berlin = parseSchedule('*/15 * * * *', 'Europe/Berlin');
bench(
  'next 100 fire times, */15 Europe/Berlin',
  'cron-parser UTC, no DST mapping',
  () => {
    const e = CronExpressionParser.parse('0 */15 * * * *', {
      tz: 'UTC',
      currentDate: new Date('2026-10-24T00:00:00Z'),
    });
    for (let i = 0; i < 100; i++) e.next();
  },
  () => void nextFireTimes(berlin, new Date('2026-10-24T00:00:00Z'), 100),
);

// 2. The due run after a 30-day outage of a */5 schedule in Europe/Berlin: which missed time to
// catch up, and whether earlier ones were dropped. Baseline: the same answer from cron-parser,
// the usual library for it: prev() from now (the most recent fire time) and next() from the last
// run (the first missed one), each from a fresh parse as a pass would do. Both answers are
// checked equal before timing (no DST change in the window, where the two differ by design).
{
  const expression = '*/5 * * * *';
  const tz = 'Europe/Berlin';
  const schedule = parseSchedule(expression, tz);
  const lastRun = new Date('2026-01-01T00:00:00Z');
  const now = new Date('2026-01-31T00:02:30Z');
  const viaCronParser = (): DueRun => {
    const latest = CronExpressionParser.parse(expression, { tz, currentDate: now }).prev().toDate();
    const first = CronExpressionParser.parse(expression, { tz, currentDate: lastRun }).next().toDate();
    return {
      kind: 'due',
      scheduledTime: latest,
      skippedEarlier: first < latest,
      lateMs: now.getTime() - latest.getTime(),
    };
  };
  const ours = (): DueRun => dueRun({ schedule, lastScheduleTime: lastRun, createdAt: lastRun, now });
  if (JSON.stringify(ours()) !== JSON.stringify(viaCronParser()))
    throw new Error(
      `due run: snapcron ${JSON.stringify(ours())} != cron-parser ${JSON.stringify(viaCronParser())}`,
    );
  bench(
    'due run after a 30-day outage, */5 Europe/Berlin',
    'cron-parser prev() from now + next() from last run',
    () => void viaCronParser(),
    () => void ours(),
  );
}

// Retention inputs that look like a cluster's: what snapcron creates (snapshotName, the labels
// and scheduled-at annotation of snapshotMetadata, a template label), as the snapshot controller
// leaves it (finalizers, status.creationTime a few seconds after the object was created, ready
// or not, a driver error with its time), for the fire times of a real schedule.
type Shot = {
  pvc: string;
  schedule: string;
  /** The fire time it was taken for. */
  at: Date;
  state?: 'ready' | 'pending' | 'failed';
  /** When the object was created, if not a second after `at` (a catch-up after an outage). */
  takenAt?: Date;
  hold?: boolean;
};
let uid = 0;
const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
function volumeSnapshot({ pvc, schedule, at, state = 'ready', takenAt, hold }: Shot): VolumeSnapshot {
  const meta = snapshotMetadata(pvc, schedule, at);
  const created = (takenAt ?? at).getTime() + 1000;
  const id = `6b1f0c2e-4a5e-4c1d-9e07-${(++uid).toString(16).padStart(12, '0')}`;
  const content = `snapcontent-${id}`;
  return {
    apiVersion: `${SNAPSHOT_GROUP}/v1`,
    kind: SNAPSHOT_KIND,
    metadata: {
      name: snapshotName(pvc, schedule, at),
      namespace: 'prod',
      uid: id,
      resourceVersion: String(4_000_000 + uid),
      generation: 1,
      creationTimestamp: rfc3339(created),
      labels: { team: 'storage', ...meta.labels, ...(hold ? { [LABEL_HOLD]: 'true' } : {}) },
      annotations: meta.annotations,
      finalizers: [
        'snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection',
        'snapshot.storage.kubernetes.io/volumesnapshot-bound-protection',
      ],
    },
    spec: {
      source: { persistentVolumeClaimName: pvc },
      volumeSnapshotClassName: 'alibabacloud-disk-snapshot',
    },
    status:
      state === 'ready'
        ? {
            boundVolumeSnapshotContentName: content,
            creationTime: rfc3339(created + 2000 + (uid % 7) * 1000),
            readyToUse: true,
            restoreSize: '20Gi',
          }
        : state === 'failed'
          ? {
              boundVolumeSnapshotContentName: content,
              readyToUse: false,
              error: {
                message:
                  'Failed to check and update snapshot content: rpc error: code = Internal desc = Throttling.User',
                time: rfc3339(created + 30_000),
              },
            }
          : { boundVolumeSnapshotContentName: content, readyToUse: false },
  };
}
const boundPvc = (name: string, labels: Record<string, string> = {}): PersistentVolumeClaim => ({
  metadata: { name, namespace: 'prod', labels, creationTimestamp: '2025-01-01T00:00:00Z' },
  spec: {
    resources: { requests: { storage: '20Gi' } },
    storageClassName: 'alicloud-disk-essd',
    volumeName: `d-${name}`,
  },
  status: { phase: 'Bound' },
});
/** A PVC still being restored from a snapshot: in-use protection. */
const restoringPvc = (name: string, snapshot: string): PersistentVolumeClaim => ({
  metadata: { name, namespace: 'prod' },
  spec: { dataSource: { apiGroup: SNAPSHOT_GROUP, kind: SNAPSHOT_KIND, name: snapshot } },
  status: { phase: 'Pending' },
});
/**
 * The snapshots of `pvcs` for `count` fire times of `expression` after `start`, oldest first, as
 * the schedule leaves them: the newest still pending for one PVC in `pendingEvery` (the fire just
 * happened), one failed for one PVC in 50, one held for one in 40, and one PVC in 25 with a
 * 12-fire outage caught up once, 40 minutes late. Returns them and `now`, just after the last fire.
 * Through JSON and back, like the objects a client or an informer hands over (flat strings, no
 * shared ones).
 */
function history(
  schedule: string,
  expression: string,
  timeZone: string,
  pvcs: string[],
  count: number,
  start: Date,
  pendingEvery = 10,
): { snapshots: VolumeSnapshot[]; now: Date } {
  const fires = nextFireTimes(parseSchedule(expression, timeZone), start, count);
  const last = fires.at(-1) ?? start;
  const snapshots: VolumeSnapshot[] = [];
  pvcs.forEach((pvc, p) => {
    const outage = p % 25 === 0 ? Math.floor(count / 3) : -1;
    fires.forEach((at, i) => {
      if (outage >= 0 && i >= outage && i < outage + 11) return; // missed, never caught up
      const shot: Shot = { pvc, schedule, at };
      if (i === outage + 11) shot.takenAt = new Date(at.getTime() + 40 * 60_000);
      if (i === count - 1 && p % pendingEvery === 0) shot.state = 'pending';
      if (i === Math.floor(count / 2) && p % 50 === 0) shot.state = 'failed';
      if (i === Math.floor((2 * count) / 3) && p % 40 === 0) shot.hold = true;
      snapshots.push(volumeSnapshot(shot));
    });
  });
  return {
    snapshots: JSON.parse(JSON.stringify(snapshots)) as VolumeSnapshot[],
    now: new Date(last.getTime() + 30_000),
  };
}

// 3. Retention of 20 PVCs × 100 hourly snapshots with maxCount, expires and keep rules.
// Baseline: the same rules written the plain way, deciding only what to delete (no verdicts,
// reasons or reports): parse each cut time, group by PVC, sort newest first, then failed,
// expires, maxCount, keep buckets from luxon's wall clock in the zone, and the protections
// (hold, in-use, pending, minReady). Checked to delete exactly what planRetention deletes.
function referenceDeletions(input: RetentionInput): string[] {
  const { retention: policy, now, timeZone: zone } = input;
  const expiresMs = policy.expires ? parseDuration(policy.expires) : Infinity;
  const failedAfterMs = parseDuration(policy.failedAfter ?? '1h');
  const minReady = policy.minReady ?? 1;
  const keep: KeepRules = policy.keep ?? {};
  const inUse = new Set<string>();
  for (const p of input.pvcs)
    for (const ref of [p.spec?.dataSource, p.spec?.dataSourceRef])
      if (p.status?.phase !== 'Bound' && ref?.kind === SNAPSHOT_KIND) inUse.add(ref.name);
  type Item = { name: string; t: number; s: VolumeSnapshot; wall?: DateTime };
  const byPvc = new Map<string, Item[]>();
  for (const s of input.snapshots) {
    if (s.metadata.labels?.[LABEL_SCHEDULE] !== input.scheduleName || s.metadata.deletionTimestamp) continue;
    const pvc = s.spec.source.persistentVolumeClaimName ?? '';
    const item = {
      name: s.metadata.name ?? '',
      t: Date.parse(String(s.status?.creationTime || s.metadata.creationTimestamp)),
      s,
    };
    const items = byPvc.get(pvc);
    if (items) items.push(item);
    else byPvc.set(pvc, [item]);
  }
  const bucket = (e: Item, rule: string): string => {
    const d = (e.wall ??= DateTime.fromMillis(e.t, { zone }));
    if (rule === 'hourly') return `${d.year}-${d.month}-${d.day} ${d.hour}`;
    if (rule === 'daily') return `${d.year}-${d.month}-${d.day}`;
    if (rule === 'weekly') return `${d.weekYear}-W${d.weekNumber}`;
    return rule === 'monthly' ? `${d.year}-${d.month}` : `${d.year}`;
  };
  const deleted: string[] = [];
  for (const items of byPvc.values()) {
    items.sort((a, b) => b.t - a.t || (a.name < b.name ? 1 : -1));
    const ready = items.filter((e) => e.s.status?.readyToUse === true);
    const kept = new Set(ready.slice(0, keep.last ?? 0));
    for (const rule of ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) {
      const slots = keep[rule] ?? 0;
      let last: string | undefined;
      let used = 0;
      for (let i = 0; i < ready.length && used < slots; i++) {
        const e = ready[i] as Item;
        const b = bucket(e, rule);
        if (b === last && i < ready.length - 1) continue; // a newer one holds this bucket
        last = b;
        used++;
        kept.add(e);
      }
    }
    const isProtected = (e: Item): boolean =>
      e.s.metadata.labels?.[LABEL_HOLD] === 'true' || inUse.has(e.name);
    ready.forEach((e, i) => {
      const doomed =
        now.getTime() - e.t > expiresMs ||
        i + 1 > (policy.maxCount ?? Infinity) ||
        (policy.keep && !kept.has(e));
      if (doomed && i + 1 > minReady && !isProtected(e)) deleted.push(e.name);
    });
    for (const e of items) {
      const error = e.s.status?.readyToUse !== true ? e.s.status?.error : undefined;
      if (
        error &&
        now.getTime() - (error.time ? Date.parse(error.time) : e.t) > failedAfterMs &&
        !isProtected(e)
      )
        deleted.push(e.name);
    }
  }
  return deleted.sort();
}
{
  const pvcs = Array.from({ length: 20 }, (_, p) => `data-${p}`);
  const { snapshots, now } = history(
    'hourly',
    '@hourly',
    'Asia/Shanghai',
    pvcs,
    100,
    new Date('2026-06-10T00:00:00Z'),
    4,
  );
  const input: RetentionInput = {
    scheduleName: 'hourly',
    retention: { maxCount: 60, expires: '3d', keep: { hourly: 24, daily: 7, weekly: 4 }, minReady: 2 },
    timeZone: 'Asia/Shanghai',
    snapshots,
    pvcs: [
      ...pvcs.map((p) => boundPvc(p)),
      restoringPvc('data-3-restore', snapshots[350]?.metadata.name ?? ''),
    ],
    now,
  };
  const ours = planRetention(input)
    .deletions.map((d) => d.name)
    .sort();
  const reference = referenceDeletions(input);
  if (ours.length === 0 || JSON.stringify(ours) !== JSON.stringify(reference))
    throw new Error(`retention: planRetention deletes ${ours.length}, the reference ${reference.length}`);
  bench(
    'retention plan, 20 PVCs × 100, maxCount + expires + keep hourly/daily/weekly',
    'plain impl. of the same rules (luxon buckets), same deletions',
    () => void referenceDeletions(input),
    () => void planRetention(input),
  );
}

/**
 * Baseline of the large retention cases: the least any plan must do: read each snapshot's cut
 * time (status.creationTime, else metadata.creationTimestamp, parsed once), group the schedule's
 * snapshots by PVC and sort each PVC's newest first (ties by name), as planRetention orders them.
 */
function sortByCutTime(snapshots: VolumeSnapshot[], schedule: string): void {
  const byPvc = new Map<string, { t: number; name: string }[]>();
  for (const s of snapshots) {
    if (s.metadata.labels?.[LABEL_SCHEDULE] !== schedule) continue;
    const pvc = s.spec.source.persistentVolumeClaimName ?? '';
    const t = Date.parse(String(s.status?.creationTime || s.metadata.creationTimestamp));
    let list = byPvc.get(pvc);
    if (!list) byPvc.set(pvc, (list = []));
    list.push({ t, name: s.metadata.name ?? '' });
  }
  for (const list of byPvc.values())
    list.sort((a, b) => b.t - a.t || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
}
const SORT_BASELINE = 'parse cut time + group by PVC + sort';
const targets: string[] = [];
const target = (what: string, limitMs: number, ms: number): void =>
  void targets.push(`${what} ≤ ${limitMs} ms: ${ms <= limitMs ? 'OK' : 'MISS'} (${ms.toFixed(1)} ms)`);

// 4. One PVC with 10,000 hourly snapshots (417 days, over DST changes), the README's tiered
// policy in Europe/Berlin: most are past maxCount and the keep rules, so the plan walks them all.
{
  const { snapshots, now } = history(
    'db-tiered',
    '@hourly',
    'Europe/Berlin',
    ['pg-data-0'],
    10_000,
    new Date('2025-05-01T00:00:00Z'),
    1,
  );
  const input: RetentionInput = {
    scheduleName: 'db-tiered',
    retention: {
      maxCount: 100,
      expires: '90d',
      keep: { hourly: 48, daily: 14, weekly: 8, monthly: 12 },
      minReady: 2,
    },
    timeZone: 'Europe/Berlin',
    snapshots,
    pvcs: [boundPvc('pg-data-0'), restoringPvc('pg-data-restore', snapshots[9_000]?.metadata.name ?? '')],
    now,
  };
  const r = bench(
    'retention plan, 1 PVC × 10,000, maxCount + expires + keep h/d/w/m, Europe/Berlin',
    SORT_BASELINE,
    () => sortByCutTime(snapshots, 'db-tiered'),
    () => void planRetention(input),
  );
  target('plan 1 PVC × 10,000', 20, r.ours);
}

// 5. A schedule over 10,000 PVCs keeping 10 daily snapshots each (100,000), the newest pending for
// one PVC in 10, in a namespace of those 10,000 PVCs and 3 restores; kept for the decide() case below.
const nightlyPvcs = Array.from({ length: 10_000 }, (_, p) => `vol-${String(p).padStart(5, '0')}`);
const nightly = history(
  'nightly',
  '0 2 * * *',
  'Europe/Berlin',
  nightlyPvcs,
  10,
  new Date('2026-03-20T00:00:00Z'),
);
{
  const input: RetentionInput = {
    scheduleName: 'nightly',
    retention: { expires: '30d', keep: { daily: 7, weekly: 4, monthly: 3 }, minReady: 2 },
    timeZone: 'Europe/Berlin',
    snapshots: nightly.snapshots,
    pvcs: [
      ...nightlyPvcs.map((p) => boundPvc(p)),
      ...[1_003, 40_007, 77_009].map((i) =>
        restoringPvc(`restore-${i}`, nightly.snapshots[i]?.metadata.name ?? ''),
      ),
    ],
    now: nightly.now,
  };
  const r = bench(
    'retention plan, 10,000 PVCs × 10, expires + keep d/w/m, Europe/Berlin',
    SORT_BASELINE,
    () => sortByCutTime(nightly.snapshots, 'nightly'),
    () => void planRetention(input),
  );
  target('plan 10,000 PVCs × 10 = 100,000', 200, r.ours);
}

// 6. decide() for an hourly schedule of 10 PVCs, due now, in the namespace of case 5 (10,010 PVCs,
// 100,240 snapshots). Baseline: the same decide() in a namespace holding only the schedule's own
// 10 PVCs and 240 snapshots; the ratio is what the rest of the namespace costs a pass.
{
  const webPvcs = Array.from({ length: 10 }, (_, p) => `web-${p}`);
  const web = history(
    'web-hourly',
    '0 * * * *',
    'UTC',
    webPvcs,
    24,
    new Date(nightly.now.getTime() - 24 * 3_600_000),
  );
  const now = new Date(Math.ceil(web.now.getTime() / 3_600_000) * 3_600_000 + 5_000);
  const schedule: SnapshotSchedule = {
    apiVersion: 'snapcron.io/v1',
    kind: 'SnapshotSchedule',
    metadata: {
      name: 'web-hourly',
      namespace: 'prod',
      generation: 1,
      creationTimestamp: '2025-01-01T00:00:00Z',
    },
    spec: {
      schedule: '0 * * * *',
      claimSelector: { matchLabels: { app: 'web' } },
      retention: { maxCount: 24, minReady: 2 },
    },
    status: { lastScheduleTime: rfc3339(Math.floor(web.now.getTime() / 3_600_000) * 3_600_000) },
  };
  const own = webPvcs.map((p) => boundPvc(p, { app: 'web' }));
  const all = [...nightlyPvcs.map((p) => boundPvc(p, { app: 'batch' })), ...own];
  const allSnapshots = [...nightly.snapshots, ...web.snapshots];
  if (decide({ schedule, pvcs: own, snapshots: web.snapshots, now }).creates.length !== 10)
    throw new Error('decide: expected 10 creates');
  bench(
    'decide(), 10 PVCs due, in a namespace of 10,010 PVCs / 100,240 snapshots',
    'decide() with only its 10 PVCs / 240 snapshots',
    () => void decide({ schedule, pvcs: own, snapshots: web.snapshots, now }),
    () => void decide({ schedule, pvcs: all, snapshots: allSnapshots, now }),
  );
}

// A /metrics scrape at 1,000 schedules × 10 PVCs: the same series in prom-client (the reference
// Node client, which rebuilt every series' labels and line per scrape) and in snapcron's families
// (src/controller/prometheus.ts), which keep each series' line prefix.
{
  const name = 'a /metrics scrape, 1,000 schedules x 10 PVCs (35,000 lines)';
  process.stderr.write(`bench: ${name}…\n`);
  type Labels = Record<string, string>;
  interface Families {
    histogram(name: string, labelNames: string[], buckets: number[]): { observe(l: Labels, v: number): void };
    counter(name: string, labelNames: string[]): { inc(l: Labels, v: number): void };
    gauge(name: string, labelNames: string[]): { set(l: Labels, v: number): void };
  }
  const fill = (f: Families): void => {
    const buckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600];
    const lag = f.histogram('lag_seconds', ['namespace', 'schedule'], buckets);
    const created = f.counter('created_total', ['namespace', 'schedule']);
    const state = f.gauge('snapshots', ['namespace', 'schedule', 'state']);
    const newest = f.gauge('newest_ready_seconds', ['namespace', 'schedule', 'pvc']);
    for (let i = 0; i < 1000; i++) {
      const labels = { namespace: `team-${i}`, schedule: `nightly-${i}` };
      lag.observe(labels, (i % 50) / 10);
      created.inc(labels, 10);
      for (const s of ['ready', 'pending', 'stuck', 'failed']) state.set({ ...labels, state: s }, 3);
      for (let p = 0; p < 10; p++) newest.set({ ...labels, pvc: `data-${p}` }, 1_790_000_000 + i);
    }
  };
  const theirs = new prom.Registry();
  const ours = new ownMetrics.Registry();
  const [r, o] = [[theirs], [ours]];
  fill({
    histogram: (n, labelNames, buckets) =>
      new prom.Histogram({ name: n, help: n, labelNames, buckets, registers: r }),
    counter: (n, labelNames) => new prom.Counter({ name: n, help: n, labelNames, registers: r }),
    gauge: (n, labelNames) => new prom.Gauge({ name: n, help: n, labelNames, registers: r }),
  });
  fill({
    histogram: (n, labelNames, buckets) =>
      new ownMetrics.Histogram({ name: n, help: n, labelNames, buckets, registers: o }),
    counter: (n, labelNames) => new ownMetrics.Counter({ name: n, help: n, labelNames, registers: o }),
    gauge: (n, labelNames) => new ownMetrics.Gauge({ name: n, help: n, labelNames, registers: o }),
  });
  // Sample lines, each with its labels in name order (prom-client writes `le` first, snapcron last).
  const lines = (t: string): string[] =>
    t
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => {
        const [, metric, labels = '', value] = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(l) ?? [];
        return `${metric}{${labels.split(',').sort().join(',')}} ${value}`;
      })
      .sort();
  const [a, b] = [lines(await theirs.metrics()), lines(await ours.metrics())];
  if (a.length !== b.length || a.some((l, i) => l !== b[i]))
    throw new Error(`${name}: the two scrapes differ`);
  addRow(
    name,
    'prom-client, the same series',
    await timeAsync(() => theirs.metrics()),
    await timeAsync(() => ours.metrics()),
  );
}

const header = ['case', 'baseline', 'baseline', 'snapcron', 'ratio'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
for (const r of [header, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  '));
console.log(`targets: ${targets.join('; ')}`);
