/**
 * The report's "next deletion" against the controller itself: on random histories, the
 * prediction must name the first moment at which the controller's own pure pass (decide,
 * which runs the retention planner), stepped forward through every fire time and clock
 * bound with each run's snapshot turning ready at once, deletes something, and what.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../../src/api/objects.ts';
import type { RetentionPolicy, SnapshotSchedule } from '../../src/api/types.generated.ts';
import { decide } from '../../src/controller/decide.ts';
import { buildReport } from '../../src/report/build.ts';
import { FireTimeline, predictNextDeletion, type Prediction } from '../../src/report/predict.ts';
import { fireTimes, latestFireTime, parseSchedule } from '../../src/schedule/cron.ts';
import { snapshotMetadata } from '../../src/snapshot/naming.ts';

const BASE = Date.parse('2026-03-28T18:00:00Z'); // Europe/Berlin jumps forward the next night
const MINUTE = 60_000;
const HORIZON = 2 * 86_400_000;
const iso = (t: number): string => new Date(t).toISOString();

interface SnapSpec {
  ageSec: number;
  ms: number;
  kind: 'ready' | 'pending' | 'error' | 'held' | 'in-use';
  errorLagSec: number;
}
interface Case {
  cron: string;
  zone: string;
  forbid: boolean;
  suspend: boolean;
  bound: boolean;
  selected: boolean;
  retention: RetentionPolicy;
  nowMinutes: number;
  snaps: SnapSpec[];
  /** Pruned as the controller's last pass would have: nothing is due for deletion now. */
  settled: boolean;
}

const retention = fc
  .record(
    {
      maxCount: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
      expires: fc.option(fc.constantFrom('45m', '2h', '7h', '1d'), { nil: undefined }),
      keep: fc.option(
        fc.constantFrom(
          { last: 2 },
          { hourly: 3 },
          { daily: 2 },
          { hourly: 2, daily: 2 },
          { last: 1, weekly: 1 },
        ),
        { nil: undefined },
      ),
      minReady: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
      failedAfter: fc.option(fc.constantFrom('20m', '1h'), { nil: undefined }),
      pendingDeadline: fc.option(fc.constantFrom('30m', '3h'), { nil: undefined }),
      maxPending: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
    },
    { requiredKeys: [] },
  )
  .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as RetentionPolicy)
  .filter((r) => r.maxCount !== undefined || r.expires !== undefined || r.keep !== undefined);

const cases: fc.Arbitrary<Case> = fc.record({
  cron: fc.constantFrom('0 * * * *', '*/30 * * * *', '0 */3 * * *', '20,50 * * * *', '30 2 * * *'),
  zone: fc.constantFrom('UTC', 'Europe/Berlin'),
  forbid: fc.boolean(),
  suspend: fc.oneof(
    { weight: 9, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  bound: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  selected: fc.oneof(
    { weight: 9, arbitrary: fc.constant(true) },
    { weight: 1, arbitrary: fc.constant(false) },
  ),
  retention,
  nowMinutes: fc.integer({ min: 0, max: 24 * 60 }),
  snaps: fc.array(
    fc.record({
      ageSec: fc.integer({ min: 1, max: 3 * 86_400 }),
      // Never 1 ms past a whole second: a bound crossed exactly at a fire time is a tie this test does not model.
      ms: fc.integer({ min: 2, max: 998 }),
      kind: fc.constantFrom('ready', 'ready', 'ready', 'pending', 'error', 'held', 'in-use'),
      errorLagSec: fc.integer({ min: 0, max: 3600 }),
    }),
    { maxLength: 8 },
  ),
  settled: fc.boolean(),
});

interface World {
  now: number;
  schedule: SnapshotSchedule;
  pvcs: PersistentVolumeClaim[];
  snapshots: VolumeSnapshot[];
  takesRuns: boolean;
}

function world(c: Case): World {
  const now = BASE + c.nowMinutes * MINUTE;
  const cron = parseSchedule(c.cron, c.zone);
  const pvcs: PersistentVolumeClaim[] = [
    {
      metadata: {
        name: 'data-0',
        namespace: 'default',
        labels: { app: c.selected ? 'db' : 'web' },
        creationTimestamp: iso(BASE - 30 * 86_400_000),
      },
      status: { phase: c.bound ? 'Bound' : 'Pending' },
    },
  ];
  const snapshots = c.snaps.map((s, i): VolumeSnapshot => {
    const cut = now - s.ageSec * 1000 - s.ms;
    const scheduled = latestFireTime(cron, 0, cut) ?? new Date(cut);
    const meta = snapshotMetadata('data-0', 'sched', scheduled);
    const name = `s${i}`;
    if (s.kind === 'in-use') {
      const ref = { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name };
      pvcs.push({
        metadata: { name: `restore-${i}`, namespace: 'default' },
        spec: { dataSource: ref },
        status: { phase: 'Pending' },
      });
    }
    return {
      metadata: {
        name,
        namespace: 'default',
        labels: { ...meta.labels, ...(s.kind === 'held' ? { 'snapcron.io/hold': 'true' } : {}) },
        annotations: meta.annotations,
        creationTimestamp: iso(cut),
      },
      spec: { source: { persistentVolumeClaimName: 'data-0' } },
      status:
        s.kind === 'pending'
          ? { readyToUse: false }
          : s.kind === 'error'
            ? {
                readyToUse: false,
                error: { message: 'rpc error: quota', time: iso(cut + s.errorLagSec * 1000) },
              }
            : { readyToUse: true, creationTime: iso(cut), restoreSize: '1Gi' },
    };
  });
  const last = latestFireTime(cron, 0, now);
  const schedule: SnapshotSchedule = {
    apiVersion: 'snapcron.io/v1',
    kind: 'SnapshotSchedule',
    metadata: { name: 'sched', namespace: 'default', creationTimestamp: iso(BASE - 10 * 86_400_000) },
    spec: {
      schedule: c.cron,
      timeZone: c.zone,
      suspend: c.suspend,
      concurrencyPolicy: c.forbid ? 'Forbid' : 'Allow',
      claimSelector: { matchLabels: { app: 'db' } },
      retention: c.retention,
    },
    status: last ? { lastScheduleTime: iso(last.getTime()) } : {},
  };
  let kept = snapshots;
  if (c.settled) {
    const deleted = new Set(
      decide({ schedule, pvcs, snapshots, now: new Date(now) }).retention?.deletions.map((d) => d.name),
    );
    kept = snapshots.filter((s) => !deleted.has(s.metadata.name ?? ''));
  }
  return { now, schedule, pvcs, snapshots: kept, takesRuns: c.selected && c.bound && !c.suspend };
}

function predict(w: World, c: Case): Prediction | undefined {
  return predictNextDeletion({
    scheduleName: 'sched',
    namespace: 'default',
    pvc: 'data-0',
    retention: c.retention,
    timeZone: c.zone,
    snapshots: w.snapshots,
    pvcs: w.pvcs,
    now: new Date(w.now),
    fires: w.takesRuns ? new FireTimeline(parseSchedule(c.cron, c.zone), new Date(w.now)) : undefined,
    concurrencyPolicy: c.forbid ? 'Forbid' : 'Allow',
  });
}

/**
 * The controller's pure pass at every point of a grid (every 5 minutes, every fire time and
 * 1 ms after it, and `extra`), each run's snapshot turned ready at once: the first point at
 * which it deletes something, and what.
 */
function oracle(w: World, c: Case, extra: number[]): { at: number; names: string[] } | undefined {
  const cron = parseSchedule(c.cron, c.zone);
  const end = w.now + HORIZON;
  const points = new Set<number>([w.now, ...extra.filter((t) => t >= w.now && t <= end)]);
  for (let t = w.now; t <= end; t += 5 * MINUTE) points.add(t);
  for (const f of fireTimes(cron, w.now, end)) points.add(f.getTime()).add(f.getTime() + 1);
  let schedule = w.schedule;
  const snapshots = [...w.snapshots];
  for (const t of [...points].sort((a, b) => a - b)) {
    if (t > end) break;
    const plan = decide({ schedule, pvcs: w.pvcs, snapshots, now: new Date(t) });
    const deletions = plan.retention?.deletions ?? [];
    if (deletions.length > 0) return { at: t, names: deletions.map((d) => d.name) };
    for (const create of plan.creates) {
      const cut = iso(create.scheduledTime.getTime());
      snapshots.push({
        ...(create.manifest as VolumeSnapshot),
        metadata: { ...create.manifest.metadata, creationTimestamp: cut },
        status: { readyToUse: true, creationTime: cut },
      });
    }
    schedule = { ...schedule, status: plan.status };
  }
  return undefined;
}

describe('next deletion, predicted by running the retention planner forward', () => {
  it('is the first deletion the controller makes, stepped forward run by run (random histories)', () => {
    let found = 0;
    fc.assert(
      fc.property(cases, (c) => {
        const w = world(c);
        const p = predict(w, c);
        const within = p !== undefined && p.at.getTime() <= w.now + HORIZON;
        const o = oracle(w, c, p ? [p.at.getTime() - 1, p.at.getTime(), p.at.getTime() + 1] : []);
        if (!within) {
          expect(o).toBeUndefined();
          return;
        }
        found++;
        expect(o).toBeDefined();
        // decide plans retention before it creates the run's snapshot: a run's effect shows 1 ms later.
        expect(o?.at).toBe(p.trigger === 'run' ? p.at.getTime() + 1 : p.at.getTime());
        const names = p.deletions.map((d) => d.name);
        expect(o?.names).toEqual(expect.arrayContaining(names));
        if (p.trigger === 'now') {
          expect(p.at.getTime()).toBe(w.now);
          expect(o?.names).toEqual(names);
        }
        // The report says the same, to the second, naming the oldest snapshot that goes.
        const report = buildReport({
          schedules: [w.schedule],
          pvcs: w.pvcs,
          snapshots: w.snapshots,
          now: new Date(w.now),
        });
        const row = report.schedules[0]?.pvcs.find((r) => r.pvc === 'data-0');
        expect(row?.nextDeletion?.at).toBe(
          iso(Math.floor(p.at.getTime() / 1000) * 1000).replace('.000Z', 'Z'),
        );
        expect(row?.nextDeletion?.name).toBe(names.at(-1));
        expect(row?.nextDeletion?.trigger).toBe(p.trigger);
        expect(row?.nextDeletion?.planned).toBe(p.planned.has(names.at(-1) ?? ''));
      }),
      { numRuns: 150 },
    );
    // Most histories delete something within the two days the oracle walks.
    expect(found).toBeGreaterThan(75);
  }, 120_000);
});
