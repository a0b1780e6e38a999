import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as k8s from '@kubernetes/client-node';
import {
  boundPvc,
  createSchedule,
  createSnapshot,
  eventually,
  getSchedule,
  kube,
  kubeConfig,
  kubeconfigFor,
  listSnapshots,
  restartApiServer,
  statusCode,
  useNamespace,
} from '../env/kube.ts';
import { ControlPlane, controlPlaneBinaries } from '../../dev/control-plane.ts';
import { processesMentioning } from '../../dev/processes.ts';

describe('the test control plane', () => {
  const ns = useNamespace('cp');

  it('binds a PVC to its PV through the real controller-manager', async () => {
    const pvc = await boundPvc(ns(), 'data');
    expect(pvc.status?.phase).toBe('Bound');
    expect(pvc.spec?.volumeName).toMatch(/^pv-/);
  });

  it('serves VolumeSnapshots with a status subresource', async () => {
    await createSnapshot(ns(), 's1', { pvc: 'data', status: { readyToUse: true, restoreSize: '1Gi' } });
    expect((await listSnapshots(ns()))[0]?.status).toMatchObject({ readyToUse: true, restoreSize: '1Gi' });
  });

  it('enforces RBAC: a ServiceAccount with a narrow Role is refused outside it', async () => {
    const admin = kube();
    const other = `${ns()}-b`;
    await admin.core.createNamespace({ body: { metadata: { name: other } } });
    try {
      const rbac = kubeConfig().makeApiClient(k8s.RbacAuthorizationV1Api);
      await rbac.createNamespacedRole({
        namespace: ns(),
        body: {
          metadata: { name: 'reader' },
          rules: [{ apiGroups: ['snapcron.io'], resources: ['snapshotschedules'], verbs: ['get', 'list'] }],
        },
      });
      await rbac.createNamespacedRoleBinding({
        namespace: ns(),
        body: {
          metadata: { name: 'reader' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'reader' },
          subjects: [{ kind: 'ServiceAccount', name: 'narrow', namespace: ns() }],
        },
      });
      const path = await kubeconfigFor(`system:serviceaccount:${ns()}:narrow`, ['system:serviceaccounts']);
      const kc = kubeConfig(path);
      const custom = kc.makeApiClient(k8s.CustomObjectsApi);
      const base = { group: 'snapcron.io', version: 'v1', plural: 'snapshotschedules' };
      const allowed = (await eventually(() =>
        custom.listNamespacedCustomObject({ ...base, namespace: ns() }),
      )) as { items: unknown[] };
      expect(allowed.items).toEqual([]);
      expect(await statusCode(custom.listNamespacedCustomObject({ ...base, namespace: other }))).toBe(403);
      expect(
        await statusCode(
          custom.createNamespacedCustomObject({
            ...base,
            namespace: ns(),
            body: {
              apiVersion: 'snapcron.io/v1',
              kind: 'SnapshotSchedule',
              metadata: { name: 'x' },
              spec: { schedule: '@daily', retention: { maxCount: 1 } },
            },
          }),
        ),
      ).toBe(403);
    } finally {
      await admin.core.deleteNamespace({ name: other }).catch(() => undefined);
    }
  });

  it('survives a kube-apiserver restart: stored objects are still there', async () => {
    await createSchedule(ns(), 'kept', { schedule: '@daily' });
    await restartApiServer();
    const s = await eventually(() => getSchedule(ns(), 'kept'));
    expect(s.spec.schedule).toBe('@daily');
  });
});

describe('KUBEBUILDER_ASSETS (envtest convention, README)', () => {
  it('a control plane runs the kube-apiserver and etcd found there, building nothing', async () => {
    const built = controlPlaneBinaries();
    const assets = mkdtempSync(join(tmpdir(), 'snapcron-assets-'));
    for (const bin of ['kube-apiserver', 'etcd', 'kube-controller-manager'])
      symlinkSync(join(built, bin), join(assets, bin));
    const before = process.env.KUBEBUILDER_ASSETS;
    process.env.KUBEBUILDER_ASSETS = assets;
    let cp: ControlPlane | undefined;
    try {
      expect(controlPlaneBinaries()).toBe(assets);
      cp = await ControlPlane.start({ installCrds: false });
      const programs = processesMentioning([cp.dir])
        .map((p) => p.args[0])
        .sort();
      expect(programs).toEqual([
        join(assets, 'etcd'),
        join(assets, 'kube-apiserver'),
        join(assets, 'kube-controller-manager'),
      ]);
    } finally {
      if (before === undefined) delete process.env.KUBEBUILDER_ASSETS;
      else process.env.KUBEBUILDER_ASSETS = before;
      await cp?.stop();
      rmSync(assets, { recursive: true, force: true });
    }
  }, 120_000);
});
