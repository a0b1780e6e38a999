/**
 * The Reflector (src/kube/reflector.ts) on the real API server: paged LIST (counted by the
 * API server's own apiserver_request_total), watch events into the store and its indexes,
 * a server-side watch timeout resumed without a LIST, a kube-apiserver restart, and 410 Gone
 * leading to a re-list that deletes what vanished meanwhile.
 */
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../../src/api/objects.ts';
import {
  labelIndexKey,
  pvcIndexers,
  selectByLabels,
  snapshotIndexers,
  snapshotsOfPvc,
  snapshotsOfSchedule,
} from '../../src/kube/index-cache.ts';
import { SnapcronCaches } from '../../src/kube/caches.ts';
import { collectionPath, Reflector, type ReflectorOptions } from '../../src/kube/reflector.ts';
import { slimPvc, slimSnapshot } from '../../src/kube/slim.ts';
import {
  apiGet,
  createSchedule,
  deleteNamespaceAndWait,
  eventually,
  kube,
  restartApiServer,
  setSnapshotStatus,
  useNamespace,
} from '../env/kube.ts';

/** kube-apiserver's own count of finished requests for one resource and verb. */
async function requestCount(resource: string, verb: string): Promise<number> {
  let total = 0;
  for (const line of (await apiGet('/metrics', 'text/plain')).split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    if (!line.includes(`resource="${resource}"`) || !line.includes(`verb="${verb}"`)) continue;
    if (!line.includes('subresource=""')) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/**
 * Waits until no namespace is being deleted: kube-controller-manager's namespace controller
 * LISTs every resource of a namespace it deletes (earlier tests' namespaces), and those LISTs
 * would count in apiserver_request_total next to ours.
 */
async function noNamespaceTerminating(): Promise<void> {
  const k = kube();
  const terminating = async (): Promise<string[]> =>
    (await k.core.listNamespace()).items
      .filter((n) => n.status?.phase === 'Terminating')
      .map((n) => n.metadata?.name ?? '');
  // An earlier file's namespace held by finalizers whose controller is gone: strip them.
  await Promise.all((await terminating()).map((n) => deleteNamespaceAndWait(n, 30_000)));
  await eventually(async () => (await terminating()).length === 0, 90_000);
}

interface LogLine {
  msg: string;
  level: number;
}
function capture(): { log: Logger; msgs: () => string[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { log, msgs: () => lines.map((l) => l.msg) };
}

const running: Reflector<never>[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

function start<T extends { metadata?: { name?: string; namespace?: string } }>(
  o: Omit<ReflectorOptions<T>, 'rest' | 'log'> & { log?: Logger },
): Reflector<T> {
  const r = new Reflector<T>({ rest: kube().rest, log: o.log ?? capture().log, ...o });
  running.push(r as unknown as Reflector<never>);
  return r;
}

/** Runs `fn` over `items` with at most `width` at a time. */
async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

function snapshotBody(name: string, pvc: string, schedule?: string, extra: Record<string, string> = {}) {
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshot',
    metadata: {
      name,
      labels: { ...(schedule ? { 'snapcron.io/schedule': schedule, 'snapcron.io/pvc': pvc } : {}), ...extra },
      annotations: schedule ? { 'snapcron.io/scheduled-at': '2026-01-01T00:00:00Z' } : {},
    },
    spec: { source: { persistentVolumeClaimName: pvc } },
  };
}

async function createSnapshots(
  namespace: string,
  n: number,
  extra: Record<string, string> = {},
): Promise<void> {
  const k = kube();
  await pool(
    Array.from({ length: n }, (_, i) => i),
    16,
    (i) =>
      k.read(() =>
        k.custom.createNamespacedCustomObject({
          ...k.snapshots,
          namespace,
          body: snapshotBody(`s-${String(i).padStart(5, '0')}`, `pvc-${i % 10}`, `sched-${i % 3}`, extra),
        }),
      ),
  );
}

const deleteSnapshot = (namespace: string, name: string): Promise<unknown> => {
  const k = kube();
  return k.read(() => k.custom.deleteNamespacedCustomObject({ ...k.snapshots, namespace, name }));
};

describe('Reflector on a real API server', () => {
  const ns = useNamespace('rf');

  it('lists 1,200 snapshots in pages of 500 (3 LIST requests by the API server count), slim and indexed', async () => {
    await createSnapshots(ns(), 1200);
    await noNamespaceTerminating();
    const before = await requestCount('volumesnapshots', 'LIST');
    const r = start<VolumeSnapshot>({
      path: collectionPath(kube().snapshots, ns()),
      pageSize: 500,
      transform: (raw) => slimSnapshot(raw),
      indexers: snapshotIndexers(),
    });
    await r.start();
    expect(r.synced).toBe(true);
    expect(await requestCount('volumesnapshots', 'LIST')).toBe(before + 3);
    expect(r.stats).toMatchObject({ listRequests: 3, lists: 1 });
    expect(r.store.size).toBe(1200);
    expect(snapshotsOfSchedule(r.store, ns(), 'sched-0')).toHaveLength(400);
    expect(snapshotsOfPvc(r.store, ns(), 'pvc-3')).toHaveLength(120);
    const one = r.store.get(ns(), 's-00042');
    expect(one?.metadata).not.toHaveProperty('managedFields');
    expect(one).toMatchObject({
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: { labels: { 'snapcron.io/schedule': 'sched-0', 'snapcron.io/pvc': 'pvc-2' } },
      spec: { source: { persistentVolumeClaimName: 'pvc-2' } },
    });
  });

  it('creates, updates and deletes reach the store, the indexes and the handlers', async () => {
    const k = kube();
    const pvcs = start<PersistentVolumeClaim>({
      path: collectionPath({ version: 'v1', plural: 'persistentvolumeclaims' }, ns()),
      transform: (raw) => slimPvc(raw),
      indexers: pvcIndexers(),
    });
    const snaps = start<VolumeSnapshot>({
      path: collectionPath(k.snapshots, ns()),
      transform: (raw) => slimSnapshot(raw),
      indexers: snapshotIndexers(),
    });
    await Promise.all([pvcs.start(), snaps.start()]);
    const events: string[] = [];
    for (const verb of ['add', 'update', 'delete'] as const)
      snaps.store.on(verb, (o, old) => events.push(`${verb} ${o.metadata.name} ${old ? 'old' : '-'}`));

    const pvcBody = (name: string, app: string) => ({
      metadata: { name, labels: { app } },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: 'manual',
        resources: { requests: { storage: '1Gi' } },
      },
    });
    await k.core.createNamespacedPersistentVolumeClaim({ namespace: ns(), body: pvcBody('web-0', 'web') });
    await k.core.createNamespacedPersistentVolumeClaim({ namespace: ns(), body: pvcBody('db-0', 'db') });
    await eventually(async () => pvcs.store.size === 2);
    expect(
      selectByLabels(pvcs.store, ns(), { matchLabels: { app: 'web' } }).map((p) => p.metadata.name),
    ).toEqual(['web-0']);
    // A label change moves the PVC between label buckets.
    await k.core.patchNamespacedPersistentVolumeClaim({
      namespace: ns(),
      name: 'db-0',
      body: [{ op: 'replace', path: '/metadata/labels/app', value: 'web' }],
    });
    await eventually(async () => pvcs.store.countByIndex('label', labelIndexKey(ns(), 'app', 'web')) === 2);
    expect(pvcs.store.countByIndex('label', labelIndexKey(ns(), 'app', 'db'))).toBe(0);
    expect(pvcs.store.get(ns(), 'web-0')?.spec).toEqual({
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: '1Gi' } },
      storageClassName: 'manual',
    });

    await k.custom.createNamespacedCustomObject({
      ...k.snapshots,
      namespace: ns(),
      body: snapshotBody('a', 'web-0', 'nightly'),
    });
    await eventually(async () => snapshotsOfSchedule(snaps.store, ns(), 'nightly').length === 1);
    await setSnapshotStatus(ns(), 'a', { readyToUse: true, restoreSize: '1Gi' });
    await eventually(async () => snaps.store.get(ns(), 'a')?.status?.readyToUse === true);
    expect(snaps.store.get(ns(), 'a')?.status).toEqual({ readyToUse: true, restoreSize: '1Gi' });
    await deleteSnapshot(ns(), 'a');
    await eventually(async () => snaps.store.get(ns(), 'a') === undefined);
    expect(snapshotsOfSchedule(snaps.store, ns(), 'nightly')).toEqual([]);
    expect(snapshotsOfPvc(snaps.store, ns(), 'web-0')).toEqual([]);
    expect(events).toEqual(['add a -', 'update a old', 'delete a old']);

    await k.core.deleteNamespacedPersistentVolumeClaim({ namespace: ns(), name: 'web-0' });
    // The PVC protection finalizer may keep it a moment (deletionTimestamp set), then it goes.
    await eventually(async () => pvcs.store.get(ns(), 'web-0') === undefined);
    expect(pvcs.stats.lists).toBe(1);
    expect(snaps.stats.lists).toBe(1);
  });

  it('a cluster-wide path with a label selector sees only the selected objects', async () => {
    const run = ns();
    await createSnapshots(run, 5, { 'snapcron-test/run': run });
    const k = kube();
    await k.custom.createNamespacedCustomObject({
      ...k.snapshots,
      namespace: run,
      body: snapshotBody('unselected', 'pvc-0', 'sched-0'),
    });
    const r = start<VolumeSnapshot>({
      path: collectionPath(k.snapshots),
      labelSelector: `snapcron-test/run=${run}`,
      transform: (raw) => slimSnapshot(raw),
      indexers: snapshotIndexers(),
    });
    await r.start();
    expect(r.store.size).toBe(5);
    expect(r.store.namespaces()).toEqual([run]);
    expect(r.store.get(run, 'unselected')).toBeUndefined();
  });

  it('a watch the server times out is resumed from the last resourceVersion: no LIST, never unsynced', async () => {
    const k = kube();
    const sync: boolean[] = [];
    const r = start<VolumeSnapshot>({
      path: collectionPath(k.snapshots, ns()),
      transform: (raw) => slimSnapshot(raw),
      watchTimeoutSeconds: 2,
      onSyncChange: (s) => sync.push(s),
    });
    await r.start();
    await noNamespaceTerminating();
    const lists = await requestCount('volumesnapshots', 'LIST');
    const watches = await requestCount('volumesnapshots', 'WATCH');
    for (let i = 0; i < 3; i++) {
      await new Promise((res) => setTimeout(res, 2500));
      await k.custom.createNamespacedCustomObject({
        ...k.snapshots,
        namespace: ns(),
        body: snapshotBody(`after-timeout-${i}`, 'p', 'nightly'),
      });
      await eventually(async () => r.store.get(ns(), `after-timeout-${i}`) !== undefined, 10_000);
    }
    expect(r.stats.resumes).toBeGreaterThanOrEqual(3);
    expect(r.stats.listRequests).toBe(1);
    expect(await requestCount('volumesnapshots', 'LIST')).toBe(lists);
    // Each ended watch is counted when it ends.
    expect(await requestCount('volumesnapshots', 'WATCH')).toBeGreaterThanOrEqual(watches + 3);
    expect(sync).toEqual([true]);
    expect(r.synced).toBe(true);
  });

  it('survives a kube-apiserver restart: untrusted while it is down, synced and current after', async () => {
    const k = kube();
    const logs = capture();
    const sync: boolean[] = [];
    const r = start<VolumeSnapshot>({
      path: collectionPath(k.snapshots, ns()),
      transform: (raw) => slimSnapshot(raw),
      log: logs.log,
      backoff: { baseMs: 200, capMs: 1000, resetAfterMs: 60_000 },
      onSyncChange: (s) => sync.push(s),
    });
    await r.start();
    const restarted = restartApiServer(2000);
    await eventually(async () => !r.synced, 10_000, 20);
    await restarted;
    await k.read(() =>
      k.custom.createNamespacedCustomObject({
        ...k.snapshots,
        namespace: ns(),
        body: snapshotBody('after-restart', 'p', 'nightly'),
      }),
    );
    await eventually(async () => r.synced && r.store.get(ns(), 'after-restart') !== undefined, 30_000);
    expect(sync[0]).toBe(true);
    expect(sync[1]).toBe(false);
    expect(sync.at(-1)).toBe(true);
    const msgs = logs.msgs();
    expect(msgs[0]).toBe('watch failed; cache not trusted');
    expect(msgs).toContain('restarting watch after backoff');
    expect(
      msgs.some(
        (m) => m === 'watch restarted; cache re-listed' || m === 'watch restarted; resumed without re-list',
      ),
    ).toBe(true);
  });

  it('410 Gone after a restart re-lists: what vanished meanwhile is deleted, the rest added or updated', async () => {
    const k = kube();
    await createSnapshots(ns(), 3);
    const logs = capture();
    let resyncs = 0;
    const r = start<VolumeSnapshot>({
      path: collectionPath(k.snapshots, ns()),
      transform: (raw) => slimSnapshot(raw),
      indexers: snapshotIndexers(),
      log: logs.log,
      // Slow restarts, so the changes below land before the reflector comes back.
      backoff: { baseMs: 4000, capMs: 4000, resetAfterMs: 60_000 },
      onResynced: () => resyncs++,
    });
    await r.start();
    const events: string[] = [];
    for (const verb of ['add', 'update', 'delete'] as const)
      r.store.on(verb, (o) => events.push(`${verb} ${o.metadata.name}`));
    // A fresh API server's watch cache starts at the current revision: our resourceVersion
    // is older than its history, so the resume is answered 410 Gone.
    await restartApiServer(0);
    await deleteSnapshot(ns(), 's-00000');
    await k.read(() =>
      k.custom.patchNamespacedCustomObject({
        ...k.snapshots,
        namespace: ns(),
        name: 's-00001',
        body: [{ op: 'add', path: '/metadata/labels/snapcron.io~1hold', value: 'true' }],
      }),
    );
    await k.read(() =>
      k.custom.createNamespacedCustomObject({
        ...k.snapshots,
        namespace: ns(),
        body: snapshotBody('new-one', 'pvc-0', 'sched-0'),
      }),
    );
    await eventually(async () => resyncs === 1 && r.synced, 30_000);
    expect(r.stats.expired).toBeGreaterThanOrEqual(1);
    expect(r.stats.lists).toBe(2);
    expect(events.sort()).toEqual(['add new-one', 'delete s-00000', 'update s-00001']);
    expect(r.store.get(ns(), 's-00001')?.metadata.labels?.['snapcron.io/hold']).toBe('true');
    expect(
      snapshotsOfSchedule(r.store, ns(), 'sched-0')
        .map((s) => s.metadata.name)
        .sort(),
    ).toEqual(['new-one']);
    const msgs = logs.msgs();
    expect(msgs).toContain('watch expired (410 Gone); cache not trusted; re-listing');
    expect(msgs.at(-1)).toBe('watch restarted; cache re-listed');
  });

  it('SnapcronCaches: the three caches of one namespace, slim, indexed, one synced flag', async () => {
    const k = kube();
    await createSchedule(ns(), 'nightly', { claimSelector: { matchLabels: { app: 'web' } } });
    await k.custom.patchNamespacedCustomObject({
      ...k.schedules,
      namespace: ns(),
      name: 'nightly',
      body: [
        {
          op: 'add',
          path: '/metadata/annotations',
          value: { 'kubectl.kubernetes.io/last-applied-configuration': '{}', keep: 'me' },
        },
      ],
    });
    await k.custom.createNamespacedCustomObject({
      ...k.snapshots,
      namespace: ns(),
      body: snapshotBody('a', 'web-0', 'nightly'),
    });
    const sync: boolean[] = [];
    const caches = new SnapcronCaches({
      kube: k,
      log: capture().log,
      namespace: ns(),
      onSyncChange: (s) => sync.push(s),
    });
    running.push(
      caches.schedules as unknown as Reflector<never>,
      caches.pvcs as unknown as Reflector<never>,
      caches.snapshots as unknown as Reflector<never>,
    );
    expect(caches.synced).toBe(false);
    await caches.start();
    expect(caches.synced).toBe(true);
    expect(sync).toEqual([true]);
    const schedule = caches.schedules.store.get(ns(), 'nightly');
    expect(schedule?.spec.claimSelector).toEqual({ matchLabels: { app: 'web' } });
    expect(schedule?.metadata).not.toHaveProperty('managedFields');
    expect(schedule?.metadata?.annotations).toEqual({ keep: 'me' });
    expect(snapshotsOfSchedule(caches.snapshots.store, ns(), 'nightly').map((s) => s.metadata.name)).toEqual([
      'a',
    ]);
    await caches.stop();
    expect(caches.synced).toBe(false);
    expect(sync).toEqual([true, false]);
  });
});
