/** Names snapcron writes on Kubernetes objects: part of the contract with users and tools. */
export const GROUP = 'snapcron.io';
export const VERSION = 'v1';
export const SCHEDULE_KIND = 'SnapshotSchedule';
export const SCHEDULE_PLURAL = 'snapshotschedules';

export const LABEL_SCHEDULE = 'snapcron.io/schedule';
export const LABEL_PVC = 'snapcron.io/pvc';
export const LABEL_HOLD = 'snapcron.io/hold';
export const ANNOTATION_SCHEDULED_AT = 'snapcron.io/scheduled-at';
export const FINALIZER = 'snapcron.io/snapshots';

export const SNAPSHOT_GROUP = 'snapshot.storage.k8s.io';
export const SNAPSHOT_VERSION = 'v1';
export const SNAPSHOT_KIND = 'VolumeSnapshot';

/** Consistency groups (VolumeGroupSnapshot, external-snapshotter v8.6+ / Kubernetes 1.36). */
export const GROUP_SNAPSHOT_GROUP = 'groupsnapshot.storage.k8s.io';
export const GROUP_SNAPSHOT_VERSION = 'v1';
export const GROUP_SNAPSHOT_KIND = 'VolumeGroupSnapshot';
/** On a VolumeGroupSnapshot snapcron took: which group of the schedule (label value, or `group` for by Schedule). */
export const LABEL_GROUP = 'snapcron.io/group';
