/** Small fixture builders for pure tests: `snap('a', { at: '2026-01-01T00:00:00Z', state: 'ready' })`. */
import type { PersistentVolumeClaim, VolumeSnapshot } from '../../src/api/objects.ts';
import type { SnapshotSchedule, SnapshotScheduleSpec } from '../../src/api/types.generated.ts';
import { snapshotMetadata } from '../../src/snapshot/naming.ts';

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
