// The shipped RBAC (deploy/base/rbac.yaml + deploy/base/webhook.yaml) is enough, and no more is needed:
// the controller and tick run as the snapcron ServiceAccount with nothing else granted.
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../dev/control-plane.ts';
import {
  boundPvc,
  createSchedule,
  eventually,
  getSchedule,
  kube,
  kubeConfig,
  kubeconfigFor,
  kubeconfigPath,
  listSnapshots,
  setSnapshotStatus,
  statusCode,
  useNamespace,
} from '../env/kube.ts';
import { runTick, startController } from '../env/processes.ts';
import { HookRunner } from '../../src/controller/hooks.ts';
import { Kube } from '../../src/kube/client.ts';
import { installRestoreWebhook } from '../../dev/restore-webhook.ts';

const SA_USER = 'system:serviceaccount:snapcron-system:snapcron';
const SA_GROUPS = [
  'system:serviceaccounts',
  'system:serviceaccounts:snapcron-system',
  'system:authenticated',
];
const RBAC_KINDS = new Set([
  'Namespace',
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
]);

/** The RBAC objects of the deploy manifests (not the Deployment, Service or webhook configuration). */
function shippedRbac(): k8s.KubernetesObject[] {
  return ['deploy/base/rbac.yaml', 'deploy/base/webhook.yaml']
    .flatMap((f) => k8s.loadAllYaml(readFileSync(f, 'utf8')) as k8s.KubernetesObject[])
    .filter((o) => RBAC_KINDS.has(o.kind ?? ''));
}

// Errors, and refusals at any level (a transient "watch broke; resuming" warning is fine).
const problems = (lines: Record<string, unknown>[]): Record<string, unknown>[] =>
  lines.filter((l) => Number(l.level) >= 50 || /forbidden|\b403\b/i.test(JSON.stringify(l)));

describe('least privilege: deploy/ RBAC on the real API server', () => {
  const ns = useNamespace('rbac');
  let saKubeconfig: string;

  beforeAll(async () => {
    const objects = k8s.KubernetesObjectApi.makeApiClient(kubeConfig());
    for (const o of shippedRbac()) {
      await objects.create(o).catch((err: { code?: number }) => {
        if (err.code !== 409) throw err;
      });
    }
    saKubeconfig = await kubeconfigFor(SA_USER, SA_GROUPS);
  });

  afterAll(async () => {
    await kubeConfig()
      .makeApiClient(k8s.AdmissionregistrationV1Api)
      .deleteMutatingWebhookConfiguration({ name: 'snapcron-restore' })
      .catch(() => undefined);
  });

  it('the ServiceAccount is refused what the manifests do not grant', async () => {
    const core = kubeConfig(saKubeconfig).makeApiClient(k8s.CoreV1Api);
    expect(await statusCode(core.listNamespacedSecret({ namespace: ns() }))).toBe(403);
    expect(await statusCode(core.readNamespacedSecret({ namespace: 'snapcron-system', name: 'other' }))).toBe(
      403,
    );
    expect(await statusCode(core.deleteNamespacedPersistentVolumeClaim({ namespace: ns(), name: 'x' }))).toBe(
      403,
    );
    expect(await statusCode(core.listNamespacedPersistentVolumeClaim({ namespace: ns() }))).toBe(200);
  });

  it('the ServiceAccount may take and delete VolumeGroupSnapshots and read their classes (spec.group), and no more', async () => {
    // Asked of the authorizer, so it holds whether or not this API server serves the group CRDs.
    const authz = kubeConfig().makeApiClient(k8s.AuthorizationV1Api);
    const allowed = async (resource: string, verb: string): Promise<boolean> => {
      const review = await authz.createSubjectAccessReview({
        body: {
          spec: {
            user: SA_USER,
            groups: SA_GROUPS,
            resourceAttributes: {
              group: 'groupsnapshot.storage.k8s.io',
              resource,
              verb,
              ...(resource === 'volumegroupsnapshots' ? { namespace: ns() } : {}),
            },
          },
        },
      });
      return review.status?.allowed === true;
    };
    const verbs = ['get', 'list', 'watch', 'create', 'delete', 'update', 'patch', 'deletecollection'];
    const grants = async (resource: string): Promise<string[]> => {
      const out: string[] = [];
      for (const verb of verbs) if (await allowed(resource, verb)) out.push(verb);
      return out;
    };
    expect(await grants('volumegroupsnapshots')).toEqual(['get', 'list', 'watch', 'create', 'delete']);
    expect(await grants('volumegroupsnapshotclasses')).toEqual(['get', 'list', 'watch']);
    expect(await grants('volumegroupsnapshotcontents')).toEqual([]);
  });

  it('the ServiceAccount may exec a hook (pods/exec by WebSocket: the upgrade is a GET, and 1.35+ also checks create)', async () => {
    // A pod bound to a node that does not exist: the API server authorizes the exec, then finds
    // no kubelet to reach. The ServiceAccount must get exactly as far as the admin does.
    await kube().core.createNamespacedPod({
      namespace: ns(),
      body: {
        metadata: { name: 'db' },
        spec: { containers: [{ name: 'db', image: 'registry.invalid/db' }], nodeName: 'no-such-node' },
      },
    });
    const hook = { podSelector: {}, command: ['true'], container: 'db', timeoutSeconds: 10 };
    const execAs = async (kubeconfig: string) =>
      (await new HookRunner(Kube.fromFile(kubeconfig)).run(ns(), ['db'], hook))[0];
    const admin = await execAs(kubeconfigPath());
    const sa = await execAs(saKubeconfig);
    expect(admin?.ok).toBe(false);
    expect(admin?.error).not.toMatch(/\b403\b|forbidden/i);
    expect(sa?.error).not.toMatch(/\b403\b|forbidden/i);
    expect(sa?.error).toBe(admin?.error);
  });

  it('controller and tick do their whole job as the ServiceAccount, without one refusal', async () => {
    await boundPvc(ns(), 'web-0', { app: 'web' });
    const port = await freePort();
    // Named like deploy/base/webhook.yaml's (RBAC names it), but limited to this test's namespace.
    await installRestoreWebhook(kubeConfig(), 'snapcron-restore', port, ns());
    const ctl = startController(
      ns(),
      [
        '--lease-namespace=snapcron-system',
        `--lease-name=snapcron-${ns()}`,
        `--webhook-addr=127.0.0.1:${port}`,
        '--webhook-dns-names=localhost',
      ],
      'sa',
      saKubeconfig,
    );
    await eventually(async () => ctl.logs().some((l) => l.msg === 'caBundle injected'), 30_000);
    await createSchedule(ns(), 'every2s', {
      schedule: '*/2 * * * * *',
      claimSelector: { matchLabels: { app: 'web' } },
      retention: { maxCount: 2 },
      deletionPolicy: 'Delete',
    });

    // Snapshots are taken; marked ready as a CSI snapshotter would; retention prunes to 2 ready.
    const seen = new Set<string>();
    await eventually(
      async () => {
        for (const s of await listSnapshots(ns())) {
          const name = s.metadata.name ?? '';
          if (!s.status?.readyToUse && !seen.has(name)) {
            seen.add(name);
            await setSnapshotStatus(ns(), name, { readyToUse: true, restoreSize: '1Gi' });
          }
        }
        return seen.size >= 5;
      },
      30_000,
      300,
    );
    await eventually(
      async () => (await listSnapshots(ns())).filter((s) => s.status?.readyToUse).length <= 2,
      15_000,
    );
    const status = (await getSchedule(ns(), 'every2s')).status;
    expect(status?.lastSuccessfulTime).toBeDefined();
    const events = await kube().core.listNamespacedEvent({ namespace: ns() });
    const reasons = new Set(events.items.map((e) => e.reason));
    expect(reasons).toContain('SnapshotsCreated');
    expect(reasons).toContain('SnapshotsPruned');

    // The webhook restores, having stored its certificate and injected the CA as the ServiceAccount.
    const restored = await eventually(() =>
      kube().core.createNamespacedPersistentVolumeClaim({
        namespace: ns(),
        body: {
          metadata: {
            name: `web-0-restore-${Date.now()}`,
            labels: { 'snapcron.io/restore': 'true' },
            annotations: { 'snapcron.io/restore-from': 'web-0' },
          },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        },
      }),
    );
    expect(restored.spec?.dataSource?.kind).toBe('VolumeSnapshot');
    const lease = await kube().coordination.readNamespacedLease({
      namespace: 'snapcron-system',
      name: `snapcron-${ns()}`,
    });
    expect(lease.spec?.holderIdentity).toBe('sa');

    // The finalizer path (deletionPolicy Delete) needs update on schedules and delete on snapshots;
    // the snapshot the Pending restore reads waits until that PVC is gone.
    const k = kube();
    await k.custom.deleteNamespacedCustomObject({ ...k.schedules, namespace: ns(), name: 'every2s' });
    const inUse = restored.spec?.dataSource?.name;
    await eventually(async () => {
      const left = (await listSnapshots(ns())).map((s) => s.metadata.name);
      return left.length === 1 && left[0] === inUse;
    }, 20_000);
    await eventually(async () =>
      (await k.core.listNamespacedEvent({ namespace: ns() })).items.some(
        (e) => e.reason === 'WaitingForRestore',
      ),
    );
    await k.core.deleteNamespacedPersistentVolumeClaim({
      namespace: ns(),
      name: restored.metadata?.name ?? '',
    });
    await eventually(async () => (await listSnapshots(ns())).length === 0, 20_000);
    await eventually(() =>
      getSchedule(ns(), 'every2s').then(
        () => false,
        (err: { code?: number }) => err.code === 404,
      ),
    );
    await ctl.kill('SIGTERM');
    expect(problems(ctl.logs())).toEqual([]);
    // The shipped RBAC lets it watch VolumeSnapshotClasses, so the AckWarnings condition is on.
    expect(ctl.logs().filter((l) => /VolumeSnapshotClasses/.test(String(l.msg)))).toEqual([]);

    // One tick as the same ServiceAccount.
    await createSchedule(ns(), 'hourly', {
      schedule: '@hourly',
      claimSelector: { matchLabels: { app: 'web' } },
      retention: { maxCount: 2 },
    });
    const tick = await runTick(ns(), [], saKubeconfig);
    expect(tick.code).toBe(0);
    expect(tick.out).not.toMatch(/forbidden|403|cannot list VolumeSnapshotClasses/i);
  });
});
