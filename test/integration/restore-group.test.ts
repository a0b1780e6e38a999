/**
 * Restoring from consistency groups through the real API server: VolumeGroupSnapshots and
 * their member VolumeSnapshots are made here as the snapshot-controller would (status through
 * the status subresource), the restore webhook is served in this process over TLS with lookups
 * that read the API server, and `snapcron restore --group` runs as the CLI.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../../src/api/objects.ts';
import { freePort, snapshotCrdDir } from '../../dev/control-plane.ts';
import { installRestoreWebhook } from '../../dev/restore-webhook.ts';
import { EventRecorder } from '../../src/kube/events.ts';
import { startWebhook } from '../../src/restore/webhook.ts';
import { eventsOf, eventually, kube, kubeConfig, useNamespace } from '../env/kube.ts';
import { runCli } from '../env/processes.ts';

const MINUTE = 60_000;
const GROUP_CRD = 'volumegroupsnapshots.groupsnapshot.storage.k8s.io';

/** The VolumeGroupSnapshot CRD from the external-snapshotter client module, if the harness has none. */
async function ensureGroupSnapshotCrd(): Promise<void> {
  const api = kubeConfig().makeApiClient(k8s.ApiextensionsV1Api);
  try {
    await api.readCustomResourceDefinition({ name: GROUP_CRD });
  } catch {
    const file = join(snapshotCrdDir(), 'groupsnapshot.storage.k8s.io_volumegroupsnapshots.yaml');
    const [crd] = k8s.loadAllYaml(readFileSync(file, 'utf8')) as k8s.V1CustomResourceDefinition[];
    if (!crd) throw new Error(`no CRD in ${file}`);
    await api.createCustomResourceDefinition({ body: crd }).catch((err: unknown) => {
      if ((err as { code?: number }).code !== 409) throw err;
    });
  }
  await eventually(async () => {
    const crd = await api.readCustomResourceDefinition({ name: GROUP_CRD });
    return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
  }, 30_000);
}

/**
 * A VolumeGroupSnapshot as snapcron takes one and the snapshot-controller completes it: one
 * member per PVC in `pvcs` (no labels, owned by the group, status naming it), all cut at `cut`.
 */
async function takeGroup(
  namespace: string,
  name: string,
  cut: Date,
  pvcs: string[],
  o: { ready?: boolean; schedule?: string } = {},
): Promise<void> {
  const k = kube();
  const ready = o.ready ?? true;
  const group = (await k.custom.createNamespacedCustomObject({
    ...k.groupSnapshots,
    namespace,
    body: {
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshot',
      metadata: {
        name,
        labels: { 'snapcron.io/schedule': o.schedule ?? 'nightly', 'snapcron.io/group': 'group' },
        annotations: { 'snapcron.io/scheduled-at': cut.toISOString() },
      },
      spec: { source: { selector: { matchLabels: { app: 'db' } } } },
    },
  })) as VolumeGroupSnapshot;
  await k.custom.replaceNamespacedCustomObjectStatus({
    ...k.groupSnapshots,
    namespace,
    name,
    body: { ...group, status: { readyToUse: ready, creationTime: cut.toISOString() } },
  });
  for (const pvc of pvcs) {
    const memberName = `snapshot-${name}-${pvc}`;
    const member = (await k.custom.createNamespacedCustomObject({
      ...k.snapshots,
      namespace,
      body: {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshot',
        metadata: {
          name: memberName,
          ownerReferences: [
            {
              apiVersion: 'groupsnapshot.storage.k8s.io/v1',
              kind: 'VolumeGroupSnapshot',
              name,
              uid: group.metadata.uid ?? '',
            },
          ],
        },
        spec: { source: { persistentVolumeClaimName: pvc } },
      },
    })) as VolumeSnapshot;
    await k.custom.replaceNamespacedCustomObjectStatus({
      ...k.snapshots,
      namespace,
      name: memberName,
      body: {
        ...member,
        status: {
          readyToUse: ready,
          // Members are cut a moment after the group: restore goes by the group's time.
          creationTime: new Date(cut.getTime() + 2000).toISOString(),
          restoreSize: '1Gi',
          volumeGroupSnapshotName: name,
        },
      },
    });
  }
}

/** What the webhook's lookups return: the namespace as the API server had it at the last refresh. */
interface View {
  snapshots: VolumeSnapshot[];
  groups: VolumeGroupSnapshot[];
  pvcs: PersistentVolumeClaim[];
}

async function readView(namespace: string): Promise<View> {
  const k = kube();
  const [snapshots, groups, pvcs] = await Promise.all([
    k.custom.listNamespacedCustomObject({ ...k.snapshots, namespace }) as Promise<{
      items: VolumeSnapshot[];
    }>,
    k.custom.listNamespacedCustomObject({ ...k.groupSnapshots, namespace }) as Promise<{
      items: VolumeGroupSnapshot[];
    }>,
    k.core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector: 'snapcron.io/restore=true' }),
  ]);
  return {
    snapshots: snapshots.items,
    groups: groups.items,
    pvcs: pvcs.items as unknown as PersistentVolumeClaim[],
  };
}

/** Creates a routed restore PVC; resolves with the stored object or rejects with the API server's message. */
async function createPvc(
  namespace: string,
  name: string,
  annotations: Record<string, string>,
): Promise<PersistentVolumeClaim> {
  try {
    return (await kube().core.createNamespacedPersistentVolumeClaim({
      namespace,
      body: {
        metadata: { name, labels: { 'snapcron.io/restore': 'true' }, annotations },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: 'restore-test',
          resources: { requests: { storage: '1Gi' } },
        },
      },
    })) as unknown as PersistentVolumeClaim;
  } catch (err) {
    const body = (err as { body?: unknown }).body;
    throw new Error(
      typeof body === 'string' ? (JSON.parse(body) as { message: string }).message : String(err),
      { cause: err },
    );
  }
}

const closeServer = (server: Server): Promise<void> =>
  new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });

beforeAll(ensureGroupSnapshotCrd, 60_000);

describe('the restore webhook with consistency groups (real API server, TLS)', () => {
  const ns = useNamespace('restore-group');
  const configName = (): string => `snapcron-restore-${ns()}`;
  let server: Server | undefined;
  let port = 0;
  let view: View = { snapshots: [], groups: [], pvcs: [] };

  /** Serves the webhook with the lookups the controller provides, here answered from `view`. */
  async function serve(): Promise<void> {
    ({ server } = await startWebhook({
      address: `127.0.0.1:${port}`,
      secret: { namespace: ns(), name: 'snapcron-webhook-tls' },
      dnsNames: ['localhost'],
      configName: configName(),
      kube: kube(),
      log: pino({ level: 'silent' }),
      events: new EventRecorder(kube(), pino({ level: 'silent' })),
      snapshotsOf: (namespace, pvc) =>
        view.snapshots.filter(
          (s) => s.metadata.namespace === namespace && s.spec.source.persistentVolumeClaimName === pvc,
        ),
      groupSnapshotsOf: (namespace) => view.groups.filter((g) => g.metadata.namespace === namespace),
      restorePvcsOf: (namespace) => view.pvcs.filter((p) => p.metadata.namespace === namespace),
    }));
  }

  /** Refreshes the view from the API server, then creates the PVC through the webhook. */
  async function restore(name: string, annotations: Record<string, string>): Promise<PersistentVolumeClaim> {
    view = await readView(ns());
    return createPvc(ns(), name, annotations);
  }

  afterEach(async () => {
    if (server) await closeServer(server);
    server = undefined;
    await kubeConfig()
      .makeApiClient(k8s.AdmissionregistrationV1Api)
      .deleteMutatingWebhookConfiguration({ name: configName() })
      .catch(() => undefined);
  });

  it('a StatefulSet set comes back from one group, whatever became ready in between and across webhook restarts', async () => {
    const sources = ['data-db-0', 'data-db-1', 'data-db-2'];
    const cutA = new Date(Date.now() - 120 * MINUTE);
    const cutB = new Date(Date.now() - 60 * MINUTE);
    await takeGroup(ns(), 'vgs-a', cutA, sources);
    port = await freePort();
    await installRestoreWebhook(kubeConfig(), configName(), port, ns());
    await serve();
    // The API server reads the new caBundle through its own watch: wait until a routed create is served.
    await eventually(
      () =>
        restore(`probe-${Date.now()}`, { 'snapcron.io/restore-from': 'nothing' }).then(
          () => false,
          (err: Error) => /no ready VolumeSnapshot/.test(err.message),
        ),
      20_000,
      300,
    );
    const setOf = { 'snapcron.io/restore-from': 'data-db-{ordinal}' };

    const first = await restore('data-dbnew-0', setOf);
    expect(first.spec?.dataSource).toEqual({
      apiGroup: 'snapshot.storage.k8s.io',
      kind: 'VolumeSnapshot',
      name: 'snapshot-vgs-a-data-db-0',
    });
    expect(first.metadata.annotations).toMatchObject({
      'snapcron.io/restored-from-snapshot': 'snapshot-vgs-a-data-db-0',
      'snapcron.io/restored-from-group': 'vgs-a',
      // The group's cut, not its member's (2 s later).
      'snapcron.io/restored-snapshot-time': cutA.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    });

    // A newer group becomes ready, and the webhook restarts (another replica, no memory of
    // data-dbnew-0): the stored sibling still pins the set to vgs-a.
    await takeGroup(ns(), 'vgs-b', cutB, sources);
    await closeServer(server as Server);
    await serve();
    const third = await restore('data-dbnew-2', setOf);
    expect(third.spec?.dataSource?.name).toBe('snapshot-vgs-a-data-db-2');
    expect(third.metadata.annotations?.['snapcron.io/restored-from-group']).toBe('vgs-a');

    // Another set (another name) is not pinned: it takes the newest ready group.
    const other = await restore('data-other-1', setOf);
    expect(other.spec?.dataSource?.name).toBe('snapshot-vgs-b-data-db-1');

    // A newer group that is not ready is skipped; restore-at goes by the groups' cut times.
    await takeGroup(ns(), 'vgs-c', new Date(Date.now() - 10 * MINUTE), sources, { ready: false });
    const fresh = await restore('fresh-1', { 'snapcron.io/restore-from': 'data-db-1' });
    expect(fresh.metadata.annotations?.['snapcron.io/restored-from-group']).toBe('vgs-b');
    const earlier = await restore('earlier-1', {
      'snapcron.io/restore-from': 'data-db-1',
      'snapcron.io/restore-at': new Date(cutB.getTime() - 1000).toISOString(),
    });
    expect(earlier.spec?.dataSource?.name).toBe('snapshot-vgs-a-data-db-1');

    // restore-group picks a group by name, over the pin; one that cannot serve is denied with the fix.
    const named = await restore('data-dbnew-1', { ...setOf, 'snapcron.io/restore-group': 'vgs-b' });
    expect(named.spec?.dataSource?.name).toBe('snapshot-vgs-b-data-db-1');
    await expect(restore('data-dbnew-5', { ...setOf, 'snapcron.io/restore-group': 'vgs-c' })).rejects.toThrow(
      new RegExp(
        `snapcron restore of PVC ${ns()}/data-dbnew-5: VolumeGroupSnapshot ${ns()}/vgs-c is not ready; name a ready VolumeGroupSnapshot with a member of PVC data-db-5 \\(kubectl get volumegroupsnapshots -n ${ns()}\\), or remove snapcron.io/restore-group`,
      ),
    );
    await expect(
      restore('data-dbnew-0b', {
        'snapcron.io/restore-from': 'data-db-0',
        'snapcron.io/restore-group': 'vgs-z',
      }),
    ).rejects.toThrow(`VolumeGroupSnapshot ${ns()}/vgs-z does not exist`);

    // A set pinned to a group that is gone restores from the newest, with a warning event.
    const pinned = await restore('data-x-0', { ...setOf, 'snapcron.io/restore-group': 'vgs-a' });
    expect(pinned.metadata.annotations?.['snapcron.io/restored-from-group']).toBe('vgs-a');
    await kube().custom.deleteNamespacedCustomObject({
      group: 'groupsnapshot.storage.k8s.io',
      version: 'v1',
      namespace: ns(),
      plural: 'volumegroupsnapshots',
      name: 'vgs-a',
    });
    const moved = await restore('data-x-1', setOf);
    expect(moved.metadata.annotations?.['snapcron.io/restored-from-group']).toBe('vgs-b');
    const event = await eventually(
      async () =>
        (await eventsOf(ns(), 'RestoreGroupChanged')).find((e) => e.involvedObject.name === 'data-x-1'),
      10_000,
    );
    expect(event.type).toBe('Warning');
    expect(event.message).toBe(
      `PVCs data-x-0 of the same set restored from VolumeGroupSnapshot vgs-a, which cannot serve this one: VolumeGroupSnapshot ${ns()}/vgs-a does not exist; restoring the newest copy instead`,
    );
  });
});

describe('snapcron restore --group (the CLI, real API server)', () => {
  const ns = useNamespace('restore-group-cli');

  it('restores every member of one group, resumes after a failure, and restores one member by --from', async () => {
    const cutA = new Date(Date.now() - 120 * MINUTE);
    await takeGroup(ns(), 'vgs-a', cutA, ['data-db-0', 'data-db-1', 'logs-0']);
    await takeGroup(ns(), 'vgs-b', new Date(Date.now() - 60 * MINUTE), ['data-db-0', 'data-db-1', 'logs-0']);
    await takeGroup(ns(), 'vgs-c', new Date(Date.now() - 5 * MINUTE), ['data-db-0'], { ready: false });

    const dry = await runCli(['restore', '--group', 'vgs-a', '-n', ns(), '--dry-run', '-o', 'json']);
    expect(dry.code).toBe(0);
    const list = JSON.parse(dry.out) as { kind: string; items: PersistentVolumeClaim[] };
    expect(list.kind).toBe('List');
    expect(list.items.map((p) => [p.metadata.name, p.spec?.dataSource?.name])).toEqual([
      ['data-db-0-restore', 'snapshot-vgs-a-data-db-0'],
      ['data-db-1-restore', 'snapshot-vgs-a-data-db-1'],
      ['logs-0-restore', 'snapshot-vgs-a-logs-0'],
    ]);
    expect(list.items[0]?.metadata.annotations?.['snapcron.io/restored-from-group']).toBe('vgs-a');
    expect(dry.err).toMatch(
      new RegExp(
        `# would restore 3 PVCs from VolumeGroupSnapshot ${ns()}/vgs-a, taken ${cutA.toISOString()} \\(2h\\d*m?\\d*s? ago\\)`,
      ),
    );
    const listPvcs = async (): Promise<string[]> =>
      (await kube().core.listNamespacedPersistentVolumeClaim({ namespace: ns() })).items
        .map((p) => p.metadata?.name ?? '')
        .sort();
    expect(await listPvcs()).toEqual([]);

    // Names that clash, or one already taken by another PVC: nothing is created.
    const clash = await runCli([
      'restore',
      '--group',
      'vgs-a',
      '-n',
      ns(),
      '--name-template',
      'restored-{ordinal}',
    ]);
    expect(clash.code).toBe(1);
    expect(clash.err.trim()).toBe(
      'snapcron restore: name template "restored-{ordinal}" gives PVCs data-db-0 and logs-0 the same name restored-0: use {pvc} or {ordinal}',
    );
    const byHand = (name: string) =>
      kube().core.createNamespacedPersistentVolumeClaim({
        namespace: ns(),
        body: {
          metadata: { name },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        },
      });
    await byHand('r-logs-0');
    const template = ['--name-template', 'r-{pvc}'];
    const taken = await runCli(['restore', '--group', 'vgs-a', '-n', ns(), ...template]);
    expect(taken.code).toBe(1);
    expect(taken.err.trim()).toBe(
      `snapcron restore: PVC ${ns()}/r-logs-0 already exists: delete it, or choose other names with --name-template; nothing was created`,
    );
    expect(await listPvcs()).toEqual(['r-logs-0']);
    await kube().core.deleteNamespacedPersistentVolumeClaim({ namespace: ns(), name: 'r-logs-0' });
    await eventually(async () => (await listPvcs()).length === 0, 20_000);

    // A create that fails half-way (a policy refuses the last name): the error says what was
    // created and how to finish; the same command then finishes, keeping what is there.
    const admission = kubeConfig().makeApiClient(k8s.AdmissionregistrationV1Api);
    const policy = `refuse-r-logs-0-${ns()}`;
    await admission.createValidatingAdmissionPolicy({
      body: {
        metadata: { name: policy },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: {
            resourceRules: [
              {
                apiGroups: [''],
                apiVersions: ['v1'],
                operations: ['CREATE'],
                resources: ['persistentvolumeclaims'],
              },
            ],
          },
          validations: [
            { expression: "object.metadata.name != 'r-logs-0'", message: 'r-logs-0 is refused here' },
          ],
        },
      },
    });
    try {
      await admission.createValidatingAdmissionPolicyBinding({
        body: {
          metadata: { name: policy },
          spec: {
            policyName: policy,
            validationActions: ['Deny'],
            matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns() } } },
          },
        },
      });
      // The API server applies a new policy a moment later: wait until a dry run is refused.
      await eventually(
        () =>
          kube()
            .core.createNamespacedPersistentVolumeClaim({
              namespace: ns(),
              dryRun: 'All',
              body: {
                metadata: { name: 'r-logs-0' },
                spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
              },
            })
            .then(
              () => false,
              (err: unknown) => /refused here/.test(String((err as { body?: unknown }).body)),
            ),
        20_000,
        300,
      );
      const half = await runCli(['restore', '--group', 'vgs-a', '-n', ns(), ...template]);
      expect(half.code).toBe(1);
      expect(half.err.trim()).toMatch(
        new RegExp(
          `^snapcron restore: could not create PVC ${ns()}/r-logs-0: .*r-logs-0 is refused here.*; created r-data-db-0, r-data-db-1 before it; run the same command again to finish \\(PVCs already restored are kept\\)$`,
        ),
      );
      expect(await listPvcs()).toEqual(['r-data-db-0', 'r-data-db-1']);
    } finally {
      await admission.deleteValidatingAdmissionPolicyBinding({ name: policy }).catch(() => undefined);
      await admission.deleteValidatingAdmissionPolicy({ name: policy }).catch(() => undefined);
    }
    const finished = await eventually(async () => {
      const r = await runCli(['restore', '--group', 'vgs-a', '-n', ns(), ...template]);
      return r.code === 0 && r;
    }, 20_000);
    expect(finished.out.trim().split('\n')).toEqual([
      `PVC ${ns()}/r-data-db-0 already restored from VolumeSnapshot snapshot-vgs-a-data-db-0 (PVC data-db-0): left as it is`,
      `PVC ${ns()}/r-data-db-1 already restored from VolumeSnapshot snapshot-vgs-a-data-db-1 (PVC data-db-1): left as it is`,
      `created PVC ${ns()}/r-logs-0 from VolumeSnapshot snapshot-vgs-a-logs-0 (PVC logs-0)`,
      expect.stringMatching(
        new RegExp(
          `^restored 3 PVCs from VolumeGroupSnapshot ${ns()}/vgs-a, taken ${cutA.toISOString()} \\(2h`,
        ),
      ),
    ]);
    expect(await listPvcs()).toEqual(['r-data-db-0', 'r-data-db-1', 'r-logs-0']);
    const r1 = await kube().core.readNamespacedPersistentVolumeClaim({
      namespace: ns(),
      name: 'r-data-db-1',
    });
    expect(r1.spec?.dataSource?.name).toBe('snapshot-vgs-a-data-db-1');
    expect(r1.metadata?.annotations).toMatchObject({
      'snapcron.io/restored-from-snapshot': 'snapshot-vgs-a-data-db-1',
      'snapcron.io/restored-from-group': 'vgs-a',
      'snapcron.io/restored-snapshot-time': cutA.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    });
    const otherGroup = await runCli(['restore', '--group', 'vgs-b', '-n', ns(), ...template]);
    expect(otherGroup.code).toBe(1);
    expect(otherGroup.err.trim()).toBe(
      `snapcron restore: PVC ${ns()}/r-data-db-0 already exists (from VolumeSnapshot snapshot-vgs-a-data-db-0): delete it, or choose other names with --name-template; nothing was created`,
    );

    // One PVC: the newest ready copy is vgs-b's member (vgs-c is not ready); --group names one.
    const newest = await runCli(['restore', 'one', '--from', 'data-db-1', '-n', ns()]);
    expect(newest.code).toBe(0);
    expect(newest.out).toMatch(
      new RegExp(
        `^created PVC ${ns()}/one from VolumeSnapshot snapshot-vgs-b-data-db-1 of VolumeGroupSnapshot vgs-b, taken `,
      ),
    );
    const named = await runCli(['restore', 'two', '--from', 'data-db-1', '--group', 'vgs-a', '-n', ns()]);
    expect(named.code).toBe(0);
    const two = await kube().core.readNamespacedPersistentVolumeClaim({ namespace: ns(), name: 'two' });
    expect(two.spec?.dataSource?.name).toBe('snapshot-vgs-a-data-db-1');

    for (const [args, message] of [
      [
        ['--group', 'vgs-c'],
        `VolumeGroupSnapshot ${ns()}/vgs-c is not ready: wait for it, or pick a ready one (kubectl get volumegroupsnapshots -n ${ns()})`,
      ],
      [
        ['--group', 'vgs-z'],
        `VolumeGroupSnapshot ${ns()}/vgs-z not found: list them with kubectl get volumegroupsnapshots -n ${ns()}`,
      ],
      [
        ['three', '--from', 'logs-0', '--group', 'vgs-c'],
        `VolumeGroupSnapshot ${ns()}/vgs-c is not ready: pick a ready one with a member of PVC logs-0 (kubectl get volumegroupsnapshots -n ${ns()}), or drop --group to restore the newest copy`,
      ],
    ] as const) {
      const r = await runCli(['restore', ...args, '-n', ns()]);
      expect(r.code).toBe(1);
      expect(r.err.trim()).toBe(`snapcron restore: ${message}`);
    }
  });
});
