import { describe, expect, it } from 'vitest';
import { tickModeWarnings } from '../../src/api/warnings.ts';
import { planDeletion, wantedFinalizers } from '../../src/controller/deletion.ts';
import { eventName } from '../../src/kube/events.ts';
import { restartDelay } from '../../src/kube/backoff.ts';
import { restoringPvc, schedule, snap } from '../support/builders.ts';

describe('deleting a schedule with deletionPolicy Delete (shared by controller and tick)', () => {
  const deleting = {
    ...schedule('nightly', { deletionPolicy: 'Delete' }),
    metadata: {
      name: 'nightly',
      namespace: 'default',
      deletionTimestamp: '2026-01-02T00:00:00Z',
      finalizers: ['snapcron.io/snapshots'],
    },
  };

  it('deletes every snapshot but held ones, waits for restore sources, ignores other schedules', () => {
    const snaps = [
      {
        ...snap('ready', { at: '2026-01-01T00:00:00Z' }),
        metadata: { ...snap('ready', { at: '2026-01-01T00:00:00Z' }).metadata, resourceVersion: '7' },
      },
      snap('pending', { at: '2026-01-01T01:00:00Z', state: 'pending' }),
      snap('held', { at: '2026-01-01T02:00:00Z', hold: true }),
      snap('source', { at: '2026-01-01T03:00:00Z' }),
      snap('gone', { at: '2026-01-01T04:00:00Z', deleting: true }),
      snap('other', { at: '2026-01-01T05:00:00Z', schedule: 'hourly' }),
    ];
    const plan = planDeletion(deleting, snaps, [restoringPvc('restore-0', 'source')]);
    expect(plan.deletes).toEqual([
      { name: 'ready', resourceVersion: '7' },
      { name: 'pending', resourceVersion: undefined },
    ]);
    expect(plan.retained).toEqual(['held']);
    expect(plan.waiting).toEqual(['source']);
    expect(plan.done).toBe(false);
    // Once the restore is Bound, only held snapshots remain and the schedule may go.
    const after = planDeletion(
      deleting,
      [snap('held', { at: '2026-01-01T02:00:00Z', hold: true })],
      [restoringPvc('restore-0', 'source', true)],
    );
    expect(after).toMatchObject({ deletes: [], waiting: [], retained: ['held'], done: true });
  });

  it('keeps the finalizer in step with deletionPolicy, and leaves a deleting schedule alone', () => {
    expect(wantedFinalizers(schedule('s', { deletionPolicy: 'Delete' }))).toEqual(['snapcron.io/snapshots']);
    expect(wantedFinalizers(schedule('s', { deletionPolicy: 'Retain' }))).toBeUndefined();
    const withOurs = schedule('s', { deletionPolicy: 'Retain' });
    withOurs.metadata = { ...withOurs.metadata, finalizers: ['x', 'snapcron.io/snapshots'] };
    expect(wantedFinalizers(withOurs)).toEqual(['x']);
    expect(wantedFinalizers(deleting)).toBeUndefined();
  });
});

describe('tick-mode warnings', () => {
  it('warns when startingDeadlineSeconds is shorter than the tick interval', () => {
    expect(tickModeWarnings({ startingDeadlineSeconds: 120 })[0]?.message).toMatch(
      /120s is shorter than the tick interval \(300s\)/,
    );
    expect(tickModeWarnings({ startingDeadlineSeconds: 300 })).toEqual([]);
    expect(tickModeWarnings({})).toEqual([]);
    expect(tickModeWarnings({ startingDeadlineSeconds: 120 }, 60)).toEqual([]);
  });
});

describe('event aggregation key', () => {
  const target = { apiVersion: 'v1', kind: 'SnapshotSchedule', name: 'web', namespace: 'ns', uid: 'u' };
  it('is one name per (object, type, reason), whatever the message', () => {
    expect(eventName(target, 'Warning', 'SkippedNotBound')).toBe(
      eventName(target, 'Warning', 'SkippedNotBound'),
    );
    expect(eventName(target, 'Warning', 'SkippedNotBound')).not.toBe(
      eventName(target, 'Normal', 'SkippedNotBound'),
    );
    expect(eventName(target, 'Warning', 'A')).not.toBe(eventName(target, 'Warning', 'B'));
    expect(eventName({ ...target, name: 'db' }, 'Warning', 'A')).not.toBe(eventName(target, 'Warning', 'A'));
    expect(eventName(target, 'Warning', 'A')).toMatch(/^web\.[0-9a-f]{16}$/);
  });
});

describe('watch restarts', () => {
  const backoff = { baseMs: 500, capMs: 30_000, resetAfterMs: 60_000 };

  it('back off exponentially with jitter up to a cap', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => restartDelay(n, backoff, () => 1))).toEqual([
      500, 1000, 2000, 4000, 8000, 16000, 30000, 30000,
    ]);
    for (let n = 1; n < 12; n++) {
      const d = restartDelay(n, backoff, Math.random);
      const full = Math.min(30_000, 500 * 2 ** (n - 1));
      expect(d).toBeGreaterThanOrEqual(full / 2);
      expect(d).toBeLessThanOrEqual(full);
    }
  });
});
