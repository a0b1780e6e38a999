import { describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim } from '../../src/api/objects.ts';
import { ackWarnings } from '../../src/api/warnings.ts';
import { decide } from '../../src/controller/decide.ts';
import { snapshotName } from '../../src/snapshot/naming.ts';
import { schedule, snap } from '../support/builders.ts';

const pvc = (
  name: string,
  labels: Record<string, string> = { app: 'web' },
  phase = 'Bound',
): PersistentVolumeClaim => ({
  metadata: { name, namespace: 'default', labels },
  status: { phase },
});
const created = '2026-01-01T00:00:00Z';
const withMeta = (s: ReturnType<typeof schedule>, status = {}) => ({
  ...s,
  metadata: { ...s.metadata, creationTimestamp: created, generation: 3, uid: 'u1' },
  status,
});

describe('decide: one pass over one schedule', () => {
  const hourly = withMeta(
    schedule('hourly', {
      schedule: '0 * * * *',
      claimSelector: { matchLabels: { app: 'web' } },
      snapshotClassName: 'fast',
    }),
  );

  it('creates one snapshot per selected Bound PVC with deterministic name, labels and class', () => {
    const plan = decide({
      schedule: hourly,
      pvcs: [pvc('web-0'), pvc('web-1'), pvc('db-0', { app: 'db' })],
      snapshots: [],
      now: new Date('2026-01-01T01:00:01Z'),
    });
    const at = new Date('2026-01-01T01:00:00Z');
    expect(plan.creates.map((c) => c.name)).toEqual([
      snapshotName('web-0', 'hourly', at),
      snapshotName('web-1', 'hourly', at),
    ]);
    expect(plan.creates[0]?.manifest).toMatchObject({
      metadata: {
        labels: { 'snapcron.io/schedule': 'hourly', 'snapcron.io/pvc': 'web-0' },
        annotations: { 'snapcron.io/scheduled-at': '2026-01-01T01:00:00Z' },
      },
      spec: { source: { persistentVolumeClaimName: 'web-0' }, volumeSnapshotClassName: 'fast' },
    });
    expect(plan.status).toMatchObject({
      lastScheduleTime: '2026-01-01T01:00:00Z',
      lastSuccessfulTime: '2026-01-01T01:00:00Z',
      nextScheduleTime: '2026-01-01T02:00:00Z',
      observedGeneration: 3,
      snapshots: { ready: 0, pending: 2, failed: 0 },
    });
  });

  it("puts the snapshotTemplate's labels and annotations on every snapshot, under snapcron's own", () => {
    const templated = withMeta(
      schedule('hourly', {
        schedule: '0 * * * *',
        claimSelector: { matchLabels: { app: 'web' } },
        snapshotTemplate: { labels: { team: 'storage' }, annotations: { 'example.com/ticket': 'OPS-1' } },
      }),
    );
    const plan = decide({
      schedule: templated,
      pvcs: [pvc('web-0'), pvc('web-1')],
      snapshots: [],
      now: new Date('2026-01-01T01:00:01Z'),
    });
    expect(plan.creates).toHaveLength(2);
    for (const c of plan.creates)
      expect(c.manifest.metadata).toMatchObject({
        labels: { team: 'storage', 'snapcron.io/schedule': 'hourly' },
        annotations: { 'example.com/ticket': 'OPS-1', 'snapcron.io/scheduled-at': '2026-01-01T01:00:00Z' },
      });
  });

  it('creates first for the PVCs whose newest snapshot is oldest (never snapshotted: first of all)', () => {
    // web-0 and web-1 were taken at midnight; web-2 was left out then (a burst ran out of time),
    // and web-3 is new. The budget serves creates in this order, so they lead this time.
    const midnight = '2026-01-01T00:00:00Z';
    const plan = decide({
      schedule: withMeta(hourly, { lastScheduleTime: midnight }),
      pvcs: [pvc('web-0'), pvc('web-1'), pvc('web-2'), pvc('web-3')],
      snapshots: [
        snap('a', { at: midnight, pvc: 'web-0', schedule: 'hourly' }),
        snap('b', { at: midnight, pvc: 'web-1', schedule: 'hourly' }),
        snap('c', { at: '2025-12-31T23:00:00Z', pvc: 'web-2', schedule: 'hourly' }),
      ],
      now: new Date('2026-01-01T01:00:01Z'),
    });
    expect(plan.creates.map((c) => c.pvc)).toEqual(['web-3', 'web-2', 'web-0', 'web-1']);
  });

  it('skips a PVC that is not Bound, and records no success for the run', () => {
    const plan = decide({
      schedule: hourly,
      pvcs: [pvc('web-0', { app: 'web' }, 'Pending')],
      snapshots: [],
      now: new Date('2026-01-01T01:00:01Z'),
    });
    expect(plan.creates).toEqual([]);
    expect(plan.skips).toMatchObject([{ pvc: 'web-0', reason: 'NotBound' }]);
    expect(plan.status.lastSuccessfulTime).toBeUndefined();
  });

  it('does nothing new once the run was taken (status or memory)', () => {
    const taken = withMeta(hourly, { lastScheduleTime: '2026-01-01T01:00:00Z' });
    expect(
      decide({ schedule: taken, pvcs: [pvc('web-0')], snapshots: [], now: new Date('2026-01-01T01:30:00Z') })
        .creates,
    ).toEqual([]);
    expect(
      decide({
        schedule: hourly,
        pvcs: [pvc('web-0')],
        snapshots: [],
        now: new Date('2026-01-01T01:30:00Z'),
        lastTakenInMemory: new Date('2026-01-01T01:00:00Z'),
      }).creates,
    ).toEqual([]);
  });

  it('concurrencyPolicy Forbid skips a PVC whose previous snapshot is still pending', () => {
    const forbid = withMeta(schedule('hourly', { schedule: '0 * * * *', concurrencyPolicy: 'Forbid' }), {
      lastScheduleTime: '2026-01-01T01:00:00Z',
    });
    const plan = decide({
      schedule: forbid,
      pvcs: [pvc('web-0'), pvc('web-1')],
      snapshots: [
        snap('web-0-hourly-202601010100', {
          at: '2026-01-01T01:00:00Z',
          pvc: 'web-0',
          schedule: 'hourly',
          state: 'pending',
        }),
        snap('web-1-hourly-202601010100', { at: '2026-01-01T01:00:00Z', pvc: 'web-1', schedule: 'hourly' }),
      ],
      now: new Date('2026-01-01T02:00:00Z'),
    });
    expect(plan.skips).toMatchObject([{ pvc: 'web-0', reason: 'PreviousNotReady' }]);
    expect(plan.creates.map((c) => c.pvc)).toEqual(['web-1']);
  });

  it('a suspended schedule takes nothing and has no next time, but still prunes', () => {
    const suspended = withMeta(
      schedule('hourly', { schedule: '0 * * * *', suspend: true, retention: { maxCount: 1 } }),
    );
    const plan = decide({
      schedule: suspended,
      pvcs: [pvc('web-0')],
      snapshots: [
        snap('a', { at: '2026-01-01T00:00:00Z', pvc: 'web-0', schedule: 'hourly' }),
        snap('b', { at: '2025-12-31T23:00:00Z', pvc: 'web-0', schedule: 'hourly' }),
      ],
      now: new Date('2026-01-01T05:00:00Z'),
    });
    expect(plan.creates).toEqual([]);
    expect(plan.status.nextScheduleTime).toBeUndefined();
    expect(plan.retention?.deletions.map((d) => d.name)).toEqual(['b']);
    expect(plan.status.conditions?.find((c) => c.type === 'Suspended')?.status).toBe('True');
  });

  it('an invalid spec yields InvalidSpec naming the field, and no action', () => {
    const bad = withMeta(schedule('bad', { schedule: '0 * * * *', timeZone: 'Mars/Olympus' }));
    const plan = decide({
      schedule: bad,
      pvcs: [pvc('web-0')],
      snapshots: [],
      now: new Date('2026-01-01T05:00:00Z'),
    });
    expect(plan.creates).toEqual([]);
    expect(plan.retention).toBeUndefined();
    const cond = plan.status.conditions?.find((c) => c.type === 'InvalidSpec');
    expect(cond).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
    expect(cond?.message).toMatch(/spec.timeZone: unknown time zone "Mars\/Olympus"/);
  });

  it('reports a missed run beyond startingDeadlineSeconds as not Ready, without taking it', () => {
    const late = withMeta(schedule('hourly', { schedule: '0 * * * *', startingDeadlineSeconds: 60 }), {
      lastScheduleTime: '2026-01-01T01:00:00Z',
    });
    const plan = decide({
      schedule: late,
      pvcs: [pvc('web-0')],
      snapshots: [],
      now: new Date('2026-01-01T03:10:00Z'),
    });
    expect(plan.creates).toEqual([]);
    expect(plan.due.kind).toBe('too-late');
    expect(plan.status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'MissedSchedule',
    });
  });

  it('keeps condition transition times when nothing changed', () => {
    const now1 = new Date('2026-01-01T01:00:01Z');
    const first = decide({ schedule: hourly, pvcs: [], snapshots: [], now: now1 });
    const again = decide({
      schedule: withMeta(hourly, first.status),
      pvcs: [],
      snapshots: [],
      now: new Date('2026-01-01T01:20:00Z'),
    });
    expect(again.status.conditions).toEqual(first.status.conditions);
  });
});

describe('decide: a run interrupted by a crash', () => {
  const everyMinute = withMeta(schedule('m', { schedule: '* * * * *' }), {
    lastScheduleTime: '2026-01-01T00:58:00Z',
  });
  const pvcs = ['a', 'b', 'c'].map((n) => ({
    ...pvc(n),
    metadata: { ...pvc(n).metadata, creationTimestamp: created },
  }));
  const partial = [
    snap('a-m-202601010059', { at: '2026-01-01T00:59:00Z', pvc: 'a', schedule: 'm', state: 'pending' }),
  ];

  it('is finished for the PVCs it missed, besides the run now due', () => {
    const plan = decide({
      schedule: everyMinute,
      pvcs,
      snapshots: partial,
      now: new Date('2026-01-01T01:00:01Z'),
    });
    const t59 = new Date('2026-01-01T00:59:00Z');
    const t60 = new Date('2026-01-01T01:00:00Z');
    expect(plan.creates.map((c) => c.name).sort()).toEqual(
      [
        snapshotName('a', 'm', t60),
        snapshotName('b', 'm', t59),
        snapshotName('b', 'm', t60),
        snapshotName('c', 'm', t59),
        snapshotName('c', 'm', t60),
      ].sort(),
    );
    expect(plan.status.lastScheduleTime).toBe('2026-01-01T01:00:00Z');
  });

  it('is not repeated once status records it', () => {
    const done = withMeta(everyMinute, { lastScheduleTime: '2026-01-01T00:59:00Z' });
    const plan = decide({ schedule: done, pvcs, snapshots: partial, now: new Date('2026-01-01T00:59:30Z') });
    expect(plan.creates).toEqual([]);
  });
});

describe('decide: the AckWarnings condition', () => {
  const ack = (parameters: Record<string, string>) => ({
    metadata: { name: 'ecs' },
    driver: 'diskplugin.csi.alibabacloud.com',
    parameters,
  });
  const daily = withMeta(
    schedule('daily', {
      schedule: '0 2 * * *',
      claimSelector: { matchLabels: { app: 'web' } },
      retention: { expires: '30d' },
    }),
  );
  const pass = (snapshotClass?: {
    metadata: { name: string };
    driver: string;
    parameters: Record<string, string>;
  }) =>
    decide({
      schedule: daily,
      pvcs: [pvc('web-0')],
      snapshots: [],
      now: new Date('2026-01-01T03:00:00Z'),
      snapshotClass,
    }).status.conditions?.find((c) => c.type === 'AckWarnings');

  it('is True, naming the class and the fix, when ECS would delete snapshots before retention does', () => {
    const c = pass(ack({ retentionDays: '7' }));
    expect(c).toMatchObject({ status: 'True', reason: 'ExceedsEcsLimits' });
    expect(c?.message).toMatch(
      /spec\.retention: .*VolumeSnapshotClass ecs sets retentionDays 7.*expires: 7d/,
    );
  });

  it('is False when the schedule fits the class, and absent for other drivers or an unknown class', () => {
    expect(pass(ack({ retentionDays: '60' }))).toMatchObject({ status: 'False', reason: 'WithinEcsLimits' });
    expect(
      pass({
        metadata: { name: 'hostpath' },
        driver: 'hostpath.csi.k8s.io',
        parameters: { retentionDays: '1' },
      }),
    ).toBeUndefined();
    expect(pass(undefined)).toBeUndefined();
  });
});

describe('ackWarnings: maxPending alone past the ECS limit', () => {
  it('names maxPending and a fix, not a negative count', () => {
    const w = ackWarnings(
      { schedule: '0 2 * * *', retention: { maxCount: 3, maxPending: 1000 } },
      { metadata: { name: 'ecs' }, driver: 'diskplugin.csi.alibabacloud.com' },
      new Date('2026-01-01T00:00:00Z'),
    );
    expect(w.map((x) => x.path)).toEqual(['spec.retention.maxPending']);
    expect(w[0]?.message).toMatch(/Lower maxPending/);
    expect(JSON.stringify(w)).not.toMatch(/-\d/);
  });
});
