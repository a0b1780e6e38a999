import { describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim } from '../../src/api/objects.ts';
import type { SnapshotSchedule, SnapshotScheduleStatus } from '../../src/api/types.generated.ts';
import { decide } from '../../src/controller/decide.ts';
import { snapshotName } from '../../src/snapshot/naming.ts';
import { schedule, snap } from '../support/builders.ts';

const pvc = (name: string, phase = 'Bound'): PersistentVolumeClaim => ({
  metadata: { name, namespace: 'default', creationTimestamp: '2026-01-01T00:00:00Z' },
  status: { phase },
});
const withStatus = (s: SnapshotSchedule, status: SnapshotScheduleStatus = {}): SnapshotSchedule => ({
  ...s,
  metadata: { ...s.metadata, creationTimestamp: '2026-01-01T00:00:00Z', generation: 1 },
  status,
});

describe('resuming a suspended schedule', () => {
  const spec = { schedule: '0 2 * * *' };
  const t = (iso: string): Date => new Date(iso);

  it('takes no snapshot for a run missed while suspended, and fires at the next time', () => {
    // Suspended after the 06-01 02:00 run; the controller saw it suspended.
    const suspended = decide({
      schedule: withStatus(schedule('nightly', { ...spec, suspend: true }), {
        lastScheduleTime: '2026-06-01T02:00:00Z',
      }),
      pvcs: [pvc('data')],
      snapshots: [],
      now: t('2026-06-02T10:00:00Z'),
    });
    expect(suspended.creates).toEqual([]);

    // Resumed on 06-05 at 12:00: the 06-05 02:00 run was missed while suspended.
    const resumed = decide({
      schedule: withStatus(schedule('nightly', spec), suspended.status),
      pvcs: [pvc('data')],
      snapshots: [],
      now: t('2026-06-05T12:00:00Z'),
    });
    expect(resumed.creates).toEqual([]);
    expect(resumed.due.kind).toBe('idle');
    const cond = resumed.status.conditions?.find((c) => c.type === 'Suspended');
    expect(cond).toMatchObject({
      status: 'False',
      reason: 'Resumed',
      lastTransitionTime: '2026-06-05T12:00:00Z',
    });

    // A later pass (or a tick) reading that status still does not catch up...
    const later = decide({
      schedule: withStatus(schedule('nightly', spec), resumed.status),
      pvcs: [pvc('data')],
      snapshots: [],
      now: t('2026-06-05T18:00:00Z'),
    });
    expect(later.creates).toEqual([]);

    // ...but takes the first fire time after the resume, and one missed after it (an outage).
    const next = decide({
      schedule: withStatus(schedule('nightly', spec), later.status),
      pvcs: [pvc('data')],
      snapshots: [],
      now: t('2026-06-06T07:00:00Z'),
    });
    expect(next.creates.map((c) => c.scheduledTime.toISOString())).toEqual(['2026-06-06T02:00:00.000Z']);
  });

  it('a schedule never suspended still catches up one missed run', () => {
    const plan = decide({
      schedule: withStatus(schedule('nightly', spec), { lastScheduleTime: '2026-06-01T02:00:00Z' }),
      pvcs: [pvc('data')],
      snapshots: [],
      now: t('2026-06-05T12:00:00Z'),
    });
    expect(plan.creates.map((c) => c.scheduledTime.toISOString())).toEqual(['2026-06-05T02:00:00.000Z']);
  });
});

describe('concurrencyPolicy Forbid across passes', () => {
  const forbid = schedule('hourly', { schedule: '0 * * * *', concurrencyPolicy: 'Forbid' });
  const prior = { lastScheduleTime: '2026-01-01T00:00:00Z', lastSuccessfulTime: '2026-01-01T00:00:00Z' };
  const at0 = '2026-01-01T00:00:00Z';
  const at1 = '2026-01-01T01:00:00Z';
  const a0 = snap(snapshotName('a', 'hourly', new Date(at0)), {
    at: at0,
    pvc: 'a',
    schedule: 'hourly',
    state: 'pending',
  });
  const b0 = snap(snapshotName('b', 'hourly', new Date(at0)), { at: at0, pvc: 'b', schedule: 'hourly' });
  const b1 = snap(snapshotName('b', 'hourly', new Date(at1)), {
    at: at1,
    pvc: 'b',
    schedule: 'hourly',
    state: 'pending',
  });

  it('the pass re-queued by its own snapshot, before its status is cached, creates nothing', () => {
    const first = decide({
      schedule: withStatus(forbid, prior),
      pvcs: [pvc('a'), pvc('b')],
      snapshots: [a0, b0],
      now: new Date('2026-01-01T01:00:01Z'),
    });
    expect(first.creates.map((c) => c.pvc)).toEqual(['b']);
    expect(first.skips).toMatchObject([{ pvc: 'a', reason: 'PreviousNotReady' }]);
    expect(first.status.lastSuccessfulTime).toBe(prior.lastSuccessfulTime);

    // The add event of b's new snapshot: cache still has the old status; memory knows 01:00.
    const requeued = decide({
      schedule: withStatus(forbid, prior),
      pvcs: [pvc('a'), pvc('b')],
      snapshots: [a0, b0, b1],
      now: new Date('2026-01-01T01:00:02Z'),
      lastTakenInMemory: new Date(at1),
    });
    expect(requeued.creates).toEqual([]);
    expect(requeued.status.lastSuccessfulTime).toBe(prior.lastSuccessfulTime);
  });

  it('completing an interrupted run honours Forbid and records no success', () => {
    // A crash after b's create, before the status write: a new process (or a tick) finishes the run.
    const plan = decide({
      schedule: withStatus(forbid, prior),
      pvcs: [pvc('a'), pvc('b')],
      snapshots: [a0, b0, b1],
      now: new Date('2026-01-01T01:10:00Z'),
    });
    expect(plan.creates).toEqual([]);
    expect(plan.skips).toMatchObject([{ pvc: 'a', reason: 'PreviousNotReady' }]);
    expect(plan.status.lastScheduleTime).toBe('2026-01-01T01:00:00Z');
    expect(plan.status.lastSuccessfulTime).toBe(prior.lastSuccessfulTime);
  });

  it('completing an interrupted run skips a PVC that is not Bound', () => {
    const plan = decide({
      schedule: withStatus(schedule('hourly', { schedule: '0 * * * *' }), prior),
      pvcs: [pvc('a', 'Pending'), pvc('b')],
      snapshots: [b0, b1],
      now: new Date('2026-01-01T01:10:00Z'),
    });
    expect(plan.creates).toEqual([]);
    expect(plan.skips).toMatchObject([{ pvc: 'a', reason: 'NotBound' }]);
    expect(plan.status.lastSuccessfulTime).toBe(prior.lastSuccessfulTime);
  });
});

describe('snapshots that never become ready', () => {
  it('a stuck snapshot shows in a condition and the counts; at maxPending the PVC is held back', () => {
    const s = withStatus(
      schedule('hourly', {
        schedule: '0 * * * *',
        retention: { maxCount: 10, pendingDeadline: '2h', maxPending: 2 },
      }),
      { lastScheduleTime: '2026-01-01T02:00:00Z' },
    );
    const pending = (h: number) =>
      snap(snapshotName('a', 'hourly', new Date(`2026-01-01T0${h}:00:00Z`)), {
        at: `2026-01-01T0${h}:00:00Z`,
        pvc: 'a',
        schedule: 'hourly',
        state: 'pending',
      });
    const plan = decide({
      schedule: s,
      pvcs: [pvc('a'), pvc('b')],
      snapshots: [pending(0), pending(2)],
      now: new Date('2026-01-01T03:00:05Z'),
    });
    expect(plan.status.snapshots).toMatchObject({ stuck: 1, pending: 1 + 1 }); // + b's new one
    expect(plan.status.conditions?.find((c) => c.type === 'SnapshotsStuck')).toMatchObject({
      status: 'True',
      reason: 'PendingPastDeadline',
    });
    expect(plan.skips).toMatchObject([{ pvc: 'a', reason: 'TooManyPending' }]);
    expect(plan.skips[0]?.message).toMatch(/maxPending limit of 2/);
    expect(plan.creates.map((c) => c.pvc)).toEqual(['b']);
    expect(plan.retention?.deletions).toEqual([]); // stuck and pending are kept
  });
});

describe('when a pass asks to run again (recheckAt): the clock changing a snapshot, before the next fire', () => {
  const t = (iso: string): Date => new Date(iso);
  const spec = { schedule: '0 2 * * *', retention: { maxCount: 5, pendingDeadline: '2h', expires: '30d' } };

  it("a pass that creates snapshots does not count them (the controller adds when they turn stuck, from the API server's creationTimestamp)", () => {
    const fire = decide({
      schedule: withStatus(schedule('nightly', spec), { lastScheduleTime: '2026-06-01T02:00:00Z' }),
      pvcs: [pvc('data')],
      snapshots: [],
      now: t('2026-06-02T02:00:00Z'),
    });
    expect(fire.creates.map((c) => c.pvc)).toEqual(['data']);
    expect(fire.wakeAt).toEqual(t('2026-06-03T02:00:00Z'));
    expect(fire.recheckAt).toBeUndefined();
    expect(fire.retention?.pendingDeadlineMs).toBe(2 * 3_600_000);
  });

  it('a pass with a pending snapshot looks again when it turns stuck; with ready ones, when the first expires', () => {
    const pending = snap('data-1', { at: t('2026-06-02T02:00:00Z'), pvc: 'data', state: 'pending' });
    const ready = snap('data-0', { at: t('2026-06-01T02:00:00Z'), pvc: 'data' });
    const status = { lastScheduleTime: '2026-06-02T02:00:00Z' };
    const withPending = decide({
      schedule: withStatus(schedule('nightly', spec), status),
      pvcs: [pvc('data')],
      snapshots: [ready, pending],
      now: t('2026-06-02T03:00:00Z'),
    });
    expect(withPending.creates).toEqual([]);
    expect(withPending.recheckAt).toEqual(new Date(t('2026-06-02T04:00:00Z').getTime() + 1));

    const allReady = decide({
      schedule: withStatus(schedule('nightly', spec), status),
      pvcs: [pvc('data')],
      snapshots: [ready],
      now: t('2026-06-02T03:00:00Z'),
    });
    expect(allReady.recheckAt).toEqual(new Date(t('2026-07-01T02:00:00Z').getTime() + 1));
    // Later than the next fire: the pass at the fire re-aims it.
    expect(allReady.wakeAt).toEqual(t('2026-06-03T02:00:00Z'));
  });
});
