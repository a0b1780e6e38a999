import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { DateTime, IANAZone } from 'luxon';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../../src/api/objects.ts';
import type { RetentionPolicy } from '../../src/api/types.generated.ts';
import { validateSchedule } from '../../src/api/validate.ts';
import {
  bucketNumbers,
  buckets,
  planRetention,
  PROTECT_REASONS,
  protectionOf,
  shouldHoldBack,
  whyNotPrune,
  type ProtectionContext,
  type Reason,
  type RetentionPlan,
  type Verdict,
} from '../../src/retention/plan.ts';
import { scheduledTime, snapshotState, snapshotTime } from '../../src/retention/snapshot-state.ts';
import { zoneOffset } from '../../src/schedule/zone-offset.ts';
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
const iso = (t: string | Date): string => new Date(t).toISOString();
/** The object created at `createdAt` and, if ready, its data cut at `cutAt` (status.creationTime). */
const takenAt = (
  s: VolumeSnapshot,
  createdAt: string | Date,
  cutAt: string | Date = createdAt,
): VolumeSnapshot => ({
  ...s,
  metadata: { ...s.metadata, creationTimestamp: iso(createdAt) },
  status: { ...s.status, creationTime: iso(cutAt) },
});
/** Not ready, with a driver error, stamped with `time` when given (the API sets it). */
const withError = (s: VolumeSnapshot, time?: Date): VolumeSnapshot => ({
  ...s,
  status: {
    readyToUse: false,
    error: { message: 'rpc error: Throttling', ...(time ? { time: iso(time) } : {}) },
  },
});
const named = (snapshots: VolumeSnapshot[], name: string): VolumeSnapshot => {
  const s = snapshots.find((x) => x.metadata.name === name);
  if (!s) throw new Error(`no snapshot ${name}`);
  return s;
};
const protectionsIn = (v: Verdict): Reason[] =>
  v.reasons.filter((r) => (PROTECT_REASONS as readonly string[]).includes(r));

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
      snap('f', { at: hoursAgo(3), state: 'failed' }), // its error has lasted 3h, past failedAfter 1h
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
      snap('older', { at: '2026-06-13T12:00:00Z' }),
    ];
    expect(byName(plan({ keep: { daily: 2 }, minReady: 0 }, snaps, [], 'UTC').verdicts)).toEqual({
      late: 'keep:keep-daily',
      early: 'delete:not-kept',
      older: 'keep:keep-daily',
    });
    expect(byName(plan({ keep: { daily: 2 }, minReady: 0 }, snaps, [], 'Asia/Shanghai').verdicts)).toEqual({
      late: 'keep:keep-daily',
      early: 'keep:keep-daily',
      older: 'delete:not-kept',
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

describe("a verdict's reason lists", () => {
  // The planner shares one frozen list per combination of reasons between verdicts (a large
  // plan built a copy per snapshot); a caller that changed one would change them all.
  it('are read-only, so no caller can change another verdict through a shared list', () => {
    const snaps = [
      ...hourly(30),
      snap('held', { at: hoursAgo(40), hold: true }),
      snap('p', { at: NOW, state: 'pending' }),
    ];
    const { verdicts } = plan(
      { maxCount: 3, expires: '20h', keep: { last: 2, hourly: 4 }, minReady: 1 },
      snaps,
    );
    const lists = verdicts.flatMap((v) => [v.reasons, v.overridden]);
    expect(new Set(verdicts.map((v) => v.reasons.join(','))).size).toBeGreaterThan(3);
    for (const list of lists) expect(Object.isFrozen(list)).toBe(true);
    const deleted = verdicts.filter((v) => v.verdict === 'delete');
    expect(deleted.length).toBeGreaterThan(1);
    expect(() => (deleted[0]?.reasons as string[]).push('hold')).toThrow(TypeError);
    expect(deleted.every((v) => !v.reasons.includes('hold'))).toBe(true);
    const ctx = { scheduleName: 'nightly', retention: { minReady: 1 }, snapshots: snaps, pvcs: [], now: NOW };
    expect(Object.isFrozen(protectionOf(named(snaps, 'held'), ctx))).toBe(true);
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
      plan({ expires: '1h' }, [snap('p', { at: hoursAgo(3), state: 'pending' }), snap('r', { at: NOW })])
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
    // Seconds; half within 12 hours, where failedAfter and pendingDeadline draw their lines.
    age: fc.oneof(fc.integer({ min: 0, max: 12 * 3600 }), fc.integer({ min: 0, max: 60 * 86_400 })),
    pvc: fc.constantFrom('a', 'b'),
    schedule: fc.constantFrom('nightly', 'nightly', 'nightly', 'other'),
    state: fc.constantFrom('ready', 'ready', 'ready', 'pending', 'failed'),
    /** For an error: how long ago the API stamped it, as a fraction of the age; undefined: no stamp. */
    errorAt: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
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
        failedAfter: fc.constantFrom('10m', '1h', '1d'),
        pendingDeadline: fc.constantFrom('30m', '6h', '2d'),
        maxPending: fc.integer({ min: 1, max: 4 }),
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
    const snapshots = w.snaps.map((s, i) => {
      const built = snap(`snap-${String(i).padStart(2, '0')}`, {
        at: new Date(NOW.getTime() - s.age * 1000),
        pvc: s.pvc,
        schedule: s.schedule,
        state: s.state,
        hold: s.hold,
      });
      return s.state === 'failed' && s.errorAt !== undefined
        ? withError(built, new Date(NOW.getTime() - s.age * 1000 * s.errorAt))
        : built;
    });
    const pvcs = w.inUse
      .filter((i) => i < snapshots.length)
      .map((i) => restoringPvc(`r${i}`, `snap-${String(i).padStart(2, '0')}`));
    return { snapshots, pvcs };
  };
  const run = (
    w: World,
    snapshots: VolumeSnapshot[],
    pvcs: PersistentVolumeClaim[],
    o: { now?: Date; statesOnly?: boolean } = {},
  ) =>
    planRetention({
      scheduleName: 'nightly',
      retention: w.policy,
      timeZone: w.zone,
      snapshots,
      pvcs,
      now: NOW,
      ...o,
    });

  it('changesAt: the plan stays the same by the clock alone until then, and changes then', () => {
    const shape = (p: RetentionPlan) =>
      p.verdicts.map(
        (v) => `${v.name} ${v.state} ${v.verdict} ${v.reasons.join(',')} ${v.overridden.join(',')}`,
      );
    const planAt = (w: World, snapshots: VolumeSnapshot[], pvcs: PersistentVolumeClaim[], now: Date) =>
      run(w, snapshots, pvcs, { now });
    let changes = 0;
    fc.assert(
      fc.property(world, fc.integer({ min: 1, max: 3 * 86_400_000 }), (w, later) => {
        const { snapshots, pvcs } = build(w);
        const now = planAt(w, snapshots, pvcs, NOW);
        const at = now.changesAt;
        if (at === undefined) {
          // Nothing changes by the clock: not an hour, nor days later.
          expect(shape(planAt(w, snapshots, pvcs, new Date(NOW.getTime() + later)))).toEqual(shape(now));
          return;
        }
        changes++;
        expect(at).toBeGreaterThan(NOW.getTime());
        const before = Math.min(at - 1, NOW.getTime() + later);
        expect(shape(planAt(w, snapshots, pvcs, new Date(before)))).toEqual(shape(now));
        expect(shape(planAt(w, snapshots, pvcs, new Date(at)))).not.toEqual(shape(now));
      }),
      { numRuns: 400 },
    );
    expect(changes).toBeGreaterThan(50); // the worlds have pending, erring and expiring snapshots
  });

  it("statesOnly gives the full plan's snapshots, order, states, counts and pending lists, deleting nothing", () => {
    fc.assert(
      fc.property(world, (w) => {
        const { snapshots, pvcs } = build(w);
        const full = run(w, snapshots, pvcs);
        const states = run(w, snapshots, pvcs, { statesOnly: true });
        const facts = (p: RetentionPlan) =>
          p.verdicts.map(({ name, namespace, pvc, time, state, error }) => ({
            name,
            namespace,
            pvc,
            time,
            state,
            error,
          }));
        expect(facts(states)).toEqual(facts(full));
        expect(states.counts).toEqual(full.counts);
        expect(states.pendingByPvc).toEqual(full.pendingByPvc);
        expect(states.deletions).toEqual([]);
        expect(states.verdicts.every((v) => v.verdict === 'keep' && v.reasons.length === 0)).toBe(true);
      }),
      { numRuns: 300 },
    );
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
          // Not ready and deleted: only when its error has lasted longer than failedAfter.
          if (s.status?.readyToUse !== true) {
            const since = new Date(s.status?.error?.time ?? s.metadata.creationTimestamp ?? 0);
            const failedAfterMs = { '10m': 600_000, '1h': 3_600_000, '1d': 86_400_000 }[
              (w.policy.failedAfter ?? '1h') as '10m' | '1h' | '1d'
            ];
            expect(NOW.getTime() - since.getTime()).toBeGreaterThan(failedAfterMs);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never deletes a pending or stuck snapshot, and holds back a PVC exactly at maxPending of them', () => {
    fc.assert(
      fc.property(world, (w) => {
        const { snapshots, pvcs } = build(w);
        const p = run(w, snapshots, pvcs);
        for (const v of p.verdicts) {
          if (v.state === 'pending' || v.state === 'stuck') {
            expect(v).toMatchObject({ verdict: 'keep' });
            expect(v.reasons).toContain(v.state);
          }
        }
        expect(p.stuck).toEqual(p.verdicts.filter((v) => v.state === 'stuck'));
        for (const pvc of ['a', 'b', 'c']) {
          const waiting = p.verdicts.filter(
            (v) => v.pvc === pvc && (v.state === 'pending' || v.state === 'stuck'),
          );
          const hold = shouldHoldBack(p, pvc);
          expect(hold !== undefined).toBe(waiting.length >= (w.policy.maxPending ?? 3));
          if (hold)
            expect([...hold.pending, ...hold.stuck].sort()).toEqual(waiting.map((v) => v.name).sort());
        }
      }),
      { numRuns: 300 },
    );
  });

  it('protectionOf, on the same observations, agrees with the plan for every snapshot', () => {
    fc.assert(
      fc.property(world, (w) => {
        const { snapshots, pvcs } = build(w);
        const ctx: ProtectionContext = {
          scheduleName: 'nightly',
          retention: w.policy,
          snapshots,
          pvcs,
          now: NOW,
        };
        for (const v of run(w, snapshots, pvcs).verdicts) {
          expect(protectionOf(named(snapshots, v.name), ctx)).toEqual(protectionsIn(v));
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
          // Even with minReady 0, only expires can take a PVC's last ready snapshot.
          if (w.policy.expires === undefined)
            expect(kept.length).toBeGreaterThanOrEqual(Math.min(1, ready.length));
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
    const { DateTime } = await import('luxon');
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

describe('the fast bucket computation agrees with luxon, DST edges included', () => {
  const HOUR = 3_600_000;
  const DAY = 86_400_000;
  // DST both ways and of 30 minutes, odd offsets, a skipped day (Apia 2011-12-30), Ramadan
  // suspensions (Casablanca), a negative DST (Dublin), a 2-hour DST (Troll), zone changes.
  const zones = [
    'UTC',
    'Europe/Berlin',
    'America/New_York',
    'Australia/Lord_Howe',
    'Asia/Kathmandu',
    'America/St_Johns',
    'Pacific/Chatham',
    'Pacific/Apia',
    'Africa/Casablanca',
    'Europe/Dublin',
    'Antarctica/Troll',
    'Asia/Pyongyang',
    'America/Sao_Paulo',
    'Europe/Moscow',
  ];
  /** The instants a zone's offset changes in a year, found the plain way: luxon once a day, then bisection. */
  const transitions = (zone: IANAZone, year: number): number[] => {
    const out: number[] = [];
    for (let t = Date.UTC(year, 0, 1); t < Date.UTC(year + 1, 0, 1); t += DAY) {
      if (zone.offset(t) === zone.offset(t + DAY)) continue;
      let [lo, hi] = [t, t + DAY];
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (zone.offset(mid) === zone.offset(lo)) lo = mid;
        else hi = mid;
      }
      out.push(hi);
    }
    return out;
  };
  const transitionCache = new Map<string, number[]>();
  /** Instants: any from 1900 to 2100, or within three hours of one of the zone's changes in a year. */
  const instant = (zone: string) =>
    fc.oneof(
      fc.integer({ min: Date.UTC(1900, 0, 1), max: Date.UTC(2100, 0, 1) }),
      fc
        .record({
          year: fc.integer({ min: 1970, max: 2037 }),
          pick: fc.nat(),
          delta: fc.oneof(
            fc.integer({ min: -3 * HOUR, max: 3 * HOUR }),
            fc.integer({ min: -2000, max: 2000 }),
          ),
        })
        .map(({ year, pick, delta }) => {
          const key = `${zone} ${year}`;
          let list = transitionCache.get(key);
          if (!list) transitionCache.set(key, (list = transitions(IANAZone.create(zone), year)));
          return (list.length > 0 ? (list[pick % list.length] as number) : Date.UTC(year, 6, 1)) + delta;
        }),
    );
  const world = fc
    .constantFrom(...zones)
    .chain((zone) => fc.record({ zone: fc.constant(zone), t: instant(zone), other: instant(zone) }));

  /** The buckets read off luxon's wall clock, the straightforward way. */
  const viaLuxon = (t: number, zone: string) => {
    const dt = DateTime.fromMillis(t, { zone });
    const day = Date.UTC(dt.year, dt.month - 1, dt.day) / DAY;
    const monday = DateTime.fromObject(
      { weekYear: dt.weekYear, weekNumber: dt.weekNumber, weekday: 1 },
      { zone: 'UTC' },
    );
    return {
      offset: dt.offset,
      strings: {
        hourly: `${dt.year}-${dt.month}-${dt.day} ${dt.hour}`,
        daily: `${dt.year}-${dt.month}-${dt.day}`,
        weekly: `${dt.weekYear}-W${dt.weekNumber}`,
        monthly: `${dt.year}-${dt.month}`,
        yearly: `${dt.year}`,
      },
      numbers: {
        hourly: day * 24 + dt.hour,
        daily: day,
        weekly: Math.floor((monday.toMillis() / DAY + 3) / 7),
        monthly: dt.year * 12 + dt.month - 1,
        yearly: dt.year,
      },
    };
  };

  it('zoneOffset (cached per UTC day) is zone.offset, buckets and bucketNumbers are luxon wall-clock fields (property)', () => {
    fc.assert(
      fc.property(world, ({ zone, t }) => {
        const z = IANAZone.create(zone);
        const want = viaLuxon(t, zone);
        expect(zoneOffset(z, t)).toBe(z.offset(t));
        expect(zoneOffset(z, t)).toBe(want.offset);
        expect(buckets(new Date(t), z)).toEqual(want.strings);
        expect(bucketNumbers(t, z)).toEqual(want.numbers);
      }),
      { numRuns: 1500 },
    );
  }, 60_000);

  it('two instants share a bucket number exactly when they share a bucket (property)', () => {
    const rules = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
    fc.assert(
      fc.property(world, ({ zone, t, other }) => {
        const z = IANAZone.create(zone);
        const [a, b] = [bucketNumbers(t, z), bucketNumbers(other, z)];
        const [sa, sb] = [buckets(new Date(t), z), buckets(new Date(other), z)];
        for (const rule of rules) expect(a[rule] === b[rule]).toBe(sa[rule] === sb[rule]);
      }),
      { numRuns: 1500 },
    );
  }, 60_000);

  it('these zones change offset at most once in a UTC day from 1970 to 2037, and zoneOffset follows each change', () => {
    for (const zone of zones) {
      const z = IANAZone.create(zone);
      for (let year = 1970; year <= 2037; year++) {
        for (const change of transitions(z, year)) {
          const day = Math.floor(change / DAY) * DAY;
          // Hour by hour through the day: one step (none when the change is at midnight UTC).
          const hours = Array.from({ length: 25 }, (_, h) =>
            z.offset(Math.min(day + h * HOUR, day + DAY - 1)),
          );
          const steps = hours.filter((o, h) => h > 0 && o !== hours[h - 1]).length;
          expect(steps, `${zone} ${new Date(day).toISOString()}`).toBe(change === day ? 0 : 1);
          for (const t of [day, change - 1000, change - 1, change, change + 1, change + 1000, day + DAY - 1])
            expect(zoneOffset(z, t), `${zone} ${new Date(t).toISOString()}`).toBe(z.offset(t));
        }
      }
    }
  }, 60_000);

  it('an invalid zone gives what luxon gives: NaN offsets, one bucket for all', () => {
    const z = IANAZone.create('Not/AZone');
    expect(zoneOffset(z, 0)).toBeNaN();
    const p = plan(
      { keep: { daily: 2 }, minReady: 0 },
      [snap('a', { at: hoursAgo(0) }), snap('b', { at: hoursAgo(48) })],
      [],
      'Not/AZone',
    );
    expect(byName(p.verdicts)).toEqual({ a: 'keep:keep-daily', b: 'keep:keep-daily-oldest' });
  });
});

describe('snapshot times read fast, exactly as Date reads them', () => {
  const pad = (n: number, width: number) => String(n).padStart(width, '0');
  it('RFC 3339 UTC stamps, with and without milliseconds, any field in or out of range (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          year: fc.oneof(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 1970, max: 2100 })),
          month: fc.integer({ min: 0, max: 13 }),
          day: fc.integer({ min: 0, max: 32 }),
          hour: fc.integer({ min: 0, max: 25 }),
          minute: fc.integer({ min: 0, max: 61 }),
          second: fc.integer({ min: 0, max: 61 }),
          ms: fc.option(fc.integer({ min: 0, max: 999 }), { nil: undefined }),
        }),
        ({ year, month, day, hour, minute, second, ms }) => {
          const text = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hour, 2)}:${pad(minute, 2)}:${pad(second, 2)}${ms === undefined ? '' : `.${pad(ms, 3)}`}Z`;
          const s = snap('s', { at: NOW });
          const t = snapshotTime({ ...s, status: { readyToUse: true, creationTime: text } });
          const want = new Date(text);
          expect(t?.getTime()).toBe(Number.isNaN(want.getTime()) ? NOW.getTime() : want.getTime());
        },
      ),
      { numRuns: 2000 },
    );
  });

  it.each([
    '2026-06-15T14:00:07Z',
    '2026-06-15T14:00:07.5Z',
    '2026-06-15t14:00:07z',
    '2026-06-15T14:00:07+02:00',
    ' 2026-06-15T14:00:07Z',
    '2026-06-15T14:00:07.123456Z',
    '+002026-06-15T14:00:07Z',
    '2026-06-15T24:00:00Z',
    '2026-02-31T00:00:00Z',
    '0099-01-01T00:00:00Z',
  ])('reads %j as new Date does', (text) => {
    const s = snap('s', { at: NOW });
    const want = new Date(text);
    expect(snapshotTime({ ...s, status: { readyToUse: true, creationTime: text } })?.getTime()).toBe(
      Number.isNaN(want.getTime()) ? NOW.getTime() : want.getTime(),
    );
  });
});

describe('planning many PVCs', () => {
  it('shouldHoldBack finds each PVC among many pending ones, as a scan would', () => {
    const snaps = Array.from({ length: 40 }, (_, p) =>
      Array.from({ length: p % 5 }, (_, i) =>
        snap(`p${p}-${i}`, { at: hoursAgo(i), pvc: `pvc-${p}`, state: 'pending' }),
      ),
    ).flat();
    const p = plan({ maxCount: 5, maxPending: 3 }, snaps);
    expect(p.pendingByPvc.length).toBeGreaterThan(16);
    for (let i = 0; i < 42; i++) {
      const scan = p.pendingByPvc.find((x) => x.pvc === `pvc-${i}`);
      expect(shouldHoldBack(p, `pvc-${i}`)?.pending).toEqual(
        scan && scan.pending.length >= 3 ? scan.pending : undefined,
      );
    }
  });

  it('plans PVCs in any input order the same way, sorted by PVC, newest first within', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ pvc: fc.constantFrom('a', 'b', 'c', 'd'), age: fc.integer({ min: 0, max: 40 * 24 }) }),
          { maxLength: 80 },
        ),
        fc.integer(),
        (items, seed) => {
          const snaps = items.map((x, i) => snap(`s${i}`, { at: hoursAgo(x.age), pvc: x.pvc }));
          const shuffled = [...snaps].sort(
            (a, b) =>
              ((Number(a.metadata.name?.slice(1)) * 7919 + seed) % 101) -
              ((Number(b.metadata.name?.slice(1)) * 7919 + seed) % 101),
          );
          const policy: RetentionPolicy = {
            maxCount: 9,
            keep: { last: 2, daily: 5, weekly: 2 },
            minReady: 1,
          };
          const [x, y] = [
            plan(policy, snaps, [], 'Europe/Berlin'),
            plan(policy, shuffled, [], 'Europe/Berlin'),
          ];
          expect(y.verdicts).toEqual(x.verdicts);
          const keys = x.verdicts.map((v) => [v.pvc, -v.time.getTime(), v.name] as const);
          const sorted = [...keys].sort((a, b) =>
            a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1] || (a[2] < b[2] ? 1 : -1),
          );
          expect(keys).toEqual(sorted);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("a snapshot's time is when its data was cut; scheduled-at only names runs", () => {
  // After an outage, the run due at 02:00 was taken at 14:00: it holds 14:00's data.
  const due = snap('catch-up', { at: '2026-06-15T02:00:00Z' });
  const withCreationTime = (creationTime: string): VolumeSnapshot => ({
    ...due,
    metadata: { ...due.metadata, creationTimestamp: '2026-06-15T14:00:00Z' },
    status: { readyToUse: true, creationTime },
  });
  const noTimes: VolumeSnapshot = { ...due, metadata: { ...due.metadata, creationTimestamp: undefined } };

  it.each<[string, VolumeSnapshot, string | undefined]>([
    ['status.creationTime first', withCreationTime('2026-06-15T14:00:07Z'), '2026-06-15T14:00:07.000Z'],
    ['else metadata.creationTimestamp', withCreationTime(''), '2026-06-15T14:00:00.000Z'],
    ['an unreadable creationTime falls back', withCreationTime('soon'), '2026-06-15T14:00:00.000Z'],
    ['never scheduled-at', noTimes, undefined],
  ])('snapshotTime: %s', (_name, s, want) => {
    expect(snapshotTime(s)?.toISOString()).toBe(want);
  });

  it('scheduledTime reads scheduled-at only', () => {
    expect(scheduledTime(withCreationTime('2026-06-15T14:00:07Z'))?.toISOString()).toBe(
      '2026-06-15T02:00:00.000Z',
    );
    const unannotated = { ...due, metadata: { ...due.metadata, annotations: {} } };
    expect(scheduledTime(unannotated)).toBeUndefined();
  });

  it('expires counts from the cut, not from the scheduled time', () => {
    // The catch-up for a run due three days ago, taken two hours ago, holds two-hour-old data.
    const catchUp = takenAt(snap('catch-up', { at: hoursAgo(72) }), hoursAgo(2));
    const p = plan({ expires: '1d', minReady: 0 }, [catchUp]);
    expect(byName(p.verdicts)).toEqual({ 'catch-up': 'keep:within-policy' });
    expect(p.verdicts[0]?.time).toEqual(hoursAgo(2));
  });

  it('keep buckets and the order use the cut time', () => {
    // Yesterday's run, taken today at 11:00, is today's newest copy.
    const late = takenAt(snap('late', { at: '2026-06-14T02:00:00Z' }), '2026-06-15T11:00:00Z');
    const today = snap('today', { at: '2026-06-15T10:00:00Z' });
    const p = plan({ keep: { daily: 1 }, minReady: 0 }, [today, late]);
    expect(p.verdicts.map((v) => v.name)).toEqual(['late', 'today']);
    expect(byName(p.verdicts)).toEqual({ late: 'keep:keep-daily', today: 'delete:not-kept' });
  });
});

describe('a driver error is transient until it has lasted failedAfter', () => {
  const created = (h: number, state: SnapOptions['state'] = 'pending') =>
    snap('s', { at: hoursAgo(h), state });
  it.each<[string, VolumeSnapshot, RetentionPolicy, string]>([
    ['ready', created(9, 'ready'), {}, 'ready'],
    [
      'ready, with an old error left over',
      {
        ...withError(created(9), hoursAgo(8)),
        status: { readyToUse: true, error: { message: 'x', time: iso(hoursAgo(8)) } },
      },
      {},
      'ready',
    ],
    ['an unstamped error on a 30m-old snapshot', withError(created(0.5)), {}, 'pending'],
    ['an unstamped error on a 2h-old snapshot', withError(created(2)), {}, 'failed'],
    ['an error stamped 10m ago on a 3h-old snapshot', withError(created(3), hoursAgo(1 / 6)), {}, 'pending'],
    ['an error stamped 2h ago', withError(created(3), hoursAgo(2)), {}, 'failed'],
    [
      'an error 20m old with failedAfter 15m',
      withError(created(3), hoursAgo(1 / 3)),
      { failedAfter: '15m' },
      'failed',
    ],
    [
      'an error 2h old with failedAfter 1d',
      withError(created(3), hoursAgo(2)),
      { failedAfter: '1d' },
      'pending',
    ],
    ['no error, 5h old', created(5), {}, 'pending'],
    ['no error, 7h old (past pendingDeadline 6h)', created(7), {}, 'stuck'],
    ['no error, 7h old with pendingDeadline 1d', created(7), { pendingDeadline: '1d' }, 'pending'],
    ['a fresh error on a snapshot waiting 7h', withError(created(7), hoursAgo(1 / 6)), {}, 'stuck'],
  ])('%s', (_name, s, policy, want) => {
    expect(snapshotState(s, NOW, policy)).toBe(want);
  });

  it('without now and a policy it is the raw API condition (kept for counting only)', () => {
    expect(snapshotState(withError(created(0.1)))).toBe('failed');
  });

  it('a retrying snapshot is kept (pending, with its error); one failing past failedAfter is deleted', () => {
    const snaps = [
      snap('ok', { at: hoursAgo(0) }),
      withError(snap('retrying', { at: hoursAgo(3) }), hoursAgo(0.25)),
      withError(snap('broken', { at: hoursAgo(4) }), hoursAgo(2)),
    ];
    const p = plan({ maxCount: 5 }, snaps);
    expect(byName(p.verdicts)).toEqual({
      ok: 'keep:min-ready',
      retrying: 'keep:pending',
      broken: 'delete:failed',
    });
    expect(p.verdicts.find((v) => v.name === 'retrying')?.error).toBe('rpc error: Throttling');
    expect(p.deletions.map((d) => [d.name, d.state])).toEqual([['broken', 'failed']]);
  });
});

describe('retention durations are validated like expires', () => {
  const withRetention = (retention: Record<string, unknown>) => ({
    apiVersion: 'snapcron.io/v1',
    kind: 'SnapshotSchedule',
    metadata: { name: 'n', namespace: 'default' },
    spec: { schedule: '@daily', retention: { maxCount: 3, ...retention } },
  });

  it.each<[Record<string, unknown>, string, RegExp]>([
    [
      { failedAfter: '0h' },
      'spec.retention.failedAfter',
      /"0h" is zero: failedAfter must be longer than zero/,
    ],
    [{ failedAfter: '1 hour' }, 'spec.retention.failedAfter', /not a duration.*e\.g\. 90m/],
    [
      { pendingDeadline: '00m' },
      'spec.retention.pendingDeadline',
      /pendingDeadline must be longer than zero/,
    ],
    [{ pendingDeadline: 'soon' }, 'spec.retention.pendingDeadline', /not a duration/],
    [{ maxPending: 0 }, 'spec.retention.maxPending', />= 1/],
  ])('rejects %j', (retention, path, message) => {
    const { errors, schedule } = validateSchedule(withRetention(retention));
    expect(schedule).toBeUndefined();
    expect(errors.find((e) => e.path === path)?.message, JSON.stringify(errors)).toMatch(message);
  });

  it('defaults failedAfter 1h, pendingDeadline 6h, maxPending 3', () => {
    expect(validateSchedule(withRetention({})).schedule?.spec.retention).toEqual({
      maxCount: 3,
      minReady: 1,
      failedAfter: '1h',
      pendingDeadline: '6h',
      maxPending: 3,
    });
  });

  it('the CRD checks them with the pattern and CEL rule of expires', () => {
    const crd = parse(readFileSync('crds/snapcron.io_snapshotschedules.yaml', 'utf8')) as {
      spec: { versions: { schema: { openAPIV3Schema: Record<string, never> } }[] };
    };
    type Field = { pattern?: string; 'x-kubernetes-validations'?: { rule: string }[] };
    const props = (
      crd.spec.versions[0]?.schema.openAPIV3Schema as unknown as {
        properties: { spec: { properties: { retention: { properties: Record<string, Field> } } } };
      }
    ).properties.spec.properties.retention.properties;
    const rule = (f: Field | undefined) => [f?.pattern, f?.['x-kubernetes-validations']?.map((v) => v.rule)];
    expect(rule(props.expires)[0]).toBeDefined();
    expect(rule(props.failedAfter)).toEqual(rule(props.expires));
    expect(rule(props.pendingDeadline)).toEqual(rule(props.expires));
  });
});

describe('stuck snapshots, and holding back new ones so not-ready snapshots cannot pile up', () => {
  it('a snapshot pending past pendingDeadline is stuck: still kept, and reported', () => {
    const snaps = [
      snap('ok', { at: hoursAgo(1) }),
      snap('slow', { at: hoursAgo(5), state: 'pending' }),
      snap('stuck', { at: hoursAgo(7), state: 'pending' }),
    ];
    const p = plan({ expires: '2h', minReady: 0 }, snaps);
    expect(byName(p.verdicts)).toEqual({
      ok: 'keep:within-policy',
      slow: 'keep:pending',
      stuck: 'keep:stuck',
    });
    expect(p.verdicts.find((v) => v.name === 'stuck')?.overridden).toEqual(['expired']);
    expect(p.stuck.map((v) => [v.name, v.state])).toEqual([['stuck', 'stuck']]);
    expect(p.pendingByPvc).toEqual([{ pvc: 'data-0', pending: ['slow'], stuck: ['stuck'] }]);
    expect(p.counts).toEqual({ ready: 1, pending: 1, stuck: 1, failed: 0 });
    expect(plan({ maxCount: 3, pendingDeadline: '8h' }, snaps).stuck).toEqual([]);
  });

  it('holds back a PVC at maxPending not-ready snapshots, stuck ones included', () => {
    const snaps = [
      snap('a-p1', { at: hoursAgo(1), pvc: 'a', state: 'pending' }),
      withError(snap('a-p2', { at: hoursAgo(2), pvc: 'a' }), hoursAgo(0.1)),
      snap('a-stuck', { at: hoursAgo(30), pvc: 'a', state: 'pending' }),
      snap('a-ready', { at: hoursAgo(3), pvc: 'a' }),
      snap('b-p1', { at: hoursAgo(1), pvc: 'b', state: 'pending' }),
      snap('b-p2', { at: hoursAgo(2), pvc: 'b', state: 'pending' }),
      snap('c-ready', { at: hoursAgo(2), pvc: 'c' }),
    ];
    const p = plan({ maxCount: 5 }, snaps);
    expect(shouldHoldBack(p, 'a')).toEqual({
      pvc: 'a',
      reason: 'TooManyPending',
      pending: ['a-p1', 'a-p2'],
      stuck: ['a-stuck'],
      maxPending: 3,
      message:
        'PVC a has 3 snapshot(s) not ready yet, 1 of them stuck for more than pendingDeadline 6h (a-stuck), at the retention.maxPending limit of 3: no new snapshot until one becomes ready or fails; check the snapshot controller and the CSI driver',
    });
    expect(shouldHoldBack(p, 'b')).toBeUndefined();
    expect(shouldHoldBack(p, 'c')).toBeUndefined();
    expect(shouldHoldBack(p, 'never-snapshotted')).toBeUndefined();
    expect(shouldHoldBack(plan({ maxCount: 5, maxPending: 4 }, snaps), 'a')).toBeUndefined();
    expect(shouldHoldBack(plan({ maxCount: 5, maxPending: 2 }, snaps), 'b')?.message).toMatch(
      /^PVC b has 2 snapshot\(s\) not ready yet, at the retention.maxPending limit of 2/,
    );
  });

  it('a broken driver or no snapshot controller never piles up more than maxPending per PVC (simulation)', () => {
    // Each fire: observe, plan, delete what the plan deletes, create unless held back (concurrencyPolicy Allow).
    type Outcome = 'never' | 'error' | 'ready';
    fc.assert(
      fc.property(
        fc.record({
          everyMinutes: fc.integer({ min: 1, max: 180 }),
          maxPending: fc.integer({ min: 1, max: 5 }),
          pendingDeadline: fc.constantFrom('30m', '6h', '1d'),
          failedAfter: fc.constantFrom('10m', '1h'),
          readyAfterMinutes: fc.integer({ min: 1, max: 24 * 60 }),
          driver: fc.array(fc.constantFrom<Outcome>('never', 'error', 'ready'), {
            minLength: 1,
            maxLength: 4,
          }),
        }),
        (w) => {
          const start = Date.UTC(2026, 5, 1);
          let snaps: { s: VolumeSnapshot; outcome: Outcome; created: number }[] = [];
          for (let k = 0; k < 150; k++) {
            const now = start + k * w.everyMinutes * 60_000;
            snaps = snaps.map((x) => {
              if (x.outcome === 'ready' && now - x.created >= w.readyAfterMinutes * 60_000)
                return {
                  ...x,
                  s: { ...x.s, status: { readyToUse: true, creationTime: iso(new Date(x.created)) } },
                };
              if (x.outcome === 'error' && now - x.created >= 60_000)
                return { ...x, s: withError(x.s, new Date(x.created + 60_000)) };
              return x;
            });
            const p = planRetention({
              scheduleName: 'nightly',
              retention: {
                maxCount: 3,
                maxPending: w.maxPending,
                pendingDeadline: w.pendingDeadline,
                failedAfter: w.failedAfter,
              },
              timeZone: 'UTC',
              snapshots: snaps.map((x) => x.s),
              pvcs: [],
              now: new Date(now),
            });
            const deleted = new Set(p.deletions.map((d) => d.name));
            snaps = snaps.filter((x) => !deleted.has(x.s.metadata.name ?? ''));
            if (!shouldHoldBack(p, 'data-0')) {
              const outcome = w.driver[k % w.driver.length] ?? 'never';
              snaps.push({
                s: snap(`k${k}`, { at: new Date(now), state: 'pending' }),
                outcome,
                created: now,
              });
            }
            const notReady = snaps.filter((x) => x.s.status?.readyToUse !== true);
            expect(notReady.length).toBeLessThanOrEqual(w.maxPending);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("keep rules follow restic forget (0.16+), including its 'oldest' keep", () => {
  /** One ready snapshot a day at 12:00 UTC, named MM-DD, from `from` to `to` (inclusive). */
  const daily = (from: string, to: string): VolumeSnapshot[] => {
    const out: VolumeSnapshot[] = [];
    for (let t = Date.parse(`${from}T12:00:00Z`); t <= Date.parse(`${to}T12:00:00Z`); t += 86_400_000)
      out.push(snap(new Date(t).toISOString().slice(5, 10), { at: new Date(t) }));
    return out;
  };
  const kept = (verdicts: Verdict[]): Record<string, string> =>
    Object.fromEntries(
      verdicts.filter((v) => v.verdict === 'keep').map((v) => [v.name, v.reasons.join(',')]),
    );

  it('keeps the oldest snapshot too while a bucket rule has slots left: monthly 12 over Jan 15 to Feb 10', () => {
    const p = plan({ keep: { monthly: 12 }, minReady: 0 }, daily('2026-01-15', '2026-02-10'));
    expect(kept(p.verdicts)).toEqual({
      '02-10': 'keep-monthly',
      '01-31': 'keep-monthly',
      '01-15': 'keep-monthly-oldest',
    });
    expect(p.deletions.every((d) => d.reasons.join() === 'not-kept')).toBe(true);
    expect(p.deletions).toHaveLength(27 - 3);
  });

  it('restic docs: --keep-daily 5 over weekday backups, two on Fridays, one Wednesday missed', () => {
    const times = [
      ['60e5c031', '2025-04-21 11:00'],
      ['1dccffe9', '2025-04-22 11:00'],
      ['90a5c949', '2025-04-23 11:00'],
      ['79580708', '2025-04-24 11:00'],
      ['8a603ddf', '2025-04-25 11:00'],
      ['ae33bf10', '2025-04-25 23:00'],
      ['fb8b1418', '2025-04-28 11:00'],
      ['1db188b4', '2025-04-29 11:00'],
      ['7baa4f28', '2025-05-01 11:00'],
      ['05c48af3', '2025-05-02 11:00'],
      ['ad72e262', '2025-05-02 23:00'],
    ];
    const snaps = times.map(([id = '', t = '']) => snap(id, { at: `${t.replace(' ', 'T')}:00Z` }));
    // The docs list by ID; the 23:00 Friday snapshots are 'ae33bf10' and 'ad72e262'.
    expect(kept(plan({ keep: { daily: 5 }, minReady: 0 }, snaps).verdicts)).toEqual({
      ae33bf10: 'keep-daily',
      fb8b1418: 'keep-daily',
      '1db188b4': 'keep-daily',
      '7baa4f28': 'keep-daily',
      ad72e262: 'keep-daily',
    });
  });

  it('restic docs: --keep-daily 4 over 12 weekly Sunday backups keeps the last four', () => {
    const sundays = Array.from({ length: 12 }, (_, i) =>
      snap(`sun-${i}`, { at: new Date(Date.UTC(2019, 8, 1 + 7 * i, 11)) }),
    );
    expect(Object.keys(kept(plan({ keep: { daily: 4 }, minReady: 0 }, sundays).verdicts)).sort()).toEqual([
      'sun-10',
      'sun-11',
      'sun-8',
      'sun-9',
    ]);
  });

  it('restic docs: one backup a day for 100 years, keep daily 7, weekly 5, monthly 12, yearly 75', () => {
    // "the most recent 7 daily snapshots and 4 last-day-of-the-week ones (since the 7 dailies already
    // include 1 weekly). Additionally, 12 or 11 last-day-of-the-month snapshots [...] 75 or 74
    // last-day-of-the-year snapshots". Ending Sunday 2024-12-29: the week's dailies hold one weekly,
    // December's monthly is a daily, and 2024's yearly is a daily: 7 + 4 + 11 + 74.
    const snaps: VolumeSnapshot[] = [];
    const end = Date.UTC(2024, 11, 29, 12);
    for (let i = 0; i < 36_525; i++) snaps.push(snap(`d${i}`, { at: new Date(end - i * 86_400_000) }));
    const p = plan({ keep: { daily: 7, weekly: 5, monthly: 12, yearly: 75 }, minReady: 0 }, snaps);
    const keeps = p.verdicts.filter((v) => v.verdict === 'keep');
    const count = (reason: Reason) => keeps.filter((v) => v.reasons.includes(reason)).length;
    expect([count('keep-daily'), count('keep-weekly'), count('keep-monthly'), count('keep-yearly')]).toEqual([
      7, 5, 12, 75,
    ]);
    expect(keeps).toHaveLength(7 + 4 + 11 + 74);
    expect(keeps.some((v) => v.reasons.some((r) => r.endsWith('-oldest')))).toBe(false);
  });

  it('restic forum: keep-monthly 4 over four snapshots of one month keeps the newest and the oldest', () => {
    const snaps = [
      '2024-01-02T13:42:44Z',
      '2024-01-03T01:04:38Z',
      '2024-01-04T20:09:54Z',
      '2024-01-04T20:20:32Z',
    ].map((t, i) => snap(`j${i}`, { at: t }));
    expect(kept(plan({ keep: { monthly: 4 }, minReady: 0 }, snaps).verdicts)).toEqual({
      j3: 'keep-monthly',
      j0: 'keep-monthly-oldest',
    });
  });

  it('the oldest keep needs a slot left, and never comes from keep.last', () => {
    const snaps = daily('2026-01-28', '2026-03-03'); // three months
    expect(kept(plan({ keep: { monthly: 3 }, minReady: 0 }, snaps).verdicts)).toEqual({
      '03-03': 'keep-monthly',
      '02-28': 'keep-monthly',
      '01-31': 'keep-monthly',
    });
    expect(kept(plan({ keep: { monthly: 4, last: 2 }, minReady: 0 }, snaps).verdicts)).toEqual({
      '03-03': 'keep-last,keep-monthly',
      '03-02': 'keep-last',
      '02-28': 'keep-monthly',
      '01-31': 'keep-monthly',
      '01-28': 'keep-monthly-oldest',
    });
    // The oldest alone in its bucket is an ordinary keep.
    expect(
      kept(plan({ keep: { weekly: 10 }, minReady: 0 }, daily('2026-03-01', '2026-03-03')).verdicts),
    ).toEqual({ '03-03': 'keep-weekly', '03-01': 'keep-weekly' });
  });

  it("matches restic's rule read declaratively: the newest of the N newest buckets, plus the oldest while fewer (property)", () => {
    const rules = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 3 * 365 * 86_400 }), { maxLength: 40 }),
        fc.constantFrom(...rules),
        fc.integer({ min: 1, max: 12 }),
        fc.constantFrom('UTC', 'Europe/Berlin', 'Australia/Lord_Howe'),
        (ages, rule, n, zone) => {
          const snaps = ages.map((a, i) => snap(`x${i}`, { at: new Date(NOW.getTime() - a * 1000) }));
          const newest = [...snaps].sort(
            (a, b) =>
              Date.parse(String(b.metadata.creationTimestamp)) -
              Date.parse(String(a.metadata.creationTimestamp)),
          );
          const key = (s: VolumeSnapshot) =>
            buckets(new Date(String(s.metadata.creationTimestamp)), IANAZone.create(zone))[rule];
          const order = [...new Set(newest.map(key))];
          const want: Record<string, string> = {};
          for (const b of order.slice(0, n)) {
            const first = newest.find((s) => key(s) === b);
            if (first) want[first.metadata.name ?? ''] = `keep-${rule}`;
          }
          const oldest = newest.at(-1);
          if (oldest && order.length < n && !want[oldest.metadata.name ?? ''])
            want[oldest.metadata.name ?? ''] = `keep-${rule}-oldest`;
          expect(kept(plan({ keep: { [rule]: n }, minReady: 0 }, snaps, [], zone).verdicts)).toEqual(want);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('minReady: what each value promises, and the pre-delete re-check', () => {
  it('minReady N >= 1: the newest N ready snapshots survive maxCount, expires and keep alike', () => {
    const p = plan({ maxCount: 1, expires: '1m', keep: { last: 1 }, minReady: 3 }, hourly(5));
    expect(byName(p.verdicts)).toEqual({
      s0: 'keep:min-ready,keep-last',
      s1: 'keep:min-ready',
      s2: 'keep:min-ready',
      s3: 'delete:expired,max-count,not-kept',
      s4: 'delete:expired,max-count,not-kept',
    });
    expect(p.verdicts.find((v) => v.name === 's2')?.overridden).toEqual(['expired', 'max-count', 'not-kept']);
  });

  it('minReady 0: nothing guards the last copy, so expiry deletes every snapshot of a PVC', () => {
    const p = plan({ expires: '30m', minReady: 0 }, hourly(3).slice(1));
    expect(p.deletions.map((d) => d.name)).toEqual(['s1', 's2']);
    expect(p.verdicts.filter((v) => v.verdict === 'keep')).toEqual([]);
  });

  it('the CRD says plainly what minReady 0 allows', () => {
    const text = readFileSync('crds/snapcron.io_snapshotschedules.yaml', 'utf8').replace(/\s+/g, ' ');
    expect(text).toMatch(
      /0 turns this guard off: expires may then delete every ready snapshot of a PVC, including its only good copy/,
    );
  });

  it('protectionOf re-checks one snapshot on a fresh read, min-ready against its fresh siblings', () => {
    const snaps = hourly(3);
    const retention: RetentionPolicy = { maxCount: 1, minReady: 1 };
    const ctx = (snapshots: VolumeSnapshot[], pvcs: PersistentVolumeClaim[] = []): ProtectionContext => ({
      scheduleName: 'nightly',
      retention,
      snapshots,
      pvcs,
      now: NOW,
    });
    expect(plan(retention, snaps).deletions.map((d) => d.name)).toEqual(['s1', 's2']);
    expect(protectionOf(named(snaps, 's1'), ctx(snaps))).toEqual([]);
    // s0 was deleted meanwhile (gone, or on its way out): s1 is now the newest ready copy.
    expect(protectionOf(named(snaps, 's1'), ctx(snaps.filter((s) => s.metadata.name !== 's0')))).toEqual([
      'min-ready',
    ]);
    const s0Deleting = snaps.map((s) =>
      s.metadata.name === 's0' ? { ...s, metadata: { ...s.metadata, deletionTimestamp: iso(NOW) } } : s,
    );
    expect(protectionOf(named(snaps, 's1'), ctx(s0Deleting))).toEqual(['min-ready']);
    // Another schedule's or PVC's ready snapshots are no siblings.
    const strangers = [snap('o', { at: NOW, schedule: 'weekly' }), snap('p', { at: NOW, pvc: 'other' })];
    expect(protectionOf(named(snaps, 's1'), ctx([...strangers, ...snaps.slice(1)]))).toEqual(['min-ready']);
    // The fresh read wins over the stale copy in the list.
    const held = snap('s2', { at: hoursAgo(2), hold: true });
    expect(protectionOf(held, ctx(snaps))).toEqual(['hold']);
    expect(protectionOf(named(snaps, 's2'), ctx(snaps, [restoringPvc('r', 's2')]))).toEqual(['in-use']);
    expect(protectionOf(snap('p', { at: hoursAgo(1), state: 'pending' }), ctx(snaps))).toEqual(['pending']);
    expect(protectionOf(snap('p', { at: hoursAgo(7), state: 'pending' }), ctx(snaps))).toEqual(['stuck']);
    expect(protectionOf(withError(snap('f', { at: hoursAgo(3) })), ctx(snaps))).toEqual([]);
    expect(protectionOf(withError(snap('f', { at: hoursAgo(0.5) })), ctx(snaps))).toEqual(['pending']);
  });

  it('whyNotPrune: a protection found on the fresh read, or a state the plan did not delete', () => {
    const broken = withError(snap('broken', { at: hoursAgo(3) }));
    const snaps = [snap('s0', { at: hoursAgo(0) }), broken];
    const retention: RetentionPolicy = { maxCount: 5, minReady: 1 };
    const ctx: ProtectionContext = {
      scheduleName: 'nightly',
      retention,
      snapshots: snaps,
      pvcs: [],
      now: NOW,
    };
    const [planned] = plan(retention, snaps).deletions;
    expect(planned).toMatchObject({ name: 'broken', state: 'failed' });
    if (!planned) return;
    expect(whyNotPrune(planned, broken, ctx)).toBeUndefined();
    // Its retries succeeded between the plan and the delete: a good copy now, not ours to delete.
    const recovered = snap('broken', { at: hoursAgo(3) });
    expect(whyNotPrune(planned, recovered, ctx)).toBe('changed');
    expect(whyNotPrune(planned, { ...broken, status: { readyToUse: false } }, ctx)).toBe('pending');
    expect(whyNotPrune(planned, snap('broken', { at: hoursAgo(3), state: 'failed', hold: true }), ctx)).toBe(
      'hold',
    );
  });
});
