/**
 * snapcron as it is installed: the kustomize base applied with `kubectl apply --server-side -k`
 * onto a control plane with a real node (dev/node.ts), running the image hack/build-image.sh
 * builds (moved into the node's containerd with `podman save` + `ctr images import`, no
 * registry). Two real replicas elect a leader through the Lease, snapshots are taken,
 * `kubectl delete pod` of the leader hands over within the lease duration, the probes make the
 * pods Ready, the restore webhook is reached through its Service, and the `cronjob` overlay's
 * CronJob runs `tick` as a real Job.
 *
 * Only a test-only overlay sits between the base and the cluster: the podman-built image with
 * `imagePullPolicy: Never`, and KUBERNETES_SERVICE_HOST/PORT pointing at the node bridge's host
 * side, because there is no kube-proxy to serve the `kubernetes` Service's ClusterIP.
 *
 * Its own control plane (started with `podNetwork`: ServiceAccount tokens in pods, webhook calls
 * to endpoints) and node, stopped at the end. Runs only when SNAPCRON_NODE_TESTS=1, like
 * node-e2e.test.ts (`npm run test:node`; CI sets it).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { ControlPlane, snapshotCrdDir } from '../../dev/control-plane.ts';
import { CsiStack, SNAPSHOT_CLASS, STORAGE_CLASS } from '../../dev/csi-stack.ts';
import { Node, POD_GATEWAY } from '../../dev/node.ts';
import { eventually } from '../env/kube.ts';
import { kubectlBinary } from '../env/kubectl.ts';
import { buildImage, podman } from '../env/podman.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NS = 'snapcron-system';
const enabled = process.env.SNAPCRON_NODE_TESTS === '1';

interface Obj {
  metadata: {
    name: string;
    creationTimestamp?: string;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}
interface Pod extends Obj {
  status?: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { ready: boolean; restartCount: number }[];
  };
}
interface Snapshot extends Obj {
  spec?: { source?: { persistentVolumeClaimName?: string } };
  status?: { readyToUse?: boolean };
}

/**
 * A test-only overlay over `resource` (the base or an overlay): the image
 * built here, never pulled, and the API server where pods reach it.
 */
function writeOverlay(dir: string, resource: string, image: string, apiPort: string): string {
  mkdirSync(dir, { recursive: true });
  const at = image.lastIndexOf(':');
  const [name, tag] =
    at > image.lastIndexOf('/') ? [image.slice(0, at), image.slice(at + 1)] : [image, 'latest'];
  const container = (c: string): unknown => ({
    name: c,
    imagePullPolicy: 'Never',
    env: [
      { name: 'KUBERNETES_SERVICE_HOST', value: POD_GATEWAY },
      { name: 'KUBERNETES_SERVICE_PORT', value: apiPort },
    ],
  });
  const patches = [
    {
      target: { kind: 'Deployment', name: 'snapcron-controller' },
      patch: JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'snapcron-controller', namespace: NS },
        spec: { template: { spec: { containers: [container('controller')] } } },
      }),
    },
    {
      target: { kind: 'CronJob', name: 'snapcron-tick' },
      patch: JSON.stringify({
        apiVersion: 'batch/v1',
        kind: 'CronJob',
        metadata: { name: 'snapcron-tick', namespace: NS },
        spec: { jobTemplate: { spec: { template: { spec: { containers: [container('tick')] } } } } },
      }),
    },
  ];
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    JSON.stringify({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      // kustomize takes a relative path only, even to a directory outside this one.
      resources: [relative(dir, resource)],
      images: [{ name: 'snapcron', newName: name, newTag: tag }],
      // A patch whose target is not in the render (the base has no CronJob) is skipped.
      patches,
    }),
  );
  return dir;
}

describe.skipIf(!enabled)('snapcron installed with kustomize, on a real node', () => {
  let cp: ControlPlane;
  let node: Node;
  let stack: CsiStack;
  let dir: string;
  let base: string;
  let cronjob: string;
  const timings: Record<string, number> = {};

  const kubectl = async (...args: string[]): Promise<string> => {
    try {
      return (await run(kubectlBinary(), [`--kubeconfig=${cp.kubeconfigPath}`, ...args])).stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`kubectl ${args.join(' ')}: ${e.stderr || e.message}`, { cause: err });
    }
  };
  const getJson = async <T>(...args: string[]): Promise<T> =>
    JSON.parse(await kubectl('get', '-o', 'json', ...args)) as T;
  const apply = (manifest: string): Promise<string> => {
    const file = join(dir, `obj-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, manifest);
    return kubectl('apply', '-f', file);
  };

  beforeAll(async () => {
    let t = Date.now();
    const step = (name: string): void => {
      timings[name] = Date.now() - t;
      t = Date.now();
    };
    dir = mkdtempSync(join(tmpdir(), 'snapcron-node-install-'));
    cp = await ControlPlane.start({ installCrds: false, podNetwork: { address: POD_GATEWAY } });
    // The snapshot and group snapshot CRDs come with the CSI snapshotter, not with snapcron (the
    // base brings its own); the snapshot-controller, group snapshots on, needs both.
    const crds = snapshotCrdDir();
    for (const f of readdirSync(crds).filter((f) => /^(group)?snapshot\.storage\.k8s\.io_/.test(f)))
      await kubectl('apply', '--server-side', '-f', join(crds, f));
    step('controlPlaneMs');
    // podman before the node: a first run that built the image while the node ran saw the
    // standby pod's network namespace vanish (cause not pinned down; see the README).
    const image = buildImage();
    const archive = join(dir, 'snapcron.oci.tar');
    await podman(['save', '--format', 'oci-archive', '-o', archive, image]);
    step('imageMs');
    node = await Node.start({ kubeconfig: cp.kubeconfigPath, dir: join(dir, 'node') });
    node.importImage(archive);
    rmSync(archive);
    step('nodeMs');
    stack = await CsiStack.start(cp.kubeconfigPath, join(dir, 'csi'));
    step('csiMs');
    const apiPort = new URL(cp.server).port;
    base = writeOverlay(join(dir, 'overlay-base'), join(ROOT, 'deploy/base'), image, apiPort);
    cronjob = writeOverlay(
      join(dir, 'overlay-cronjob'),
      join(ROOT, 'deploy/overlays/cronjob'),
      image,
      apiPort,
    );
  }, 900_000);

  afterAll(async () => {
    // The install goes first, through the API, as a user would remove it; then the node.
    if (cp && node) {
      for (const overlay of [cronjob, base].filter(Boolean))
        await kubectl('delete', '-k', overlay, '--ignore-not-found', '--wait', '--timeout=90s').catch(
          (err: unknown) => console.error(String(err)),
        );
      await kubectl('delete', 'namespace', 'install-test', '--ignore-not-found', '--timeout=60s').catch(
        () => undefined,
      );
    }
    await node?.stop();
    await stack?.stop();
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
    console.log(`node install timings (ms): ${JSON.stringify({ node: node?.timings, ...timings })}`);
    expect(existsSync('/sys/class/net/snapcron0')).toBe(false);
  }, 300_000);

  const controllerPods = async (): Promise<Pod[]> =>
    (
      await getJson<{ items: Pod[] }>(
        'pods',
        '-n',
        NS,
        '-l',
        'app.kubernetes.io/name=snapcron,app.kubernetes.io/component=controller',
      )
    ).items.filter((p) => !p.metadata.deletionTimestamp);
  /** On failure, what the cluster looked like: pods (with their node-side state) and events. */
  const diagnoseOnFailure = (): void =>
    onTestFailed(async () => {
      const pods = await kubectl('get', 'pods,jobs', '-A', '-o', 'wide').catch(String);
      const events = await kubectl('get', 'events', '-A', '--sort-by=.lastTimestamp').catch(String);
      console.error(`--- pods and jobs ---\n${pods}\n--- events ---\n${events.slice(-10_000)}`);
    });
  const isReady = (p: Pod): boolean =>
    !!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  const lease = (): Promise<{ spec: { holderIdentity?: string; leaseDurationSeconds?: number } }> =>
    getJson('lease', '-n', NS, 'snapcron-controller');
  /** The pod whose controller holds the Lease (identity: `<hostname>-<pid>`, hostname = pod name). */
  const leaderOf = (holder: string | undefined, pods: Pod[]): Pod | undefined =>
    pods.find((p) => holder?.startsWith(`${p.metadata.name}-`));
  const snapshots = async (): Promise<Snapshot[]> =>
    (await getJson<{ items: Snapshot[] }>('volumesnapshots', '-n', 'install-test')).items;

  it('runs two Ready replicas with one leader, takes snapshots, hands over on `kubectl delete pod` within the lease duration, and serves the restore webhook through its Service', async () => {
    diagnoseOnFailure();
    let t = Date.now();
    const step = (name: string): void => {
      timings[name] = Date.now() - t;
      t = Date.now();
    };

    // 1. The install, as the README gives it (plus the test overlay).
    await kubectl('apply', '--server-side', '-k', base);
    await kubectl(
      'wait',
      '--for=condition=Established',
      'crd/snapshotschedules.snapcron.io',
      '--timeout=60s',
    );

    // 2. Two replicas, Ready: the readiness probe (/readyz) passed in each, on the node.
    const pods = await eventually(async () => {
      const p = await controllerPods();
      return p.length === 2 && p.every(isReady) ? p : undefined;
    }, 180_000);
    for (const p of pods) {
      expect(p.status?.phase).toBe('Running');
      // The liveness probe never failed: no restarts.
      expect(p.status?.containerStatuses?.[0]?.restartCount).toBe(0);
    }
    step('podsReadyMs');

    // 3. One of them holds the Lease.
    const first = await eventually(async () => leaderOf((await lease()).spec.holderIdentity, pods), 60_000);
    const standby = pods.find((p) => p !== first);
    if (!standby) throw new Error('no standby replica');
    step('leaderMs');

    // 4. Snapshots of a CSI volume in a test namespace, every 5 seconds.
    await apply(
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'install-test' } },
          {
            apiVersion: 'v1',
            kind: 'PersistentVolumeClaim',
            metadata: { name: 'data', namespace: 'install-test', labels: { app: 'data' } },
            spec: {
              accessModes: ['ReadWriteOnce'],
              storageClassName: STORAGE_CLASS,
              resources: { requests: { storage: '1Mi' } },
            },
          },
        ],
      }),
    );
    await eventually(async () => {
      const pvc = await getJson<Obj>('pvc', '-n', 'install-test', 'data');
      return pvc.status?.phase === 'Bound';
    }, 60_000);
    await apply(
      JSON.stringify({
        apiVersion: 'snapcron.io/v1',
        kind: 'SnapshotSchedule',
        metadata: { name: 'data', namespace: 'install-test' },
        spec: {
          schedule: '*/5 * * * * *',
          claimSelector: { matchLabels: { app: 'data' } },
          snapshotClassName: SNAPSHOT_CLASS,
          retention: { maxCount: 5 },
        },
      }),
    );
    await eventually(
      async () => (await snapshots()).filter((s) => s.status?.readyToUse === true).length >= 1,
      90_000,
    );
    step('firstSnapshotMs');

    // 5. `kubectl delete pod` of the leader: another replica holds the Lease within its duration.
    // Usually the standby; the replacement pod the Deployment starts meanwhile may win the race.
    const duration = ((await lease()).spec.leaseDurationSeconds ?? 0) * 1000;
    // The README promises a hand-over within the default --lease-duration, 15 s.
    expect(duration).toBe(15_000);
    const deletedAt = Date.now();
    await kubectl('delete', 'pod', '-n', NS, first.metadata.name, '--wait=false');
    const next = await eventually(
      async () => {
        const holder = (await lease()).spec.holderIdentity;
        return holder && !holder.startsWith(`${first.metadata.name}-`) ? holder : undefined;
      },
      duration + 30_000,
      100,
    );
    const handoverMs = Date.now() - deletedAt;
    timings.handoverMs = handoverMs;
    timings.handoverToStandby = next.startsWith(`${standby.metadata.name}-`) ? 1 : 0;
    expect(handoverMs).toBeLessThanOrEqual(duration);
    // The new leader takes the schedule's next snapshots (the old one, fenced, takes none now).
    const byOldLeader = new Set((await snapshots()).map((s) => s.metadata.name));
    await eventually(
      async () => (await snapshots()).some((s) => !byOldLeader.has(s.metadata.name) && s.status?.readyToUse),
      60_000,
    );
    // The Deployment replaced the deleted pod: two Ready replicas again.
    await eventually(async () => {
      const p = await controllerPods();
      return p.length === 2 && p.every(isReady);
    }, 120_000);
    step('handoverAndNextSnapshotMs');

    // 6. The restore webhook through its Service (kube-apiserver calls its endpoints).
    await eventually(async () => {
      const cfg = await getJson<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(
        'mutatingwebhookconfiguration',
        'snapcron-restore',
      );
      return !!cfg.webhooks[0]?.clientConfig.caBundle;
    }, 60_000);
    await eventually(
      () =>
        apply(
          JSON.stringify({
            apiVersion: 'v1',
            kind: 'PersistentVolumeClaim',
            metadata: {
              name: 'data-restore',
              namespace: 'install-test',
              labels: { 'snapcron.io/restore': 'true' },
              annotations: { 'snapcron.io/restore-from': 'data' },
            },
            spec: {
              accessModes: ['ReadWriteOnce'],
              storageClassName: STORAGE_CLASS,
              resources: { requests: { storage: '1Mi' } },
            },
          }),
        ),
      30_000,
      1000,
    );
    const restored = await getJson<Obj & { spec: { dataSource?: { kind: string; name: string } } }>(
      'pvc',
      '-n',
      'install-test',
      'data-restore',
    );
    const from = restored.metadata.annotations?.['snapcron.io/restored-from-snapshot'];
    expect(restored.spec.dataSource?.kind).toBe('VolumeSnapshot');
    expect(restored.spec.dataSource?.name).toBe(from);
    const source = (await snapshots()).find((s) => s.metadata.name === from);
    expect(source?.spec?.source?.persistentVolumeClaimName).toBe('data');
    // And the real csi-provisioner restores it.
    await eventually(
      async () => (await getJson<Obj>('pvc', '-n', 'install-test', 'data-restore')).status?.phase === 'Bound',
      60_000,
    );
    step('webhookMs');
  }, 900_000);

  it('runs the cronjob overlay’s CronJob as a real Job whose `tick` takes the due snapshot', async () => {
    diagnoseOnFailure();
    const t = Date.now();
    // No controller may take it instead: the Deployment goes to zero first.
    await kubectl('scale', 'deployment', '-n', NS, 'snapcron-controller', '--replicas=0');
    await eventually(async () => (await controllerPods()).length === 0, 90_000);
    // The last controller may have taken the slot due now: wait for the next one (every 5 s).
    await new Promise((r) => setTimeout(r, 6000));
    await kubectl('apply', '--server-side', '-k', cronjob);
    const before = new Set((await snapshots()).map((s) => s.metadata.name));
    await kubectl('create', 'job', '-n', NS, '--from=cronjob/snapcron-tick', 'tick-now');
    await kubectl('wait', '-n', NS, '--for=condition=Complete', 'job/tick-now', '--timeout=180s');
    const job = await getJson<{ status: { succeeded?: number; failed?: number } }>(
      'job',
      '-n',
      NS,
      'tick-now',
    );
    expect(job.status.succeeded).toBe(1);
    expect(job.status.failed ?? 0).toBe(0);
    const taken = (await snapshots()).filter((s) => !before.has(s.metadata.name));
    expect(taken.length).toBeGreaterThanOrEqual(1);
    expect(taken[0]?.spec?.source?.persistentVolumeClaimName).toBe('data');
    timings.cronJobTickMs = Date.now() - t;
  }, 600_000);
});
