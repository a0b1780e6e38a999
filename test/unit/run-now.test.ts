import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../../src/api/objects.ts';
import type { SnapshotSchedule, SnapshotScheduleStatus } from '../../src/api/types.generated.ts';
import { requestValue } from '../../src/cli/run.ts';
import { decide, type ScheduleObservation } from '../../src/controller/decide.ts';
import { planRetention } from '../../src/retention/plan.ts';
import {
  isDns1123Subdomain,
  onDemandMetadata,
  onDemandSnapshotName,
  runNowKey,
  snapshotName,
  timeStamp,
  type OnDemandRun,
} from '../../src/snapshot/naming.ts';
import { schedule, snap } from '../support/builders.ts';

const pvc = (name: string, phase = 'Bound'): PersistentVolumeClaim => ({
  metadata: { name, namespace: 'default', creationTimestamp: '2026-01-01T00:00:00Z' },
  status: { phase },
});
const nightly = (
  annotations: Record<string, string> = {},
  status: SnapshotScheduleStatus = {},
  spec: Parameters<typeof schedule>[1] = {},
): SnapshotSchedule => {
  const s = schedule('nightly', { schedule: '0 2 * * *', ...spec });
  return {
    ...s,
    metadata: { ...s.metadata, creationTimestamp: '2026-01-01T00:00:00Z', generation: 1, annotations },
    status,
  };
};
/** A snapshot an earlier on-demand pass took. */
const onDemandSnap = (
  pvcName: string,
  run: OnDemandRun,
  at: string,
  state: 'ready' | 'pending' = 'ready',
) => {
  const base = snap(onDemandSnapshotName(pvcName, 'nightly', run), { at, pvc: pvcName, state });
  const meta = onDemandMetadata(pvcName, 'nightly', run);
  return { ...base, metadata: { ...base.metadata, labels: meta.labels, annotations: meta.annotations } };
};
const NOW = new Date('2026-06-10T12:34:56Z');
const ran = { lastScheduleTime: '2026-06-10T02:00:00Z', lastSuccessfulTime: '2026-06-10T02:00:00Z' };
const observe = (s: SnapshotSchedule, o: Partial<ScheduleObservation> = {}): ScheduleObservation => ({
  schedule: s,
  pvcs: [pvc('data-0'), pvc('data-1')],
  snapshots: [],
  now: NOW,
  ...o,
});

describe('a run-now request in decide', () => {
  it('takes one snapshot per selected PVC at once, named and labelled as on demand, timetable unchanged', () => {
    const without = decide(observe(nightly({}, ran)));
    const plan = decide(observe(nightly({ 'snapcron.io/run-now': '1781094896' }, ran)));
    expect(without.creates).toEqual([]);
    expect(plan.creates.map((c) => c.name)).toEqual([
      onDemandSnapshotName('data-0', 'nightly', { kind: 'run-now', key: '1781094896' }),
      onDemandSnapshotName('data-1', 'nightly', { kind: 'run-now', key: '1781094896' }),
    ]);
    expect(plan.creates[0]?.name).toMatch(/^data-0-nightly-[0-9a-f]{10}-r1781094896$/);
    for (const c of plan.creates) {
      expect(c.trigger).toBe('RunNow');
      expect(c.manifest.metadata.labels).toMatchObject({
        'snapcron.io/schedule': 'nightly',
        'snapcron.io/trigger': 'run-now',
      });
      expect(c.manifest.metadata.annotations).toEqual({ 'snapcron.io/run-now': '1781094896' });
      expect(c.manifest.metadata.labels?.['snapcron.io/hold']).toBeUndefined();
    }
    expect(plan.onDemand).toMatchObject({ trigger: 'RunNow', runNow: '1781094896', hold: false });
    // The timetable does not move: same next fire, same last scheduled time.
    expect(plan.due.kind).toBe('idle');
    expect(plan.status.nextScheduleTime).toBe(without.status.nextScheduleTime);
    expect(plan.status.nextScheduleTime).toBe('2026-06-11T02:00:00Z');
    expect(plan.status.lastScheduleTime).toBe('2026-06-10T02:00:00Z');
    expect(plan.status.lastRunNow).toBe('1781094896');
  });

  it('never runs a value recorded in status (restart) or remembered in memory (cache lag)', () => {
    const inStatus = decide(observe(nightly({ 'snapcron.io/run-now': 'x1' }, { ...ran, lastRunNow: 'x1' })));
    expect(inStatus.creates).toEqual([]);
    expect(inStatus.onDemand).toBeUndefined();
    const inMemory = decide(
      observe(nightly({ 'snapcron.io/run-now': 'x1' }, ran), { lastOnDemandInMemory: 'run-now:x1' }),
    );
    expect(inMemory.onDemand).toBeUndefined();
    // A new value runs again.
    const next = decide(observe(nightly({ 'snapcron.io/run-now': 'x2' }, { ...ran, lastRunNow: 'x1' })));
    expect(next.creates).toHaveLength(2);
    expect(next.status.lastRunNow).toBe('x2');
    // Blank is no request.
    expect(decide(observe(nightly({ 'snapcron.io/run-now': '  ' }, ran))).onDemand).toBeUndefined();
  });

  it('finishes a run cut short: snapshots of the request that exist are not taken again', () => {
    const run: OnDemandRun = { kind: 'run-now', key: 'x1' };
    const plan = decide(
      observe(nightly({ 'snapcron.io/run-now': 'x1' }, ran), {
        snapshots: [onDemandSnap('data-0', run, '2026-06-10T12:34:50Z', 'pending')],
      }),
    );
    expect(plan.creates.map((c) => c.pvc)).toEqual(['data-1']);
    expect(plan.onDemand?.existing).toEqual([onDemandSnapshotName('data-0', 'nightly', run)]);
  });

  it('at a fire time takes both runs, under distinct names, and records the timed one as lastRun', () => {
    const at = new Date('2026-06-11T02:00:00Z');
    const plan = decide(observe(nightly({ 'snapcron.io/run-now': 'x9' }, ran), { now: at }));
    expect(plan.due.kind).toBe('due');
    const timed = plan.creates.filter((c) => c.trigger === 'Schedule').map((c) => c.name);
    const onDemand = plan.creates.filter((c) => c.trigger === 'RunNow').map((c) => c.name);
    expect(timed).toEqual([snapshotName('data-0', 'nightly', at), snapshotName('data-1', 'nightly', at)]);
    expect(onDemand).toHaveLength(2);
    expect(new Set([...timed, ...onDemand]).size).toBe(4);
    expect(plan.status.lastScheduleTime).toBe('2026-06-11T02:00:00Z');
    expect(plan.status.lastRunNow).toBe('x9');
  });

  it('is never mistaken for a timed run: an on-demand snapshot newer than the last run is no interrupted run', () => {
    const plan = decide(
      observe(nightly({ 'snapcron.io/run-now': 'x1' }, { ...ran, lastRunNow: 'x1' }), {
        snapshots: [
          onDemandSnap('data-0', { kind: 'run-now', key: 'x1' }, '2026-06-10T12:00:00Z'),
          onDemandSnap('data-1', { kind: 'run-now', key: 'x1' }, '2026-06-10T12:00:00Z'),
        ],
      }),
    );
    expect(plan.creates).toEqual([]);
    expect(plan.status.lastScheduleTime).toBe('2026-06-10T02:00:00Z');
  });

  it('holds its snapshots when snapcron.io/run-now-hold names the same value, not a stale one', () => {
    const held = decide(
      observe(nightly({ 'snapcron.io/run-now': 'x2', 'snapcron.io/run-now-hold': 'x2' }, ran)),
    );
    expect(held.onDemand?.hold).toBe(true);
    for (const c of held.creates) expect(c.manifest.metadata.labels?.['snapcron.io/hold']).toBe('true');
    const stale = decide(
      observe(nightly({ 'snapcron.io/run-now': 'x3', 'snapcron.io/run-now-hold': 'x2' }, ran)),
    );
    expect(stale.onDemand?.hold).toBe(false);
    for (const c of stale.creates) expect(c.manifest.metadata.labels?.['snapcron.io/hold']).toBeUndefined();
  });

  it('runs while suspended (an explicit request), skips a PVC not Bound with a reason, takes none of an invalid spec', () => {
    const suspended = decide(observe(nightly({ 'snapcron.io/run-now': 'x1' }, ran, { suspend: true })));
    expect(suspended.creates).toHaveLength(2);
    expect(suspended.status.nextScheduleTime).toBeUndefined();
    const unbound = decide(
      observe(nightly({ 'snapcron.io/run-now': 'x1' }, ran), {
        pvcs: [pvc('data-0'), pvc('new', 'Pending')],
      }),
    );
    expect(unbound.creates.map((c) => c.pvc)).toEqual(['data-0']);
    expect(unbound.skips).toEqual([
      expect.objectContaining({ pvc: 'new', reason: 'NotBound', trigger: 'RunNow' }),
    ]);
    const invalid = decide(observe(nightly({ 'snapcron.io/run-now': 'x1' }, ran, { schedule: 'nope' })));
    expect(invalid.creates).toEqual([]);
    expect(invalid.status.lastRunNow).toBeUndefined();
    // Fixed: the request still stands and is taken.
    const fixed = decide(observe(nightly({ 'snapcron.io/run-now': 'x1' }, invalid.status)));
    expect(fixed.creates).toHaveLength(2);
  });

  it('honours retention.maxPending for the PVC, like a timed run', () => {
    const pending = [1, 2, 3].map((i) =>
      snap(snapshotName('data-0', 'nightly', new Date(`2026-06-0${i}T02:00:00Z`)), {
        at: `2026-06-0${i}T02:00:00Z`,
        pvc: 'data-0',
        state: 'pending',
      }),
    );
    const plan = decide(observe(nightly({ 'snapcron.io/run-now': 'x1' }, ran), { snapshots: pending }));
    expect(plan.creates.map((c) => c.pvc)).toEqual(['data-1']);
    expect(plan.skips).toEqual([expect.objectContaining({ pvc: 'data-0', reason: 'TooManyPending' })]);
  });
});

describe('a run-now request under concurrencyPolicy: Forbid', () => {
  it('skips a PVC whose previous snapshot is not ready yet, as a timed run would, and takes the others', () => {
    const previous = snap(snapshotName('data-0', 'nightly', new Date('2026-06-10T02:00:00Z')), {
      at: '2026-06-10T02:00:00Z',
      pvc: 'data-0',
      state: 'pending',
    });
    const forbid = nightly({ 'snapcron.io/run-now': 'x1' }, ran, { concurrencyPolicy: 'Forbid' });
    const plan = decide(observe(forbid, { snapshots: [previous] }));
    expect(plan.creates.map((c) => c.pvc)).toEqual(['data-1']);
    expect(plan.skips).toEqual([
      expect.objectContaining({ pvc: 'data-0', reason: 'PreviousNotReady', trigger: 'RunNow' }),
    ]);
    // Allow (the default) takes it anyway.
    const allow = decide(observe(nightly({ 'snapcron.io/run-now': 'x1' }, ran), { snapshots: [previous] }));
    expect(allow.creates.map((c) => c.pvc).sort()).toEqual(['data-0', 'data-1']);
  });
});

describe('spec.runOnCreate in decide', () => {
  const yearly = (status: SnapshotScheduleStatus = {}, extra = {}): SnapshotSchedule =>
    nightly({}, status, { schedule: '0 0 1 1 *', runOnCreate: true, ...extra });

  it('takes the first snapshots of a schedule that never ran, without waiting for its first fire', () => {
    const plan = decide(observe(yearly()));
    expect(plan.due.kind).toBe('idle');
    expect(plan.creates.map((c) => c.name)).toEqual([
      expect.stringMatching(/^data-0-nightly-[0-9a-f]{10}-first$/),
      expect.stringMatching(/^data-1-nightly-[0-9a-f]{10}-first$/),
    ]);
    expect(plan.creates[0]?.manifest.metadata.labels?.['snapcron.io/trigger']).toBe('run-on-create');
    expect(plan.onDemand?.trigger).toBe('RunOnCreate');
    expect(plan.status.nextScheduleTime).toBe('2027-01-01T00:00:00Z');
    expect(plan.status.lastScheduleTime).toBeUndefined();
  });

  it('does nothing once the schedule has a run, and finishes a first run cut short', () => {
    expect(decide(observe(yearly({ lastRun: { trigger: 'RunOnCreate', created: 2 } }))).creates).toEqual([]);
    expect(decide(observe(yearly({ lastScheduleTime: '2026-01-01T00:00:00Z' }))).creates).toEqual([]);
    expect(decide(observe(yearly(), { lastOnDemandInMemory: 'run-on-create' })).creates).toEqual([]);
    const half = decide(
      observe(yearly(), {
        snapshots: [onDemandSnap('data-0', { kind: 'run-on-create' }, '2026-06-10T12:34:50Z')],
      }),
    );
    expect(half.creates.map((c) => c.pvc)).toEqual(['data-1']);
    // A timed snapshot of its own means it ran: no first run then.
    const timed = snap(snapshotName('data-0', 'nightly', new Date('2026-01-01T00:00:00Z')), {
      at: '2026-01-01T00:00:00Z',
      pvc: 'data-0',
    });
    expect(decide(observe(yearly(), { snapshots: [timed] })).onDemand).toBeUndefined();
  });

  it('stays pending while no selected PVC is Bound, and takes the first copy once one is', () => {
    const none = decide(observe(yearly(), { pvcs: [pvc('data-0', 'Pending')] }));
    expect(none.creates).toEqual([]);
    expect(none.onDemand?.trigger).toBe('RunOnCreate');
    const recorded = { lastRun: { trigger: 'RunOnCreate' as const, created: 0, skipped: 1 } };
    const bound = decide(observe(yearly(recorded), { pvcs: [pvc('data-0')] }));
    expect(bound.creates.map((c) => c.trigger)).toEqual(['RunOnCreate']);
    const done = { lastRun: { trigger: 'RunOnCreate' as const, created: 1 } };
    expect(decide(observe(yearly(done), { pvcs: [pvc('data-0'), pvc('data-1')] })).creates).toEqual([]);
  });

  it('waits while suspended, gives way to a due timed run and to a run-now request', () => {
    expect(decide(observe(yearly({}, { suspend: true }))).creates).toEqual([]);
    const due = decide(observe(yearly(), { now: new Date('2027-01-01T00:00:03Z') }));
    expect(due.creates.map((c) => c.trigger)).toEqual(['Schedule', 'Schedule']);
    const s = yearly();
    s.metadata = { ...s.metadata, annotations: { 'snapcron.io/run-now': 'x1' } };
    expect(decide(observe(s)).creates.map((c) => c.trigger)).toEqual(['RunNow', 'RunNow']);
  });
});

describe('retention of on-demand snapshots', () => {
  it('prunes them like timed ones by cut time, and keeps a held one', () => {
    const timed = (day: number): VolumeSnapshot =>
      snap(`t${day}`, { at: `2026-06-0${day}T02:00:00Z`, pvc: 'data-0' });
    const od = (key: string, at: string, hold = false): VolumeSnapshot => {
      const s = onDemandSnap('data-0', { kind: 'run-now', key }, at);
      if (hold) s.metadata.labels = { ...s.metadata.labels, 'snapcron.io/hold': 'true' };
      return s;
    };
    const plan = planRetention({
      scheduleName: 'nightly',
      retention: { maxCount: 2 },
      timeZone: 'UTC',
      snapshots: [
        timed(1),
        od('a', '2026-06-01T12:00:00Z'),
        od('b', '2026-06-02T12:00:00Z', true),
        timed(3),
        timed(4),
      ],
      pvcs: [],
      now: new Date('2026-06-05T00:00:00Z'),
    });
    const verdict = (name: string) => plan.verdicts.find((v) => v.name === name);
    expect(verdict('t4')?.verdict).toBe('keep');
    expect(verdict('t3')?.verdict).toBe('keep');
    expect(
      verdict(onDemandSnapshotName('data-0', 'nightly', { kind: 'run-now', key: 'a' }))?.reasons,
    ).toEqual(['max-count']);
    expect(verdict(onDemandSnapshotName('data-0', 'nightly', { kind: 'run-now', key: 'b' }))).toMatchObject({
      verdict: 'keep',
      reasons: ['hold'],
    });
    expect(verdict('t1')?.verdict).toBe('delete');
  });
});

describe('on-demand snapshot names', () => {
  const name = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$/);
  const longName = fc.integer({ min: 1, max: 252 }).map((n) => 'p'.repeat(n));
  const anyName = fc.oneof(name, longName);
  const value = fc.oneof(
    fc.stringMatching(/^[a-z0-9]{1,32}$/),
    fc.string({ minLength: 1, maxLength: 300 }),
    fc.integer({ min: 0, max: 4e9 }).map(String),
  );
  const run: fc.Arbitrary<OnDemandRun> = fc.oneof(
    fc.constant<OnDemandRun>({ kind: 'run-on-create' }),
    value
      .map(runNowKey)
      .filter((k): k is string => k !== undefined)
      .map((key): OnDemandRun => ({ kind: 'run-now', key })),
  );
  const at = fc.integer({ min: 0, max: 4e9 }).map((s) => new Date(s * 1000));

  it('never equal a timed name, whatever the PVCs, schedules, times and values', () => {
    fc.assert(
      fc.property(anyName, anyName, run, anyName, anyName, at, (p1, s1, r, p2, s2, t) => {
        const a = onDemandSnapshotName(p1, s1, r);
        expect(isDns1123Subdomain(a)).toBe(true);
        expect(a).not.toBe(snapshotName(p2, s2, t));
        // Same pair: the timed name and the on-demand one differ in the last part only, even
        // for a request whose value is that very stamp.
        expect(a).not.toBe(snapshotName(p1, s1, t));
        const stamp = onDemandSnapshotName(p1, s1, { kind: 'run-now', key: timeStamp(t) });
        expect(stamp).not.toBe(snapshotName(p1, s1, t));
      }),
      { numRuns: 2000 },
    );
  });

  it('differ for distinct requests of one pair, and for distinct pairs', () => {
    const verbatim = fc.stringMatching(/^[a-z0-9]{1,32}$/);
    fc.assert(
      fc.property(anyName, anyName, verbatim, verbatim, (p, s, v1, v2) => {
        fc.pre(v1 !== v2);
        const a = onDemandSnapshotName(p, s, { kind: 'run-now', key: v1 });
        expect(a).not.toBe(onDemandSnapshotName(p, s, { kind: 'run-now', key: v2 }));
        expect(a).not.toBe(onDemandSnapshotName(p, s, { kind: 'run-on-create' }));
      }),
    );
    expect(onDemandSnapshotName('data-web', 'nightly', { kind: 'run-on-create' })).not.toBe(
      onDemandSnapshotName('data', 'web-nightly', { kind: 'run-on-create' }),
    );
  });

  it('carry short values as they are and hash the rest; run-now keys are trimmed, long ones hashed', () => {
    expect(onDemandSnapshotName('db', 'daily', { kind: 'run-now', key: '1715430000' })).toMatch(
      /-r1715430000$/,
    );
    expect(onDemandSnapshotName('db', 'daily', { kind: 'run-now', key: 'Before Upgrade' })).toMatch(
      /-h[0-9a-f]{10}$/,
    );
    expect(runNowKey(' x ')).toBe('x');
    expect(runNowKey('')).toBeUndefined();
    expect(runNowKey('v'.repeat(300))).toMatch(/^sha256:[0-9a-f]{64}$/);
    // What `snapcron run` writes appears verbatim: the UTC time to the millisecond.
    expect(requestValue(new Date('2026-06-10T12:34:56.789Z'))).toBe('20260610123456789');
  });
});
