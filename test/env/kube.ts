/** Helpers for integration tests on the real control plane. */
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { afterEach, beforeEach, inject } from 'vitest';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../../src/api/objects.ts';
import type { SnapshotSchedule, SnapshotScheduleSpec } from '../../src/api/types.generated.ts';
import { AdminKube } from '../../dev/admin-kube.ts';

export const kubeconfigPath = (): string => inject('kubeconfig');

export function kubeConfig(path = kubeconfigPath()): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/** The admin's client: snapcron's own (src/kube/api.ts) plus the verbs tests need (dev/admin-kube.ts). */
export const kube = (): AdminKube =>
  AdminKube.fromFile(kubeconfigPath(), { qps: 200, burst: 200, retry: { attempts: 8, baseMs: 100 } });

/** A raw GET as the admin (for what the typed clients do not expose: Tables, /metrics). */
export function apiGet(path: string, accept = 'application/json'): Promise<string> {
  const kc = kubeConfig();
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const b64 = (v: string | undefined): Buffer => Buffer.from(v ?? '', 'base64');
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, cluster?.server),
      { ca: b64(cluster?.caData), cert: b64(user?.certData), key: b64(user?.keyData), headers: { accept } },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(body)
            : reject(new Error(`GET ${path}: ${res.statusCode}: ${body}`)),
        );
      },
    );
    req.once('error', reject);
    req.end();
  });
}

/** The HTTP status a client call ends with: 200 when it succeeds, else the API server's code. */
export const statusCode = (call: Promise<unknown>): Promise<number | undefined> =>
  call.then(
    () => 200,
    (e: { code?: number }) => e.code,
  );

/** Asks the global setup's process to restart kube-apiserver. */
export async function restartApiServer(downMs = 0): Promise<void> {
  const res = await fetch(`${inject('controlChannel')}/restart-apiserver?downMs=${downMs}`, {
    method: 'POST',
  });
  if (!res.ok) throw new Error(`restart failed: ${await res.text()}`);
}

/** A kubeconfig authenticating as `user` (client certificate), so RBAC applies for real. */
export async function kubeconfigFor(user: string, groups: string[] = []): Promise<string> {
  const q = new URLSearchParams({ user });
  for (const g of groups) q.append('group', g);
  const res = await fetch(`${inject('controlChannel')}/kubeconfig-for?${q.toString()}`, { method: 'POST' });
  if (!res.ok) throw new Error(`kubeconfig-for failed: ${await res.text()}`);
  return res.text();
}

/** Every verb a namespaced Role rule can grant that tests use. */
export const ALL_VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];

/** A kubeconfig file for `user`, bound to a Role in `namespace` with exactly `rules`. */
export async function restrictedKubeconfig(
  namespace: string,
  user: string,
  rules: k8s.V1PolicyRule[],
): Promise<string> {
  const rbac = kubeConfig().makeApiClient(k8s.RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({ namespace, body: { metadata: { name: user }, rules } });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: user },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: user },
      subjects: [{ kind: 'User', name: user, apiGroup: 'rbac.authorization.k8s.io' }],
    },
  });
  return kubeconfigFor(user);
}

/** A fresh namespace per test, deleted afterwards; returns a getter for its name. */
export function useNamespace(prefix = 't'): () => string {
  let name = '';
  beforeEach(async () => {
    name = `${prefix}-${randomBytes(4).toString('hex')}`;
    await kube().core.createNamespace({ body: { metadata: { name } } });
  });
  afterEach(async () => {
    await kube()
      .core.deleteNamespace({ name })
      .catch(() => undefined);
  });
  return () => name;
}

/** Polls until `fn` returns a truthy value (or stops throwing), or fails with the last error. */
export async function eventually<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
  stepMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = 'never truthy';
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(
    `eventually: timed out after ${timeoutMs} ms: ${last instanceof Error ? last.message : String(last)}`,
  );
}

let pvSeq = 0;
/** A PV + PVC pair that the real PV binder binds; resolves when the PVC is Bound. */
export async function boundPvc(
  namespace: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<PersistentVolumeClaim> {
  const k = kube();
  const pv = `pv-${namespace}-${name}-${pvSeq++}`.slice(0, 63).replace(/-+$/, '');
  await k.core.createPersistentVolume({
    body: {
      metadata: { name: pv, labels: { 'snapcron-test/ns': namespace } },
      spec: {
        capacity: { storage: '1Gi' },
        accessModes: ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Delete',
        storageClassName: 'manual',
        hostPath: { path: `/tmp/${pv}` },
        claimRef: { namespace, name },
      },
    },
  });
  await k.core.createNamespacedPersistentVolumeClaim({
    namespace,
    body: {
      metadata: { name, labels },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: 'manual',
        resources: { requests: { storage: '1Gi' } },
      },
    },
  });
  // The binder binds on the claim's event, or on its 15 s resync if it saw the claim before the
  // volume; a loaded 2-core CI machine has needed more than 30 s. The error tells both phases.
  let phases = '';
  try {
    return await eventually(async () => {
      const pvc = await k.core.readNamespacedPersistentVolumeClaim({ name, namespace });
      const vol = await k.core.readPersistentVolume({ name: pv });
      phases = `PVC ${namespace}/${name} ${pvc.status?.phase}, PV ${pv} ${vol.status?.phase}`;
      return pvc.status?.phase === 'Bound' ? (pvc as unknown as PersistentVolumeClaim) : undefined;
    }, 60_000);
  } catch (e) {
    throw new Error(`the PV binder (kube-controller-manager) did not bind: ${phases}: ${String(e)}`, {
      cause: e,
    });
  }
}

export async function createSchedule(
  namespace: string,
  name: string,
  spec: Partial<SnapshotScheduleSpec>,
): Promise<SnapshotSchedule> {
  const k = kube();
  return (await k.custom.createNamespacedCustomObject({
    ...k.schedules,
    namespace,
    body: {
      apiVersion: 'snapcron.io/v1',
      kind: 'SnapshotSchedule',
      metadata: { name },
      // No snapshot controller runs in most tests, so snapshots stay pending: lift the
      // maxPending bound (default 3) unless the test is about it.
      spec: {
        schedule: '* * * * * *',
        ...spec,
        retention: { maxPending: 1000, ...(spec.retention ?? { maxCount: 100 }) },
      },
    },
  })) as SnapshotSchedule;
}

/** Runs a read-modify-write again while the API server answers 409 Conflict (a few times). */
export async function retryOnConflict(readModifyWrite: () => Promise<unknown>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await readModifyWrite();
      return;
    } catch (err) {
      if ((err as { code?: number }).code !== 409 || attempt > 5) throw err;
    }
  }
}

/** Changes a schedule's spec, re-reading on conflict (the controller writes its status meanwhile). */
export function updateScheduleSpec(
  namespace: string,
  name: string,
  patch: Partial<SnapshotScheduleSpec>,
): Promise<void> {
  const k = kube();
  return retryOnConflict(async () => {
    const s = await getSchedule(namespace, name);
    await k.custom.replaceNamespacedCustomObject({
      ...k.schedules,
      namespace,
      name,
      body: { ...s, spec: { ...s.spec, ...patch } },
    });
  });
}

export async function getSchedule(namespace: string, name: string): Promise<SnapshotSchedule> {
  const k = kube();
  return (await k.custom.getNamespacedCustomObject({ ...k.schedules, namespace, name })) as SnapshotSchedule;
}

/** The namespace's Events with this reason, as the API server holds them. */
export async function eventsOf(namespace: string, reason: string): Promise<k8s.CoreV1Event[]> {
  const list = await kube().core.listNamespacedEvent({ namespace });
  return list.items.filter((e) => e.reason === reason);
}

export async function listSnapshots(namespace: string): Promise<VolumeSnapshot[]> {
  const k = kube();
  // Retried: right after start-up the API server answers 429 while its storage initialises.
  const list = (await k.read(() => k.custom.listNamespacedCustomObject({ ...k.snapshots, namespace }))) as {
    items: VolumeSnapshot[];
  };
  return list.items;
}

/**
 * Creates a VolumeSnapshot of `pvc` as a schedule would have (labels and scheduled-at when
 * `schedule` is given), then sets its status when one is given.
 */
export async function createSnapshot(
  namespace: string,
  name: string,
  opts: {
    pvc: string;
    schedule?: string;
    takenAt?: Date;
    labels?: Record<string, string>;
    status?: VolumeSnapshot['status'];
  },
): Promise<void> {
  const k = kube();
  const scheduled = opts.schedule !== undefined;
  await k.custom.createNamespacedCustomObject({
    ...k.snapshots,
    namespace,
    body: {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: {
        name,
        labels: {
          ...(scheduled ? { 'snapcron.io/schedule': opts.schedule, 'snapcron.io/pvc': opts.pvc } : {}),
          ...opts.labels,
        },
        annotations: scheduled
          ? { 'snapcron.io/scheduled-at': (opts.takenAt ?? new Date()).toISOString() }
          : {},
      },
      spec: { source: { persistentVolumeClaimName: opts.pvc } },
    },
  });
  // A snapshot's time is when its data was cut (status.creationTime), as a snapshot controller sets it.
  const status = opts.takenAt
    ? {
        ...opts.status,
        creationTime: opts.takenAt.toISOString(),
        ...(opts.status?.error ? { error: { time: opts.takenAt.toISOString(), ...opts.status.error } } : {}),
      }
    : opts.status;
  if (status) await setSnapshotStatus(namespace, name, status);
}

/** Marks a snapshot ready (or failed) through the status subresource, as a CSI snapshotter would. */
export function setSnapshotStatus(
  namespace: string,
  name: string,
  status: VolumeSnapshot['status'],
): Promise<void> {
  const k = kube();
  return retryOnConflict(async () => {
    const snap = (await k.custom.getNamespacedCustomObject({
      ...k.snapshots,
      namespace,
      name,
    })) as VolumeSnapshot;
    await k.custom.replaceNamespacedCustomObjectStatus({
      ...k.snapshots,
      namespace,
      name,
      body: { ...snap, status },
    });
  });
}

/**
 * Deletes a namespace and waits until it is gone, while the CSI stack still runs to remove its
 * snapshots' finalizers; what is still stuck after `timeoutMs` has its VolumeSnapshots'
 * finalizers stripped, so no namespace stays Terminating for later tests (the namespace
 * controller would keep listing it, and tests count LISTs).
 */
export async function deleteNamespaceAndWait(name: string, timeoutMs = 30_000): Promise<void> {
  const k = kube();
  await k.core.deleteNamespace({ name }).catch(() => undefined);
  const gone = async (): Promise<boolean> =>
    k.core.readNamespace({ name }).then(
      () => false,
      (e: { code?: number }) => e.code === 404,
    );
  try {
    await eventually(gone, timeoutMs, 500);
    return;
  } catch {
    /* strip what blocks it below */
  }
  // Pods of a node that is gone never finish terminating: force them.
  const pods = await k.core.listNamespacedPod({ namespace: name }).catch(() => ({ items: [] }));
  for (const p of pods.items)
    await k.core
      .deleteNamespacedPod({ namespace: name, name: p.metadata?.name ?? '', gracePeriodSeconds: 0 })
      .catch(() => undefined);
  // A schedule's deletionPolicy finalizer, left by a controller that was stopped.
  const schedules = (await k.custom
    .listNamespacedCustomObject({ ...k.schedules, namespace: name })
    .catch(() => ({ items: [] }))) as { items: SnapshotSchedule[] };
  for (const s of schedules.items) {
    await k.custom
      .patchNamespacedCustomObject({
        ...k.schedules,
        namespace: name,
        name: s.metadata?.name ?? '',
        body: { metadata: { finalizers: null } },
      })
      .catch(() => undefined);
  }
  for (const s of await listSnapshots(name).catch(() => [])) {
    await k.custom
      .replaceNamespacedCustomObject({
        ...k.snapshots,
        namespace: name,
        name: s.metadata.name ?? '',
        body: { ...s, metadata: { ...s.metadata, finalizers: [] } },
      })
      .catch(() => undefined);
  }
  await eventually(gone, timeoutMs, 500).catch(() => undefined);
}

/**
 * Deletes this file's namespaces (`prefix-…`) and waits until they are gone: call it before
 * stopping a CSI stack, whose snapshot-controller removes the finalizers that would otherwise
 * leave them Terminating for later test files.
 */
export async function deleteNamespacesAndWait(prefix: string): Promise<void> {
  const list = await kube().core.listNamespace();
  await Promise.all(
    list.items
      .map((n) => n.metadata?.name ?? '')
      .filter((n) => n.startsWith(`${prefix}-`))
      .map((n) => deleteNamespaceAndWait(n, 60_000)),
  );
}
