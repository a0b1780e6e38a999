import * as k8s from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../../src/api/objects.ts';
import { freePort } from '../env/control-plane.ts';
import {
  createSchedule,
  eventually,
  kube,
  kubeConfig,
  listSnapshots,
  setSnapshotStatus,
  useNamespace,
} from '../env/kube.ts';
import { runCli, startController, type Running } from '../env/processes.ts';
import { installRestoreWebhook } from '../env/webhook.ts';

const HOUR = 3_600_000;

async function snapshot(
  namespace: string,
  name: string,
  pvc: string,
  hoursAgo: number,
  status: VolumeSnapshot['status'],
  schedule = 'nightly',
): Promise<void> {
  const k = kube();
  await k.custom.createNamespacedCustomObject({
    ...k.snapshots,
    namespace,
    body: {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: {
        name,
        labels: { 'snapcron.io/schedule': schedule, 'snapcron.io/pvc': pvc },
        annotations: { 'snapcron.io/scheduled-at': new Date(Date.now() - hoursAgo * HOUR).toISOString() },
      },
      spec: { source: { persistentVolumeClaimName: pvc } },
    },
  });
  if (status) await setSnapshotStatus(namespace, name, status);
}

/** Creates a PVC; resolves with the stored object or rejects with the API server's message. */
async function createPvc(
  namespace: string,
  name: string,
  opts: { annotations?: Record<string, string>; routed?: boolean; storage?: string } = {},
): Promise<PersistentVolumeClaim> {
  try {
    return (await kube().core.createNamespacedPersistentVolumeClaim({
      namespace,
      body: {
        metadata: {
          name,
          labels: opts.routed === false ? {} : { 'snapcron.io/restore': 'true' },
          annotations: opts.annotations ?? {},
        },
        // A class nothing provisions: the PVC stays Pending, like a restore in progress.
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: 'restore-test',
          resources: { requests: { storage: opts.storage ?? '1Gi' } },
        },
      },
    })) as unknown as PersistentVolumeClaim;
  } catch (err) {
    const body = (err as { body?: unknown }).body;
    throw new Error(
      typeof body === 'string' ? (JSON.parse(body) as { message: string }).message : String(err),
      {
        cause: err,
      },
    );
  }
}

describe('restore from latest through the admission webhook (real API server, TLS)', () => {
  const ns = useNamespace('restore');
  let ctl: Running;
  let port: number;

  async function startWithWebhook(): Promise<void> {
    const name = `snapcron-restore-${ns()}`;
    port = await freePort();
    await installRestoreWebhook(kubeConfig(), name, port, ns());
    ctl = startController(ns(), [
      `--webhook-addr=127.0.0.1:${port}`,
      `--webhook-config-name=${name}`,
      '--webhook-dns-names=localhost',
    ]);
    await eventually(async () => ctl.logs().some((l) => l.msg === 'caBundle injected'), 20_000);
    // The API server reads the new caBundle through its own watch: wait until a routed create is served.
    await eventually(
      async () =>
        createPvc(ns(), `probe-${Date.now()}`, {
          annotations: { 'snapcron.io/restore-from': 'nothing' },
        }).then(
          () => false,
          (err: Error) => /no ready VolumeSnapshot/.test(err.message),
        ),
      20_000,
      300,
    );
  }

  afterEach(async () => {
    const admission = kubeConfig().makeApiClient(k8s.AdmissionregistrationV1Api);
    await admission
      .deleteMutatingWebhookConfiguration({ name: `snapcron-restore-${ns()}` })
      .catch(() => undefined);
  });

  beforeEach(async () => {
    // Source PVC web-0 never exists here: restoring a deleted volume is the case that matters most.
    await snapshot(ns(), 'web-0-pending', 'web-0', 1, undefined);
    await snapshot(ns(), 'web-0-failed', 'web-0', 2, { readyToUse: false, error: { message: 'quota' } });
    await snapshot(ns(), 'web-0-3h', 'web-0', 3, { readyToUse: true, restoreSize: '1Gi' });
    await snapshot(ns(), 'web-0-5h', 'web-0', 5, { readyToUse: true, restoreSize: '1Gi' }, 'weekly');
    await snapshot(ns(), 'web-0-9h', 'web-0', 9, { readyToUse: true, restoreSize: '1Gi' });
    await snapshot(ns(), 'disk-ssd-web-2-1h', 'disk-ssd-web-2', 1, { readyToUse: true, restoreSize: '20Gi' });
    await startWithWebhook();
  });

  it('restores the newest ready snapshot, not a newer pending or failed one, after the source PVC is gone', async () => {
    const pvc = await createPvc(ns(), 'web-0-restore', {
      annotations: { 'snapcron.io/restore-from': 'web-0' },
    });
    const ref = { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'web-0-3h' };
    expect(pvc.spec?.dataSource).toEqual(ref);
    expect(pvc.spec?.dataSourceRef).toMatchObject(ref);
    expect(pvc.metadata.annotations?.['snapcron.io/restored-from-snapshot']).toBe('web-0-3h');
    expect(pvc.metadata.annotations?.['snapcron.io/restored-snapshot-time']).toMatch(/Z$/);
  });

  it('restore-at and restore-schedule pick the right copy', async () => {
    const at = new Date(Date.now() - 4 * HOUR).toISOString();
    const a = await createPvc(ns(), 'at-4h', {
      annotations: { 'snapcron.io/restore-from': 'web-0', 'snapcron.io/restore-at': at },
    });
    expect(a.spec?.dataSource?.name).toBe('web-0-5h');
    const b = await createPvc(ns(), 'weekly-only', {
      annotations: { 'snapcron.io/restore-from': 'web-0', 'snapcron.io/restore-schedule': 'weekly' },
    });
    expect(b.spec?.dataSource?.name).toBe('web-0-5h');
  });

  it('{ordinal} restores each StatefulSet replica from its own source', async () => {
    const pvc = await createPvc(ns(), 'disk-ssd-web-restore-2', {
      annotations: { 'snapcron.io/restore-from': 'disk-ssd-web-{ordinal}' },
      storage: '20Gi',
    });
    expect(pvc.spec?.dataSource?.name).toBe('disk-ssd-web-2-1h');
  });

  it('Required denies when nothing fits; IfAvailable creates an empty volume and says so', async () => {
    await expect(
      createPvc(ns(), 'req', { annotations: { 'snapcron.io/restore-from': 'db-0' } }),
    ).rejects.toThrow(
      /denied the request: snapcron restore of PVC restore-[0-9a-f]+\/req: no ready VolumeSnapshot of PVC restore-[0-9a-f]+\/db-0/,
    );
    const empty = await createPvc(ns(), 'opt', {
      annotations: { 'snapcron.io/restore-from': 'db-0', 'snapcron.io/restore-policy': 'IfAvailable' },
    });
    expect(empty.spec?.dataSource).toBeUndefined();
    expect(empty.metadata.annotations?.['snapcron.io/restore-result']).toMatch(
      /^created empty: no ready VolumeSnapshot/,
    );
  });

  it('denies a source in another namespace, a too-small request and malformed annotations', async () => {
    const other = `${ns()}-other`;
    await kube().core.createNamespace({ body: { metadata: { name: other } } });
    try {
      await snapshot(other, 'elsewhere', 'db-1', 1, { readyToUse: true });
      await expect(
        createPvc(ns(), 'cross', { annotations: { 'snapcron.io/restore-from': 'db-1' } }),
      ).rejects.toThrow(/no ready VolumeSnapshot/);
    } finally {
      await kube()
        .core.deleteNamespace({ name: other })
        .catch(() => undefined);
    }
    await expect(
      createPvc(ns(), 'small-0', {
        annotations: { 'snapcron.io/restore-from': 'disk-ssd-web-2' },
        storage: '10Gi',
      }),
    ).rejects.toThrow(/requested storage 10Gi is smaller than snapshot disk-ssd-web-2-1h's restoreSize 20Gi/);
    await expect(
      createPvc(ns(), 'bad-at', {
        annotations: { 'snapcron.io/restore-from': 'web-0', 'snapcron.io/restore-at': 'noon' },
      }),
    ).rejects.toThrow(/restore-at "noon" is not an RFC 3339 time/);
  });

  it('an unrouted PVC never reaches the webhook, and an outage blocks only routed PVCs', async () => {
    const plain = await createPvc(ns(), 'plain', {
      routed: false,
      annotations: { 'snapcron.io/restore-from': 'web-0' },
    });
    expect(plain.spec?.dataSource).toBeUndefined();
    expect(ctl.logs().some((l) => l.pvc === 'plain')).toBe(false);

    await ctl.kill('SIGKILL');
    await expect(
      createPvc(ns(), 'routed-down', { annotations: { 'snapcron.io/restore-from': 'web-0' } }),
    ).rejects.toThrow(/failed calling webhook/);
    const stillFine = await createPvc(ns(), 'plain-2', { routed: false });
    expect(stillFine.metadata.name).toBe('plain-2');
  });

  it('the snapshot chosen for a Pending PVC survives pruning', async () => {
    await createSchedule(ns(), 'nightly', { schedule: '0 0 1 1 *', retention: { maxCount: 1 } });
    const at = new Date(Date.now() - 8 * HOUR).toISOString();
    const pvc = await createPvc(ns(), 'old-copy', {
      annotations: { 'snapcron.io/restore-from': 'web-0', 'snapcron.io/restore-at': at },
    });
    expect(pvc.spec?.dataSource?.name).toBe('web-0-9h');
    // maxCount 1 leaves web-0-3h (newest) and deletes the failed one; web-0-9h is in use.
    await eventually(
      async () => !(await listSnapshots(ns())).some((s) => s.metadata.name === 'web-0-failed'),
      15_000,
    );
    const names = (await listSnapshots(ns())).map((s) => s.metadata.name);
    expect(names).toContain('web-0-9h');
    expect(names).toContain('web-0-3h');
  });
});

describe('snapcron restore (the same choice without a webhook)', () => {
  const ns = useNamespace('restore-cli');

  it('prints with --dry-run, then creates the PVC from the newest ready snapshot', async () => {
    await snapshot(ns(), 'web-0-3h', 'web-0', 3, { readyToUse: true, restoreSize: '2Gi' });
    await snapshot(ns(), 'web-0-1h', 'web-0', 1, undefined);
    const dry = await runCli([
      'restore',
      'web-0-restore',
      '--from',
      'web-0',
      '-n',
      ns(),
      '--dry-run',
      '-o',
      'json',
    ]);
    expect(dry.code).toBe(0);
    const manifest = JSON.parse(dry.out) as PersistentVolumeClaim;
    expect(manifest.spec?.dataSource?.name).toBe('web-0-3h');
    expect(manifest.spec?.resources?.requests?.storage).toBe('2Gi');
    expect(dry.err).toMatch(/would restore from VolumeSnapshot web-0-3h, taken .* \(3h\d*m?\d*s? ago\)/);

    const real = await runCli([
      'restore',
      'web-0-restore',
      '--from',
      'web-0',
      '-n',
      ns(),
      '--storage-class',
      'fast',
    ]);
    expect(real.code).toBe(0);
    expect(real.out).toMatch(/created PVC restore-cli-[0-9a-f]+\/web-0-restore from VolumeSnapshot web-0-3h/);
    const pvc = await kube().core.readNamespacedPersistentVolumeClaim({
      name: 'web-0-restore',
      namespace: ns(),
    });
    expect(pvc.spec?.dataSource?.name).toBe('web-0-3h');
    expect(pvc.spec?.storageClassName).toBe('fast');

    const none = await runCli(['restore', 'x', '--from', 'db-0', '-n', ns()]);
    expect(none.code).toBe(1);
    expect(none.err.trim()).toMatch(
      /^snapcron restore: no ready VolumeSnapshot of PVC restore-cli-[0-9a-f]+\/db-0$/,
    );
  });
});
