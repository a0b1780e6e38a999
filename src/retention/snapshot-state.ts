/** How retention sees one VolumeSnapshot: its time and its state. */
import { ANNOTATION_SCHEDULED_AT } from '../api/constants.ts';
import type { VolumeSnapshot } from '../api/objects.ts';

export type SnapshotState = 'ready' | 'pending' | 'failed';

export function snapshotState(s: VolumeSnapshot): SnapshotState {
  if (s.status?.readyToUse === true) return 'ready';
  if (s.status?.error) return 'failed';
  return 'pending';
}

/** The scheduled time if snapcron took it, else when the object was created; undefined if neither parses. */
export function snapshotTime(s: VolumeSnapshot): Date | undefined {
  const raw = s.metadata.annotations?.[ANNOTATION_SCHEDULED_AT] ?? s.metadata.creationTimestamp;
  if (raw === undefined) return undefined;
  const t = new Date(raw);
  return Number.isNaN(t.getTime()) ? undefined : t;
}

export const sourcePvc = (s: VolumeSnapshot): string | undefined => s.spec.source.persistentVolumeClaimName;
