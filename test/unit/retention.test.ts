import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../../src/api/objects.ts';
import type { RetentionPolicy } from '../../src/api/types.generated.ts';
import { planRetention, type Verdict } from '../../src/retention/plan.ts';
import { restoringPvc, snap, type SnapOptions } from '../support/builders.ts';

const NOW = new Date('2026-06-15T12:00:00Z');
const hoursAgo = (h: number): Date => new Date(NOW.getTime() - h * 3_600_000);

function plan(
  retention: RetentionPolicy,
  snapshots = [snap('s', { at: NOW })],
  pvcs = [restoringPvc('x', 'none', true)],
  zone = 'UTC',
) {
  return planRetention({ scheduleName: 'nightly', retention, timeZone: zone, snapshots, pvcs, now: NOW });
}
const byName = (verdicts: Verdict[]): Record<string, string> =>
  Object.fromEntries(verdicts.map((v) => [v.name, `${v.verdict}:${v.reasons.join(',')}`]));
/** n hourly ready snapshots s0 (newest) .. s{n-1}. */
const hourly = (n: number, o: Partial<SnapOptions> = {}) =>
  Array.from({ length: n }, (_, i) => snap(`s${i}`, { at: hoursAgo(i), ...o }));

describe('retention rules', () => {
  it('maxCount deletes ready snapshots ranked past it', () => {
    expect(byName(plan({ maxCount: 2 }, hourly(4)).verdicts)).toEqual({
      s0: 'keep:min-ready',
      s1: 'keep:within-policy',
      s2: 'delete:max-count',
      s3: 'delete:max-count',
    });
  });

  it('expires deletes snapshots older than the duration', () => {
    expect(byName(plan({ expires: '90m' }, hourly(3)).verdicts)).toEqual({
      s0: 'keep:min-ready',
      s1: 'keep:within-policy',
      s2: 'delete:expired',
    });
  });

  it('failed snapshots are deleted and do not count as ready', () => {
    const snaps = [
      snap('f', { at: hoursAgo(0), state: 'failed' }),
      ...hourly(2).map((s, i) => snap(`r${i}`, { at: hoursAgo(i + 1) })),
    ];
    expect(byName(plan({ maxCount: 2 }, snaps).verdicts)).toEqual({
      f: 'delete:failed',
      r0: 'keep:min-ready',
      r1: 'keep:within-policy',
    });
  });

  it('keep.last keeps the N newest ready and deletes the rest as not-kept', () => {
    expect(byName(plan({ keep: { last: 2 }, minReady: 0 }, hourly(3)).verdicts)).toEqual({
      s0: 'keep:keep-last',
      s1: 'keep:keep-last',
      s2: 'delete:not-kept',
    });
  });

  it('keep.hourly keeps the newest of each of the N most recent hours', () => {
    const snaps = [
      snap('a', { at: '2026-06-15T11:50:00Z' }),
      snap('b', { at: '2026-06-15T11:10:00Z' }),
      snap('c', { at: '2026-06-15T10:40:00Z' }),
      snap('d', { at: '2026-06-15T08:05:00Z' }),
    ];
    expect(byName(plan({ keep: { hourly: 2 }, minReady: 0 }, snaps).verdicts)).toEqual({
      a: 'keep:keep-hourly',
      b: 'delete:not-kept',
      c: 'keep:keep-hourly',
      d: 'delete:not-kept',
    });
  });

  it('keep.daily buckets by the local date in the schedule zone', () => {
    // 23:30 UTC on the 14th is already the 15th in Shanghai.
    const snaps = [
      snap('late', { at: '2026-06-14T23:30:00Z' }),
      snap('early', { at: '2026-06-14T15:00:00Z' }),
    ];
    expect(byName(plan({ keep: { daily: 2 }, minReady: 0 }, snaps, [], 'UTC').verdicts)).toEqual({
      late: 'keep:keep-daily',
      early: 'delete:not-kept',
    });
    expect(byName(plan({ keep: { daily: 2 }, minReady: 0 }, snaps, [], 'Asia/Shanghai').verdicts)).toEqual({
      late: 'keep:keep-daily',
      early: 'keep:keep-daily',
    });
  });

  it('keep.weekly uses ISO week-years', () => {
    // 2026-01-01 (Thu) is ISO week 2026-W01; 2025-12-28 (Sun) is 2025-W52.
    const snaps = [
      snap('w1', { at: '2026-01-01T12:00:00Z' }),
      snap('w1b', { at: '2025-12-29T12:00:00Z' }),
      snap('w52', { at: '2025-12-28T12:00:00Z' }),
    ];
    expect(byName(plan({ keep: { weekly: 5 }, minReady: 0 }, snaps).verdicts)).toEqual({
      w1: 'keep:keep-weekly',
      w1b: 'delete:not-kept',
      w52: 'keep:keep-weekly',
    });
  });

  it('keep.monthly and keep.yearly keep the newest per month and year, and rules combine', () => {
    const snaps = [
      snap('jun', { at: '2026-06-10T00:00:00Z' }),
      snap('may2', { at: '2026-05-20T00:00:00Z' }),
      snap('may1', { at: '2026-05-01T00:00:00Z' }),
      snap('dec', { at: '2025-12-31T00:00:00Z' }),
      snap('old', { at: '2024-07-01T00:00:00Z' }),
    ];
    expect(byName(plan({ keep: { monthly: 2, yearly: 2 }, minReady: 0 }, snaps).verdicts)).toEqual({
      jun: 'keep:keep-monthly,keep-yearly',
      may2: 'keep:keep-monthly',
      may1: 'delete:not-kept',
      dec: 'keep:keep-yearly',
      old: 'delete:not-kept',
    });
  });

  it('a rule that counts buckets skips hours without a ready snapshot (restic semantics)', () => {
    const snaps = [
      snap('now', { at: '2026-06-15T11:00:00Z' }),
      snap('pending', { at: '2026-06-15T10:00:00Z', state: 'pending' }),
      snap('older', { at: '2026-06-15T06:00:00Z' }),
    ];
    expect(byName(plan({ keep: { hourly: 2 }, minReady: 0 }, snaps).verdicts)).toEqual({
      now: 'keep:keep-hourly',
      pending: 'keep:pending',
      older: 'keep:keep-hourly',
    });
  });
});

describe('protections', () => {
  it('a held snapshot is kept whatever the rules say', () => {
    const snaps = [...hourly(2), snap('held', { at: hoursAgo(50), hold: true })];
    const v = plan({ maxCount: 1, expires: '1h' }, snaps).verdicts.find((x) => x.name === 'held');
    expect(v).toMatchObject({ verdict: 'keep', reasons: ['hold'], overridden: ['expired', 'max-count'] });
  });

  it('a snapshot a not-yet-Bound PVC restores from is kept (dataSource and dataSourceRef)', () => {
    const snaps = hourly(4);
    const pvcs = [restoringPvc('restore-a', 's2'), restoringPvc('restore-b', 's3', false, true)];
    const r = byName(plan({ maxCount: 1 }, snaps, pvcs).verdicts);
    expect(r.s2).toBe('keep:in-use');
    expect(r.s3).toBe('keep:in-use');
  });

  it('a restore source is released once its PVC is Bound', () => {
    const r = byName(plan({ maxCount: 1 }, hourly(3), [restoringPvc('done', 's2', true)]).verdicts);
    expect(r.s2).toBe('delete:max-count');
  });

  it('pending snapshots are never deleted, even when expired', () => {
    const r = byName(
      plan({ expires: '1h' }, [snap('p', { at: hoursAgo(30), state: 'pending' }), snap('r', { at: NOW })])
        .verdicts,
    );
    expect(r.p).toBe('keep:pending');
  });

  it('the newest minReady ready snapshots survive even when everything expired', () => {
    const r = byName(
      plan(
        { expires: '1h', minReady: 2 },
        hourly(5).map((s, i) => snap(`o${i}`, { at: hoursAgo(10 + i) })),
      ).verdicts,
    );
    expect(r).toEqual({
      o0: 'keep:min-ready',
      o1: 'keep:min-ready',
      o2: 'delete:expired',
      o3: 'delete:expired',
      o4: 'delete:expired',
    });
  });

  it("only this schedule's snapshots are planned, per PVC", () => {
    const snaps = [
      ...hourly(3, { pvc: 'a' }).map((s, i) => snap(`a${i}`, { at: hoursAgo(i), pvc: 'a' })),
      ...hourly(3).map((s, i) => snap(`b${i}`, { at: hoursAgo(i), pvc: 'b' })),
      snap('other', { at: hoursAgo(9), schedule: 'weekly' }),
      snap('going', { at: hoursAgo(9), deleting: true }),
    ];
    const p = plan({ maxCount: 1 }, snaps);
    expect(p.verdicts.map((v) => v.name)).toEqual(['a0', 'a1', 'a2', 'b0', 'b1', 'b2']);
    expect(p.deletions.map((v) => v.name)).toEqual(['a1', 'a2', 'b1', 'b2']);
  });

  it('orders ties by name descending', () => {
    const p = plan({ maxCount: 1 }, [snap('x-a', { at: NOW }), snap('x-b', { at: NOW })]);
    expect(p.verdicts.map((v) => `${v.name}:${v.verdict}`)).toEqual(['x-b:keep', 'x-a:delete']);
  });
});

describe('retention properties', () => {
  const snapArb = fc.record({
    age: fc.integer({ min: 0, max: 60 * 86_400 }),
    pvc: fc.constantFrom('a', 'b'),
    schedule: fc.constantFrom('nightly', 'nightly', 'nightly', 'other'),
    state: fc.constantFrom('ready', 'ready', 'ready', 'pending', 'failed'),
    hold: fc.boolean().map((b) => b && Math.random() < 0.2),
  });
  const policyArb: fc.Arbitrary<RetentionPolicy> = fc
    .record(
      {
        maxCount: fc.integer({ min: 1, max: 10 }),
        expires: fc.constantFrom('1h', '1d', '7d', '2w'),
        keep: fc
          .record(
            {
              last: fc.integer({ min: 1, max: 5 }),
              hourly: fc.integer({ min: 1, max: 24 }),
              daily: fc.integer({ min: 1, max: 7 }),
              weekly: fc.integer({ min: 1, max: 4 }),
              monthly: fc.integer({ min: 1, max: 3 }),
              yearly: fc.integer({ min: 1, max: 2 }),
            },
            { requiredKeys: [] },
          )
          .filter((k) => Object.keys(k).length > 0),
        minReady: fc.integer({ min: 0, max: 3 }),
      },
      { requiredKeys: [] },
    )
    .filter((p) => p.maxCount !== undefined || p.expires !== undefined || p.keep !== undefined);
  const world = fc.record({
    snaps: fc.array(snapArb, { maxLength: 40 }),
    policy: policyArb,
    zone: fc.constantFrom('UTC', 'Europe/Berlin', 'Asia/Shanghai'),
    inUse: fc.array(fc.nat(39), { maxLength: 3 }),
  });
  type World = typeof world extends fc.Arbitrary<infer T> ? T : never;
  const build = (w: World) => {
    const snapshots = w.snaps.map((s, i) =>
      snap(`snap-${String(i).padStart(2, '0')}`, {
        at: new Date(NOW.getTime() - s.age * 1000),
        pvc: s.pvc,
        schedule: s.schedule,
        state: s.state,
        hold: s.hold,
      }),
    );
    const pvcs = w.inUse
      .filter((i) => i < snapshots.length)
      .map((i) => restoringPvc(`r${i}`, `snap-${String(i).padStart(2, '0')}`));
    return { snapshots, pvcs };
  };
  const run = (w: World, snapshots: VolumeSnapshot[], pvcs: PersistentVolumeClaim[]) =>
    planRetention({
      scheduleName: 'nightly',
      retention: w.policy,
      timeZone: w.zone,
      snapshots,
      pvcs,
      now: NOW,
    });

  it("never deletes a held, in-use or pending snapshot, nor another schedule's", () => {
    fc.assert(
      fc.property(world, (w) => {
        const { snapshots, pvcs } = build(w);
        const deleted = new Set(run(w, snapshots, pvcs).deletions.map((d) => d.name));
        const inUse = new Set(pvcs.map((p) => p.spec?.dataSource?.name));
        for (const s of snapshots) {
          if (!deleted.has(s.metadata.name ?? '')) continue;
          expect(s.metadata.labels?.['snapcron.io/hold']).toBeUndefined();
          expect(inUse.has(s.metadata.name)).toBe(false);
          expect(s.metadata.labels?.['snapcron.io/schedule']).toBe('nightly');
          expect(s.status?.readyToUse === false && !s.status.error).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps at least min(minReady, ready) ready snapshots per PVC', () => {
    fc.assert(
      fc.property(world, (w) => {
        const { snapshots, pvcs } = build(w);
        const verdicts = run(w, snapshots, pvcs).verdicts;
        for (const pvc of ['a', 'b']) {
          const ready = verdicts.filter((v) => v.pvc === pvc && v.state === 'ready');
          const kept = ready.filter((v) => v.verdict === 'keep');
          expect(kept.length).toBeGreaterThanOrEqual(Math.min(w.policy.minReady ?? 1, ready.length));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('planning the survivors again deletes nothing', () => {
    fc.assert(
      fc.property(world, (w) => {
        const { snapshots, pvcs } = build(w);
        const deleted = new Set(run(w, snapshots, pvcs).deletions.map((d) => d.name));
        const survivors = snapshots.filter((s) => !deleted.has(s.metadata.name ?? ''));
        expect(run(w, survivors, pvcs).deletions.map((d) => d.name)).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });
});

describe('bucket keys', () => {
  it('agree with luxon wall-clock formatting for any instant and zone (property)', async () => {
    const { DateTime, IANAZone } = await import('luxon');
    const { buckets } = await import('../../src/retention/plan.ts');
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2040, 0, 1) }),
        fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Shanghai'),
        (t, zone) => {
          const dt = DateTime.fromMillis(t, { zone });
          const b = buckets(new Date(t), IANAZone.create(zone));
          expect(b.hourly).toBe(`${dt.year}-${dt.month}-${dt.day} ${dt.hour}`);
          expect(b.weekly).toBe(`${dt.weekYear}-W${dt.weekNumber}`);
          expect(b.monthly).toBe(`${dt.year}-${dt.month}`);
        },
      ),
      { numRuns: 500 },
    );
  });
});
