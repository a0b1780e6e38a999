/** Small fixture builders for pure tests: `snap('a', { at: '2026-01-01T00:00:00Z', state: 'ready' })`. */
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../../src/api/objects.ts';
import type { LabelSelector, SnapshotSchedule, SnapshotScheduleSpec } from '../../src/api/types.generated.ts';
import { labelValue, snapshotMetadata, snapshotName } from '../../src/snapshot/naming.ts';

export interface SnapOptions {
  at: string | Date;
  pvc?: string;
  schedule?: string;
  namespace?: string;
  state?: 'ready' | 'pending' | 'failed';
  hold?: boolean;
  deleting?: boolean;
}

export function snap(name: string, o: SnapOptions): VolumeSnapshot {
  const at = new Date(o.at);
  const pvc = o.pvc ?? 'data-0';
  const meta = snapshotMetadata(pvc, o.schedule ?? 'nightly', at);
  const state = o.state ?? 'ready';
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshot',
    metadata: {
      name,
      namespace: o.namespace ?? 'default',
      labels: { ...meta.labels, ...(o.hold ? { 'snapcron.io/hold': 'true' } : {}) },
      annotations: meta.annotations,
      creationTimestamp: at.toISOString(),
      ...(o.deleting ? { deletionTimestamp: at.toISOString() } : {}),
    },
    spec: { source: { persistentVolumeClaimName: pvc }, volumeSnapshotClassName: 'csi-hostpath-snapclass' },
    status:
      state === 'ready'
        ? { readyToUse: true }
        : state === 'failed'
          ? { readyToUse: false, error: { message: 'driver said no' } }
          : { readyToUse: false },
  };
}

/** A PVC restoring from a snapshot; `bound` decides whether the restore is still reading it. */
export function restoringPvc(
  name: string,
  fromSnapshot: string,
  bound = false,
  viaRef = false,
): PersistentVolumeClaim {
  const ref = { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: fromSnapshot };
  return {
    metadata: { name, namespace: 'default' },
    spec: viaRef ? { dataSourceRef: ref } : { dataSource: ref },
    status: { phase: bound ? 'Bound' : 'Pending' },
  };
}

export function schedule(name: string, spec: Partial<SnapshotScheduleSpec> = {}): SnapshotSchedule {
  return {
    apiVersion: 'snapcron.io/v1',
    kind: 'SnapshotSchedule',
    metadata: { name, namespace: 'default' },
    spec: { schedule: '@daily', retention: { maxCount: 7 }, ...spec },
  };
}

export interface GroupSnapOptions {
  at: string | Date;
  /** The group key: `group` (by Schedule) or the PVCs' label value (by Label). */
  group?: string;
  schedule?: string;
  namespace?: string;
  state?: 'ready' | 'pending' | 'failed';
  hold?: boolean;
  deleting?: boolean;
  selector?: LabelSelector;
  /** Default: the name snapcron gives it (snapshotName of the group key). */
  name?: string;
}

/** A VolumeGroupSnapshot as snapcron names and labels it: `groupSnap({ at, group: 'pg' })`. */
export function groupSnap(o: GroupSnapOptions): VolumeGroupSnapshot {
  const at = new Date(o.at);
  const key = o.group ?? 'group';
  const scheduleName = o.schedule ?? 'nightly';
  const meta = snapshotMetadata(key, scheduleName, at);
  const state = o.state ?? 'ready';
  const iso = at.toISOString();
  return {
    apiVersion: 'groupsnapshot.storage.k8s.io/v1',
    kind: 'VolumeGroupSnapshot',
    metadata: {
      name: o.name ?? snapshotName(key, scheduleName, at),
      namespace: o.namespace ?? 'default',
      labels: {
        'snapcron.io/schedule': labelValue(scheduleName),
        'snapcron.io/group': labelValue(key),
        ...(o.hold ? { 'snapcron.io/hold': 'true' } : {}),
      },
      annotations: meta.annotations,
      creationTimestamp: iso,
      ...(o.deleting ? { deletionTimestamp: iso } : {}),
    },
    spec: { source: { selector: o.selector ?? { matchLabels: { app: key } } } },
    status:
      state === 'ready'
        ? { readyToUse: true, creationTime: iso }
        : state === 'failed'
          ? { readyToUse: false, error: { message: 'group cut failed', time: iso } }
          : { readyToUse: false },
  };
}

/**
 * A member VolumeSnapshot as the snapshot-controller makes it for `pvc`: no labels of
 * snapcron's, the group in status and as owner; ready when the group is, unless `error`.
 */
export function member(
  group: VolumeGroupSnapshot,
  pvc: string,
  o: { size?: string; error?: string; name?: string } = {},
): VolumeSnapshot {
  const groupName = group.metadata.name ?? '';
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshot',
    metadata: {
      name: o.name ?? `snapshot-${groupName}-${pvc}`,
      namespace: group.metadata.namespace ?? 'default',
      ownerReferences: [
        {
          apiVersion: 'groupsnapshot.storage.k8s.io/v1',
          kind: 'VolumeGroupSnapshot',
          name: groupName,
          uid: `uid-${groupName}`,
        },
      ],
    } as VolumeSnapshot['metadata'],
    spec: { source: { persistentVolumeClaimName: pvc } },
    status: {
      readyToUse: group.status?.readyToUse === true && !o.error,
      volumeGroupSnapshotName: groupName,
      ...(o.size ? { restoreSize: o.size } : {}),
      ...(o.error ? { error: { message: o.error } } : {}),
    },
  };
}
