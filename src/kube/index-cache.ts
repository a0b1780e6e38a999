/**
 * An in-memory object store with secondary indexes, fed by a Reflector (reflector.ts).
 *
 * Objects are keyed by (namespace, name); cluster-scoped objects live under namespace ''.
 * Every index is a map from an index key to the set of objects having it, updated on each
 * add, update and delete at a cost that does not depend on how many objects are stored (one
 * delete and one add per index key of the old and new object). A set of up to SMALL_BUCKET
 * objects is an array (half a Set's size; the pvc index holds one per PVC, typically of a few
 * snapshots), a larger one a Set; both keep insertion order. The namespace index is the
 * primary map itself.
 *
 * Stored objects are shared with every reader: treat them as read-only.
 */
import type { LabelSelector } from '../api/types.generated.ts';
import { LABEL_SCHEDULE, SNAPSHOT_GROUP, SNAPSHOT_KIND } from '../api/constants.ts';
import { labelValue } from '../snapshot/naming.ts';
import { matchesSelector } from './selector.ts';

export interface StoredMeta {
  name?: string | undefined;
  namespace?: string | undefined;
  resourceVersion?: string | undefined;
  labels?: Record<string, string> | undefined;
}

/** The part of a Kubernetes object the store needs. */
export interface Keyed {
  metadata?: StoredMeta | undefined;
}

/** The index keys of an object: none, one, or several (e.g. one per label). */
export type IndexFunc<T> = (obj: T) => string | readonly string[] | undefined;
export type StoreVerb = 'add' | 'update' | 'delete';
/** `old` is the object previously stored: set for update, and for delete (the last stored state). */
export type StoreHandler<T> = (obj: T, old?: T) => void;

/** The built-in index over metadata.namespace (cluster-scoped objects: ''). */
export const NAMESPACE_INDEX = 'namespace';

export interface StoreOptions<T> {
  /** Named secondary indexes; `namespace` is always there. */
  indexers?: Record<string, IndexFunc<T>>;
  /** A handler threw: it does not stop the other handlers nor the store (default: rethrown later). */
  onHandlerError?: (err: unknown, verb: StoreVerb, obj: T) => void;
}

/** What a replace did, for logs and tests. */
export interface ReplaceResult {
  added: number;
  updated: number;
  unchanged: number;
  deleted: number;
}

/** The objects of one index key: an array while small (no duplicates), else a Set. */
type Bucket<T> = T[] | Set<T>;
/** Largest bucket kept as an array; a Set shrinks back to an array below half of it. */
const SMALL_BUCKET = 16;
const bucketSize = <T>(b: Bucket<T>): number => (Array.isArray(b) ? b.length : b.size);

const ns = (o: Keyed): string => o.metadata?.namespace ?? '';
const nm = (o: Keyed): string => o.metadata?.name ?? '';

function keysOf<T>(f: IndexFunc<T>, o: T): readonly string[] {
  const k = f(o);
  return k === undefined ? [] : typeof k === 'string' ? [k] : k;
}

/** Changes made to any store in this process: IndexedStore.generation's clock. */
let changes = 0;

export class IndexedStore<T extends Keyed> {
  private readonly byNamespace = new Map<string, Map<string, T>>();
  private readonly indexers: [string, IndexFunc<T>][];
  private readonly indexes = new Map<string, Map<string, Bucket<T>>>();
  private readonly handlers: Record<StoreVerb, StoreHandler<T>[]> = { add: [], update: [], delete: [] };
  private readonly onHandlerError: ((err: unknown, verb: StoreVerb, obj: T) => void) | undefined;
  private count = 0;
  /** Each namespace's last change, on the clock all stores share (kept after it empties). */
  private readonly changedAt = new Map<string, number>();

  constructor(o: StoreOptions<T> = {}) {
    this.indexers = Object.entries(o.indexers ?? {});
    for (const [name] of this.indexers) {
      if (name === NAMESPACE_INDEX) throw new Error(`index name '${NAMESPACE_INDEX}' is built in`);
      this.indexes.set(name, new Map());
    }
    this.onHandlerError = o.onHandlerError;
  }

  /** Number of stored objects. */
  get size(): number {
    return this.count;
  }

  /** Names of the indexes, `namespace` included. */
  get indexNames(): string[] {
    return [NAMESPACE_INDEX, ...this.indexes.keys()];
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.byNamespace.get(namespace ?? '')?.get(name);
  }

  /** Every object, or those of one namespace. A new array each call. */
  list(namespace?: string): T[] {
    if (namespace !== undefined) return [...(this.byNamespace.get(namespace)?.values() ?? [])];
    const out: T[] = [];
    for (const m of this.byNamespace.values()) for (const o of m.values()) out.push(o);
    return out;
  }

  /**
   * When an object of the namespace was last added, replaced or removed (0: never), on a count
   * of changes that every store shares: it moves only then, and never to a value any store has
   * had before, so work derived from a namespace's objects is still good while it is unchanged.
   */
  generation(namespace: string): number {
    return this.changedAt.get(namespace) ?? 0;
  }

  /** The namespaces that hold at least one object. */
  namespaces(): string[] {
    return [...this.byNamespace.keys()];
  }

  /** The objects with index key `key` in index `index`. A new array each call. */
  byIndex(index: string, key: string): T[] {
    if (index === NAMESPACE_INDEX) return this.list(key);
    return [...(this.bucketsOf(index).get(key) ?? [])];
  }

  /** How many objects `byIndex(index, key)` would return, without building the array. */
  countByIndex(index: string, key: string): number {
    if (index === NAMESPACE_INDEX) return this.byNamespace.get(key)?.size ?? 0;
    const bucket = this.bucketsOf(index).get(key);
    return bucket ? bucketSize(bucket) : 0;
  }

  /** The keys an index currently holds (for tests and debugging). */
  indexKeys(index: string): string[] {
    if (index === NAMESPACE_INDEX) return this.namespaces();
    return [...this.bucketsOf(index).keys()];
  }

  on(verb: StoreVerb, cb: StoreHandler<T>): void {
    this.handlers[verb].push(cb);
  }

  off(verb: StoreVerb, cb: StoreHandler<T>): void {
    const list = this.handlers[verb];
    const i = list.indexOf(cb);
    if (i >= 0) list.splice(i, 1);
  }

  /** Adds or replaces an object (a watch ADDED/MODIFIED) and tells the handlers. */
  upsert(obj: T): 'add' | 'update' {
    const old = this.put(obj);
    if (old) this.emit('update', obj, old);
    else this.emit('add', obj);
    return old ? 'update' : 'add';
  }

  /**
   * Removes an object (a watch DELETED). `finalState` is what the watch said about it; the
   * handlers get it (else the stored object) and the stored object as `old`.
   */
  remove(namespace: string | undefined, name: string, finalState?: T): T | undefined {
    const old = this.take(namespace ?? '', name);
    if (old) this.emit('delete', finalState ?? old, old);
    return old;
  }

  /**
   * Makes the store hold exactly `items` (a LIST): adds the new, updates those whose
   * resourceVersion changed (an object whose resourceVersion did not change is kept as
   * stored, no event), deletes those that vanished. The store is fully replaced before the
   * first handler runs, so handlers never see it half way.
   */
  replace(items: Iterable<T>): ReplaceResult {
    const result: ReplaceResult = { added: 0, updated: 0, unchanged: 0, deleted: 0 };
    // Flat (verb, object, old) triples: a 100,000-object first LIST would otherwise leave
    // 100,000 small arrays (7 MB) to the old generation.
    const events: (StoreVerb | T | undefined)[] = [];
    const keep = new Set<T>();
    for (const obj of items) {
      const existing = this.get(ns(obj), nm(obj));
      const rv = obj.metadata?.resourceVersion;
      if (existing && rv !== undefined && existing.metadata?.resourceVersion === rv) {
        keep.add(existing);
        result.unchanged++;
        continue;
      }
      this.put(obj);
      keep.add(obj);
      if (existing) {
        result.updated++;
        events.push('update', obj, existing);
      } else {
        result.added++;
        events.push('add', obj, undefined);
      }
    }
    const gone: T[] = [];
    for (const m of this.byNamespace.values()) for (const o of m.values()) if (!keep.has(o)) gone.push(o);
    for (const o of gone) {
      this.take(ns(o), nm(o));
      result.deleted++;
      events.push('delete', o, o);
    }
    for (let i = 0; i < events.length; i += 3)
      this.emit(events[i] as StoreVerb, events[i + 1] as T, events[i + 2] as T | undefined);
    return result;
  }

  private bucketsOf(index: string): Map<string, Bucket<T>> {
    const buckets = this.indexes.get(index);
    if (!buckets) throw new Error(`no index '${index}' (have: ${this.indexNames.join(', ')})`);
    return buckets;
  }

  /** Stores obj, updating every index; returns the object it replaced. */
  private put(obj: T): T | undefined {
    const namespace = ns(obj);
    let m = this.byNamespace.get(namespace);
    if (!m) {
      m = new Map();
      this.byNamespace.set(namespace, m);
    }
    const name = nm(obj);
    const old = m.get(name);
    m.set(name, obj);
    this.changedAt.set(namespace, ++changes);
    if (!old) this.count++;
    for (const [index, f] of this.indexers) {
      const buckets = this.indexes.get(index) as Map<string, Bucket<T>>;
      if (old) for (const k of keysOf(f, old)) this.unindex(buckets, k, old);
      for (const k of keysOf(f, obj)) {
        const bucket = buckets.get(k);
        if (!bucket) buckets.set(k, [obj]);
        else if (!Array.isArray(bucket)) bucket.add(obj);
        else if (!bucket.includes(obj)) {
          if (bucket.length < SMALL_BUCKET) bucket.push(obj);
          else buckets.set(k, new Set(bucket).add(obj));
        }
      }
    }
    return old;
  }

  private take(namespace: string, name: string): T | undefined {
    const m = this.byNamespace.get(namespace);
    const old = m?.get(name);
    if (!m || !old) return undefined;
    m.delete(name);
    this.changedAt.set(namespace, ++changes);
    if (m.size === 0) this.byNamespace.delete(namespace);
    this.count--;
    for (const [index, f] of this.indexers) {
      const buckets = this.indexes.get(index) as Map<string, Bucket<T>>;
      for (const k of keysOf(f, old)) this.unindex(buckets, k, old);
    }
    return old;
  }

  private unindex(buckets: Map<string, Bucket<T>>, key: string, obj: T): void {
    const bucket = buckets.get(key);
    if (!bucket) return;
    if (Array.isArray(bucket)) {
      const i = bucket.indexOf(obj);
      if (i >= 0) bucket.splice(i, 1);
    } else {
      bucket.delete(obj);
      if (bucket.size < SMALL_BUCKET / 2) buckets.set(key, [...bucket]);
    }
    if (bucketSize(bucket) === 0) buckets.delete(key);
  }

  private emit(verb: StoreVerb, obj: T, old?: T): void {
    let failure: { err: unknown } | undefined;
    for (const cb of this.handlers[verb].slice()) {
      try {
        cb(obj, old);
      } catch (err) {
        if (this.onHandlerError) this.onHandlerError(err, verb, obj);
        else failure ??= { err };
      }
    }
    if (failure) throw failure.err;
  }
}

// ---- snapcron's indexes -------------------------------------------------------------------

/** Index of VolumeSnapshots by (namespace, `snapcron.io/schedule` label value). */
export const SCHEDULE_INDEX = 'schedule';
/** Index of VolumeSnapshots by (namespace, spec.source.persistentVolumeClaimName). */
export const SOURCE_PVC_INDEX = 'pvc';
export const GROUP_MEMBER_INDEX = 'group';
/** Index of PVCs by (namespace, label key=value), one key per label. */
export const LABEL_INDEX = 'label';
/**
 * Index of PVCs by namespace, holding only those not yet Bound whose dataSource or
 * dataSourceRef names a VolumeSnapshot: the restores in progress, whose sources retention
 * must not delete (snapshotsInUse).
 */
export const RESTORING_INDEX = 'restoring';

/**
 * Index keys. A namespace never holds '/', so `<namespace>/<rest>` cannot be ambiguous.
 * The schedule key takes the label value (what the label holds: `labelValue(name)`, which
 * hashes names over 63 characters); see snapshotsOfSchedule for lookup by schedule name.
 */
export const scheduleIndexKey = (namespace: string, labelValue: string): string =>
  `${namespace}/${labelValue}`;
export const sourcePvcIndexKey = (namespace: string, pvc: string): string => `${namespace}/${pvc}`;
export const labelIndexKey = (namespace: string, key: string, value: string): string =>
  `${namespace}/${key}=${value}`;

/** The VolumeSnapshots a schedule took (label `snapcron.io/schedule`), by the schedule's name. */
export function snapshotsOfSchedule<T extends Keyed>(
  store: IndexedStore<T>,
  namespace: string,
  scheduleName: string,
): T[] {
  return store.byIndex(SCHEDULE_INDEX, scheduleIndexKey(namespace, labelValue(scheduleName)));
}

/** The VolumeSnapshots of one PVC (spec.source.persistentVolumeClaimName), whoever took them. */
export function snapshotsOfPvc<T extends Keyed>(store: IndexedStore<T>, namespace: string, pvc: string): T[] {
  return store.byIndex(SOURCE_PVC_INDEX, sourcePvcIndexKey(namespace, pvc));
}

/**
 * The index snapcron keeps on SnapshotSchedules: `schedule`, by (namespace, the value their
 * snapshots' `snapcron.io/schedule` label holds), so a snapshot event finds its schedule at
 * once (schedulesOfSnapshot), hashed long names included.
 */
export function scheduleIndexers<T extends Keyed>(): Record<string, IndexFunc<T>> {
  return { [SCHEDULE_INDEX]: (s) => scheduleIndexKey(ns(s), labelValue(nm(s))) };
}

/** The schedules (normally one) whose snapshot this is, from a store with scheduleIndexers. */
export function schedulesOfSnapshot<T extends Keyed>(
  store: IndexedStore<T>,
  snapshot: Keyed,
  scheduleLabel = LABEL_SCHEDULE,
): T[] {
  const v = snapshot.metadata?.labels?.[scheduleLabel];
  return v === undefined ? [] : store.byIndex(SCHEDULE_INDEX, scheduleIndexKey(ns(snapshot), v));
}

interface SnapshotLike extends Keyed {
  spec?: { source?: { persistentVolumeClaimName?: string | undefined } | undefined } | undefined;
  status?: object | undefined;
}

/** The indexes snapcron keeps on VolumeSnapshots: `schedule` and `pvc`. */
export function snapshotIndexers<T extends SnapshotLike>(
  scheduleLabel = LABEL_SCHEDULE,
): Record<string, IndexFunc<T>> {
  return {
    [SCHEDULE_INDEX]: (s) => {
      const v = s.metadata?.labels?.[scheduleLabel];
      return v === undefined ? undefined : scheduleIndexKey(ns(s), v);
    },
    [SOURCE_PVC_INDEX]: (s) => {
      const pvc = s.spec?.source?.persistentVolumeClaimName;
      return pvc === undefined ? undefined : sourcePvcIndexKey(ns(s), pvc);
    },
    [GROUP_MEMBER_INDEX]: (s) => {
      const group = (s.status as { volumeGroupSnapshotName?: string } | undefined)?.volumeGroupSnapshotName;
      return group === undefined ? undefined : sourcePvcIndexKey(ns(s), group);
    },
  };
}

/** The member VolumeSnapshots of one VolumeGroupSnapshot (status.volumeGroupSnapshotName, slim). */
export function membersOfGroup<T extends Keyed>(
  store: IndexedStore<T>,
  namespace: string,
  group: string,
): T[] {
  return store.byIndex(GROUP_MEMBER_INDEX, sourcePvcIndexKey(namespace, group));
}

/** The index on VolumeGroupSnapshots: `schedule`, by their snapcron.io/schedule label, like snapshots. */
export function groupSnapshotIndexers<T extends Keyed>(): Record<string, IndexFunc<T>> {
  return {
    [SCHEDULE_INDEX]: (s) => {
      const v = s.metadata?.labels?.[LABEL_SCHEDULE];
      return v === undefined ? undefined : scheduleIndexKey(ns(s), v);
    },
  };
}

interface PvcLike extends Keyed {
  spec?: { dataSource?: RefLike | undefined; dataSourceRef?: RefLike | undefined } | undefined;
  status?: { phase?: string | undefined } | undefined;
}
interface RefLike {
  apiGroup?: string | undefined;
  kind?: string | undefined;
}
const isSnapshotRef = (r: RefLike | undefined): boolean =>
  r?.kind === SNAPSHOT_KIND && (r.apiGroup ?? '') === SNAPSHOT_GROUP;

/** The indexes snapcron keeps on PVCs: `label` (one key per label) and `restoring`. */
export function pvcIndexers<T extends PvcLike>(): Record<string, IndexFunc<T>> {
  return {
    [RESTORING_INDEX]: (p) =>
      p.status?.phase !== 'Bound' &&
      (isSnapshotRef(p.spec?.dataSource) || isSnapshotRef(p.spec?.dataSourceRef))
        ? ns(p)
        : undefined,
    [LABEL_INDEX]: (p) => {
      const labels = p.metadata?.labels;
      if (!labels) return undefined;
      const namespace = ns(p);
      const keys: string[] = [];
      for (const k in labels) keys.push(labelIndexKey(namespace, k, labels[k] as string));
      return keys;
    },
  };
}

/**
 * The PVCs a schedule's pass needs, from the indexes: those its claim selector matches, plus
 * the namespace's restores in progress (RESTORING_INDEX). `decide`, `planRetention` and
 * `planDeletion` given these decide exactly as given every PVC of the namespace: they select
 * with the same selector, and only restores in progress protect snapshots (snapshotsInUse).
 */
export function pvcsForSchedule<T extends PvcLike>(
  store: IndexedStore<T>,
  namespace: string,
  selector: LabelSelector | undefined,
): T[] {
  const selected = selectByLabels(store, namespace, selector);
  const restoring = store.byIndex(RESTORING_INDEX, namespace);
  if (restoring.length === 0) return selected;
  const seen = new Set(selected);
  for (const p of restoring) if (!seen.has(p)) selected.push(p);
  return selected;
}

/**
 * The objects of `namespace` that a label selector matches, starting from the smallest
 * candidate set the label index offers: the bucket of one `matchLabels` pair, or the union of
 * an `In` expression's value buckets, else the whole namespace. Every candidate is then checked
 * against the full selector, so the answer is exactly `list(namespace).filter(matches)`.
 * The store must have the `label` index (pvcIndexers).
 */
export function selectByLabels<T extends Keyed>(
  store: IndexedStore<T>,
  namespace: string,
  selector: LabelSelector | undefined,
): T[] {
  let best: string[] | undefined;
  let bestSize = Infinity;
  const consider = (keys: string[]): void => {
    let size = 0;
    for (const k of keys) size += store.countByIndex(LABEL_INDEX, k);
    if (size < bestSize) {
      best = keys;
      bestSize = size;
    }
  };
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {}))
    consider([labelIndexKey(namespace, k, v)]);
  for (const req of selector?.matchExpressions ?? []) {
    if (req.operator === 'In')
      consider([...new Set(req.values ?? [])].map((v) => labelIndexKey(namespace, req.key, v)));
  }
  const keys: string[] | undefined = best;
  const candidates = keys ? keys.flatMap((k) => store.byIndex(LABEL_INDEX, k)) : store.list(namespace);
  return candidates.filter((o) => matchesSelector(o.metadata?.labels, selector));
}
