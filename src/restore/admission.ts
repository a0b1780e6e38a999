/**
 * The mutating admission decision for a new PVC that asks to be restored: pure, from
 * the AdmissionReview and the namespace's snapshots, VolumeGroupSnapshots and restore
 * PVCs (the controller's cache).
 */
import { SNAPSHOT_GROUP, SNAPSHOT_KIND } from '../api/constants.ts';
import type {
  PersistentVolumeClaim,
  TypedObjectReference,
  VolumeGroupSnapshot,
  VolumeSnapshot,
} from '../api/objects.ts';
import { groupOfMember } from '../group/recovery-points.ts';
import {
  ANNOTATION_RESTORED_FROM,
  ANNOTATION_RESTORED_FROM_GROUP,
  ANNOTATION_RESTORED_TIME,
  ANNOTATION_RESTORE_RESULT,
  chooseSnapshot,
  parseRestoreAnnotations,
  RESTORE_LABEL,
  sizeProblem,
} from './select.ts';

export interface AdmissionRequest {
  uid: string;
  operation?: string;
  /** A server-side dry run: nothing will be created. */
  dryRun?: boolean;
  namespace?: string;
  kind?: { group?: string; kind?: string };
  object?: PersistentVolumeClaim;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; message: string };
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
}

export interface AdmissionOutcome {
  response: AdmissionResponse;
  /** What happened, for logs and events. */
  summary: {
    pvc: string;
    namespace: string;
    snapshot?: string;
    /** The VolumeGroupSnapshot the restored snapshot is a member of. */
    group?: string;
    result: 'restored' | 'empty' | 'denied' | 'ignored';
    message: string;
  };
}

type PatchOp = { op: 'add' | 'replace'; path: string; value: unknown };
const escapeKey = (k: string): string => k.replace(/~/g, '~0').replace(/\//g, '~1');

const sameRef = (a: TypedObjectReference | undefined, b: TypedObjectReference): boolean =>
  !!a && a.kind === b.kind && a.name === b.name && (a.apiGroup ?? '') === (b.apiGroup ?? '');

/** The snapshots of one source PVC in a namespace (an index lookup in the controller's cache). */
export type SnapshotLookup = (namespace: string, sourcePvc: string) => VolumeSnapshot[];
/** The VolumeGroupSnapshots of a namespace (the controller's cache). */
export type GroupSnapshotLookup = (namespace: string) => VolumeGroupSnapshot[];
/**
 * The restore PVCs of a namespace, those labelled snapcron.io/restore=true (the controller's
 * cache); more PVCs do no harm, siblings are picked by their annotations.
 */
export type RestorePvcLookup = (namespace: string) => PersistentVolumeClaim[];

/** Group members take part only with these; each is asked only when a member is among the snapshots. */
export interface AdmissionContext {
  groups?: VolumeGroupSnapshot[] | GroupSnapshotLookup | undefined;
  siblings?: PersistentVolumeClaim[] | RestorePvcLookup | undefined;
}

export function admitRestore(
  req: AdmissionRequest,
  snapshots: VolumeSnapshot[] | SnapshotLookup,
  context: AdmissionContext = {},
): AdmissionOutcome {
  const pvc = req.object;
  const namespace = req.namespace ?? pvc?.metadata.namespace ?? 'default';
  const name = pvc?.metadata.name ?? '';
  const base = { pvc: name, namespace };
  const allow = (
    message: string,
    ops: PatchOp[] = [],
    result: AdmissionOutcome['summary']['result'] = 'ignored',
    chosen: { snapshot?: string; group?: string | undefined; warning?: string | undefined } = {},
  ): AdmissionOutcome => ({
    response: {
      uid: req.uid,
      allowed: true,
      ...(ops.length > 0
        ? { patchType: 'JSONPatch' as const, patch: Buffer.from(JSON.stringify(ops)).toString('base64') }
        : {}),
      ...(chosen.warning ? { warnings: [chosen.warning] } : {}),
    },
    summary: {
      ...base,
      result,
      message,
      ...(chosen.snapshot ? { snapshot: chosen.snapshot } : {}),
      ...(chosen.group ? { group: chosen.group } : {}),
    },
  });
  const deny = (message: string, code = 403): AdmissionOutcome => ({
    response: {
      uid: req.uid,
      allowed: false,
      status: { code, message: `snapcron restore of PVC ${namespace}/${name}: ${message}` },
    },
    summary: { ...base, result: 'denied', message },
  });

  if (!pvc || req.operation !== 'CREATE' || pvc.metadata.labels?.[RESTORE_LABEL] !== 'true') {
    return allow('not a restore request');
  }
  const parsed = parseRestoreAnnotations(name, pvc.metadata.annotations);
  if (!parsed.ok) return deny(parsed.message, 400);
  const candidates =
    typeof snapshots === 'function' ? snapshots(namespace, parsed.value.sourcePvc) : snapshots;
  // Groups and siblings matter only to members (or a named group, to say what is wrong with
  // it): a plain restore costs no more than before.
  const groupsMatter =
    parsed.value.group !== undefined || candidates.some((s) => groupOfMember(s) !== undefined);
  const { groups, siblings } = context;
  const choice = chooseSnapshot(
    parsed.value,
    namespace,
    candidates,
    groupsMatter
      ? {
          groups: typeof groups === 'function' ? groups(namespace) : groups,
          siblings:
            parsed.value.set === undefined
              ? undefined
              : typeof siblings === 'function'
                ? siblings(namespace)
                : siblings,
        }
      : {},
  );

  const annotationOps = (values: Record<string, string>): PatchOp[] => {
    const ops: PatchOp[] = [];
    if (!pvc.metadata.annotations) ops.push({ op: 'add', path: '/metadata/annotations', value: {} });
    for (const [k, v] of Object.entries(values))
      ops.push({ op: 'add', path: `/metadata/annotations/${escapeKey(k)}`, value: v });
    return ops;
  };

  if (choice.kind === 'none') {
    if (parsed.value.policy === 'Required') {
      return deny(
        `${choice.message}; ${choice.fix ?? 'wait for a snapshot to become ready, or set snapcron.io/restore-policy: IfAvailable to create an empty volume'}`,
      );
    }
    const message = `created empty: ${choice.message}`;
    return allow(message, annotationOps({ [ANNOTATION_RESTORE_RESULT]: message }), 'empty');
  }

  const ref: TypedObjectReference = { apiGroup: SNAPSHOT_GROUP, kind: SNAPSHOT_KIND, name: choice.name };
  const spec = pvc.spec ?? {};
  for (const existing of [spec.dataSource, spec.dataSourceRef]) {
    if (existing && !sameRef(existing, ref)) {
      return deny(
        `it already has data source ${existing.kind}/${existing.name}, but the newest fitting snapshot is ${choice.name}: remove the data source or the restore annotations`,
        400,
      );
    }
  }
  const size = sizeProblem(choice.snapshot, spec.resources?.requests?.storage);
  if (size) return deny(size, 400);

  const ops: PatchOp[] = [];
  if (!pvc.spec) ops.push({ op: 'add', path: '/spec', value: {} });
  ops.push({ op: spec.dataSource ? 'replace' : 'add', path: '/spec/dataSource', value: ref });
  ops.push({ op: spec.dataSourceRef ? 'replace' : 'add', path: '/spec/dataSourceRef', value: ref });
  ops.push(
    ...annotationOps({
      [ANNOTATION_RESTORED_FROM]: choice.name,
      [ANNOTATION_RESTORED_TIME]: choice.time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      ...(choice.group !== undefined ? { [ANNOTATION_RESTORED_FROM_GROUP]: choice.group } : {}),
    }),
  );
  const from =
    choice.group === undefined
      ? `VolumeSnapshot ${choice.name}`
      : `VolumeSnapshot ${choice.name} of VolumeGroupSnapshot ${choice.group}`;
  const pinned = choice.pinnedBy ? `, as its set's ${choice.pinnedBy.join(', ')}` : '';
  return allow(`restoring from ${from} taken ${choice.time.toISOString()}${pinned}`, ops, 'restored', {
    snapshot: choice.name,
    group: choice.group,
    warning: choice.warning,
  });
}
