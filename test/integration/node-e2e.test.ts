/**
 * The seed's flow with real pods on a real node (kubelet + containerd, dev/node.ts): the
 * StatefulSet `web` writes to CSI volumes the kubelet mounted through our driver's node side,
 * a SnapshotSchedule snapshots them, and `web-restore` (claim template annotated
 * `snapcron.io/restore-from: disk-ssd-web-{ordinal}`) comes up with each replica's own data
 * as of its newest snapshot, read back through the pod.
 *
 * A node changes host settings (sysctls, mounts, a bridge; see the README's "Real node"), so
 * this runs only when SNAPCRON_NODE_TESTS=1 (`npm run test:node`; CI sets it).
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VolumeSnapshot } from '../../src/api/objects.ts';
import { freePort } from '../../dev/control-plane.ts';
import { CsiStack, SNAPSHOT_CLASS, STORAGE_CLASS } from '../../dev/csi-stack.ts';
import { DRIVER_NAME } from '../../dev/csi-driver.ts';
import { Node, PLUGINS_REGISTRY } from '../../dev/node.ts';
import { installRestoreWebhook } from '../../dev/restore-webhook.ts';
import { CLAIM, parsePage, WEB_PORT, webStatefulSet } from '../../dev/seed-web.ts';
import {
  createSchedule,
  deleteNamespacesAndWait,
  eventually,
  kube,
  kubeConfig,
  kubeconfigPath,
  listSnapshots,
  updateScheduleSpec,
  useNamespace,
} from '../env/kube.ts';
import { kubectlBinary } from '../env/kubectl.ts';
import { startController } from '../env/processes.ts';

/** This file's namespaces: `node-…`. */
const PREFIX = 'node';
const run = promisify(execFile);

type HostState = Record<string, string | boolean>;
/** The sysctls README "Real node" says a stopped node puts back, read from that sentence. */
const RESTORED_SYSCTLS = [
  ...(
    /What it changes on the host[\s\S]*?are restored;/.exec(readFileSync('README.md', 'utf8'))?.[0] ?? ''
  ).matchAll(/`((?:vm|kernel|net)\.[\w.]+)`/g),
].map((m) => m[1] as string);
/** The host settings a kubelet and its pods change, as dev/node.ts's stop() must restore them. */
function hostState(): HostState {
  const state: HostState = {};
  for (const key of RESTORED_SYSCTLS)
    state[key] = readFileSync(join('/proc/sys', ...key.split('.')), 'utf8').trim();
  const cgroups = existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : [];
  for (const path of [
    '/var/lib/kubelet',
    '/var/log/pods',
    '/var/log/containers',
    '/run/netns',
    '/sys/class/net/snapcron0',
    ...cgroups.map((c) => `/sys/fs/cgroup/${c}/kubepods`),
  ])
    state[path] = existsSync(path);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '');
  state.podMounts = mounts
    .filter((m) => m.startsWith('/var/lib/kubelet') || m.startsWith('/run/netns'))
    .join(',');
  return state;
}
const enabled = process.env.SNAPCRON_NODE_TESTS === '1';

describe.skipIf(!enabled)('the seed flow with real pods on a real node', () => {
  let node: Node;
  let stack: CsiStack;
  let dir: string;
  let hostBefore: HostState;
  beforeAll(async () => {
    hostBefore = hostState();
    dir = mkdtempSync(join(tmpdir(), 'snapcron-node-e2e-'));
    node = await Node.start({ kubeconfig: kubeconfigPath(), dir: join(dir, 'node') });
    stack = await CsiStack.start(kubeconfigPath(), join(dir, 'csi'), {
      node: { nodeId: node.name, registrationDir: PLUGINS_REGISTRY },
    });
    // The kubelet found the driver's registration socket and asked it for its node id.
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
    // The node first: its pods' volumes are unpublished through the still-running driver.
    await node?.stop();
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
    // What the README promises: the host is as it was (sysctls, folders, mounts, bridge).
    expect(RESTORED_SYSCTLS).toContain('vm.overcommit_memory'); // the README sentence was found
    expect(hostState()).toEqual(hostBefore);
  }, 180_000);
  const ns = useNamespace(PREFIX);

  /** What the pod's web server serves, fetched inside the pod (kubelet exec, for real). */
  const page = async (pod: string): Promise<string> =>
    (
      await run(kubectlBinary(), [
        `--kubeconfig=${kubeconfigPath()}`,
        `--namespace=${ns()}`,
        'exec',
        pod,
        '--',
        'wget',
        '-qO-',
        `http://127.0.0.1:${WEB_PORT}/index.html`,
      ])
    ).stdout;

  async function readyPods(app: string, count: number): Promise<void> {
    await eventually(async () => {
      const pods = (await kube().core.listNamespacedPod({ namespace: ns(), labelSelector: `app=${app}` }))
        .items;
      return (
        pods.length === count &&
        pods.every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
      );
    }, 120_000);
  }

  /** The page a snapshot holds, read from the CSI backend's archive of it. */
  async function pageInSnapshot(snapshot: VolumeSnapshot): Promise<string> {
    const content = (await kube().custom.getClusterCustomObject({
      group: 'snapshot.storage.k8s.io',
      version: 'v1',
      plural: 'volumesnapshotcontents',
      name: snapshot.status?.boundVolumeSnapshotContentName ?? '',
    })) as { status?: { snapshotHandle?: string } };
    const archive = stack.snapshotArchive(content.status?.snapshotHandle ?? '');
    return execFileSync('tar', ['-xOf', archive, './index.html'], { encoding: 'utf8' });
  }

  it('snapshots the pods’ volumes on schedule and each web-restore pod serves its own replica’s data as of its newest snapshot', async () => {
    const k = kube();
    const apps = kubeConfig().makeApiClient(k8s.AppsV1Api);
    const timings: Record<string, number> = {};
    let t = Date.now();
    const step = (name: string): void => {
      timings[name] = Date.now() - t;
      t = Date.now();
    };

    // 1. StatefulSet web: two pods, each mounting its own CSI volume and writing to it.
    await apps.createNamespacedStatefulSet({
      namespace: ns(),
      body: webStatefulSet({ name: 'web', storageClass: STORAGE_CLASS, claimLabels: { app: 'web' } }),
    });
    await readyPods('web', 2);
    for (const i of [0, 1]) {
      const first = parsePage(await page(`web-${i}`));
      expect(first?.writer).toBe(`web-${i}`);
      // The counter moves: the pod really writes to its volume, once a second.
      await eventually(
        async () => (parsePage(await page(`web-${i}`))?.count ?? 0) > (first?.count ?? 0),
        10_000,
      );
    }
    step('web pods serving');

    // 2. snapcron snapshots disk-ssd-web-0 and -1 every 4 seconds, keeping 3 of each.
    const port = await freePort();
    const webhookName = `snapcron-restore-${ns()}`;
    await installRestoreWebhook(kubeConfig(), webhookName, port, ns());
    const ctl = startController(ns(), [
      `--webhook-addr=127.0.0.1:${port}`,
      `--webhook-config-name=${webhookName}`,
    ]);
    await createSchedule(ns(), 'web', {
      schedule: '*/4 * * * * *',
      claimSelector: { matchLabels: { app: 'web' } },
      snapshotClassName: SNAPSHOT_CLASS,
      retention: { maxCount: 3 },
    });
    const readyOf = async (pvc: string): Promise<VolumeSnapshot[]> =>
      (await listSnapshots(ns())).filter(
        (s) =>
          s.spec.source.persistentVolumeClaimName === pvc &&
          s.status?.readyToUse === true &&
          !s.metadata.deletionTimestamp,
      );
    await eventually(
      async () =>
        (await readyOf(`${CLAIM}-web-0`)).length >= 2 && (await readyOf(`${CLAIM}-web-1`)).length >= 2,
      90_000,
    );
    await updateScheduleSpec(ns(), 'web', { suspend: true });
    await eventually(async () => (await listSnapshots(ns())).every((s) => s.status?.readyToUse), 30_000);
    step('snapshots ready');

    // What each replica's newest snapshot holds, straight from the backend.
    const newest = new Map<number, { snapshot: VolumeSnapshot; page: string }>();
    for (const i of [0, 1]) {
      const snaps = (await readyOf(`${CLAIM}-web-${i}`)).sort(
        (a, b) => Date.parse(b.status?.creationTime ?? '') - Date.parse(a.status?.creationTime ?? ''),
      );
      const snapshot = snaps[0];
      if (!snapshot) throw new Error(`no ready snapshot of ${CLAIM}-web-${i}`);
      newest.set(i, { snapshot, page: await pageInSnapshot(snapshot) });
    }

    // 3. web-restore: replica N's claim restores disk-ssd-web-N's newest snapshot.
    await apps.createNamespacedStatefulSet({
      namespace: ns(),
      body: webStatefulSet({
        name: 'web-restore',
        storageClass: STORAGE_CLASS,
        restoreFrom: `${CLAIM}-web-{ordinal}`,
      }),
    });
    await readyPods('web-restore', 2);
    step('web-restore pods serving');

    for (const i of [0, 1]) {
      const want = newest.get(i);
      const pvc = await k.core.readNamespacedPersistentVolumeClaim({
        name: `${CLAIM}-web-restore-${i}`,
        namespace: ns(),
      });
      expect(pvc.metadata?.annotations?.['snapcron.io/restored-from-snapshot']).toBe(
        want?.snapshot.metadata.name,
      );
      const served = await page(`web-restore-${i}`);
      // Its own replica's data, exactly what that snapshot holds...
      expect(served).toBe(want?.page);
      const restored = parsePage(served);
      expect(restored?.writer).toBe(`web-${i}`);
      // ...written no later than the snapshot was cut, and less than its 4 s period before.
      const cutAt = Math.floor(Date.parse(want?.snapshot.status?.creationTime ?? '') / 1000);
      expect(restored?.at).toBeLessThanOrEqual(cutAt);
      expect(restored?.at).toBeGreaterThanOrEqual(cutAt - 4);
      // The live replica has moved on since: the restore is a point in time, not a copy of now.
      expect(parsePage(await page(`web-${i}`))?.count).toBeGreaterThan(restored?.count ?? Infinity);
    }
    step('verified');

    await ctl.kill();
    console.log(`node seed flow timings (ms): ${JSON.stringify({ node: node.timings, ...timings })}`);
  });
});

describe.skipIf(!enabled)('npm run demo -- --node', () => {
  it('runs the seed flow with real pods on its own node, verifies each restored replica, and restores the host with --exit', async () => {
    const before = hostState();
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(process.execPath, ['hack/demo.ts', '--node', '--exit'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      p.once('exit', (c) => resolve({ code: c, out }));
    });
    expect(code, out).toBe(0);
    for (const i of [0, 1]) {
      expect(out).toMatch(
        new RegExp(`kubectl exec web-${i} -- wget -qO- :${WEB_PORT} {2}→ {2}web-${i} count=\\d+`),
      );
      expect(out).toMatch(new RegExp(`${CLAIM}-web-restore-${i} ← ${CLAIM}-web-${i}-`));
      expect(out).toMatch(
        new RegExp(`web-restore-${i}: written by web-${i} ✔, count \\d+ .*point in time ✔`),
      );
    }
    expect(out).toMatch(/export KUBECONFIG=.*\.cluster\/demo-node\/kubeconfig/);
    expect(hostState()).toEqual(before);
  }, 900_000);
});
