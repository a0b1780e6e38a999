/**
 * deletionPolicy Delete, decided without I/O: what deleting a schedule deletes, what it
 * leaves, and what it waits for. The controller's finalizer and `snapcron tick` both run
 * this, and the executor deletes with the same re-read and resourceVersion precondition
 * as pruning.
 *
 * Contract: every snapshot of the schedule is deleted except held ones (label
 * snapcron.io/hold=true: left in place, never waited for) and restore sources still in use
 * (a not-yet-Bound PVC reads from it: waited for, then deleted). minReady and pending do not
 * protect here: the user asked for the schedule's snapshots to go. The finalizer is removed
 * once nothing is left to delete or wait for. A schedule's consistency groups come in as
 * recovery points (src/group/recovery-points.ts) and go the same way, each as a whole.
 */
import { FINALIZER, GROUP_SNAPSHOT_KIND, LABEL_HOLD } from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../api/objects.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import { belongsTo, snapshotsInUse } from '../retention/plan.ts';

export interface DeletionPlan {
  /** Snapshots (or, `kind` VolumeGroupSnapshot, whole groups) to delete now, with the resourceVersion the decision saw. */
  deletes: { name: string; resourceVersion: string | undefined; kind?: string | undefined }[];
  /** Held snapshots, left in place. */
  retained: string[];
  /** Restore sources still being read: deleted on a later pass. */
  waiting: string[];
  /** Nothing left to do: the finalizer can go. */
  done: boolean;
}

/** True when the schedule is being deleted and its finalizer is ours to run. */
export const needsFinalizing = (s: SnapshotSchedule): boolean =>
  !!s.metadata?.deletionTimestamp && (s.metadata.finalizers ?? []).includes(FINALIZER);

/** The finalizers the schedule should carry: ours exactly when deletionPolicy is Delete (and not deleting). */
export function wantedFinalizers(s: SnapshotSchedule): string[] | undefined {
  if (s.metadata?.deletionTimestamp) return undefined;
  const finalizers = s.metadata?.finalizers ?? [];
  const want = s.spec?.deletionPolicy === 'Delete';
  if (want === finalizers.includes(FINALIZER)) return undefined;
  return want ? [...finalizers, FINALIZER] : finalizers.filter((f) => f !== FINALIZER);
}

export function planDeletion(
  schedule: SnapshotSchedule,
  snapshots: VolumeSnapshot[],
  pvcs: PersistentVolumeClaim[],
): DeletionPlan {
  const name = schedule.metadata?.name ?? '';
  const namespace = schedule.metadata?.namespace ?? 'default';
  const inUse = snapshotsInUse(pvcs);
  const plan: DeletionPlan = { deletes: [], retained: [], waiting: [], done: false };
  for (const s of snapshots) {
    if (!belongsTo(s, name) || (s.metadata.namespace ?? namespace) !== namespace) continue;
    if (s.metadata.deletionTimestamp) continue; // already going
    const snap = s.metadata.name ?? '';
    if (s.metadata.labels?.[LABEL_HOLD] === 'true') plan.retained.push(snap);
    else if (inUse.has(`${namespace}/${snap}`)) plan.waiting.push(snap);
    else
      plan.deletes.push({
        name: snap,
        resourceVersion: s.metadata.resourceVersion,
        ...(s.kind === GROUP_SNAPSHOT_KIND ? { kind: s.kind } : {}),
      });
  }
  plan.done = plan.deletes.length === 0 && plan.waiting.length === 0;
  return plan;
}
