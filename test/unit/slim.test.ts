/**
 * Slim objects (src/kube/slim.ts) must decide exactly like the full objects the API server
 * returns: every pure decision snapcron makes from its caches (retention, decide, deletion,
 * restore choice and admission, states and times) is run on random full objects and on their
 * slim copies, and must agree. A second test strips each field the code reads, one at a time,
 * and checks that the corpus notices: so the first test fails if slimming ever drops one.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../../src/api/objects.ts';
import type { RetentionPolicy, SnapshotSchedule } from '../../src/api/types.generated.ts';
import { decide } from '../../src/controller/decide.ts';
import { planDeletion } from '../../src/controller/deletion.ts';
import {
  IndexedStore,
  pvcIndexers,
  pvcsForSchedule,
  snapshotIndexers,
  snapshotsOfPvc,
  snapshotsOfSchedule,
} from '../../src/kube/index-cache.ts';
import {
  Interner,
  LAST_APPLIED,
  slimPvc,
  slimSchedule,
  slimSnapshot,
  type SlimPvc,
} from '../../src/kube/slim.ts';
import { planRetention, snapshotsInUse } from '../../src/retention/plan.ts';
import { scheduledTime, snapshotState, snapshotTime } from '../../src/retention/snapshot-state.ts';
import { admitRestore } from '../../src/restore/admission.ts';
import { chooseSnapshot, sizeProblem } from '../../src/restore/select.ts';

const NOW = new Date('2026-06-15T12:00:00Z');
const ago = (hours: number): string =>
  new Date(NOW.getTime() - hours * 3_600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** A small deterministic PRNG (mulberry32), so each seed is one reproducible corpus. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What the API server adds that snapcron never reads. */
const managedFields = (manager: string): unknown[] => [
  {
    manager,
    operation: 'Update',
    apiVersion: 'v1',
    time: ago(1),
    fieldsType: 'FieldsV1',
    fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } }, 'f:spec': { 'f:x': {} } },
  },
  {
    manager: 'kubectl-client-side-apply',
    operation: 'Update',
    apiVersion: 'v1',
    time: ago(2),
    fieldsType: 'FieldsV1',
    fieldsV1: { 'f:metadata': { 'f:annotations': { '.': {} } } },
  },
];

interface Corpus {
  schedule: SnapshotSchedule;
  pvcs: PersistentVolumeClaim[];
  snapshots: VolumeSnapshot[];
  /** PVCs as an admission review carries them (never cached, never slimmed). */
  restoreRequests: PersistentVolumeClaim[];
}

function corpus(seed: number): Corpus {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const chance = (p: number): boolean => r() < p;
  const hours = (max: number): number => Math.round(r() * max * 100) / 100;
  const scheduleName = pick(['nightly', 'weekly']);
  let uid = 0;
  const meta = (name: string, namespace: string, manager: string): Record<string, unknown> => ({
    name,
    namespace,
    uid: `00000000-0000-0000-0000-${String(++uid).padStart(12, '0')}`,
    resourceVersion: String(1000 + uid),
    generation: 1 + Math.floor(r() * 3),
    managedFields: managedFields(manager),
    finalizers: ['example.com/protect'],
  });

  const retention: RetentionPolicy = {
    ...(chance(0.6) ? { maxCount: pick([1, 2, 3]) } : {}),
    ...(chance(0.4) ? { expires: pick(['6h', '1d', '3d']) } : {}),
    ...(chance(0.3) ? { keep: { hourly: pick([1, 3]), daily: pick([1, 2]) } } : {}),
    ...(chance(0.5) ? { minReady: pick([0, 1, 2]) } : {}),
    ...(chance(0.5) ? { failedAfter: pick(['30m', '2h']) } : {}),
    ...(chance(0.5) ? { pendingDeadline: pick(['1h', '6h']) } : {}),
    ...(chance(0.5) ? { maxPending: pick([1, 2, 3]) } : {}),
  };
  if (retention.maxCount === undefined && retention.expires === undefined && !retention.keep)
    retention.maxCount = 2;
  const deleting = chance(0.15);
  const schedule = {
    apiVersion: 'snapcron.io/v1',
    kind: 'SnapshotSchedule',
    metadata: {
      ...meta(scheduleName, 'default', 'kubectl-client-side-apply'),
      creationTimestamp: ago(500),
      annotations: { [LAST_APPLIED]: '{"apiVersion":"snapcron.io/v1"}', 'team.example.com/owner': 'storage' },
      ...(deleting ? { deletionTimestamp: ago(0.1), finalizers: ['snapcron.io/snapshots'] } : {}),
    },
    spec: {
      schedule: pick(['0 * * * *', '*/30 * * * *', '0 0 * * *']),
      timeZone: pick(['UTC', 'Asia/Shanghai']),
      ...(chance(0.1) ? { suspend: true } : {}),
      concurrencyPolicy: pick(['Allow', 'Forbid'] as const),
      ...pick([
        {},
        { claimSelector: { matchLabels: { app: 'web' } } },
        { claimSelector: { matchExpressions: [{ key: 'tier', operator: 'In' as const, values: ['gold'] }] } },
      ]),
      ...(chance(0.5) ? { snapshotClassName: 'fast' } : {}),
      ...(chance(0.3) ? { snapshotTemplate: { labels: { team: 'storage' } } } : {}),
      retention,
      ...(deleting ? { deletionPolicy: 'Delete' as const } : {}),
    },
    status: chance(0.7) ? { lastScheduleTime: ago(pick([0.2, 0.6, 1.5, 3, 30])) } : {},
  } as unknown as SnapshotSchedule;

  const snapshots: VolumeSnapshot[] = [];
  const pvcNames = ['data-0', 'data-1', 'data-2', 'data-3'];
  const n = Math.floor(r() * 26);
  for (let i = 0; i < n; i++) {
    const pvc = pick([...pvcNames, 'gone-pvc']);
    const owner = pick([scheduleName, scheduleName, 'other-schedule', undefined]);
    const namespace = chance(0.1) ? 'other' : 'default';
    const at = hours(80);
    const cut = Math.max(0, at - hours(0.05));
    const state = pick(['ready', 'ready', 'ready', 'pending', 'error', 'none'] as const);
    const status =
      state === 'none'
        ? undefined
        : {
            boundVolumeSnapshotContentName: `snapcontent-${seed}-${i}`,
            ...(state === 'ready'
              ? { readyToUse: true, ...(chance(0.8) ? { creationTime: ago(cut) } : {}) }
              : { readyToUse: false }),
            ...(state === 'ready' || chance(0.5) ? { restoreSize: pick(['1Gi', '5Gi', '20Gi']) } : {}),
            ...(state === 'error'
              ? { error: { message: `driver said no ${i}`, ...(chance(0.6) ? { time: ago(hours(5)) } : {}) } }
              : {}),
          };
    snapshots.push({
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: {
        ...meta(`${pvc}-${owner ?? 'manual'}-${i}`, namespace, 'snapcron'),
        creationTimestamp: ago(at),
        ...(chance(0.1) ? { deletionTimestamp: ago(0.01) } : {}),
        labels: {
          ...(owner ? { 'snapcron.io/schedule': owner, 'snapcron.io/pvc': pvc } : {}),
          ...(chance(0.15) ? { 'snapcron.io/hold': 'true' } : {}),
          team: 'storage',
          'app.kubernetes.io/managed-by': 'snapcron',
        },
        annotations: {
          ...(owner && chance(0.9) ? { 'snapcron.io/scheduled-at': ago(Math.ceil(at)) } : {}),
          'snapshot.storage.kubernetes.io/note': 'x'.repeat(40),
        },
      },
      spec: {
        source: { persistentVolumeClaimName: pvc },
        ...(chance(0.5) ? { volumeSnapshotClassName: 'fast' } : {}),
      },
      ...(status ? { status } : {}),
    });
  }

  const pvcs: PersistentVolumeClaim[] = [];
  for (const name of pvcNames) {
    pvcs.push({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: {
        ...meta(name, chance(0.1) ? 'other' : 'default', 'kube-controller-manager'),
        creationTimestamp: ago(pick([0.1, 0.5, 2, 5, 100])),
        ...(chance(0.1) ? { deletionTimestamp: ago(0.01) } : {}),
        labels: {
          app: pick(['web', 'db']),
          tier: pick(['gold', 'silver']),
          'statefulset.kubernetes.io/pod': 'x',
        },
        annotations: { 'pv.kubernetes.io/bind-completed': 'yes', [LAST_APPLIED]: '{}' },
      },
      spec: {
        accessModes: ['ReadWriteOnce'],
        resources: { requests: { storage: '1Gi' }, limits: { storage: '2Gi' } },
        storageClassName: 'standard',
        volumeName: `pv-${name}`,
        volumeMode: 'Filesystem',
      },
      status: {
        phase: pick(['Bound', 'Bound', 'Pending']),
        capacity: { storage: '1Gi' },
        accessModes: ['ReadWriteOnce'],
      },
    } as PersistentVolumeClaim);
  }
  // Restores in progress or done, naming a snapshot by dataSource or dataSourceRef.
  for (let i = 0; i < 1 + Math.floor(r() * 3); i++) {
    const target = snapshots.length > 0 ? pick(snapshots) : undefined;
    const ref = {
      apiGroup: 'snapshot.storage.k8s.io',
      kind: 'VolumeSnapshot',
      name: target?.metadata.name ?? 'missing',
      ...(chance(0.2) ? { namespace: target?.metadata.namespace ?? 'default' } : {}),
    };
    const viaRef = chance(0.5);
    pvcs.push({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: {
        ...meta(`restore-${i}`, 'default', 'kubectl'),
        creationTimestamp: ago(0.05),
        labels: { app: 'web', 'snapcron.io/restore': 'true' },
        annotations: { 'snapcron.io/restore-from': 'data-0' },
      },
      spec: viaRef ? { dataSourceRef: ref } : { dataSource: ref },
      status: { phase: pick(['Pending', 'Bound']) },
    });
  }

  const restoreRequests = pvcNames.map((from, i) => ({
    metadata: {
      name: `new-${i}`,
      namespace: 'default',
      labels: { 'snapcron.io/restore': 'true' },
      annotations: {
        'snapcron.io/restore-from': from,
        ...(chance(0.3) ? { 'snapcron.io/restore-schedule': scheduleName } : {}),
        ...(chance(0.3) ? { 'snapcron.io/restore-at': ago(hours(40)) } : {}),
        ...(chance(0.3) ? { 'snapcron.io/restore-policy': 'IfAvailable' } : {}),
      },
    },
    spec: { resources: { requests: { storage: pick(['1Gi', '10Gi', '50Gi']) } } },
  }));
  return { schedule, pvcs, snapshots, restoreRequests };
}

/** Every decision snapcron takes from cached objects, as plain data. */
function decisions(
  schedule: SnapshotSchedule,
  pvcs: PersistentVolumeClaim[],
  snapshots: VolumeSnapshot[],
  restoreRequests: PersistentVolumeClaim[],
): unknown {
  const retention = schedule.spec.retention;
  const name = schedule.metadata?.name ?? '';
  const choices = [];
  for (const pvc of ['data-0', 'data-1', 'data-2', 'data-3', 'gone-pvc']) {
    for (const sched of [undefined, name]) {
      for (const at of [undefined, new Date(ago(10))]) {
        const c = chooseSnapshot(
          { sourcePvc: pvc, schedule: sched, at, policy: 'Required' },
          'default',
          snapshots,
        );
        choices.push(
          c.kind === 'snapshot'
            ? { name: c.name, time: c.time, size: ['1Gi', '10Gi'].map((q) => sizeProblem(c.snapshot, q)) }
            : c,
        );
      }
    }
  }
  return {
    retention: planRetention({
      scheduleName: name,
      retention,
      timeZone: schedule.spec.timeZone ?? 'UTC',
      snapshots,
      pvcs,
      now: NOW,
    }),
    decide: decide({ schedule, pvcs, snapshots, now: NOW }),
    deletion: planDeletion(schedule, snapshots, pvcs),
    inUse: [...snapshotsInUse(pvcs)].sort(),
    choices,
    admissions: restoreRequests.map((object, i) =>
      admitRestore({ uid: `u${i}`, operation: 'CREATE', namespace: 'default', object }, snapshots),
    ),
    states: snapshots.map((s) => [
      snapshotState(s),
      snapshotState(s, NOW, retention),
      snapshotTime(s),
      scheduledTime(s),
    ]),
  };
}

const slimAll = (
  c: Corpus,
  snap: (s: VolumeSnapshot) => VolumeSnapshot = (s) => slimSnapshot(s),
  pvc: (p: PersistentVolumeClaim) => PersistentVolumeClaim = (p) => slimPvc(p),
): unknown => decisions(slimSchedule(c.schedule), c.pvcs.map(pvc), c.snapshots.map(snap), c.restoreRequests);
const fullAll = (c: Corpus): unknown => decisions(c.schedule, c.pvcs, c.snapshots, c.restoreRequests);

describe('slim objects decide like full ones', () => {
  it('property: retention, decide, deletion, restore choice and admission, states: identical on full and slim objects', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => {
        const c = corpus(seed);
        expect(slimAll(c)).toEqual(fullAll(c));
      }),
      { numRuns: 400 },
    );
  });

  /** Deletes a path from a (slim) object's copy. */
  const without = <T>(o: T, path: string[]): T => {
    const copy = structuredClone(o) as Record<string, unknown>;
    let at: Record<string, unknown> | undefined = copy;
    for (const key of path.slice(0, -1)) at = at?.[key] as Record<string, unknown> | undefined;
    if (at) delete at[path.at(-1) as string];
    return copy as T;
  };
  const seeds = Array.from({ length: 300 }, (_, i) => i + 1);
  const corpora = seeds.map(corpus);
  const noticed = (strip: (c: Corpus) => unknown): boolean =>
    corpora.some((c) => JSON.stringify(strip(c)) !== JSON.stringify(fullAll(c)));

  const snapshotFields = [
    ['metadata', 'name'],
    ['metadata', 'namespace'],
    ['metadata', 'resourceVersion'],
    ['metadata', 'creationTimestamp'],
    ['metadata', 'deletionTimestamp'],
    ['metadata', 'labels', 'snapcron.io/schedule'],
    ['metadata', 'labels', 'snapcron.io/hold'],
    ['metadata', 'annotations', 'snapcron.io/scheduled-at'],
    ['spec', 'source', 'persistentVolumeClaimName'],
    ['status', 'readyToUse'],
    ['status', 'creationTime'],
    ['status', 'restoreSize'],
    ['status', 'error'],
    ['status', 'error', 'message'],
    ['status', 'error', 'time'],
  ];
  it.each(snapshotFields.map((p) => [p.join('.'), p]))(
    'the corpus notices a VolumeSnapshot without %s (so the test above guards it)',
    (_, path) => {
      expect(noticed((c) => slimAll(c, (s) => without(slimSnapshot(s), path)))).toBe(true);
    },
  );

  const pvcFields = [
    ['metadata', 'name'],
    ['metadata', 'namespace'],
    ['metadata', 'creationTimestamp'],
    ['metadata', 'deletionTimestamp'],
    ['metadata', 'labels'],
    ['spec', 'dataSource'],
    ['spec', 'dataSourceRef'],
    ['status', 'phase'],
  ];
  it.each(pvcFields.map((p) => [p.join('.'), p]))(
    'the corpus notices a PVC without %s (so the test above guards it)',
    (_, path) => {
      expect(
        noticed((c) =>
          slimAll(
            c,
            (s) => slimSnapshot(s),
            (p) => without(slimPvc(p), path),
          ),
        ),
      ).toBe(true);
    },
  );
});

describe('indexed reads decide like whole namespaces', () => {
  it('property: decide, retention and deletion on the schedule index and pvcsForSchedule; restore choice on the PVC index', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => {
        const c = corpus(seed);
        const snaps = new IndexedStore<VolumeSnapshot>({ indexers: snapshotIndexers() });
        const pvcs = new IndexedStore<SlimPvc>({ indexers: pvcIndexers() });
        for (const s of c.snapshots) snaps.upsert(slimSnapshot(s));
        for (const p of c.pvcs) pvcs.upsert(slimPvc(p));
        const schedule = slimSchedule(c.schedule);
        const name = schedule.metadata?.name ?? '';
        const ns = 'default';
        const pass = (p: PersistentVolumeClaim[], s: VolumeSnapshot[]): unknown => ({
          decide: decide({ schedule, pvcs: p, snapshots: s, now: NOW }),
          retention: planRetention({
            scheduleName: name,
            retention: schedule.spec.retention,
            timeZone: schedule.spec.timeZone ?? 'UTC',
            snapshots: s,
            pvcs: p,
            now: NOW,
          }),
          deletion: planDeletion(schedule, s, p),
        });
        expect(
          pass(pvcsForSchedule(pvcs, ns, schedule.spec.claimSelector), snapshotsOfSchedule(snaps, ns, name)),
        ).toEqual(pass(pvcs.list(ns), snaps.list(ns)));
        for (const source of ['data-0', 'data-1', 'gone-pvc']) {
          for (const sched of [undefined, name]) {
            const req = { sourcePvc: source, schedule: sched, policy: 'Required' as const };
            expect(chooseSnapshot(req, ns, snapshotsOfPvc(snaps, ns, source))).toEqual(
              chooseSnapshot(req, ns, snaps.list(ns)),
            );
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('slim shapes', () => {
  const full = corpus(7);
  it('a VolumeSnapshot keeps only what snapcron reads', () => {
    const s = {
      metadata: {
        name: 'a',
        namespace: 'ns',
        uid: 'u',
        resourceVersion: '5',
        generation: 2,
        creationTimestamp: '2026-01-01T00:00:00Z',
        deletionTimestamp: '2026-01-02T00:00:00Z',
        labels: { 'snapcron.io/schedule': 's', 'snapcron.io/pvc': 'p', team: 'x' },
        annotations: { 'snapcron.io/scheduled-at': '2026-01-01T00:00:00Z', other: 'y' },
        managedFields: managedFields('m'),
        finalizers: ['f'],
        ownerReferences: [{ kind: 'X', name: 'y' }],
      },
      spec: { source: { persistentVolumeClaimName: 'p' }, volumeSnapshotClassName: 'c' },
      status: {
        readyToUse: false,
        creationTime: '2026-01-01T00:00:01Z',
        restoreSize: '1Gi',
        boundVolumeSnapshotContentName: 'snapcontent-1',
        error: { message: 'm', time: '2026-01-01T00:00:02Z' },
      },
    };
    const before = structuredClone(s);
    expect(slimSnapshot(s)).toEqual({
      // LIST items carry no apiVersion/kind; slim objects always do.
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: {
        name: 'a',
        namespace: 'ns',
        uid: 'u',
        resourceVersion: '5',
        generation: 2,
        creationTimestamp: '2026-01-01T00:00:00Z',
        deletionTimestamp: '2026-01-02T00:00:00Z',
        labels: { 'snapcron.io/schedule': 's', 'snapcron.io/pvc': 'p' },
        annotations: { 'snapcron.io/scheduled-at': '2026-01-01T00:00:00Z' },
      },
      spec: { source: { persistentVolumeClaimName: 'p' }, volumeSnapshotClassName: 'c' },
      status: s.status,
    });
    expect(s).toEqual(before); // input untouched
  });

  it('a PVC keeps every label, snapcron annotations, and the spec/status fields snapcron reads', () => {
    const p = full.pvcs[0] as PersistentVolumeClaim;
    const slim = slimPvc(p);
    expect(slim.metadata.labels).toEqual(p.metadata.labels);
    expect(slim.metadata).not.toHaveProperty('managedFields');
    expect(slim.metadata.annotations).toBeUndefined(); // none under snapcron.io/
    expect(slim.spec).toEqual({
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: '1Gi' } },
      storageClassName: 'standard',
      volumeName: p.spec?.volumeName,
    });
    expect(slim.status).toEqual({ phase: p.status?.phase, capacity: { storage: '1Gi' } });
    const restore = slimPvc(full.pvcs.at(-1));
    expect(restore.metadata.annotations).toEqual({ 'snapcron.io/restore-from': 'data-0' });
  });

  it('a schedule keeps everything but managedFields and the last-applied annotation', () => {
    const s = full.schedule;
    const slim = slimSchedule(s);
    const meta = { ...(s.metadata as unknown as Record<string, unknown>) };
    const annotations = meta.annotations;
    delete meta.managedFields;
    delete meta.annotations;
    expect(slim).toEqual({
      ...s,
      metadata: { ...meta, annotations: { 'team.example.com/owner': 'storage' } },
    });
    expect(s.metadata).toHaveProperty('managedFields'); // input untouched
    expect(annotations).toHaveProperty([LAST_APPLIED]);
  });

  it('the interner returns equal strings and stays bounded', () => {
    const i = new Interner(4);
    expect(i.intern('a')).toBe('a');
    expect(i.intern(undefined)).toBeUndefined();
    for (let k = 0; k < 100; k++) i.intern(`s${k}`);
    expect(i.size).toBeLessThanOrEqual(8);
    expect(i.intern('s99')).toBe('s99');
  });
});
