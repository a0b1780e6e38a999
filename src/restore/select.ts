/**
 * Restore-from-latest, decided without I/O: which snapshot a new PVC restores from,
 * given its annotations and the namespace's VolumeSnapshots. The webhook and
 * `snapcron restore` share it.
 */
import { LABEL_SCHEDULE } from '../api/constants.ts';
import type { VolumeSnapshot } from '../api/objects.ts';
import { snapshotState, snapshotTime, sourcePvc } from '../retention/snapshot-state.ts';
import { labelValue } from '../snapshot/naming.ts';
import { parseQuantity } from './quantity.ts';

export const RESTORE_LABEL = 'snapcron.io/restore';
export const ANNOTATION_FROM = 'snapcron.io/restore-from';
export const ANNOTATION_SCHEDULE = 'snapcron.io/restore-schedule';
export const ANNOTATION_AT = 'snapcron.io/restore-at';
export const ANNOTATION_POLICY = 'snapcron.io/restore-policy';
export const ANNOTATION_RESTORED_FROM = 'snapcron.io/restored-from-snapshot';
export const ANNOTATION_RESTORED_TIME = 'snapcron.io/restored-snapshot-time';
export const ANNOTATION_RESTORE_RESULT = 'snapcron.io/restore-result';

export interface RestoreRequest {
  sourcePvc: string;
  schedule?: string | undefined;
  at?: Date | undefined;
  policy: 'Required' | 'IfAvailable';
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

/** Reads the restore annotations of a new PVC named `pvcName`; `{ordinal}` takes its trailing ordinal. */
export function parseRestoreAnnotations(
  pvcName: string,
  annotations: Record<string, string> | undefined,
): Parsed<RestoreRequest> {
  const a = annotations ?? {};
  const from = a[ANNOTATION_FROM];
  if (!from)
    return { ok: false, message: `annotation ${ANNOTATION_FROM} is required: name the PVC to restore from` };
  let sourcePvc = from;
  if (from.includes('{ordinal}')) {
    const ordinal = /-(\d+)$/.exec(pvcName)?.[1];
    if (ordinal === undefined) {
      return {
        ok: false,
        message: `${ANNOTATION_FROM} "${from}" uses {ordinal}, but PVC name "${pvcName}" does not end in -<number>`,
      };
    }
    sourcePvc = from.replaceAll('{ordinal}', ordinal);
  }
  const policy = a[ANNOTATION_POLICY] ?? 'Required';
  if (policy !== 'Required' && policy !== 'IfAvailable') {
    return { ok: false, message: `${ANNOTATION_POLICY} "${policy}" must be Required or IfAvailable` };
  }
  let at: Date | undefined;
  const atText = a[ANNOTATION_AT];
  if (atText !== undefined) {
    at = new Date(atText);
    if (
      !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(atText) ||
      Number.isNaN(at.getTime())
    ) {
      return {
        ok: false,
        message: `${ANNOTATION_AT} "${atText}" is not an RFC 3339 time, e.g. 2026-06-15T09:00:00+08:00`,
      };
    }
  }
  return { ok: true, value: { sourcePvc, schedule: a[ANNOTATION_SCHEDULE], at, policy } };
}

export type RestoreChoice =
  /** `time`: when the snapshot's data was cut (snapshotTime), what restored-snapshot-time reports. */
  | { kind: 'snapshot'; snapshot: VolumeSnapshot; name: string; time: Date }
  | { kind: 'none'; message: string };

/**
 * The newest ready snapshot of the source PVC in `namespace` that fits the request. "Newest" and
 * `restore-at` go by when the data was cut, never by the run it was scheduled for: a catch-up
 * for 02:00 taken at 14:00 holds 14:00's data, so `restore-at: 09:00` must not pick it.
 */
export function chooseSnapshot(
  req: RestoreRequest,
  namespace: string,
  snapshots: VolumeSnapshot[],
): RestoreChoice {
  const fits = snapshots
    .filter((s) => (s.metadata.namespace ?? namespace) === namespace)
    .filter((s) => sourcePvc(s) === req.sourcePvc && !s.metadata.deletionTimestamp)
    .filter((s) => !req.schedule || s.metadata.labels?.[LABEL_SCHEDULE] === labelValue(req.schedule))
    .filter((s) => snapshotState(s) === 'ready')
    .map((s) => ({ s, time: snapshotTime(s) }))
    .filter(
      (x): x is { s: VolumeSnapshot; time: Date } => x.time !== undefined && (!req.at || x.time <= req.at),
    )
    .sort(
      (a, b) =>
        b.time.getTime() - a.time.getTime() ||
        ((b.s.metadata.name ?? '') > (a.s.metadata.name ?? '') ? 1 : -1),
    );
  const best = fits[0];
  if (!best) {
    const scope = [
      `PVC ${namespace}/${req.sourcePvc}`,
      req.schedule ? `schedule ${req.schedule}` : '',
      req.at ? `taken at or before ${req.at.toISOString()}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    return { kind: 'none', message: `no ready VolumeSnapshot of ${scope}` };
  }
  return { kind: 'snapshot', snapshot: best.s, name: best.s.metadata.name ?? '', time: best.time };
}

/** Why a chosen snapshot cannot fill a request of `requested` bytes, if it cannot. */
export function sizeProblem(snapshot: VolumeSnapshot, requested: string | undefined): string | undefined {
  const restoreSize = snapshot.status?.restoreSize;
  if (!restoreSize || !requested) return undefined;
  try {
    if (parseQuantity(requested) < parseQuantity(restoreSize)) {
      return `requested storage ${requested} is smaller than snapshot ${snapshot.metadata.name}'s restoreSize ${restoreSize}: request at least ${restoreSize}`;
    }
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}
