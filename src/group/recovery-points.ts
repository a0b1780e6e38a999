/**
 * Consistency groups, decided without I/O. With `spec.group`, a fire takes one
 * VolumeGroupSnapshot per group of PVCs, and the snapshot-controller makes one member
 * VolumeSnapshot per PVC (`status.volumeGroupSnapshotName`, owned by the group).
 *
 * The rest of the planner (due runs, Forbid, maxPending, retention, deletion) works per
 * "unit" with VolumeSnapshot-shaped records, so a group takes part as one unit: a
 * pseudo-PVC named by its group key, whose snapshots are its recovery points — each
 * VolumeGroupSnapshot seen as one snapshot (ready when the group is, failed when the
 * group or any member failed, in use when a restore reads any member). Retention thus
 * counts recovery points and keeps or deletes a group whole; a member is never planned.
 */
import { byCodePoint } from '../api/order.ts';
import {
  GROUP_SNAPSHOT_GROUP,
  GROUP_SNAPSHOT_KIND,
  GROUP_SNAPSHOT_VERSION,
  LABEL_GROUP,
  LABEL_PVC,
  SNAPSHOT_GROUP,
  SNAPSHOT_KIND,
} from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../api/objects.ts';
import type { GroupPolicy, LabelSelector } from '../api/types.generated.ts';
import { matchesSelector } from '../kube/selector.ts';

/** The group key of a `by: Schedule` group (a label value names a `by: Label` group). */
export const SCHEDULE_GROUP_KEY = 'group';

export interface GroupUnit {
  /** `group` for by Schedule, the label value for by Label. */
  key: string;
  /** Member PVC names, ascending. */
  members: string[];
  /** The VolumeGroupSnapshot's source selector: the claim selector, narrowed to the label value. */
  selector: LabelSelector;
  /** A PVC-shaped stand-in for the planner: Bound only when every member is. */
  unit: PersistentVolumeClaim;
}

export interface GroupSelection {
  groups: GroupUnit[];
  /** Selected PVCs without the group label (by Label): left out of every group. */
  unlabeled: string[];
}

/**
 * The groups of the PVCs `selected` (already filtered by the claim selector, in the schedule's
 * namespace). A group's stand-in exists from its oldest member's creation, so a run interrupted
 * before a later member existed is still completed for the group.
 */
export function groupsOf(
  policy: GroupPolicy,
  claimSelector: LabelSelector | undefined,
  namespace: string,
  selected: PersistentVolumeClaim[],
): GroupSelection {
  const byKey = new Map<string, PersistentVolumeClaim[]>();
  const unlabeled: string[] = [];
  for (const pvc of selected) {
    const key = policy.by === 'Label' ? pvc.metadata.labels?.[policy.labelKey ?? ''] : SCHEDULE_GROUP_KEY;
    if (key === undefined || key === '') {
      unlabeled.push(pvc.metadata.name ?? '');
      continue;
    }
    const list = byKey.get(key);
    if (list) list.push(pvc);
    else byKey.set(key, [pvc]);
  }
  const groups: GroupUnit[] = [];
  for (const [key, pvcs] of [...byKey].sort(([a], [b]) => byCodePoint(a, b))) {
    const members = pvcs.map((p) => p.metadata.name ?? '').sort();
    const unbound = pvcs.filter((p) => p.status?.phase !== 'Bound').map((p) => p.metadata.name ?? '');
    const created = pvcs
      .map((p) => String(p.metadata.creationTimestamp ?? ''))
      .filter((t) => t !== '')
      .sort()[0];
    const selector: LabelSelector =
      policy.by === 'Label'
        ? {
            ...claimSelector,
            matchLabels: { ...claimSelector?.matchLabels, [policy.labelKey ?? '']: key },
          }
        : { ...claimSelector };
    groups.push({
      key,
      members,
      selector,
      unit: {
        metadata: {
          name: key,
          namespace,
          ...(created ? { creationTimestamp: created } : {}),
          annotations: unbound.length > 0 ? { 'snapcron.io/unbound-members': unbound.join(',') } : {},
        },
        status: { phase: unbound.length > 0 ? 'Pending' : 'Bound' },
      },
    });
  }
  return { groups, unlabeled: unlabeled.sort() };
}

/** The members that keep a group's stand-in from being Bound (see groupsOf). */
export const unboundMembers = (unit: PersistentVolumeClaim): string[] =>
  unit.metadata.annotations?.['snapcron.io/unbound-members']?.split(',').filter(Boolean) ?? [];

/** A group's members by group name: member VolumeSnapshots name their group in status or by owner. */
export function membersByGroup(snapshots: VolumeSnapshot[]): Map<string, VolumeSnapshot[]> {
  const out = new Map<string, VolumeSnapshot[]>();
  for (const s of snapshots) {
    const group = groupOfMember(s);
    if (group === undefined) continue;
    const list = out.get(group);
    if (list) list.push(s);
    else out.set(group, [s]);
  }
  return out;
}

/** The VolumeGroupSnapshot a member VolumeSnapshot belongs to, if it is one. */
export function groupOfMember(s: VolumeSnapshot): string | undefined {
  // Before the snapshot-controller writes status, the owner reference already names the group.
  const owners = (s.metadata as { ownerReferences?: { kind?: string; name?: string }[] }).ownerReferences;
  return s.status?.volumeGroupSnapshotName ?? owners?.find((o) => o.kind === GROUP_SNAPSHOT_KIND)?.name;
}

/**
 * A VolumeGroupSnapshot as the planner's snapshot: labels with the group key where a PVC's
 * name would be, ready when the group is, failed (with the message) when the group or any
 * member reports an error.
 */
export function asRecoveryPoint(g: VolumeGroupSnapshot, members: VolumeSnapshot[] = []): VolumeSnapshot {
  const labels = { ...g.metadata.labels };
  const key = labels[LABEL_GROUP];
  if (key !== undefined) labels[LABEL_PVC] = key;
  const memberError = members.find((m) => m.status?.error?.message)?.status?.error;
  const error = g.status?.error?.message ? g.status.error : memberError;
  return {
    apiVersion: `${GROUP_SNAPSHOT_GROUP}/${GROUP_SNAPSHOT_VERSION}`,
    kind: GROUP_SNAPSHOT_KIND,
    metadata: { ...g.metadata, labels },
    spec: { source: { persistentVolumeClaimName: key ?? '' } },
    status: {
      ...(g.status?.readyToUse !== undefined ? { readyToUse: g.status.readyToUse && !error } : {}),
      ...(g.status?.creationTime ? { creationTime: g.status.creationTime } : {}),
      ...(error ? { error } : {}),
    },
  };
}

/**
 * Stand-ins for in-use protection: a not-yet-Bound PVC restoring from a member reads from its
 * group, so the group counts as in use (retention and deletion never take a group while any
 * of its members is being restored).
 */
export function groupRestores(
  pvcs: PersistentVolumeClaim[],
  groupOf: (namespace: string, snapshot: string) => string | undefined,
): PersistentVolumeClaim[] {
  const out: PersistentVolumeClaim[] = [];
  for (const pvc of pvcs) {
    if (pvc.status?.phase === 'Bound') continue;
    const ns = pvc.metadata.namespace ?? '';
    for (const ref of [pvc.spec?.dataSource, pvc.spec?.dataSourceRef]) {
      if (ref?.kind !== SNAPSHOT_KIND || (ref.apiGroup ?? '') !== SNAPSHOT_GROUP) continue;
      const group = groupOf(ref.namespace ?? ns, ref.name);
      if (group === undefined) continue;
      out.push({
        metadata: { name: pvc.metadata.name ?? '', namespace: ns },
        spec: { dataSource: { apiGroup: SNAPSHOT_GROUP, kind: SNAPSHOT_KIND, name: group } },
        status: { phase: pvc.status?.phase ?? 'Pending' },
      });
    }
  }
  return out;
}

/** The manifest of one VolumeGroupSnapshot, from the per-PVC manifest decide would have made. */
export function groupManifest(
  from: VolumeSnapshot,
  selector: LabelSelector,
  className: string | undefined,
): VolumeGroupSnapshot {
  const labels = { ...from.metadata.labels };
  const key = labels[LABEL_PVC];
  delete labels[LABEL_PVC];
  if (key !== undefined) labels[LABEL_GROUP] = key;
  return {
    apiVersion: `${GROUP_SNAPSHOT_GROUP}/${GROUP_SNAPSHOT_VERSION}`,
    kind: GROUP_SNAPSHOT_KIND,
    metadata: { ...from.metadata, labels },
    spec: {
      source: { selector },
      ...(className ? { volumeGroupSnapshotClassName: className } : {}),
    },
  };
}

/** Does PVC `labels` belong in a group of `selector`? (The snapshot-controller picks members so.) */
export const inGroup = (labels: Record<string, string> | undefined, selector: LabelSelector): boolean =>
  matchesSelector(labels, selector);
