/**
 * spec.hooks on a real node (kubelet + containerd, dev/node.ts): pre and post commands exec'd
 * in a real pod through the API server (pods/exec), around the snapshots of its CSI volume.
 *
 * The pod counts into two files, `a` then `b`, 80 ms apart, every 100 ms: most of the time
 * they differ. "Freezing" is cooperative (real fsfreeze needs CAP_SYS_ADMIN on the volume's
 * filesystem, which a pod here does not have): the pre hook creates /data/frozen and waits
 * until the writer acknowledges it has stopped (/data/ack); the post hook removes the flag.
 *
 * Gated like node-e2e: SNAPCRON_NODE_TESTS=1 (a node changes host settings).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VolumeSnapshot } from '../../src/api/objects.ts';
import type { Hook, SnapshotSchedule } from '../../src/api/types.generated.ts';
import { CsiStack, SNAPSHOT_CLASS, STORAGE_CLASS } from '../../dev/csi-stack.ts';
import { DRIVER_NAME } from '../../dev/csi-driver.ts';
import { Node, PLUGINS_REGISTRY, WEB_IMAGE } from '../../dev/node.ts';
import {
  ALL_VERBS,
  boundPvc,
  createSchedule,
  deleteNamespacesAndWait,
  eventually,
  eventsOf,
  getSchedule,
  kube,
  kubeConfig,
  kubeconfigPath,
  listSnapshots,
  restrictedKubeconfig,
  updateScheduleSpec,
  useNamespace,
} from '../env/kube.ts';
import { kubectlBinary } from '../env/kubectl.ts';
import { metrics, startController } from '../env/processes.ts';

/** This file's namespaces: `hooks-…`. */
const PREFIX = 'hooks';
const run = promisify(execFile);
const enabled = process.env.SNAPCRON_NODE_TESTS === '1';
/** Daily, 12 hours from now: no timed run during the test, only the first run (runOnCreate). */
const notSoon = (): string => `0 ${(new Date().getUTCHours() + 12) % 24} * * *`;

const WRITER = [
  'i=0',
  'while true; do',
  '  if [ -e /data/frozen ]; then touch /data/ack; sleep 0.02; continue; fi',
  '  rm -f /data/ack',
  '  i=$((i+1))',
  '  echo $i > /data/a',
  '  sleep 0.08',
  '  echo $i > /data/b',
  '  sleep 0.02',
  'done',
].join('\n');

const FREEZE: Hook = {
  podSelector: { matchLabels: { app: 'counter' } },
  command: [
    'sh',
    '-c',
    'touch /data/frozen; rm -f /data/ack; until [ -e /data/ack ]; do sleep 0.02; done; sync',
  ],
  timeoutSeconds: 10,
};
const THAW: Hook = {
  podSelector: { matchLabels: { app: 'counter' } },
  command: ['sh', '-c', 'rm -f /data/frozen; date +%s%N >> /data/post-ran'],
};

const condition = (s: SnapshotSchedule, type: string) => s.status?.conditions?.find((c) => c.type === type);

describe.skipIf(!enabled)('pre and post hooks exec’d in real pods on a real node', () => {
  let node: Node;
  let stack: CsiStack;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'snapcron-hooks-'));
    node = await Node.start({ kubeconfig: kubeconfigPath(), dir: join(dir, 'node') });
    stack = await CsiStack.start(kubeconfigPath(), join(dir, 'csi'), {
      node: { nodeId: node.name, registrationDir: PLUGINS_REGISTRY },
    });
    const storage = kubeConfig().makeApiClient(k8s.StorageV1Api);
    await eventually(
      async () =>
        (await storage.readCSINode({ name: node.name })).spec.drivers.some((d) => d.name === DRIVER_NAME),
      60_000,
    );
  }, 900_000);
  afterAll(async () => {
    // While the kubelet, the driver and the snapshot-controller still run: pods end, volumes are
    // unpublished, finalizers are removed, and no namespace of ours stays Terminating.
    await deleteNamespacesAndWait(PREFIX).catch(() => undefined);
    await node?.stop();
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 180_000);
  const ns = useNamespace(PREFIX);

  /** A command's output in the pod, through kubectl exec. */
  const inPod = async (...command: string[]): Promise<string> =>
    (
      await run(kubectlBinary(), [
        `--kubeconfig=${kubeconfigPath()}`,
        `--namespace=${ns()}`,
        'exec',
        'counter',
        '--',
        ...command,
      ])
    ).stdout;

  /** PVC `data` and pod `counter` writing to it; resolves once it counts. */
  async function startCounter(): Promise<void> {
    const k = kube();
    await k.core.createNamespacedPersistentVolumeClaim({
      namespace: ns(),
      body: {
        metadata: { name: 'data', labels: { app: 'counter' } },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: STORAGE_CLASS,
          resources: { requests: { storage: '1Gi' } },
        },
      },
    });
    await k.core.createNamespacedPod({
      namespace: ns(),
      body: {
        metadata: { name: 'counter', labels: { app: 'counter' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'writer',
              image: WEB_IMAGE,
              imagePullPolicy: 'Never',
              command: ['/bin/sh', '-c', WRITER],
              volumeMounts: [{ name: 'data', mountPath: '/data' }],
            },
          ],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
        },
      },
    });
    try {
      await eventually(async () => {
        const p = await k.core.readNamespacedPod({ name: 'counter', namespace: ns() });
        return p.status?.phase === 'Running';
      }, 180_000);
    } catch (err) {
      // Say why: the pod's state and the namespace's events (scheduling, volume, image).
      const p = await k.core.readNamespacedPod({ name: 'counter', namespace: ns() });
      const ev = (await k.core.listNamespacedEvent({ namespace: ns() })).items.map(
        (e) => `${e.involvedObject.kind}/${e.involvedObject.name} ${e.reason}: ${e.message}`,
      );
      throw new Error(`pod counter not Running: ${JSON.stringify(p.status)}\nevents:\n${ev.join('\n')}`, {
        cause: err,
      });
    }
    await eventually(async () => Number((await inPod('cat', '/data/b')).trim()) > 3, 30_000);
  }

  /** A file as the snapshot holds it, read from the CSI backend's archive of it. */
  async function fileInSnapshot(snapshot: VolumeSnapshot, file: string): Promise<string> {
    const content = (await kube().custom.getClusterCustomObject({
      group: 'snapshot.storage.k8s.io',
      version: 'v1',
      plural: 'volumesnapshotcontents',
      name: snapshot.status?.boundVolumeSnapshotContentName ?? '',
    })) as { status?: { snapshotHandle?: string } };
    const archive = stack.snapshotArchive(content.status?.snapshotHandle ?? '');
    return execFileSync('tar', ['-xOf', archive, `./${file}`], { encoding: 'utf8' }).trim();
  }

  const events = (reason: string): Promise<k8s.CoreV1Event[]> => eventsOf(ns(), reason);
  const postRuns = async (): Promise<number> =>
    (await inPod('sh', '-c', 'cat /data/post-ran 2>/dev/null || true')).split('\n').filter(Boolean).length;

  it('takes each snapshot while the writer is frozen by the pre hook, so both files agree, and the post hook thaws it', async () => {
    await startCounter();
    // Unfrozen, the two files disagree most of the time (what the hooks are for).
    // Samples at uneven gaps: a kubectl exec takes about as long as the writer's 100 ms
    // cycle, and evenly spaced samples can stay in phase with its 20 ms "equal" window.
    const samples: string[] = [];
    for (let i = 0; i < 40 && !samples.some((x) => x.split(' ')[0] !== x.split(' ')[1]); i++) {
      samples.push((await inPod('sh', '-c', 'cat /data/a /data/b')).trim().split('\n').join(' '));
      await new Promise((r) => setTimeout(r, 13 + Math.floor(Math.random() * 70)));
    }
    expect(
      samples.some((x) => x.split(' ')[0] !== x.split(' ')[1]),
      `the unfrozen writer's files never disagreed: ${samples.join(', ')}`,
    ).toBe(true);

    const ctl = startController(ns());
    await createSchedule(ns(), 'counter', {
      schedule: '*/3 * * * * *',
      claimSelector: { matchLabels: { app: 'counter' } },
      snapshotClassName: SNAPSHOT_CLASS,
      retention: { maxCount: 10 },
      hooks: { pre: FREEZE, post: THAW },
    });
    const ready = async (): Promise<VolumeSnapshot[]> =>
      (await listSnapshots(ns())).filter((s) => s.status?.readyToUse === true);
    await eventually(async () => (await ready()).length >= 3, 90_000);
    await updateScheduleSpec(ns(), 'counter', { suspend: true });
    await eventually(async () => (await listSnapshots(ns())).every((s) => s.status?.readyToUse), 30_000);

    for (const snapshot of await ready()) {
      const a = await fileInSnapshot(snapshot, 'a');
      const b = await fileInSnapshot(snapshot, 'b');
      expect(Number(a)).toBeGreaterThan(0);
      expect(b, `snapshot ${snapshot.metadata.name}`).toBe(a);
      // Taken frozen: the flag is in it.
      expect(await fileInSnapshot(snapshot, 'frozen')).toBe('');
    }
    // Thawed after each run: the writer counts on and the post hook ran once per run.
    const before = Number((await inPod('cat', '/data/b')).trim());
    await eventually(async () => Number((await inPod('cat', '/data/b')).trim()) > before, 10_000);
    expect(await postRuns()).toBeGreaterThanOrEqual(3);
    const s = await getSchedule(ns(), 'counter');
    expect(s.status?.hooks?.pendingPost).toBeUndefined();
    expect(condition(s, 'HookFailed')?.status).toBe('False');
    const text = await metrics(await ctl.metricsPort());
    expect(text).toMatch(
      /snapcron_hook_runs_total\{[^}]*hook="pre"[^}]*result="success"[^}]*\} ([3-9]|\d{2,})/,
    );
    await ctl.kill();
  }, 300_000);

  it('a failing pre hook with onFailure Fail takes no snapshot, says so in an event and a condition, and still runs the post hook', async () => {
    await startCounter();
    const ctl = startController(ns());
    await createSchedule(ns(), 'counter', {
      schedule: notSoon(),
      runOnCreate: true,
      claimSelector: { matchLabels: { app: 'counter' } },
      snapshotClassName: SNAPSHOT_CLASS,
      hooks: {
        pre: { ...FREEZE, command: ['sh', '-c', 'touch /data/frozen; echo cannot-quiesce >&2; exit 3'] },
        post: THAW,
      },
    });
    await eventually(async () => (await events('PreHookFailed')).length > 0, 30_000);
    const [event] = await events('PreHookFailed');
    expect(event?.type).toBe('Warning');
    expect(event?.message).toMatch(/pod counter container writer: exit code 3; output: cannot-quiesce/);
    expect(event?.message).toContain('no snapshots taken');
    await eventually(
      async () => condition(await getSchedule(ns(), 'counter'), 'HookFailed')?.status === 'True',
    );
    const s = await getSchedule(ns(), 'counter');
    expect(condition(s, 'HookFailed')?.reason).toBe('PreHookFailed');
    expect(condition(s, 'HookFailed')?.message).toContain('exit code 3');
    expect(s.status?.lastRun?.skips?.[0]?.reason).toBe('PreHookFailed');
    expect(s.status?.hooks?.pendingPost).toBeUndefined();
    // The post hook ran (and thawed), once; no snapshot was taken, and none is taken later.
    expect(await postRuns()).toBe(1);
    expect(await inPod('sh', '-c', 'test -e /data/frozen && echo frozen || echo thawed')).toBe('thawed\n');
    await new Promise((r) => setTimeout(r, 3000));
    expect(await listSnapshots(ns())).toEqual([]);
    expect(await postRuns()).toBe(1);
    await ctl.kill();
  }, 300_000);

  it('cuts a hanging pre hook at its timeout, and a post hook owed by a killed controller is run by the next one', async () => {
    await startCounter();
    let ctl = startController(ns(), [], 'ctl-1');
    await createSchedule(ns(), 'counter', {
      schedule: notSoon(),
      runOnCreate: true,
      claimSelector: { matchLabels: { app: 'counter' } },
      snapshotClassName: SNAPSHOT_CLASS,
      hooks: { pre: { ...FREEZE, command: ['sleep', '600'], timeoutSeconds: 4 }, post: THAW },
    });
    // The post hook is owed before the pre hook runs: kill the controller while pre hangs.
    await eventually(async () => (await getSchedule(ns(), 'counter')).status?.hooks?.pendingPost, 30_000, 50);
    const owed = (await getSchedule(ns(), 'counter')).status?.hooks?.pendingPost;
    expect(owed?.pods).toEqual(['counter']);
    await ctl.kill('SIGKILL');
    expect(await postRuns()).toBe(0);

    // The next controller runs the owed post hook first, then the run again: pre is cut at 4 s.
    const t0 = Date.now();
    ctl = startController(ns(), [], 'ctl-2');
    await eventually(async () => (await postRuns()) >= 1, 30_000);
    await eventually(async () => (await events('PreHookFailed')).length > 0, 30_000);
    const [event] = await events('PreHookFailed');
    expect(event?.message).toMatch(/pod counter container writer: timed out after 4s/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(4000);
    // Post ran for the owed run and again after the timed-out pre; the record is cleared.
    await eventually(async () => (await postRuns()) >= 2, 15_000);
    await eventually(async () => !(await getSchedule(ns(), 'counter')).status?.hooks?.pendingPost, 15_000);
    expect(await listSnapshots(ns())).toEqual([]);
    const text = await metrics(await ctl.metricsPort());
    expect(text).toMatch(/snapcron_hook_runs_total\{[^}]*hook="pre"[^}]*result="timeout"[^}]*\} 1/);
    await ctl.kill();
  }, 300_000);
});

describe('hooks without a node', () => {
  const ns = useNamespace('hooks-nonode');
  it('a pre hook that selects no Running pod has nothing to quiesce: the run goes on, HookFailed False', async () => {
    await boundPvc(ns(), 'data', { app: 'db' });
    // A pod that never runs (no node takes it): selected by labels, but not Running.
    await kube().core.createNamespacedPod({
      namespace: ns(),
      body: {
        metadata: { name: 'db', labels: { app: 'db' } },
        spec: { containers: [{ name: 'db', image: WEB_IMAGE }], nodeName: 'no-such-node' },
      },
    });
    const ctl = startController(ns());
    await createSchedule(ns(), 'db', {
      schedule: '*/2 * * * * *',
      claimSelector: { matchLabels: { app: 'db' } },
      hooks: { pre: { podSelector: { matchLabels: { app: 'db' } }, command: ['false'] } },
    });
    await eventually(async () => (await listSnapshots(ns())).length > 0, 30_000);
    await eventually(
      async () => condition(await getSchedule(ns(), 'db'), 'HookFailed')?.reason === 'HooksSucceeded',
    );
    expect(
      (await kube().core.listNamespacedEvent({ namespace: ns() })).items.map((e) => e.reason),
    ).not.toContain('PreHookFailed');
    await ctl.kill();
  });

  it('without the pods permissions a schedule with hooks takes nothing and the error names what is missing', async () => {
    await boundPvc(ns(), 'data', { app: 'db' });
    // What the ClusterRole grants, minus the two rules hooks need.
    const noPods = await restrictedKubeconfig(ns(), 'no-pods', [
      {
        apiGroups: ['snapcron.io'],
        resources: ['snapshotschedules', 'snapshotschedules/status'],
        verbs: ALL_VERBS,
      },
      { apiGroups: ['snapshot.storage.k8s.io'], resources: ['volumesnapshots'], verbs: ALL_VERBS },
      { apiGroups: [''], resources: ['persistentvolumeclaims', 'events'], verbs: ALL_VERBS },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ALL_VERBS },
    ]);
    const ctl = startController(ns(), [], 'ctl-np', noPods);
    await createSchedule(ns(), 'db', {
      schedule: '*/2 * * * * *',
      claimSelector: { matchLabels: { app: 'db' } },
      hooks: { pre: { podSelector: { matchLabels: { app: 'db' } }, command: ['true'] } },
    });
    await eventually(
      async () => ctl.output().includes('could not list pods for spec.hooks.pre.podSelector'),
      30_000,
    );
    expect(ctl.output()).toContain('pods/exec get/create permissions');
    expect(await listSnapshots(ns())).toEqual([]);
    await ctl.kill();
  });
});
