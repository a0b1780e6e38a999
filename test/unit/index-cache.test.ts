import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LabelSelector } from '../../src/api/types.generated.ts';
import {
  IndexedStore,
  LABEL_INDEX,
  labelIndexKey,
  NAMESPACE_INDEX,
  pvcIndexers,
  pvcsForSchedule,
  RESTORING_INDEX,
  GROUP_MEMBER_INDEX,
  scheduleIndexers,
  schedulesOfSnapshot,
  SCHEDULE_INDEX,
  scheduleIndexKey,
  selectByLabels,
  snapshotIndexers,
  snapshotsOfPvc,
  snapshotsOfSchedule,
  SOURCE_PVC_INDEX,
  sourcePvcIndexKey,
  type StoreVerb,
} from '../../src/kube/index-cache.ts';
import { matchesSelector } from '../../src/kube/selector.ts';
import { labelValue } from '../../src/snapshot/naming.ts';

interface Obj {
  metadata: { name: string; namespace?: string; resourceVersion: string; labels?: Record<string, string> };
  spec?: {
    source?: { persistentVolumeClaimName?: string };
    dataSource?: { apiGroup?: string; kind: string; name: string };
  };
  status?: { phase?: string; volumeGroupSnapshotName?: string };
}

let rv = 0;
const obj = (
  namespace: string | undefined,
  name: string,
  labels?: Record<string, string>,
  pvc?: string,
  version = String(++rv),
): Obj => ({
  metadata: {
    name,
    ...(namespace !== undefined ? { namespace } : {}),
    resourceVersion: version,
    ...(labels ? { labels } : {}),
  },
  ...(pvc !== undefined ? { spec: { source: { persistentVolumeClaimName: pvc } } } : {}),
});

const newStore = (): IndexedStore<Obj> =>
  new IndexedStore<Obj>({ indexers: { ...snapshotIndexers<Obj>(), ...pvcIndexers<Obj>() } });

/** Every index recomputed from scratch from list(): what the incremental bookkeeping must equal. */
function bruteForce(store: IndexedStore<Obj>): Record<string, Map<string, Set<Obj>>> {
  const out: Record<string, Map<string, Set<Obj>>> = {
    [NAMESPACE_INDEX]: new Map(),
    [SCHEDULE_INDEX]: new Map(),
    [SOURCE_PVC_INDEX]: new Map(),
    [LABEL_INDEX]: new Map(),
    [RESTORING_INDEX]: new Map(),
    [GROUP_MEMBER_INDEX]: new Map(),
  };
  const add = (index: string, key: string, o: Obj): void => {
    const m = out[index] as Map<string, Set<Obj>>;
    if (!m.has(key)) m.set(key, new Set());
    m.get(key)?.add(o);
  };
  for (const o of store.list()) {
    const ns = o.metadata.namespace ?? '';
    add(NAMESPACE_INDEX, ns, o);
    const schedule = o.metadata.labels?.['snapcron.io/schedule'];
    if (schedule !== undefined) add(SCHEDULE_INDEX, scheduleIndexKey(ns, schedule), o);
    const pvc = o.spec?.source?.persistentVolumeClaimName;
    if (pvc !== undefined) add(SOURCE_PVC_INDEX, sourcePvcIndexKey(ns, pvc), o);
    const group = o.status?.volumeGroupSnapshotName;
    if (group !== undefined) add(GROUP_MEMBER_INDEX, sourcePvcIndexKey(ns, group), o);
    for (const [k, v] of Object.entries(o.metadata.labels ?? {}))
      add(LABEL_INDEX, labelIndexKey(ns, k, v), o);
    const ds = o.spec?.dataSource;
    if (
      o.status?.phase !== 'Bound' &&
      ds?.kind === 'VolumeSnapshot' &&
      ds.apiGroup === 'snapshot.storage.k8s.io'
    )
      add(RESTORING_INDEX, ns, o);
  }
  return out;
}

function expectIndexesConsistent(store: IndexedStore<Obj>): void {
  const want = bruteForce(store);
  for (const index of store.indexNames) {
    const expected = want[index] as Map<string, Set<Obj>>;
    // No stale (empty or leftover) buckets: exactly the keys some object has.
    expect(new Set(store.indexKeys(index)), index).toEqual(new Set(expected.keys()));
    for (const [key, objs] of expected) {
      expect(new Set(store.byIndex(index, key)), `${index} ${key}`).toEqual(objs);
      expect(store.countByIndex(index, key)).toBe(objs.size);
    }
  }
  expect(store.size).toBe(store.list().length);
}

describe('IndexedStore', () => {
  it('gets, lists and indexes objects; updates move them between buckets; deletes empty the buckets', () => {
    const store = newStore();
    const events: [StoreVerb, string, string | undefined][] = [];
    for (const verb of ['add', 'update', 'delete'] as const)
      store.on(verb, (o, old) =>
        events.push([verb, o.metadata.resourceVersion, old?.metadata.resourceVersion]),
      );

    const a = obj('ns1', 'a', { 'snapcron.io/schedule': 'nightly', app: 'web' }, 'data-0', '1');
    const b = obj('ns1', 'b', { 'snapcron.io/schedule': 'nightly' }, 'data-1', '2');
    const c = obj('ns2', 'a', { 'snapcron.io/schedule': 'nightly' }, 'data-0', '3');
    const cluster = obj(undefined, 'pv-1', undefined, undefined, '4');
    for (const o of [a, b, c, cluster]) store.upsert(o);

    expect(store.get('ns1', 'a')).toBe(a);
    expect(store.get('ns2', 'a')).toBe(c);
    expect(store.get(undefined, 'pv-1')).toBe(cluster);
    expect(store.get('', 'pv-1')).toBe(cluster);
    expect(store.list('ns1')).toEqual([a, b]);
    expect(store.list()).toHaveLength(4);
    expect(store.byIndex('namespace', 'ns2')).toEqual([c]);
    expect(store.byIndex('schedule', scheduleIndexKey('ns1', 'nightly'))).toEqual([a, b]);
    expect(snapshotsOfSchedule(store, 'ns1', 'nightly')).toEqual([a, b]);
    expect(snapshotsOfPvc(store, 'ns1', 'data-0')).toEqual([a]);
    expect(store.byIndex('label', labelIndexKey('ns1', 'app', 'web'))).toEqual([a]);
    expectIndexesConsistent(store);

    // a moves to another schedule and PVC and loses its app label.
    const a2 = obj('ns1', 'a', { 'snapcron.io/schedule': 'weekly' }, 'data-9', '5');
    expect(store.upsert(a2)).toBe('update');
    expect(snapshotsOfSchedule(store, 'ns1', 'nightly')).toEqual([b]);
    expect(snapshotsOfSchedule(store, 'ns1', 'weekly')).toEqual([a2]);
    expect(snapshotsOfPvc(store, 'ns1', 'data-0')).toEqual([]);
    expect(store.indexKeys('label')).not.toContain(labelIndexKey('ns1', 'app', 'web'));
    expectIndexesConsistent(store);

    const final = obj('ns1', 'a', { 'snapcron.io/schedule': 'weekly' }, 'data-9', '6');
    expect(store.remove('ns1', 'a', final)).toBe(a2);
    expect(store.remove('ns1', 'a')).toBeUndefined();
    expect(store.get('ns1', 'a')).toBeUndefined();
    expect(store.indexKeys('schedule')).not.toContain(scheduleIndexKey('ns1', 'weekly'));
    expectIndexesConsistent(store);

    expect(events).toEqual([
      ['add', '1', undefined],
      ['add', '2', undefined],
      ['add', '3', undefined],
      ['add', '4', undefined],
      ['update', '5', '1'],
      // delete: the watch's final state, and the stored one as old.
      ['delete', '6', '5'],
    ]);
  });

  it('finds schedules by name even when the label holds a hashed value', () => {
    const store = newStore();
    const long = 'a-schedule-name-that-is-longer-than-sixty-three-characters-for-sure-yes';
    const s = obj('ns', 's', { 'snapcron.io/schedule': labelValue(long) }, 'p');
    store.upsert(s);
    expect(labelValue(long)).not.toBe(long);
    expect(snapshotsOfSchedule(store, 'ns', long)).toEqual([s]);
  });

  it('finds the schedule of a snapshot by its label, hashed long names included', () => {
    const schedules = new IndexedStore<Obj>({ indexers: scheduleIndexers<Obj>() });
    const long = 'a-schedule-name-that-is-longer-than-sixty-three-characters-for-sure-yes';
    const short = obj('ns', 'nightly');
    const hashed = obj('ns', long);
    for (const o of [short, hashed, obj('other', 'nightly')]) schedules.upsert(o);
    const snapOf = (name: string, ns = 'ns'): Obj =>
      obj(ns, 's', { 'snapcron.io/schedule': labelValue(name) });
    expect(schedulesOfSnapshot(schedules, snapOf('nightly'))).toEqual([short]);
    expect(schedulesOfSnapshot(schedules, snapOf(long))).toEqual([hashed]);
    expect(schedulesOfSnapshot(schedules, snapOf('gone'))).toEqual([]);
    expect(schedulesOfSnapshot(schedules, obj('ns', 'manual'))).toEqual([]);
  });

  it('replace: add/update for the new and changed, delete for the vanished, nothing for the unchanged; handlers see the whole new state', () => {
    const store = newStore();
    const keep = obj('ns', 'keep', { app: 'x' }, undefined, '10');
    const change = obj('ns', 'change', { app: 'x' }, undefined, '11');
    const vanish = obj('ns', 'vanish', { app: 'x' }, undefined, '12');
    for (const o of [keep, change, vanish]) store.upsert(o);

    const seen: string[] = [];
    for (const verb of ['add', 'update', 'delete'] as const)
      store.on(verb, (o) => {
        // The store is fully replaced before the first handler runs.
        expect(store.get('ns', 'vanish')).toBeUndefined();
        expect(store.get('ns', 'new')).toBeDefined();
        seen.push(`${verb} ${o.metadata.name}`);
      });
    const keepCopy = obj('ns', 'keep', { app: 'x' }, undefined, '10');
    const changed = obj('ns', 'change', { app: 'y' }, undefined, '13');
    const added = obj('ns', 'new', { app: 'y' }, undefined, '14');
    expect(store.replace([keepCopy, changed, added])).toEqual({
      added: 1,
      updated: 1,
      unchanged: 1,
      deleted: 1,
    });
    expect(seen.sort()).toEqual(['add new', 'delete vanish', 'update change']);
    // The unchanged object is kept as stored (no new copy).
    expect(store.get('ns', 'keep')).toBe(keep);
    expect(store.byIndex('label', labelIndexKey('ns', 'app', 'y'))).toHaveLength(2);
    expectIndexesConsistent(store);
  });

  it("generation: moves when a namespace's objects change and only then, never to a value any store had", () => {
    const a = newStore();
    const b = newStore();
    expect(a.generation('ns')).toBe(0);
    const seen = new Set<number>();
    const moved = (store: IndexedStore<Obj>, ns: string, change: () => void): void => {
      const before = store.generation(ns);
      const other = store.generation('other');
      change();
      const after = store.generation(ns);
      expect(after).toBeGreaterThan(before);
      expect(seen.has(after)).toBe(false);
      seen.add(after);
      expect(store.generation('other')).toBe(other);
    };
    moved(a, 'ns', () => a.upsert(obj('ns', 'x', { app: 'x' }, undefined, '1')));
    moved(b, 'ns', () => b.upsert(obj('ns', 'x', { app: 'x' }, undefined, '1')));
    moved(a, 'ns', () => a.upsert(obj('ns', 'x', { app: 'y' }, undefined, '2')));
    moved(a, 'ns', () => a.remove('ns', 'x'));
    // Emptied, it keeps its last value; a LIST that changes nothing leaves it.
    expect(a.namespaces()).not.toContain('ns');
    expect(a.generation('ns')).toBeGreaterThan(0);
    moved(a, 'ns', () => a.replace([obj('ns', 'y', {}, undefined, '3')]));
    const h = a.generation('ns');
    a.replace([obj('ns', 'y', {}, undefined, '3')]);
    expect(a.generation('ns')).toBe(h);
    a.remove('ns', 'absent');
    expect(a.generation('ns')).toBe(h);
  });

  it('a throwing handler neither stops the others nor leaves the store half-updated', () => {
    const errors: unknown[] = [];
    const store = new IndexedStore<Obj>({
      indexers: pvcIndexers<Obj>(),
      onHandlerError: (err) => errors.push(err),
    });
    const calls: string[] = [];
    store.on('add', () => {
      throw new Error('boom');
    });
    store.on('add', (o) => calls.push(o.metadata.name));
    store.upsert(obj('ns', 'a', { k: 'v' }));
    expect(calls).toEqual(['a']);
    expect(errors).toHaveLength(1);
    expect(store.byIndex('label', labelIndexKey('ns', 'k', 'v'))).toHaveLength(1);
  });

  it('unknown index names are refused', () => {
    const store = newStore();
    expect(() => store.byIndex('nope', 'x')).toThrow(/no index 'nope'/);
    expect(() => new IndexedStore<Obj>({ indexers: { namespace: () => 'x' } })).toThrow(/built in/);
  });

  it('property: after any sequence of upserts, removes and replaces, every index equals a recomputation', () => {
    const names = fc.constantFrom('a', 'b', 'c', 'd');
    const namespaces = fc.constantFrom('n1', 'n2', '');
    const labels = fc.dictionary(
      fc.constantFrom('snapcron.io/schedule', 'app', 'tier'),
      fc.constantFrom('x', 'y', 'z'),
      { maxKeys: 3 },
    );
    const object = fc
      .tuple(
        namespaces,
        names,
        labels,
        fc.option(fc.constantFrom('p1', 'p2'), { nil: undefined }),
        fc.constantFrom(undefined, 'Bound', 'Pending'),
        fc.boolean(),
        fc.constantFrom(undefined, 'g1', 'g2'),
      )
      .map(([ns, name, l, pvc, phase, restoring, group]) => {
        const o = obj(ns === '' ? undefined : ns, name, l, pvc);
        if (restoring)
          o.spec = {
            ...o.spec,
            dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'snap' },
          };
        if (phase) o.status = { phase };
        if (group) o.status = { ...o.status, volumeGroupSnapshotName: group };
        return o;
      });
    const op = fc.oneof(
      object.map((o) => ({ kind: 'upsert' as const, o })),
      fc.tuple(namespaces, names).map(([ns, name]) => ({ kind: 'remove' as const, ns, name })),
      fc.array(object, { maxLength: 6 }).map((items) => ({ kind: 'replace' as const, items })),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const store = newStore();
        // A model: what get() must answer, by "ns/name".
        const model = new Map<string, Obj>();
        const key = (o: Obj): string => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
        let adds = 0;
        let deletes = 0;
        store.on('add', () => adds++);
        store.on('delete', () => deletes++);
        for (const step of ops) {
          if (step.kind === 'upsert') {
            store.upsert(step.o);
            model.set(key(step.o), step.o);
          } else if (step.kind === 'remove') {
            store.remove(step.ns, step.name);
            model.delete(`${step.ns}/${step.name}`);
          } else {
            // A LIST never holds one name twice.
            const unique = new Map(step.items.map((o) => [key(o), o]));
            store.replace(unique.values());
            model.clear();
            for (const [k, o] of unique) model.set(k, o);
          }
          expectIndexesConsistent(store);
          expect(store.size).toBe(model.size);
          for (const [k, o] of model) {
            const [ns = '', name = ''] = k.split('/');
            expect(store.get(ns, name)?.metadata.resourceVersion).toBe(o.metadata.resourceVersion);
          }
          expect(adds - deletes).toBe(model.size);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('pvcsForSchedule', () => {
  it('is what the selector matches plus the restores in progress, each once', () => {
    const store = newStore();
    const restoring = (name: string, app: string, phase: string, namespace = 'ns'): Obj => ({
      ...obj(namespace, name, { app }),
      spec: { dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 's' } },
      status: { phase },
    });
    for (const o of [
      obj('ns', 'web-0', { app: 'web' }),
      obj('ns', 'db-0', { app: 'db' }),
      restoring('restore-web', 'web', 'Pending'),
      restoring('restore-db', 'db', 'Pending'),
      restoring('restored-db', 'db', 'Bound'),
      restoring('other-ns', 'db', 'Pending', 'ns2'),
    ])
      store.upsert(o);
    expect(
      pvcsForSchedule(store, 'ns', { matchLabels: { app: 'web' } })
        .map((p) => p.metadata.name)
        .sort(),
    ).toEqual(['restore-db', 'restore-web', 'web-0']);
    // Bound: no longer reading its source, no longer in the index.
    store.upsert(restoring('restore-db', 'db', 'Bound'));
    expect(store.byIndex(RESTORING_INDEX, 'ns').map((p) => p.metadata.name)).toEqual(['restore-web']);
  });
});

describe('selectByLabels', () => {
  const store = newStore();
  const pvcs: Obj[] = [];
  for (let i = 0; i < 60; i++) {
    const o = obj(i % 2 ? 'ns' : 'other', `p${i}`, {
      app: i % 3 === 0 ? 'web' : 'db',
      tier: ['gold', 'silver', 'bronze'][i % 3] as string,
      ...(i % 5 === 0 ? { backup: 'yes' } : {}),
    });
    pvcs.push(o);
    store.upsert(o);
  }
  const selectors: (LabelSelector | undefined)[] = [
    undefined,
    {},
    { matchLabels: { app: 'web' } },
    { matchLabels: { app: 'web', backup: 'yes' } },
    { matchLabels: { app: 'none' } },
    { matchExpressions: [{ key: 'tier', operator: 'In', values: ['gold', 'silver'] }] },
    { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['gold'] }] },
    { matchExpressions: [{ key: 'backup', operator: 'Exists' }] },
    { matchExpressions: [{ key: 'backup', operator: 'DoesNotExist' }] },
    {
      matchLabels: { app: 'db' },
      matchExpressions: [
        { key: 'tier', operator: 'In', values: ['silver', 'silver'] },
        { key: 'backup', operator: 'DoesNotExist' },
      ],
    },
  ];
  it.each(selectors.map((s) => [JSON.stringify(s), s]))(
    'matches exactly what filtering the namespace matches: %s',
    (_, selector) => {
      const want = pvcs
        .filter((p) => p.metadata.namespace === 'ns' && matchesSelector(p.metadata.labels, selector))
        .map((p) => p.metadata.name)
        .sort();
      expect(
        selectByLabels(store, 'ns', selector)
          .map((p) => p.metadata.name)
          .sort(),
      ).toEqual(want);
    },
  );
});
