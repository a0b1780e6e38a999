/**
 * Restore-from-latest, decided without I/O: which snapshot a new PVC restores from,
 * given its annotations and the namespace's VolumeSnapshots (and VolumeGroupSnapshots,
 * whose members restore with their group's facts). The webhook and `snapcron restore` share it.
 */
import { LABEL_SCHEDULE } from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../api/objects.ts';
import { asRecoveryPoint, groupOfMember } from '../group/recovery-points.ts';
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
/** Restore from this VolumeGroupSnapshot's member only (by name, in the PVC's namespace). */
export const ANNOTATION_RESTORE_GROUP = 'snapcron.io/restore-group';
/** Written when the chosen snapshot is a group member: the group, which pins the PVC's siblings. */
export const ANNOTATION_RESTORED_FROM_GROUP = 'snapcron.io/restored-from-group';

export interface RestoreRequest {
  sourcePvc: string;
  schedule?: string | undefined;
  at?: Date | undefined;
  policy: 'Required' | 'IfAvailable';
  /** `snapcron.io/restore-group`: only this VolumeGroupSnapshot's member. */
  group?: string | undefined;
  /**
   * With `{ordinal}` in restore-from: what the PVCs of one restore set (a StatefulSet's claims)
   * share, the raw annotation and the name without its trailing `-<ordinal>`; and this PVC's name.
   */
  set?: { from: string; stem: string; pvc: string } | undefined;
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
  let set: RestoreRequest['set'];
  if (from.includes('{ordinal}')) {
    const ordinal = /-(\d+)$/.exec(pvcName)?.[1];
    if (ordinal === undefined) {
      return {
        ok: false,
        message: `${ANNOTATION_FROM} "${from}" uses {ordinal}, but PVC name "${pvcName}" does not end in -<number>`,
      };
    }
    sourcePvc = from.replaceAll('{ordinal}', ordinal);
    set = { from, stem: setStem(pvcName), pvc: pvcName };
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
  const group = a[ANNOTATION_RESTORE_GROUP];
  if (group !== undefined && group.trim() === '') {
    return {
      ok: false,
      message: `${ANNOTATION_RESTORE_GROUP} is empty: name a VolumeGroupSnapshot, or remove the annotation`,
    };
  }
  return {
    ok: true,
    value: {
      sourcePvc,
      schedule: a[ANNOTATION_SCHEDULE],
      at,
      policy,
      ...(group !== undefined ? { group: group.trim() } : {}),
      ...(set ? { set } : {}),
    },
  };
}

/** A StatefulSet claim's name without its trailing `-<ordinal>`: the same for every replica. */
export const setStem = (pvcName: string): string => pvcName.replace(/-\d+$/, '');

export type RestoreChoice =
  | {
      kind: 'snapshot';
      snapshot: VolumeSnapshot;
      name: string;
      /** When the data was cut (a member: its group's cut), what restored-snapshot-time reports. */
      time: Date;
      /** The VolumeGroupSnapshot the snapshot is a member of, if it is one. */
      group?: string;
      /** Restored PVCs of the same set that chose this group (the pin followed). */
      pinnedBy?: string[];
      /** Something the user should know although the restore goes ahead. */
      warning?: string;
    }
  | {
      kind: 'none';
      /** What was looked for and not found. */
      message: string;
      /** How to get a restore, when the default (wait, or IfAvailable) is not it. */
      fix?: string;
    };

/** What a restore knows besides the source PVC's snapshots. */
export interface RestoreContext {
  /** The namespace's VolumeGroupSnapshots: a member counts only through its ready group. */
  groups?: VolumeGroupSnapshot[] | undefined;
  /** The namespace's restore PVCs: those of the request's set pin it to their group. */
  siblings?: PersistentVolumeClaim[] | undefined;
}

/** A snapshot that may be restored, with the facts it is judged by (a member's are its group's). */
interface Candidate {
  s: VolumeSnapshot;
  time: Date;
  group?: string;
}

/** When a group's data was cut: its status.creationTime, else when the object was created. */
export const groupTime = (g: VolumeGroupSnapshot): Date | undefined => snapshotTime(asRecoveryPoint(g));

const groupReady = (g: VolumeGroupSnapshot): boolean =>
  !g.metadata.deletionTimestamp && snapshotState(asRecoveryPoint(g)) === 'ready';

const byNewest = (a: Candidate, b: Candidate): number =>
  b.time.getTime() - a.time.getTime() || ((b.s.metadata.name ?? '') > (a.s.metadata.name ?? '') ? 1 : -1);

/**
 * The ready snapshots of the request's source PVC that fit its schedule and time, newest first.
 * A member of a VolumeGroupSnapshot counts only while its group is ready, belongs to the
 * schedule that took the group, and has the group's time: every member of one group is equally
 * old, so `restore-at` takes all of a set's PVCs from the same group.
 */
function candidates(
  req: RestoreRequest,
  namespace: string,
  snapshots: VolumeSnapshot[],
  groups: Map<string, VolumeGroupSnapshot>,
): Candidate[] {
  const out: Candidate[] = [];
  const scheduleLabel = req.schedule ? labelValue(req.schedule) : undefined;
  for (const s of snapshots) {
    if ((s.metadata.namespace ?? namespace) !== namespace) continue;
    if (sourcePvc(s) !== req.sourcePvc || s.metadata.deletionTimestamp) continue;
    if (snapshotState(s) !== 'ready') continue;
    const groupName = groupOfMember(s);
    let time: Date | undefined;
    if (groupName === undefined) {
      if (scheduleLabel && s.metadata.labels?.[LABEL_SCHEDULE] !== scheduleLabel) continue;
      time = snapshotTime(s);
    } else {
      const g = groups.get(groupName);
      if (!g || !groupReady(g)) continue;
      if (scheduleLabel && g.metadata.labels?.[LABEL_SCHEDULE] !== scheduleLabel) continue;
      time = groupTime(g) ?? snapshotTime(s);
    }
    if (time === undefined || (req.at && time > req.at)) continue;
    out.push(groupName === undefined ? { s, time } : { s, time, group: groupName });
  }
  return out.sort(byNewest);
}

const groupsByName = (namespace: string, groups: VolumeGroupSnapshot[]): Map<string, VolumeGroupSnapshot> =>
  new Map(
    groups
      .filter((g) => (g.metadata.namespace ?? namespace) === namespace)
      .map((g) => [g.metadata.name ?? '', g] as const),
  );

/**
 * The groups the request's siblings restored from, most used first: the PVCs of the same
 * restore set (same raw restore-from, same name but for the ordinal) that carry
 * `snapcron.io/restored-from-group`. A PVC being deleted, or one of the request's own name
 * (a predecessor), does not pin.
 */
export function siblingGroups(
  req: RestoreRequest,
  namespace: string,
  pvcs: PersistentVolumeClaim[],
): { group: string; pvcs: string[] }[] {
  if (!req.set) return [];
  const byGroup = new Map<string, string[]>();
  for (const p of pvcs) {
    const name = p.metadata.name ?? '';
    const a = p.metadata.annotations;
    const group = a?.[ANNOTATION_RESTORED_FROM_GROUP];
    if (!group || name === req.set.pvc || p.metadata.deletionTimestamp) continue;
    if ((p.metadata.namespace ?? namespace) !== namespace) continue;
    if (a[ANNOTATION_FROM] !== req.set.from || setStem(name) !== req.set.stem) continue;
    const list = byGroup.get(group);
    if (list) list.push(name);
    else byGroup.set(group, [name]);
  }
  return [...byGroup]
    .map(([group, names]) => ({ group, pvcs: names.sort() }))
    .sort((a, b) => b.pvcs.length - a.pvcs.length || (a.group < b.group ? -1 : 1));
}

/** Why the named group cannot serve the request: the first of its facts that fails. */
function groupProblem(
  req: RestoreRequest,
  namespace: string,
  name: string,
  snapshots: VolumeSnapshot[],
  groups: Map<string, VolumeGroupSnapshot>,
): string {
  const what = `VolumeGroupSnapshot ${namespace}/${name}`;
  const g = groups.get(name);
  if (!g) return `${what} does not exist`;
  if (g.metadata.deletionTimestamp) return `${what} is being deleted`;
  if (!groupReady(g)) {
    const error = asRecoveryPoint(g).status?.error?.message;
    return `${what} is not ready${error ? ` (${error})` : ''}`;
  }
  if (req.schedule && g.metadata.labels?.[LABEL_SCHEDULE] !== labelValue(req.schedule))
    return `${what} was not taken by schedule ${req.schedule}`;
  const time = groupTime(g);
  if (req.at && time && time > req.at)
    return `${what} was taken at ${time.toISOString()}, after the requested ${req.at.toISOString()}`;
  const members = snapshots.filter((s) => groupOfMember(s) === name && sourcePvc(s) === req.sourcePvc);
  if (members.length === 0)
    return `${what} has no member VolumeSnapshot of PVC ${namespace}/${req.sourcePvc}`;
  return `${what}'s member VolumeSnapshot of PVC ${namespace}/${req.sourcePvc} is not ready`;
}

/**
 * The snapshot a request restores from, in `namespace`. "Newest" and `restore-at` go by when
 * the data was cut, never by the run it was scheduled for: a catch-up for 02:00 taken at 14:00
 * holds 14:00's data, so `restore-at: 09:00` must not pick it. Members of VolumeGroupSnapshots
 * take part through their groups (see candidates). Then, in order:
 * - `restore-group` names the group: its member, or nothing;
 * - a PVC of a restore set (`{ordinal}`) whose siblings restored from a group takes that
 *   group's member while the group still fits, so a StatefulSet comes back from one instant
 *   whatever groups became ready between its replicas;
 * - otherwise the newest fitting snapshot.
 */
export function chooseSnapshot(
  req: RestoreRequest,
  namespace: string,
  snapshots: VolumeSnapshot[],
  context: RestoreContext = {},
): RestoreChoice {
  const groups = groupsByName(namespace, context.groups ?? []);
  const fits = candidates(req, namespace, snapshots, groups);
  const chosen = (c: Candidate, extra: { pinnedBy?: string[]; warning?: string } = {}): RestoreChoice => ({
    kind: 'snapshot',
    snapshot: c.s,
    name: c.s.metadata.name ?? '',
    time: c.time,
    ...(c.group !== undefined ? { group: c.group } : {}),
    ...extra,
  });

  if (req.group !== undefined) {
    const member = fits.find((c) => c.group === req.group);
    if (member) return chosen(member);
    return {
      kind: 'none',
      message: groupProblem(req, namespace, req.group, snapshots, groups),
      fix: `name a ready VolumeGroupSnapshot with a member of PVC ${req.sourcePvc} (kubectl get volumegroupsnapshots -n ${namespace}), or remove ${ANNOTATION_RESTORE_GROUP} to restore the newest copy`,
    };
  }

  const warnings: string[] = [];
  for (const pin of siblingGroups(req, namespace, context.siblings ?? [])) {
    const member = fits.find((c) => c.group === pin.group);
    if (member) return chosen(member, { pinnedBy: pin.pvcs });
    warnings.push(
      `PVCs ${pin.pvcs.join(', ')} of the same set restored from VolumeGroupSnapshot ${pin.group}, which cannot serve this one: ${groupProblem(req, namespace, pin.group, snapshots, groups)}`,
    );
  }

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
  return chosen(
    best,
    warnings.length > 0 ? { warning: `${warnings.join('; ')}; restoring the newest copy instead` } : {},
  );
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

/** The default `--name-template` of a group restore: each member's PVC name, suffixed. */
export const DEFAULT_NAME_TEMPLATE = '{pvc}-restore';

/** A new PVC's name from a template: `{pvc}` is the source PVC, `{ordinal}` its trailing number. */
export function restoreName(template: string, source: string): Parsed<string> {
  let name = template.replaceAll('{pvc}', source);
  if (template.includes('{ordinal}')) {
    const ordinal = /-(\d+)$/.exec(source)?.[1];
    if (ordinal === undefined)
      return {
        ok: false,
        message: `name template "${template}" uses {ordinal}, but PVC ${source} does not end in -<number>: use {pvc}`,
      };
    name = name.replaceAll('{ordinal}', ordinal);
  }
  if (name.length > 253 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name))
    return {
      ok: false,
      message: `name template "${template}" gives "${name}" for PVC ${source}, not a valid PVC name (lowercase letters, digits, '-' and '.', at most 253)`,
    };
  return { ok: true, value: name };
}

export interface GroupRestore {
  group: VolumeGroupSnapshot;
  /** When the group's data was cut. */
  time: Date;
  /** One per member, by source PVC name. */
  restores: { sourcePvc: string; name: string; snapshot: VolumeSnapshot }[];
}

/**
 * Every member of one ready VolumeGroupSnapshot, each to a new PVC named by `template`
 * (`snapcron restore --group`): all of them, from one instant, or a message saying why not.
 */
export function planGroupRestore(
  namespace: string,
  groupName: string,
  template: string,
  snapshots: VolumeSnapshot[],
  groups: VolumeGroupSnapshot[],
): Parsed<GroupRestore> {
  const what = `VolumeGroupSnapshot ${namespace}/${groupName}`;
  const g = groupsByName(namespace, groups).get(groupName);
  if (!g)
    return {
      ok: false,
      message: `${what} not found: list them with kubectl get volumegroupsnapshots -n ${namespace}`,
    };
  if (!groupReady(g)) {
    const error = asRecoveryPoint(g).status?.error?.message;
    return {
      ok: false,
      message: `${what} is ${g.metadata.deletionTimestamp ? 'being deleted' : `not ready${error ? ` (${error})` : ''}`}: wait for it, or pick a ready one (kubectl get volumegroupsnapshots -n ${namespace})`,
    };
  }
  const members = snapshots
    .filter((s) => (s.metadata.namespace ?? namespace) === namespace && groupOfMember(s) === groupName)
    .sort((a, b) => ((sourcePvc(a) ?? '') < (sourcePvc(b) ?? '') ? -1 : 1));
  if (members.length === 0)
    return {
      ok: false,
      message: `${what} has no member VolumeSnapshots: the snapshot-controller has not made them yet`,
    };
  const restores: GroupRestore['restores'] = [];
  const names = new Map<string, string>();
  for (const m of members) {
    const source = sourcePvc(m) ?? '';
    if (m.metadata.deletionTimestamp || snapshotState(m) !== 'ready')
      return {
        ok: false,
        message: `${what}'s member VolumeSnapshot ${m.metadata.name} of PVC ${source} is not ready: wait for it`,
      };
    const name = restoreName(template, source);
    if (!name.ok) return name;
    const clash = names.get(name.value);
    if (clash !== undefined)
      return {
        ok: false,
        message: `name template "${template}" gives PVCs ${clash} and ${source} the same name ${name.value}: use {pvc} or {ordinal}`,
      };
    names.set(name.value, source);
    restores.push({ sourcePvc: source, name: name.value, snapshot: m });
  }
  const time = groupTime(g) ?? snapshotTime(members[0] as VolumeSnapshot) ?? new Date(0);
  return { ok: true, value: { group: g, time, restores } };
}
