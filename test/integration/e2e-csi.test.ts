/**
 * The seed's flow end to end on a real CSI stack: a provisioned volume with data,
 * scheduled snapshots made ready by the real snapshot-controller and csi-snapshotter,
 * retention pruning down to the backend, and a point-in-time restore by annotation
 * through the webhook and the real csi-provisioner.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VolumeSnapshot } from '../../src/api/objects.ts';
import { freePort } from '../../dev/control-plane.ts';
import { CsiStack, SNAPSHOT_CLASS, STORAGE_CLASS } from '../../dev/csi-stack.ts';
import {
  createSchedule,
  eventually,
  kube,
  kubeConfig,
  kubeconfigPath,
  listSnapshots,
  updateScheduleSpec,
  useNamespace,
} from '../env/kube.ts';
import { startController } from '../env/processes.ts';
import { installRestoreWebhook } from '../../dev/restore-webhook.ts';

const at = (s: VolumeSnapshot): number =>
  Date.parse(s.metadata.annotations?.['snapcron.io/scheduled-at'] ?? '');

describe('the seed flow on a real CSI stack', () => {
  let stack: CsiStack;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'snapcron-csi-'));
    stack = await CsiStack.start(kubeconfigPath(), dir);
  }, 900_000);
  afterAll(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const ns = useNamespace('seed');

  async function pvcVolumeDir(name: string): Promise<string> {
    const k = kube();
    const pvc = await eventually(async () => {
      const p = await k.core.readNamespacedPersistentVolumeClaim({ name, namespace: ns() });
      return p.status?.phase === 'Bound' ? p : undefined;
    }, 60_000);
    const pv = await k.core.readPersistentVolume({ name: pvc.spec?.volumeName ?? '' });
    return stack.volumeDir(pv.spec?.csi?.volumeHandle ?? '');
  }

  async function snapshotHandles(): Promise<Map<string, string>> {
    const k = kube();
    const list = (await k.custom.listClusterCustomObject({
      group: 'snapshot.storage.k8s.io',
      version: 'v1',
      plural: 'volumesnapshotcontents',
    })) as {
      items: {
        spec: { volumeSnapshotRef: { name: string; namespace: string } };
        status?: { snapshotHandle?: string };
      }[];
    };
    return new Map(
      list.items
        .filter((c) => c.spec.volumeSnapshotRef.namespace === ns() && c.status?.snapshotHandle)
        .map((c) => [c.spec.volumeSnapshotRef.name, c.status?.snapshotHandle ?? '']),
    );
  }

  it('snapshots on schedule, prunes in the backend, and restores point-in-time by annotation', async () => {
    const k = kube();
    const timings: Record<string, number> = {};
    let t = Date.now();
    const step = (name: string): void => {
      timings[name] = Date.now() - t;
      t = Date.now();
    };

    // 1. The app volume, provisioned by the real csi-provisioner, with known data.
    await k.core.createNamespacedPersistentVolumeClaim({
      namespace: ns(),
      body: {
        metadata: { name: 'disk-ssd-web-0', labels: { app: 'nginx' } },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: STORAGE_CLASS,
          resources: { requests: { storage: '1Gi' } },
        },
      },
    });
    const source = await pvcVolumeDir('disk-ssd-web-0');
    const first = randomBytes(4096);
    writeFileSync(join(source, 'test'), first);
    step('provision');

    // 2. A schedule every 3 seconds; snapshots become ready through the real snapshot stack.
    const port = await freePort();
    const webhookName = `snapcron-restore-${ns()}`;
    await installRestoreWebhook(kubeConfig(), webhookName, port, ns());
    const ctl = startController(ns(), [
      `--webhook-addr=127.0.0.1:${port}`,
      `--webhook-config-name=${webhookName}`,
    ]);
    await createSchedule(ns(), 'web', {
      schedule: '*/3 * * * * *',
      claimSelector: { matchLabels: { app: 'nginx' } },
      snapshotClassName: SNAPSHOT_CLASS,
      retention: { maxCount: 3 },
    });
    const seen = new Map<string, string>();
    let pruned: string[] = [];
    await eventually(async () => {
      for (const [name, handle] of await snapshotHandles()) seen.set(name, handle);
      const current = new Set((await listSnapshots(ns())).map((s) => s.metadata.name));
      pruned = [...seen.keys()].filter((n) => !current.has(n));
      const ready = (await listSnapshots(ns())).filter((s) => s.status?.readyToUse === true);
      return pruned.length >= 2 && ready.length >= 3;
    }, 90_000);
    step('first snapshots ready');

    // 3. Retention pruned to maxCount, and the pruned snapshots are gone in the backend too.
    expect(pruned.length).toBeGreaterThanOrEqual(2);
    await eventually(
      async () => pruned.every((n) => !existsSync(stack.snapshotArchive(seen.get(n) ?? ''))),
      20_000,
    );
    // Ready and not being deleted: a pruned snapshot lingers, terminating, until the CSI stack
    // has deleted its backend copy, and a slow stack turns many pending snapshots ready at once.
    const kept = async (): Promise<number> =>
      (await listSnapshots(ns())).filter((s) => s.status?.readyToUse && !s.metadata.deletionTimestamp).length;
    await eventually(async () => (await kept()) <= 3, 30_000);
    step('pruned in backend');

    // New content; one more snapshot after it, then stop the schedule. The newest snapshot
    // already ready holds the first content whole (hostpath copies the data before it reports
    // ready, which can be well after its creationTime on a loaded machine): restore-at aims at it.
    const cutBefore = (await listSnapshots(ns()))
      .filter((s) => s.status?.readyToUse && !s.metadata.deletionTimestamp)
      .map((s) => Date.parse(s.status?.creationTime ?? ''))
      .sort((a, b) => a - b)
      .at(-1);
    expect(cutBefore).toBeGreaterThan(0);
    const second = randomBytes(4096);
    const secondWrittenAt = Date.now();
    writeFileSync(join(source, 'test'), second);
    await eventually(
      async () =>
        (await listSnapshots(ns())).some((s) => at(s) > secondWrittenAt + 500 && s.status?.readyToUse),
      30_000,
    );
    await updateScheduleSpec(ns(), 'web', { suspend: true });
    await eventually(async () => (await listSnapshots(ns())).every((s) => s.status?.readyToUse), 30_000);
    writeFileSync(join(source, 'late'), 'written after the last snapshot');
    step('second content snapshotted');

    // 4. Restore by annotation: the webhook picks the newest ready snapshot.
    const restore = async (name: string, annotations: Record<string, string>): Promise<string> => {
      await k.core.createNamespacedPersistentVolumeClaim({
        namespace: ns(),
        body: {
          metadata: { name, labels: { 'snapcron.io/restore': 'true' }, annotations },
          spec: {
            accessModes: ['ReadWriteOnce'],
            storageClassName: STORAGE_CLASS,
            resources: { requests: { storage: '1Gi' } },
          },
        },
      });
      return pvcVolumeDir(name);
    };
    const restored = await restore('disk-ssd-web-restore-0', {
      'snapcron.io/restore-from': 'disk-ssd-web-{ordinal}',
    });
    expect(readFileSync(join(restored, 'test')).equals(second)).toBe(true);
    expect(existsSync(join(restored, 'late'))).toBe(false);
    step('restore newest');

    // 5. restore-at an earlier time restores the earlier content.
    const earlier = await restore('disk-ssd-web-restore-1', {
      'snapcron.io/restore-from': 'disk-ssd-web-0',
      'snapcron.io/restore-at': new Date((cutBefore as number) + 1).toISOString(),
    });
    expect(readFileSync(join(earlier, 'test')).equals(first)).toBe(true);
    step('restore point in time');

    await ctl.kill();
    console.log(`seed flow timings (ms): ${JSON.stringify(timings)}`);
  });
});
