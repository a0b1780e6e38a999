/**
 * Consistency groups on the real CSI stack (issue 15): a schedule with spec.group takes one
 * VolumeGroupSnapshot per fire through the real snapshot-controller and csi-snapshotter (group
 * snapshots enabled) and our driver's GroupController; an app writing a counter to two volumes
 * gets both restored from one instant, where per-PVC snapshots of the same app do not;
 * retention deletes whole groups; a controller killed mid-fire never makes a second group.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VolumeGroupSnapshot, VolumeSnapshot } from '../../src/api/objects.ts';
import { CsiStack, GROUP_SNAPSHOT_CLASS, SNAPSHOT_CLASS } from '../../dev/csi-stack.ts';
import { boundVolumeDir, createCsiPvc, startCounterWriter, stopCounterWriter } from '../env/csi-volumes.ts';
import {
  createSchedule,
  deleteNamespacesAndWait,
  eventually,
  getSchedule,
  kube,
  kubeconfigPath,
  listSnapshots,
  useNamespace,
} from '../env/kube.ts';
import { runKubectl } from '../env/kubectl.ts';
import { runCli, runTick, startController } from '../env/processes.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('consistency groups on the real CSI stack', () => {
  let stack: CsiStack;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'snapcron-groups-'));
    stack = await CsiStack.start(kubeconfigPath(), dir);
  }, 900_000);
  const ns = useNamespace('grp');
  afterAll(async () => {
    // The namespace goes while the stack still runs: group and member finalizers need it.
    await deleteNamespacesAndWait('grp').catch(() => undefined);
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const groups = async (): Promise<VolumeGroupSnapshot[]> => {
    const k = kube();
    return (
      (await k.custom.listNamespacedCustomObject({ ...k.groupSnapshots, namespace: ns() })) as {
        items: VolumeGroupSnapshot[];
      }
    ).items.filter((g) => !g.metadata.deletionTimestamp);
  };
  const membersOf = (all: VolumeSnapshot[], group: string): VolumeSnapshot[] =>
    all.filter((s) => s.status?.volumeGroupSnapshotName === group);

  async function provision(name: string, labels: Record<string, string>): Promise<string> {
    await createCsiPvc(ns(), name, { labels });
    return boundVolumeDir(stack, ns(), name);
  }
  /** A PVC restored from one VolumeSnapshot by the real csi-provisioner; its counter. */
  async function restoredCounter(name: string, snapshot: string): Promise<number> {
    await createCsiPvc(ns(), name, { snapshot });
    return Number(readFileSync(join(await boundVolumeDir(stack, ns(), name), 'counter'), 'utf8'));
  }

  it('restores both volumes of a group from one instant; per-PVC snapshots of the same app are apart', async () => {
    const data = await provision('data-pg-0', { app: 'pg', role: 'data' });
    const wal = await provision('wal-pg-0', { app: 'pg', role: 'wal' });
    const writer = startCounterWriter(join(data, 'counter'), join(wal, 'counter'), join(dir, 'scratch'));
    const ctl = startController(ns());
    try {
      // The counter is running.
      await eventually(async () => Number(readFileSync(join(data, 'counter'), 'utf8')) > 50, 10_000);
      // Never due by the clock: the first run comes from runOnCreate, at once.
      await createSchedule(ns(), 'pg-group', {
        schedule: '0 0 1 1 *',
        runOnCreate: true,
        claimSelector: { matchLabels: { app: 'pg' } },
        group: { by: 'Schedule', volumeGroupSnapshotClassName: GROUP_SNAPSHOT_CLASS },
        retention: { maxCount: 1, minReady: 1 },
      });
      await createSchedule(ns(), 'pg-each', {
        schedule: '0 0 1 1 *',
        runOnCreate: true,
        claimSelector: { matchLabels: { app: 'pg' } },
        snapshotClassName: SNAPSHOT_CLASS,
        retention: { maxCount: 5 },
      });
      const group = await eventually(async () => {
        const g = (await groups())[0];
        return g?.status?.readyToUse ? g : undefined;
      }, 90_000);
      expect(group.metadata.labels).toMatchObject({
        'snapcron.io/schedule': 'pg-group',
        'snapcron.io/group': 'group',
      });
      const all = await eventually(async () => {
        const list = await listSnapshots(ns());
        const ready = list.filter((s) => s.status?.readyToUse);
        return ready.length >= 4 ? list : undefined;
      }, 90_000);
      await stopCounterWriter(writer);
      const members = membersOf(all, group.metadata.name ?? '');
      expect(members.map((m) => m.spec.source.persistentVolumeClaimName).sort()).toEqual([
        'data-pg-0',
        'wal-pg-0',
      ]);
      const each = all.filter((s) => s.metadata.labels?.['snapcron.io/schedule'] === 'pg-each');
      expect(each.map((s) => s.spec.source.persistentVolumeClaimName).sort()).toEqual([
        'data-pg-0',
        'wal-pg-0',
      ]);
      const memberOf = (list: VolumeSnapshot[], pvc: string): string =>
        list.find((s) => s.spec.source.persistentVolumeClaimName === pvc)?.metadata.name ?? '';

      const gData = await restoredCounter('g-data', memberOf(members, 'data-pg-0'));
      const gWal = await restoredCounter('g-wal', memberOf(members, 'wal-pg-0'));
      const eData = await restoredCounter('e-data', memberOf(each, 'data-pg-0'));
      const eWal = await restoredCounter('e-wal', memberOf(each, 'wal-pg-0'));
      process.stdout.write(
        `[groups] counters: group data ${gData} wal ${gWal} (gap ${gData - gWal}); per-PVC data ${eData} wal ${eWal} (gap ${Math.abs(eData - eWal)})\n`,
      );
      expect(gData).toBeGreaterThan(0);
      // One instant: the writer had written data's n and was writing wal's n (or had).
      expect(gData - gWal).toBeGreaterThanOrEqual(0);
      expect(gData - gWal).toBeLessThanOrEqual(1);
      // The difference, deterministic: the driver cut the group's members at one instant (one
      // creation time, in ns, on both contents), the per-PVC snapshots at two. How far apart their
      // counters are depends on whether the writer ran in between (it usually does: printed above).
      const cutAt = async (list: VolumeSnapshot[]): Promise<number[]> =>
        Promise.all(
          list.map(async (v) => {
            const c = (await kube().custom.getClusterCustomObject({
              group: 'snapshot.storage.k8s.io',
              version: 'v1',
              plural: 'volumesnapshotcontents',
              name: v.status?.boundVolumeSnapshotContentName ?? '',
            })) as { status?: { creationTime?: number } };
            return Number(c.status?.creationTime);
          }),
        );
      const [m1, m2] = await cutAt(members);
      const [e1, e2] = await cutAt(each);
      expect(m1).toBeGreaterThan(0);
      expect(m1).toBe(m2);
      expect(e1).toBeGreaterThan(0);
      expect(e1).not.toBe(e2);

      // The status counts recovery points: one ready group.
      await eventually(
        async () => (await getSchedule(ns(), 'pg-group')).status?.snapshots?.ready === 1,
        30_000,
      );
    } finally {
      await stopCounterWriter(writer);
      await ctl.kill();
    }
  });

  it('retention deletes whole groups (their members with them), and a second controller after kill -9 makes no duplicate', async () => {
    const ctl = startController(ns());
    const runNow = async (value: string): Promise<void> => {
      const r = await runKubectl(
        ['annotate', 'snapsched', 'pg-group', '-n', ns(), `snapcron.io/run-now=${value}`, '--overwrite'],
        '',
      );
      expect(r.code, r.err).toBe(0);
    };
    try {
      await provision('data-pg-0', { app: 'pg' });
      await provision('wal-pg-0', { app: 'pg' });
      await createSchedule(ns(), 'pg-group', {
        schedule: '0 0 1 1 *',
        runOnCreate: true,
        claimSelector: { matchLabels: { app: 'pg' } },
        group: { by: 'Schedule', volumeGroupSnapshotClassName: GROUP_SNAPSHOT_CLASS },
        retention: { maxCount: 1, minReady: 1 },
      });
      const first = await eventually(async () => {
        const g = (await groups())[0];
        return g?.status?.readyToUse ? g : undefined;
      }, 90_000);
      const before = [first.metadata.name];
      const oldMembers = await eventually(async () => {
        const m = membersOf(await listSnapshots(ns()), first.metadata.name ?? '');
        return m.length === 2 ? m.map((x) => x.metadata.name) : undefined;
      }, 30_000);
      // `snapcron run --wait` takes the second run itself: a group, waited for until ready.
      const r = await runCli(['run', 'pg-group', '-n', ns(), '--wait', '--timeout', '90s']);
      expect(r.code, r.out + r.err).toBe(0);
      expect(r.out).toMatch(/VolumeGroupSnapshot \S+ of group group/);
      expect(r.out).toMatch(/all 1 snapshot\(s\) ready/);
      // maxCount 1: once the new group is ready the old one goes, whole.
      await eventually(async () => {
        const gs = await groups();
        return gs.length === 1 && gs[0]?.metadata.name !== before[0] && gs[0]?.status?.readyToUse;
      }, 120_000);
      await eventually(async () => {
        const names = new Set((await listSnapshots(ns())).map((s) => s.metadata.name));
        return oldMembers.every((m) => !names.has(m));
      }, 60_000);

      // kill -9 right after the create of a run, then a second controller: still one group for it.
      await runNow('third');
      await eventually(
        async () => (await groups()).some((g) => (g.metadata.name ?? '').endsWith('-rthird')),
        30_000,
      );
      await ctl.kill('SIGKILL');
      const again = startController(ns(), [], 'ctl-2');
      try {
        await again.metricsPort();
        await sleep(4000);
        const third = (await groups()).filter((g) => (g.metadata.name ?? '').endsWith('-rthird'));
        expect(third).toHaveLength(1);
        // The second controller met AlreadyExists (or the status already said the run was taken).
        expect(again.logs().filter((l) => l.msg === 'group snapshot created')).toHaveLength(0);
      } finally {
        await again.kill();
      }
    } finally {
      await ctl.kill().catch(() => undefined);
    }
  });

  it('snapcron tick takes a grouped run as one VolumeGroupSnapshot per label value, once', async () => {
    await provision('data-a-0', { tier: 'db', instance: 'a' });
    await provision('data-b-0', { tier: 'db', instance: 'b' });
    await provision('wal-b-0', { tier: 'db', instance: 'b' });
    await createSchedule(ns(), 'by-app', {
      schedule: '0 0 1 1 *',
      runOnCreate: true,
      claimSelector: { matchLabels: { tier: 'db' } },
      group: { by: 'Label', labelKey: 'instance', volumeGroupSnapshotClassName: GROUP_SNAPSHOT_CLASS },
      retention: { maxCount: 3 },
    });
    const first = await runTick(ns());
    expect(first.code, first.out).toBe(0);
    expect(first.out).toMatch(/runOnCreate: 2 created/);
    const again = await runTick(ns());
    expect(again.code, again.out).toBe(0);
    const made = await groups();
    expect(made.map((g) => g.metadata.labels?.['snapcron.io/group']).sort()).toEqual(['a', 'b']);
    const b = made.find((g) => g.metadata.labels?.['snapcron.io/group'] === 'b');
    expect(b?.spec.source.selector).toEqual({ matchLabels: { tier: 'db', instance: 'b' } });
    // The snapshot-controller picks b's two PVCs as its members.
    await eventually(async () => {
      const members = membersOf(await listSnapshots(ns()), b?.metadata.name ?? '');
      return (
        members
          .map((m) => m.spec.source.persistentVolumeClaimName)
          .sort()
          .join() === 'data-b-0,wal-b-0'
      );
    }, 60_000);
  });
});
