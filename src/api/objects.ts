/**
 * The parts of Kubernetes objects snapcron reads, typed narrowly so pure code can
 * take them straight from `kubectl get -o json`, an informer or a test builder.
 */
import type { LabelSelector, ObjectMeta } from './types.generated.ts';

export interface TypedObjectReference {
  apiGroup?: string;
  kind: string;
  name: string;
  namespace?: string;
}

export interface VolumeSnapshot {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    source: { persistentVolumeClaimName?: string; volumeSnapshotContentName?: string };
    volumeSnapshotClassName?: string;
  };
  status?: {
    readyToUse?: boolean;
    creationTime?: string;
    restoreSize?: string;
    boundVolumeSnapshotContentName?: string;
    error?: { message?: string; time?: string };
    /** Set on a member of a VolumeGroupSnapshot: the group's name. */
    volumeGroupSnapshotName?: string;
  };
}

/** groupsnapshot.storage.k8s.io/v1: the snapshot-controller creates one member VolumeSnapshot per PVC. */
export interface VolumeGroupSnapshot {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    source: { selector?: LabelSelector; volumeGroupSnapshotContentName?: string };
    volumeGroupSnapshotClassName?: string;
  };
  status?: {
    readyToUse?: boolean;
    creationTime?: string;
    boundVolumeGroupSnapshotContentName?: string;
    error?: { message?: string; time?: string };
  };
}

export interface PersistentVolumeClaim {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: {
    dataSource?: TypedObjectReference;
    dataSourceRef?: TypedObjectReference;
    resources?: { requests?: Record<string, string> };
    storageClassName?: string;
    volumeName?: string;
  };
  status?: { phase?: string };
}

export interface List<T> {
  items: T[];
}
