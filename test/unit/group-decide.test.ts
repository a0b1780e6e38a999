/**
 * Consistency groups in the planner (spec.group): one VolumeGroupSnapshot per group and fire,
 * retention by recovery points (a group kept or deleted whole, never a member alone), and the
 * group's protections — decided without a server.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../../src/api/objects.ts';
import { decide } from '../../src/controller/decide.ts';
import { planDeletion } from '../../src/controller/deletion.ts';
import {
  asRecoveryPoint,
  groupRestores,
  groupsOf,
  membersByGroup,
  SCHEDULE_GROUP_KEY,
} from '../../src/group/recovery-points.ts';
import { snapshotMetadata, snapshotName } from '../../src/snapshot/naming.ts';
import { schedule } from '../support/builders.ts';

const pvc = (name: string, labels: Record<string, string>, phase = 'Bound'): PersistentVolumeClaim => ({
  metadata: { name, namespace: 'default', labels, creationTimestamp: '2026-01-01T00:00:00Z' },
  status: { phase },
});

/** A VolumeGroupSnapshot as snapcron names and labels it, in a given state. */
function group(
  key: string,
  at: string,
  state: 'ready' | 'pending' | 'failed' = 'ready',
  extra: { hold?: boolean; scheduleName?: string } = {},
): VolumeGroupSnapshot {
  const when = new Date(at);
  const meta = snapshotMetadata(key, extra.scheduleName ?? 'db', when);
  return {
    apiVersion: 'groupsnapshot.storage.k8s.io/v1',
    kind: 'VolumeGroupSnapshot',
    metadata: {
      name: snapshotName(key, extra.scheduleName ?? 'db', when),
      namespace: 'default',
      labels: {
        'snapcron.io/schedule': meta.labels['snapcron.io/schedule'] ?? '',
        'snapcron.io/group': key,
        ...(extra.hold ? { 'snapcron.io/hold': 'true' } : {}),
      },
      annotations: meta.annotations,
      creationTimestamp: at,
    },
    spec: { source: { selector: { matchLabels: { app: 'pg' } } } },
    status:
      state === 'ready'
        ? { readyToUse: true, creationTime: at }
        : state === 'failed'
          ? { readyToUse: false, error: { message: 'group cut failed' } }
          : { readyToUse: false },
  };
}

/** A member as the snapshot-controller makes it: no labels of ours, the group in status. */
function member(g: VolumeGroupSnapshot, pvcName: string, error?: string): VolumeSnapshot {
  return {
    metadata: { name: `snapshot-${g.metadata.name}-${pvcName}`, namespace: 'default' },
    spec: { source: { persistentVolumeClaimName: pvcName } },
    status: {
      readyToUse: g.status?.readyToUse === true && !error,
      volumeGroupSnapshotName: g.metadata.name ?? '',
      ...(error ? { error: { message: error } } : {}),
    },
  };
}

const byLabel = {
  ...schedule('db', {
    schedule: '0 * * * *',
    claimSelector: { matchLabels: { tier: 'db' } },
    group: {
      by: 'Label' as const,
      labelKey: 'app.kubernetes.io/instance',
      volumeGroupSnapshotClassName: 'gsc',
    },
    retention: { maxCount: 2, minReady: 1 },
  }),
};
byLabel.metadata = { ...byLabel.metadata, creationTimestamp: '2026-01-01T00:00:00Z', generation: 1 };
const bySchedule = {
  ...byLabel,
  spec: { ...byLabel.spec, group: { by: 'Schedule' as const } },
};
const pvcs = [
  pvc('data-pg-0', { tier: 'db', 'app.kubernetes.io/instance': 'pg' }),
  pvc('wal-pg-0', { tier: 'db', 'app.kubernetes.io/instance': 'pg' }),
  pvc('data-my-0', { tier: 'db', 'app.kubernetes.io/instance': 'my' }),
  pvc('scratch', { tier: 'db' }),
  pvc('web-0', { tier: 'web', 'app.kubernetes.io/instance': 'pg' }),
];
const fire = new Date('2026-01-01T05:00:00Z');
const justAfter = new Date('2026-01-01T05:00:02Z');

describe('groupsOf: which PVCs are snapshotted together', () => {
  it('by Label: one group per label value, members sorted, PVCs without the label left out', () => {
    const selected = pvcs.filter((p) => p.metadata.labels?.tier === 'db');
    const g = groupsOf(byLabel.spec.group!, byLabel.spec.claimSelector, 'default', selected);
    expect(g.groups.map((x) => [x.key, x.members])).toEqual([
      ['my', ['data-my-0']],
      ['pg', ['data-pg-0', 'wal-pg-0']],
    ]);
    expect(g.unlabeled).toEqual(['scratch']);
    expect(g.groups[1]?.selector).toEqual({
      matchLabels: { tier: 'db', 'app.kubernetes.io/instance': 'pg' },
    });
  });

  it('by Schedule: every selected PVC in one group under the claim selector', () => {
    const selected = pvcs.filter((p) => p.metadata.labels?.tier === 'db');
    const g = groupsOf({ by: 'Schedule' }, { matchLabels: { tier: 'db' } }, 'default', selected);
    expect(g.groups).toHaveLength(1);
    expect(g.groups[0]?.key).toBe(SCHEDULE_GROUP_KEY);
    expect(g.groups[0]?.members).toEqual(['data-my-0', 'data-pg-0', 'scratch', 'wal-pg-0']);
    expect(g.groups[0]?.selector).toEqual({ matchLabels: { tier: 'db' } });
  });
});

describe('decide with spec.group', () => {
  it('creates one VolumeGroupSnapshot per group at a fire, never per-PVC snapshots, and says who is in no group', () => {
    const plan = decide({ schedule: byLabel, pvcs, snapshots: [], groupSnapshots: [], now: justAfter });
    expect(plan.creates.map((c) => [c.name, c.members])).toEqual([
      [snapshotName('my', 'db', fire), ['data-my-0']],
      [snapshotName('pg', 'db', fire), ['data-pg-0', 'wal-pg-0']],
    ]);
    const pg = plan.creates[1]?.manifest as VolumeGroupSnapshot;
    expect(pg.kind).toBe('VolumeGroupSnapshot');
    expect(pg.apiVersion).toBe('groupsnapshot.storage.k8s.io/v1');
    expect(pg.metadata.labels).toEqual({ 'snapcron.io/schedule': 'db', 'snapcron.io/group': 'pg' });
    expect(pg.metadata.annotations).toEqual({ 'snapcron.io/scheduled-at': '2026-01-01T05:00:00Z' });
    expect(pg.spec).toEqual({
      source: { selector: { matchLabels: { tier: 'db', 'app.kubernetes.io/instance': 'pg' } } },
      volumeGroupSnapshotClassName: 'gsc',
    });
    expect(plan.skips).toEqual([expect.objectContaining({ pvc: 'scratch', reason: 'NotInGroup' })]);
    expect(plan.skips[0]?.message).toMatch(/no label app\.kubernetes\.io\/instance/);
  });

  it('takes a group whole or not at all: a member not Bound holds the group back, naming it', () => {
    const unbound = pvcs.map((p) =>
      p.metadata.name === 'wal-pg-0' ? { ...p, status: { phase: 'Pending' } } : p,
    );
    const plan = decide({
      schedule: byLabel,
      pvcs: unbound,
      snapshots: [],
      groupSnapshots: [],
      now: justAfter,
    });
    expect(plan.creates.map((c) => c.pvc)).toEqual(['my']);
    const skip = plan.skips.find((k) => k.pvc === 'pg');
    expect(skip?.reason).toBe('NotBound');
    expect(skip?.message).toMatch(/wal-pg-0/);
  });

  it('does not take the same fire twice: an existing group of that time is the run', () => {
    const existing = [group('pg', fire.toISOString(), 'pending'), group('my', fire.toISOString(), 'pending')];
    const plan = decide({
      schedule: { ...byLabel, status: { lastScheduleTime: '2026-01-01T05:00:00Z' } },
      pvcs,
      snapshots: [],
      groupSnapshots: existing,
      now: justAfter,
    });
    expect(plan.creates).toEqual([]);
  });

  it('without VolumeGroupSnapshots on the server: takes nothing and says why in Ready', () => {
    const plan = decide({ schedule: bySchedule, pvcs, snapshots: [], now: justAfter });
    expect(plan.creates).toEqual([]);
    expect(plan.retention).toBeUndefined();
    const ready = plan.status.conditions?.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'False', reason: 'GroupSnapshotsUnavailable' });
    expect(ready?.message).toMatch(/groupsnapshot\.storage\.k8s\.io\/v1/);
  });

  it('retention counts recovery points: the oldest group goes whole, its members are never planned alone', () => {
    const gs = ['01:00', '02:00', '03:00'].map((t) => group('pg', `2026-01-01T${t}:00Z`));
    const members = gs.flatMap((g) => [member(g, 'data-pg-0'), member(g, 'wal-pg-0')]);
    const plan = decide({
      schedule: { ...byLabel, status: { lastScheduleTime: '2026-01-01T05:00:00Z' } },
      pvcs,
      snapshots: members,
      groupSnapshots: gs,
      now: justAfter,
    });
    expect(plan.retention?.deletions.map((d) => d.name)).toEqual([gs[0]?.metadata.name]);
    expect(plan.status.snapshots).toMatchObject({ ready: 3 });
  });

  it('a restore from any member protects the whole group; a failed member fails the group', () => {
    const gs = ['01:00', '02:00', '03:00'].map((t) => group('pg', `2026-01-01T${t}:00Z`));
    const oldest = gs[0] as VolumeGroupSnapshot;
    const middle = gs[1] as VolumeGroupSnapshot;
    const members = [
      member(oldest, 'data-pg-0'),
      member(oldest, 'wal-pg-0'),
      member(middle, 'data-pg-0'),
      member(middle, 'wal-pg-0', 'disk busy'),
    ];
    const restoring: PersistentVolumeClaim = {
      metadata: { name: 'wal-restore', namespace: 'default' },
      spec: {
        dataSource: {
          apiGroup: 'snapshot.storage.k8s.io',
          kind: 'VolumeSnapshot',
          name: members[1]?.metadata.name ?? '',
        },
      },
      status: { phase: 'Pending' },
    };
    const plan = decide({
      schedule: { ...byLabel, status: { lastScheduleTime: '2026-01-01T05:00:00Z' } },
      pvcs: [...pvcs, restoring],
      snapshots: members,
      groupSnapshots: gs,
      now: justAfter,
    });
    const verdicts = new Map(plan.retention?.verdicts.map((v) => [v.name, v]));
    expect(verdicts.get(oldest.metadata.name ?? '')).toMatchObject({ verdict: 'keep' });
    expect(verdicts.get(oldest.metadata.name ?? '')?.reasons).toContain('in-use');
    // A group with a failed member is a failed recovery point (after failedAfter it goes).
    expect(verdicts.get(middle.metadata.name ?? '')?.error).toBe('disk busy');
  });
});

describe('planDeletion of a grouped schedule', () => {
  it('deletes groups whole (kind VolumeGroupSnapshot), keeps held ones, waits for restores of a member', () => {
    const held = group('pg', '2026-01-01T01:00:00Z', 'ready', { hold: true });
    const used = group('pg', '2026-01-01T02:00:00Z');
    const free = group('pg', '2026-01-01T03:00:00Z');
    const m = member(used, 'data-pg-0');
    const groupOf = new Map([[m.metadata.name ?? '', used.metadata.name ?? '']]);
    const restores = groupRestores(
      [
        {
          metadata: { name: 'r', namespace: 'default' },
          spec: {
            dataSource: {
              apiGroup: 'snapshot.storage.k8s.io',
              kind: 'VolumeSnapshot',
              name: m.metadata.name ?? '',
            },
          },
          status: { phase: 'Pending' },
        },
      ],
      (_ns, snap) => groupOf.get(snap),
    );
    const plan = planDeletion(
      { ...byLabel, metadata: { ...byLabel.metadata, deletionTimestamp: '2026-01-02T00:00:00Z' } },
      [held, used, free].map((g) => asRecoveryPoint(g)),
      restores,
    );
    expect(plan.deletes).toEqual([
      { name: free.metadata.name, resourceVersion: undefined, kind: 'VolumeGroupSnapshot' },
    ]);
    expect(plan.retained).toEqual([held.metadata.name]);
    expect(plan.waiting).toEqual([used.metadata.name]);
  });
});

describe('property: retention of groups', () => {
  it('deletes only whole groups of the schedule, never a member, never one in use or held', () => {
    const state = fc.constantFrom<'ready' | 'pending' | 'failed'>('ready', 'pending', 'failed');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 200 }), state, fc.boolean(), fc.boolean()), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.integer({ min: 1, max: 5 }),
        (specs, maxCount) => {
          const seen = new Set<number>();
          const gs: VolumeGroupSnapshot[] = [];
          const used = new Set<string>();
          const members: VolumeSnapshot[] = [];
          for (const [hour, st, hold, inUse] of specs) {
            if (seen.has(hour)) continue;
            seen.add(hour);
            const g = group('pg', new Date(Date.UTC(2026, 0, 1) + hour * 3_600_000).toISOString(), st, {
              hold,
            });
            gs.push(g);
            const ms = [member(g, 'data-pg-0'), member(g, 'wal-pg-0')];
            members.push(...ms);
            if (inUse) used.add(ms[1]?.metadata.name ?? '');
          }
          const restoring: PersistentVolumeClaim[] = [...used].map((name, i) => ({
            metadata: { name: `r-${i}`, namespace: 'default' },
            spec: { dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name } },
            status: { phase: 'Pending' },
          }));
          const plan = decide({
            schedule: {
              ...byLabel,
              spec: { ...byLabel.spec, retention: { maxCount, minReady: 0 } },
              status: { lastScheduleTime: '2026-02-01T00:00:00Z' },
            },
            pvcs: [...pvcs, ...restoring],
            snapshots: members,
            groupSnapshots: gs,
            now: new Date('2026-01-20T00:30:00Z'),
          });
          const groupNames = new Set(gs.map((g) => g.metadata.name));
          const memberGroup = membersByGroup(members);
          for (const d of plan.retention?.deletions ?? []) {
            expect(groupNames.has(d.name)).toBe(true);
            const g = gs.find((x) => x.metadata.name === d.name);
            expect(g?.metadata.labels?.['snapcron.io/hold']).toBeUndefined();
            for (const m of memberGroup.get(d.name) ?? [])
              expect(used.has(m.metadata.name ?? '')).toBe(false);
          }
        },
      ),
    );
  });
});
