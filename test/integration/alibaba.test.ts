/**
 * `snapcron report --cloud alibaba` on the real control plane with the CSI stack, the real
 * `@alicloud/ecs20140526` SDK, and our ECS endpoint (test/env/ecs-endpoint.ts, which checks
 * every request's signature). Snapshots are made ready by the real snapshot-controller and
 * csi-snapshotter; ECS is seeded with snapshots matching some VolumeSnapshotContents'
 * handles (our host-path driver stands in for the ACK disk driver via --csi-driver), one
 * missing, one that ECS deletes early, one stuck in progress, and an orphan. Checked: each
 * finding, the cost sums, the exit codes, the ACK warnings from a real VolumeSnapshotClass,
 * and that the secret appears in no output.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VolumeSnapshot } from '../../src/api/objects.ts';
import { ACK_DISK_DRIVER } from '../../src/api/warnings.ts';
import type { VolumeSnapshotContent } from '../../src/report/alibaba.ts';
import type { Report } from '../../src/report/model.ts';
import { snapshotMetadata, snapshotName } from '../../src/snapshot/naming.ts';
import { CsiStack, SNAPSHOT_CLASS, STORAGE_CLASS } from '../../dev/csi-stack.ts';
import { DRIVER_NAME } from '../../dev/csi-driver.ts';
import { EcsEndpoint } from '../env/ecs-endpoint.ts';
import {
  createSchedule,
  deleteNamespaceAndWait,
  eventually,
  kube,
  kubeconfigPath,
  listSnapshots,
} from '../env/kube.ts';
import { metrics, runCli, startController } from '../env/processes.ts';

const AK = 'LTAI5tIntegrationKey003';
const SECRET = 'integration-secret-Qm3vT8wZ1rYp';
const GiB = 1024 ** 3;
const DAY = 86_400_000;
const iso = (t: Date | number): string => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');

describe('snapcron report --cloud alibaba on a real control plane with the CSI stack', () => {
  let stack: CsiStack;
  let dir: string;
  let ecs: EcsEndpoint;
  let ns: string;
  let ackClass: string;
  let now: Date;
  /** web-0's three ready snapshots (oldest run first) and web-1's one; their contents' handles. */
  let web0: VolumeSnapshot[];
  let web1: VolumeSnapshot;
  const handle = new Map<string, string>();
  const disk = new Map<string, string>();
  const saved = { ...process.env };
  const k = () => kube();

  const report = (...args: string[]) =>
    runCli([
      'report',
      '-n',
      ns,
      '--now',
      iso(now),
      '--cloud',
      'alibaba',
      '--region',
      'cn-hangzhou',
      '--ecs-endpoint',
      `http://${ecs.endpoint}`,
      '--csi-driver',
      DRIVER_NAME,
      ...args,
    ]);
  const json = async (...args: string[]): Promise<Report> => {
    const r = await report('-o', 'json', ...args);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.out) as Report;
  };

  async function provision(name: string): Promise<string> {
    await k().core.createNamespacedPersistentVolumeClaim({
      namespace: ns,
      body: {
        metadata: { name, labels: { app: 'web' } },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: STORAGE_CLASS,
          resources: { requests: { storage: '1Gi' } },
        },
      },
    });
    const pvc = await eventually(async () => {
      const p = await k().core.readNamespacedPersistentVolumeClaim({ name, namespace: ns });
      return p.status?.phase === 'Bound' ? p : undefined;
    }, 60_000);
    const pv = await k().core.readPersistentVolume({ name: pvc.spec?.volumeName ?? '' });
    return pv.spec?.csi?.volumeHandle ?? '';
  }

  async function snapshot(pvc: string, at: Date): Promise<string> {
    const name = snapshotName(pvc, 'web', at);
    await k().custom.createNamespacedCustomObject({
      ...k().snapshots,
      namespace: ns,
      body: {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshot',
        metadata: { name, ...snapshotMetadata(pvc, 'web', at) },
        spec: { source: { persistentVolumeClaimName: pvc }, volumeSnapshotClassName: SNAPSHOT_CLASS },
      },
    });
    return name;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'snapcron-alibaba-'));
    stack = await CsiStack.start(kubeconfigPath(), dir);
    ecs = await new EcsEndpoint({ [AK]: SECRET }).start();
    process.env.ALIBABA_CLOUD_ACCESS_KEY_ID = AK;
    process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = SECRET;
    ns = `alibaba-${Date.now().toString(36)}`;
    ackClass = `ack-disk-${Date.now().toString(36)}`;
    await k().core.createNamespace({ body: { metadata: { name: ns } } });
    // A class of the ACK disk driver (no such driver runs here: it only feeds the warnings).
    await k().custom.createClusterCustomObject({
      group: 'snapshot.storage.k8s.io',
      version: 'v1',
      plural: 'volumesnapshotclasses',
      body: {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshotClass',
        metadata: { name: ackClass },
        driver: ACK_DISK_DRIVER,
        deletionPolicy: 'Delete',
        parameters: { retentionDays: '3' },
      },
    });
    const [d0, d1] = await Promise.all([provision('web-0'), provision('web-1')]);
    disk.set('web-0', d0).set('web-1', d1);
    await createSchedule(ns, 'web', {
      schedule: '0 2 * * *',
      claimSelector: { matchLabels: { app: 'web' } },
      snapshotClassName: SNAPSHOT_CLASS,
      retention: { maxCount: 7, maxPending: 3 },
    });
    // Selects nothing; its class is the ACK driver's: two warnings.
    await createSchedule(ns, 'ack', {
      schedule: '0 3 * * *',
      claimSelector: { matchLabels: { app: 'none' } },
      snapshotClassName: ackClass,
      retention: { maxCount: 300, maxPending: 3 },
    });
    const today = new Date(Date.now());
    today.setUTCHours(2, 0, 0, 0);
    const runs = [3, 2, 1].map((d) => new Date(today.getTime() - d * DAY));
    const names0 = await Promise.all(runs.map((at) => snapshot('web-0', at)));
    const name1 = await snapshot('web-1', runs[2] as Date);
    const all = await eventually(async () => {
      const list = await listSnapshots(ns);
      return list.filter((s) => s.status?.readyToUse).length === 4 ? list : undefined;
    }, 90_000);
    web0 = names0.map((n) => all.find((s) => s.metadata.name === n) as VolumeSnapshot);
    web1 = all.find((s) => s.metadata.name === name1) as VolumeSnapshot;
    for (const s of all) {
      const content = (await k().custom.getClusterCustomObject({
        group: 'snapshot.storage.k8s.io',
        version: 'v1',
        plural: 'volumesnapshotcontents',
        name: s.status?.boundVolumeSnapshotContentName ?? '',
      })) as VolumeSnapshotContent;
      handle.set(s.metadata.name ?? '', content.status?.snapshotHandle ?? '');
    }
    now = new Date(Date.now() + 60_000);
    const cut = (s: VolumeSnapshot): string => iso(Date.parse(s.status?.creationTime ?? ''));
    const tags = (s: VolumeSnapshot) => ({
      'ack.aliyun.com': 'c-int',
      'csi.alibabacloud.com/snapshot/name': s.metadata.name ?? '',
      'csi.alibabacloud.com/snapshot/namespace': ns,
    });
    const [oldest, middle, newest] = web0 as [VolumeSnapshot, VolumeSnapshot, VolumeSnapshot];
    ecs.seed(
      // ECS deletes it 2 days after it was cut; maxCount 7 of a daily schedule keeps it a week.
      {
        SnapshotId: handle.get(oldest.metadata.name ?? '') ?? '',
        SourceDiskId: d0,
        CreationTime: cut(oldest),
        RetentionDays: 2,
        SizeBytes: 3 * GiB,
        Tags: tags(oldest),
      },
      // middle: not in ECS at all (dangling).
      // newest: a plain one.
      {
        SnapshotId: handle.get(newest.metadata.name ?? '') ?? '',
        SourceDiskId: d0,
        CreationTime: cut(newest),
        SizeBytes: GiB,
        Tags: tags(newest),
      },
      // web-1's: in progress in ECS for 8 hours.
      {
        SnapshotId: handle.get(web1.metadata.name ?? '') ?? '',
        SourceDiskId: d1,
        Status: 'progressing',
        Progress: '35%',
        CreationTime: iso(now.getTime() - 8 * 3_600_000),
        SizeBytes: 2 * GiB,
        Tags: tags(web1),
      },
      // Made by the driver for a VolumeSnapshot long deleted.
      {
        SnapshotId: 's-int-orphan',
        SnapshotName: 'alibabacloud-disk-deadbeef',
        SourceDiskId: 'd-int-orphan',
        CreationTime: iso(now.getTime() - 40 * DAY),
        SizeBytes: GiB,
        Tags: { 'ack.aliyun.com': 'c-int', 'csi.alibabacloud.com/snapshot/namespace': ns },
      },
    );
    void middle;
  }, 600_000);

  afterAll(async () => {
    process.env = saved;
    await deleteNamespaceAndWait(ns);
    await k()
      .custom.deleteClusterCustomObject({
        group: 'snapshot.storage.k8s.io',
        version: 'v1',
        plural: 'volumesnapshotclasses',
        name: ackClass,
      })
      .catch(() => undefined);
    await ecs?.stop();
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds the orphan, the dangling, the stuck and the expiring snapshot, and nothing else from ECS', async () => {
    const r = await json('--cluster-id', 'c-int');
    const [oldest, middle] = web0 as [VolumeSnapshot, VolumeSnapshot];
    const drift = r.findings
      .filter((f) => ['orphan', 'dangling', 'expiring'].includes(f.kind) || / ECS /.test(f.message))
      .map((f) => [f.kind, f.pvc, f.snapshots[0]]);
    expect(drift).toEqual([
      ['stuck', 'web-1', web1.metadata.name],
      ['orphan', null, 's-int-orphan'],
      ['dangling', 'web-0', middle.metadata.name],
      ['expiring', 'web-0', oldest.metadata.name],
    ]);
    expect(r.totals.findings).toMatchObject({ orphan: 1, dangling: 1, expiring: 1 });
    const dangling = r.findings.find((f) => f.kind === 'dangling')?.message ?? '';
    expect(dangling).toContain(`stands for ECS snapshot ${handle.get(middle.metadata.name ?? '')}`);
    expect(r.alibaba?.snapshots).toHaveLength(4);
    expect(r.alibaba?.snapshots.every((s) => s.snapshotId === handle.get(s.volumeSnapshot))).toBe(true);
  });

  it('sums the snapshot chains per disk, PVC, schedule and namespace, priced', async () => {
    const r = await json('--cluster-id', 'c-int', '--price-per-gb-month', '0.017');
    const cost = r.alibaba?.cost;
    expect(cost?.pvcs).toEqual([
      { namespace: ns, pvc: 'web-0', diskId: disk.get('web-0'), bytes: 4 * GiB, monthly: 0.07 },
      { namespace: ns, pvc: 'web-1', diskId: disk.get('web-1'), bytes: 2 * GiB, monthly: 0.03 },
    ]);
    expect(cost?.schedules).toEqual([{ namespace: ns, schedule: 'web', bytes: 6 * GiB, monthly: 0.1 }]);
    expect(cost?.namespaces).toEqual([{ namespace: ns, bytes: 7 * GiB, monthly: 0.12 }]);
    expect(cost?.total).toEqual({ bytes: 7 * GiB, monthly: 0.12 });
    expect(r.alibaba?.calls).toEqual({ describeSnapshots: 2, describeSnapshotLinks: 1 });
  });

  it('exit codes follow --fail-on', async () => {
    for (const kinds of ['orphan', 'dangling', 'expiring', 'stuck']) {
      const r = await report('--cluster-id', 'c-int', '--fail-on', kinds);
      expect(r.code, kinds).toBe(2);
      expect(r.err).toMatch(new RegExp(`^${kinds}: `));
    }
    expect((await report('--fail-on', 'orphan')).code).toBe(0);
    expect((await report('--cluster-id', 'c-int', '--fail-on', 'invalid,unprotected')).code).toBe(0);
  });

  it('warns about the schedule whose class is the ACK driver, from the cluster', async () => {
    const r = await json();
    expect(r.alibaba?.warnings.map((w) => [w.schedule, w.path])).toEqual([
      ['ack', 'spec.retention'],
      ['ack', 'spec.retention.maxCount'],
    ]);
  });

  it('the secret is in no output; a wrong one fails in one line', async () => {
    for (const format of ['json', 'table', 'markdown', 'html']) {
      const r = await report('--cluster-id', 'c-int', '-o', format);
      expect(r.code).toBe(0);
      expect(r.out + r.err).not.toContain(SECRET);
      expect(r.out + r.err).not.toContain(AK);
    }
    process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = 'integration-wrong-K7';
    try {
      const r = await report('--cluster-id', 'c-int');
      expect(r.code).toBe(1);
      expect(r.err).toMatch(
        /^snapcron report: ECS DescribeSnapshots failed: SignatureDoesNotMatch \(HTTP 400\)/,
      );
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.out + r.err).not.toContain('integration-wrong-K7');
    } finally {
      process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = SECRET;
    }
  });
  it("the controller's /report gives the same ECS view from its periodic refresh, with gauges, and the ACK condition", async () => {
    const before = { snapshots: ecs.count('DescribeSnapshots'), links: ecs.count('DescribeSnapshotLinks') };
    const ctl = startController(ns, [
      '--cloud=alibaba',
      '--region=cn-hangzhou',
      `--ecs-endpoint=http://${ecs.endpoint}`,
      `--csi-driver=${DRIVER_NAME}`,
      '--cluster-id=c-int',
      '--cloud-refresh=1h',
    ]);
    const port = await ctl.metricsPort();
    const served = await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${port}/report?now=${iso(now)}`);
      if (res.status !== 200) return undefined;
      const r = (await res.json()) as Report;
      return r.alibaba?.snapshots.length ? r : undefined;
    }, 30_000);
    // The one refresh so far: contents by ID, the cluster's tag, the disks' chains; requests
    // to /report do not call ECS.
    await fetch(`http://127.0.0.1:${port}/report?format=html`);
    expect(ecs.count('DescribeSnapshots') - before.snapshots).toBe(2);
    expect(ecs.count('DescribeSnapshotLinks') - before.links).toBe(1);
    const fromCli = await json('--cluster-id', 'c-int');
    // Only the seeded snapshots and the orphan: the controller also catches up today's missed
    // run of `web` (a new snapshot that no ECS holds, and that the first refresh may predate).
    const seeded = new Set([...web0.map((v) => v.metadata.name), web1.metadata.name, 's-int-orphan']);
    const drift = (r: Report) =>
      r.findings.filter(
        (f) => ['orphan', 'dangling', 'expiring', 'stuck'].includes(f.kind) && seeded.has(f.snapshots[0]),
      );
    expect(drift(served)).toEqual(drift(fromCli));
    expect(drift(served)).toHaveLength(4);
    const seededViews = (r: Report) => r.alibaba?.snapshots.filter((v) => seeded.has(v.volumeSnapshot));
    expect(seededViews(served)).toEqual(seededViews(fromCli));
    expect(served.alibaba?.notes[0]).toMatch(/^ECS data as of \S+Z \(refreshed every 3600s\)$/);
    const text = await metrics(port);
    for (const kind of ['orphan', 'dangling', 'expiring'])
      expect(text).toMatch(new RegExp(`^snapcron_cloud_findings\\{kind="${kind}"\\} 1$`, 'm'));
    expect(text).toMatch(/^snapcron_cloud_refresh_failing 0$/m);
    // The schedule whose class is the ACK driver carries the AckWarnings condition.
    const ack = await eventually(async () => {
      const s = (await k().custom.getNamespacedCustomObject({
        ...k().schedules,
        namespace: ns,
        name: 'ack',
      })) as {
        status?: { conditions?: { type: string; status: string; message: string }[] };
      };
      return s.status?.conditions?.find((c) => c.type === 'AckWarnings');
    }, 15_000);
    expect(ack.status).toBe('True');
    expect(ack.message).toContain(`VolumeSnapshotClass ${ackClass} sets retentionDays 3`);
    await ctl.kill('SIGTERM');
    expect(ctl.output()).not.toContain(SECRET);
  });
});
