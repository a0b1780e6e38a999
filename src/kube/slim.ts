/**
 * "Slim" copies of the objects the controller caches: only the fields snapcron reads, so
 * 100,000 VolumeSnapshots and 10,000 PVCs fit in a small heap. A Reflector applies these to
 * every object from LIST and WATCH before storing it.
 *
 * What is kept, and who reads it (keep this list in step with the code; the unit test
 * test/unit/slim.test.ts runs the pure decisions on full and slim objects and fails when a
 * field they read is dropped):
 * - VolumeSnapshot: metadata name, namespace, uid, resourceVersion, creationTimestamp,
 *   deletionTimestamp, generation; labels and annotations under `snapcron.io/` (schedule, pvc,
 *   hold, scheduled-at); spec.source, spec.volumeSnapshotClassName; status readyToUse,
 *   creationTime, restoreSize, error {message, time}, boundVolumeSnapshotContentName, and a
 *   group member's volumeGroupSnapshotName (from status, else its owner reference).
 * - VolumeGroupSnapshot: metadata as for VolumeSnapshots; spec; status readyToUse,
 *   creationTime, error, boundVolumeGroupSnapshotContentName.
 * - PersistentVolumeClaim: metadata name, namespace, uid, resourceVersion, creationTimestamp,
 *   deletionTimestamp, every label (claim selectors), annotations under `snapcron.io/`;
 *   spec dataSource, dataSourceRef, resources.requests.storage, storageClassName, volumeName,
 *   accessModes; status phase and capacity.
 * - SnapshotSchedule: everything but metadata.managedFields and the
 *   `kubectl.kubernetes.io/last-applied-configuration` annotation.
 *
 * Strings that repeat across many objects are interned: names (namespaces, the schedule and
 * PVC label values, source PVC names, class names, sizes, phases: 100,000 snapshots of 10,000
 * PVCs hold 10,000 PVC-name strings, not 200,000) and timestamps (a run's snapshots share
 * scheduled-at; a burst's share their creation second). So are whole parts many objects have
 * alike (SharedParts: a PVC's snapshots share one labels and one spec object), frozen. Fields
 * the API object lacks are present as `undefined` (see below). The input is never modified,
 * and the output must not be (parts are shared). Measured (test/unit/
 * slim-memory.test.ts): about 590 B per cached object with store and indexes, against about
 * 3,100 B for the objects as the API server sends them.
 */
import type {
  PersistentVolumeClaim,
  TypedObjectReference,
  VolumeGroupSnapshot,
  VolumeSnapshot,
} from '../api/objects.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';

/** Prefix of the labels and annotations snapcron owns on snapshots and PVCs. */
export const SNAPCRON_PREFIX = 'snapcron.io/';
export const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * Returns one shared instance per distinct string. Bounded: two generations of at most
 * `maxEntries` each; when the young one fills up it becomes the old one and the previous old
 * one is dropped (strings still in use move back on their next lookup), so names of objects
 * long deleted do not pile up forever.
 */
export class Interner {
  private young = new Map<string, string>();
  private old = new Map<string, string>();
  private readonly max: number;

  constructor(maxEntries = 50_000) {
    this.max = maxEntries;
  }

  intern(s: string): string;
  intern(s: string | undefined): string | undefined;
  intern(s: string | undefined): string | undefined {
    if (s === undefined) return undefined;
    const hit = this.young.get(s);
    if (hit !== undefined) return hit;
    const aged = this.old.get(s);
    const value = aged ?? s;
    if (this.young.size >= this.max) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(value, value);
    return value;
  }

  get size(): number {
    return this.young.size + this.old.size;
  }
}

/** The interner for names (namespaces, label values, PVC and class names) unless given one. */
export const sharedInterner = new Interner(50_000);
/**
 * The interner for timestamps unless given one: small, since only recent ones repeat (the
 * snapshots of one run share scheduled-at, those of a burst share their creation second).
 */
export const timeInterner = new Interner(4_096);

/**
 * One shared, frozen instance per distinct content, for the parts many cached objects have
 * alike: every snapshot of a PVC carries the same snapcron labels and spec (whatever its
 * namespace), an app's PVCs the same labels, access modes and sizes. At 100,000 snapshots
 * that is about 14 MB of heap (bench/memory.ts). Frozen, since one instance is the field of
 * many objects (stored objects are read-only anyway, see index-cache.ts). Bounded like
 * Interner; a LIST brings a PVC's snapshots together (their names start with the PVC's), so a
 * small bound shares nearly all.
 */
export class SharedParts {
  private young = new Map<string, object>();
  private old = new Map<string, object>();
  private readonly max: number;

  constructor(maxEntries = 4_096) {
    this.max = maxEntries;
  }

  /** The instance for `key`, made (and frozen) by `make` the first time. */
  get<V extends object>(key: string, make: () => V): V {
    const hit = this.young.get(key);
    if (hit !== undefined) return hit as V;
    const value = this.old.get(key) ?? Object.freeze(make());
    if (this.young.size >= this.max) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
    return value as V;
  }

  /** A shared copy of a string map (labels, a capacity), or undefined. */
  record(kind: string, r: Record<string, string> | undefined): Record<string, string> | undefined {
    if (r === undefined) return undefined;
    let key = kind;
    for (const k in r) key += part(k) + part(r[k]);
    return this.get(key, () => r);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }
}

/** An unambiguous piece of a SharedParts key: length-prefixed, '-' for undefined. */
const part = (s: string | undefined): string => (s === undefined ? '-' : `${s.length}:${s}`);

/** The shared parts of slim objects unless given other. */
export const sharedParts = new SharedParts(4_096);

export type SlimVolumeSnapshot = VolumeSnapshot;
export type SlimPvc = PersistentVolumeClaim & {
  spec?: PersistentVolumeClaim['spec'] & { accessModes?: string[] };
  status?: { phase?: string; capacity?: Record<string, string> };
};

type Raw = Record<string, unknown>;
const obj = (v: unknown): Raw | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Raw) : undefined;
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
/** Timestamps stay as given (the API sends strings, interned; client-node's typed lists give Dates). */
const time = (v: unknown, times: Interner): string | Date | undefined =>
  typeof v === 'string' ? times.intern(v) : v instanceof Date ? v : undefined;

/** Copies the string entries of a map whose keys pass `keep`, values interned when asked. */
function pickStrings(
  v: unknown,
  keep: (key: string) => boolean,
  intern?: Interner,
): Record<string, string> | undefined {
  const m = obj(v);
  if (!m) return undefined;
  let out: Record<string, string> | undefined;
  for (const k in m) {
    const value = m[k];
    if (typeof value !== 'string' || !keep(k)) continue;
    out ??= {};
    out[k] = intern ? intern.intern(value) : value;
  }
  return out;
}

const ours = (k: string): boolean => k.startsWith(SNAPCRON_PREFIX);
const everything = (): boolean => true;

function slimRef(v: unknown, intern: Interner): TypedObjectReference | undefined {
  const r = obj(v);
  if (!r) return undefined;
  return {
    apiGroup: intern.intern(str(r.apiGroup)),
    kind: intern.intern(str(r.kind) ?? ''),
    name: str(r.name) ?? '',
    namespace: intern.intern(str(r.namespace)),
  };
}

/*
 * The slim objects are built as whole literals, every field present (undefined when the API
 * object has none): V8 then lays each one out in a single allocation with one shared shape,
 * about 100 bytes less per snapshot than adding fields one by one. `x?.y` and `?? default`
 * read them exactly as absent fields; JSON.stringify leaves them out.
 */

/** A VolumeSnapshot with only what snapcron reads (see the module comment). */
export function slimSnapshot(
  raw: unknown,
  intern: Interner = sharedInterner,
  times: Interner = timeInterner,
  shared: SharedParts = sharedParts,
): SlimVolumeSnapshot {
  const o = obj(raw) ?? {};
  const m = obj(o.metadata) ?? {};
  const spec = obj(o.spec) ?? {};
  const src = obj(spec.source) ?? {};
  const st = obj(o.status);
  const err = obj(st?.error);
  // A consistency group's member: its group, from status or (before the snapshot-controller
  // writes status) its owner reference.
  const group =
    str(st?.volumeGroupSnapshotName) ??
    (Array.isArray(m.ownerReferences)
      ? str((m.ownerReferences as unknown[]).map(obj).find((r) => r?.kind === 'VolumeGroupSnapshot')?.name)
      : undefined);
  const pvc = intern.intern(str(src.persistentVolumeClaimName));
  const content = str(src.volumeSnapshotContentName);
  const className = intern.intern(str(spec.volumeSnapshotClassName));
  return {
    apiVersion: intern.intern(str(o.apiVersion) ?? 'snapshot.storage.k8s.io/v1'),
    kind: intern.intern(str(o.kind) ?? 'VolumeSnapshot'),
    metadata: {
      name: str(m.name),
      namespace: intern.intern(str(m.namespace)),
      uid: str(m.uid),
      resourceVersion: str(m.resourceVersion),
      generation: typeof m.generation === 'number' ? m.generation : undefined,
      creationTimestamp: time(m.creationTimestamp, times),
      deletionTimestamp: time(m.deletionTimestamp, times),
      // schedule, pvc, hold: the same on every snapshot of a PVC.
      labels: shared.record('L', pickStrings(m.labels, ours, intern)),
      // scheduled-at (its string shared by a run's snapshots; a shared object would not pay for
      // its SharedParts entry, measured: the PVCs of a run are far apart in a LIST).
      annotations: pickStrings(m.annotations, ours, times),
    },
    spec: shared.get(`S${part(pvc)}${part(content)}${part(className)}`, () => ({
      source: Object.freeze({ persistentVolumeClaimName: pvc, volumeSnapshotContentName: content }),
      volumeSnapshotClassName: className,
    })),
    status:
      st || group
        ? {
            readyToUse: typeof st?.readyToUse === 'boolean' ? st.readyToUse : undefined,
            creationTime: times.intern(str(st?.creationTime)),
            restoreSize: intern.intern(str(st?.restoreSize)),
            boundVolumeSnapshotContentName: str(st?.boundVolumeSnapshotContentName),
            error: err ? { message: str(err.message), time: str(err.time) } : undefined,
            volumeGroupSnapshotName: group,
          }
        : undefined,
  };
}

/** A VolumeGroupSnapshot with only what snapcron reads: metadata as for snapshots, selector, class, status. */
export function slimGroupSnapshot(
  raw: unknown,
  intern: Interner = sharedInterner,
  times: Interner = timeInterner,
): VolumeGroupSnapshot {
  const o = obj(raw) ?? {};
  const m = obj(o.metadata) ?? {};
  const spec = obj(o.spec) ?? {};
  const st = obj(o.status);
  const err = obj(st?.error);
  return {
    apiVersion: intern.intern(str(o.apiVersion) ?? 'groupsnapshot.storage.k8s.io/v1'),
    kind: intern.intern(str(o.kind) ?? 'VolumeGroupSnapshot'),
    metadata: {
      name: str(m.name),
      namespace: intern.intern(str(m.namespace)),
      uid: str(m.uid),
      resourceVersion: str(m.resourceVersion),
      creationTimestamp: time(m.creationTimestamp, times),
      deletionTimestamp: time(m.deletionTimestamp, times),
      labels: pickStrings(m.labels, ours, intern),
      annotations: pickStrings(m.annotations, ours, times),
    },
    spec: {
      source: obj(spec.source) ?? {},
      volumeGroupSnapshotClassName: intern.intern(str(spec.volumeGroupSnapshotClassName)),
    },
    status: st
      ? {
          readyToUse: typeof st.readyToUse === 'boolean' ? st.readyToUse : undefined,
          creationTime: times.intern(str(st.creationTime)),
          boundVolumeGroupSnapshotContentName: str(st.boundVolumeGroupSnapshotContentName),
          error: err ? { message: str(err.message), time: str(err.time) } : undefined,
        }
      : undefined,
  };
}

/** A PersistentVolumeClaim with only what snapcron reads (see the module comment). */
export function slimPvc(
  raw: unknown,
  intern: Interner = sharedInterner,
  times: Interner = timeInterner,
  shared: SharedParts = sharedParts,
): SlimPvc {
  const o = obj(raw) ?? {};
  const m = obj(o.metadata) ?? {};
  const sp = obj(o.spec);
  const st = obj(o.status);
  const storage = str(obj(obj(sp?.resources)?.requests)?.storage);
  return {
    apiVersion: intern.intern(str(o.apiVersion) ?? 'v1'),
    kind: intern.intern(str(o.kind) ?? 'PersistentVolumeClaim'),
    metadata: {
      name: str(m.name),
      namespace: intern.intern(str(m.namespace)),
      uid: str(m.uid),
      resourceVersion: str(m.resourceVersion),
      creationTimestamp: time(m.creationTimestamp, times),
      deletionTimestamp: time(m.deletionTimestamp, times),
      // Every label: claim selectors may name any of them. An app's PVCs have the same.
      labels: shared.record('L', pickStrings(m.labels, everything, intern)),
      annotations: pickStrings(m.annotations, ours),
    },
    spec: sp
      ? {
          dataSource: slimRef(sp.dataSource, intern),
          dataSourceRef: slimRef(sp.dataSourceRef, intern),
          resources:
            storage !== undefined
              ? shared.get(`R${part(storage)}`, () => ({
                  requests: Object.freeze({ storage: intern.intern(storage) }),
                }))
              : undefined,
          storageClassName: intern.intern(str(sp.storageClassName)),
          volumeName: str(sp.volumeName),
          accessModes: Array.isArray(sp.accessModes)
            ? accessModes(sp.accessModes, intern, shared)
            : undefined,
        }
      : undefined,
    status: st
      ? {
          phase: intern.intern(str(st.phase)),
          capacity: shared.record('C', pickStrings(st.capacity, everything, intern)),
        }
      : undefined,
  };
}

/** A PVC's access modes: one shared array per combination. */
function accessModes(v: unknown[], intern: Interner, shared: SharedParts): string[] {
  const modes = v.filter((a): a is string => typeof a === 'string');
  return shared.get(`M${modes.map(part).join('')}`, () => modes.map((a) => intern.intern(a)));
}

/** A SnapshotSchedule without metadata.managedFields and the kubectl last-applied annotation. */
export function slimSchedule(raw: unknown, intern: Interner = sharedInterner): SnapshotSchedule {
  const o = obj(raw) ?? {};
  const m = obj(o.metadata);
  const out: Raw = { ...o };
  out.apiVersion ??= 'snapcron.io/v1';
  out.kind ??= 'SnapshotSchedule';
  if (m) {
    const metadata: Raw = { ...m };
    delete metadata.managedFields;
    const annotations = metadata.annotations;
    delete metadata.annotations;
    if (typeof metadata.namespace === 'string') metadata.namespace = intern.intern(metadata.namespace);
    const kept = pickStrings(annotations, (k) => k !== LAST_APPLIED);
    if (kept) metadata.annotations = kept;
    out.metadata = metadata;
  }
  return out as unknown as SnapshotSchedule;
}
