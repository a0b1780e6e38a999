// `npm run demo -- --node`: the seed's flow with real pods. A real node (kubelet + containerd,
// dev/node.ts) runs the StatefulSet `web`, whose two pods write a page and a counter to their
// CSI volumes; snapcron snapshots them on a schedule; `web-restore` comes up from
// `disk-ssd-web-{ordinal}`'s newest snapshots and each pod serves its own replica's page as of
// then, read through the pod with kubectl exec. It changes host settings (see the README's
// "Real node"); stopping the demo restores them. `--exit` stops at the end.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import type { VolumeSnapshot } from '../src/api/objects.ts';
import { ControlPlane, freePort } from '../dev/control-plane.ts';
import { CsiStack, SNAPSHOT_CLASS, STORAGE_CLASS } from '../dev/csi-stack.ts';
import { Node, PLUGINS_REGISTRY } from '../dev/node.ts';
import { installRestoreWebhook } from '../dev/restore-webhook.ts';
import { CLAIM, parsePage, WEB_PORT, webStatefulSet } from '../dev/seed-web.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STATE = join(ROOT, '.cluster', 'demo-node');
const tty = process.stdout.isTTY;
const bold = (s: string): string => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const STEPS = 7;

export async function nodeDemo(exitAtEnd: boolean): Promise<void> {
  let stepStart = Date.now();
  const timings: [string, number][] = [];
  const step = (n: number, title: string): void => {
    console.log(`\n${bold(`[${n}/${STEPS}] ${title}`)}`);
    stepStart = Date.now();
  };
  const done = (name: string): void => {
    const ms = Date.now() - stepStart;
    timings.push([name, ms]);
    console.log(`      done in ${(ms / 1000).toFixed(1)} s`);
  };
  const until = async <T>(
    what: string,
    fn: () => Promise<T | undefined | false>,
    timeoutMs = 120_000,
  ): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const v = await fn().catch(() => undefined);
      if (v) return v;
      await sleep(300);
    }
    throw new Error(`demo: timed out waiting for ${what}`);
  };

  mkdirSync(STATE, { recursive: true });
  step(1, 'Control plane: etcd + kube-apiserver + kube-controller-manager');
  const cp = await ControlPlane.start();
  const kubeconfig = join(STATE, 'kubeconfig');
  copyFileSync(cp.kubeconfigPath, kubeconfig);
  done('control plane');

  step(
    2,
    'A real node: containerd + kubelet + kube-scheduler + workload controllers (built from Go modules on first run, ~15 min)',
  );
  let node: Node | undefined;
  let stack: CsiStack | undefined;
  let controllerPid: number | undefined;
  const stopAll = async (): Promise<void> => {
    try {
      process.kill(-(controllerPid ?? 0), 'SIGTERM');
    } catch {
      /* gone */
    }
    // The node first: its pods' volumes are unpublished through the still-running CSI driver.
    await node?.stop();
    await stack?.stop();
    await cp.stop();
  };
  try {
    node = await Node.start({ kubeconfig, dir: join(STATE, 'node') });
    console.log(`      node ${node.name} Ready; it changed host sysctls, restored when the demo stops`);
    done('node');

    step(3, 'CSI stack with its node side (registered with the kubelet) + snapcron controller');
    stack = await CsiStack.start(kubeconfig, join(STATE, 'csi'), {
      node: { nodeId: node.name, registrationDir: PLUGINS_REGISTRY },
    });
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const ns = 'default';
    const port = await freePort();
    await installRestoreWebhook(kc, 'snapcron-restore', port);
    const controllerLog = join(STATE, 'snapcron-controller.log');
    const controller = spawn(
      process.execPath,
      [
        join(ROOT, 'src/cli.ts'),
        'controller',
        `--webhook-addr=127.0.0.1:${port}`,
        '--metrics-addr=127.0.0.1:0',
      ],
      {
        env: { ...process.env, KUBECONFIG: kubeconfig },
        stdio: ['ignore', openSync(controllerLog, 'a'), openSync(controllerLog, 'a')],
        detached: true,
      },
    );
    controllerPid = controller.pid;
    console.log(`      snapcron controller running (pid ${controller.pid}), log ${controllerLog}`);
    done('CSI stack + controller');

    const kubectl =
      execFileSync('bash', [join(ROOT, 'hack/build-kubectl.sh')], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      })
        .trim()
        .split('\n')
        .at(-1) ?? 'kubectl';
    const page = (pod: string): string =>
      execFileSync(
        kubectl,
        [
          `--kubeconfig=${kubeconfig}`,
          '-n',
          ns,
          'exec',
          pod,
          '--',
          'wget',
          '-qO-',
          `http://127.0.0.1:${WEB_PORT}/`,
        ],
        { encoding: 'utf8' },
      ).trim();
    const ready = (app: string): Promise<true> =>
      until(`pods of ${app} Ready`, async () => {
        const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` })).items;
        return (
          pods.length === 2 &&
          pods.every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) &&
          (true as const)
        );
      });

    step(4, "StatefulSet web (the seed's app): 2 pods, each writing a page and a counter to its CSI volume");
    await apps.createNamespacedStatefulSet({
      namespace: ns,
      body: webStatefulSet({ name: 'web', storageClass: STORAGE_CLASS, claimLabels: { app: 'web' } }),
    });
    await ready('web');
    for (const i of [0, 1])
      console.log(`      kubectl exec web-${i} -- wget -qO- :${WEB_PORT}  →  ${page(`web-${i}`)}`);
    done('web');

    step(5, 'SnapshotSchedule web: every 5 seconds, keep 3, for ~20 s, then suspended');
    await custom.createNamespacedCustomObject({
      group: 'snapcron.io',
      version: 'v1',
      namespace: ns,
      plural: 'snapshotschedules',
      body: {
        apiVersion: 'snapcron.io/v1',
        kind: 'SnapshotSchedule',
        metadata: { name: 'web' },
        spec: {
          schedule: '*/5 * * * * *',
          claimSelector: { matchLabels: { app: 'web' } },
          snapshotClassName: SNAPSHOT_CLASS,
          retention: { maxCount: 3 },
        },
      },
    });
    const list = async (): Promise<VolumeSnapshot[]> =>
      (
        (await custom.listNamespacedCustomObject({
          group: 'snapshot.storage.k8s.io',
          version: 'v1',
          namespace: ns,
          plural: 'volumesnapshots',
        })) as { items: VolumeSnapshot[] }
      ).items;
    await sleep(20_000);
    await custom.patchNamespacedCustomObject({
      group: 'snapcron.io',
      version: 'v1',
      namespace: ns,
      plural: 'snapshotschedules',
      name: 'web',
      body: [{ op: 'add', path: '/spec/suspend', value: true }],
    });
    const snaps = await until('snapshots ready', async () => {
      const l = (await list()).filter((s) => !s.metadata.deletionTimestamp);
      return l.length > 0 && l.every((s) => s.status?.readyToUse) && l;
    });
    for (const s of snaps.sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '')))
      console.log(`      ${s.metadata.name}  ready, taken ${s.status?.creationTime}`);
    done('schedule');

    step(
      6,
      `StatefulSet web-restore: claim template annotated snapcron.io/restore-from: ${CLAIM}-web-{ordinal}`,
    );
    await apps.createNamespacedStatefulSet({
      namespace: ns,
      body: webStatefulSet({
        name: 'web-restore',
        storageClass: STORAGE_CLASS,
        restoreFrom: `${CLAIM}-web-{ordinal}`,
      }),
    });
    await ready('web-restore');
    for (const i of [0, 1]) {
      const pvc = await core.readNamespacedPersistentVolumeClaim({
        name: `${CLAIM}-web-restore-${i}`,
        namespace: ns,
      });
      console.log(
        `      ${CLAIM}-web-restore-${i} ← ${pvc.metadata?.annotations?.['snapcron.io/restored-from-snapshot']}`,
      );
    }
    done('restore');

    step(7, 'Read back through the pods: each restored replica serves its own data, as of its snapshot');
    let ok = true;
    for (const i of [0, 1]) {
      const restored = parsePage(page(`web-restore-${i}`));
      const live = parsePage(page(`web-${i}`));
      const mine = restored?.writer === `web-${i}`;
      const earlier = (restored?.count ?? Infinity) < (live?.count ?? 0);
      ok &&= mine && earlier;
      console.log(
        `      web-restore-${i}: written by ${restored?.writer} ${mine ? '✔' : '✘'}, count ${restored?.count} (web-${i} is at ${live?.count} now: ${earlier ? 'point in time ✔' : '✘'})`,
      );
    }
    done('verify');

    console.log(
      `\n${bold('Timings')}: ${timings.map(([n, ms]) => `${n} ${(ms / 1000).toFixed(1)}s`).join(', ')}`,
    );
    console.log(
      `\nLook around:\n  export KUBECONFIG=${kubeconfig}\n  ${kubectl} get pods,pvc,volumesnapshots\n  ${kubectl} exec web-restore-0 -- cat /data/index.html`,
    );
    if (exitAtEnd) {
      await stopAll();
      process.exit(ok ? 0 : 1);
    }
    console.log('Stop: press Ctrl-C (pods deleted, node stopped, host settings restored).');
    process.once('SIGINT', () => void stopAll().then(() => process.exit(ok ? 0 : 1)));
    process.once('SIGTERM', () => void stopAll().then(() => process.exit(ok ? 0 : 1)));
    setInterval(() => undefined, 1 << 30);
    await new Promise(() => undefined);
  } catch (err) {
    console.error(`demo failed: ${String(err)}`);
    await stopAll();
    process.exit(1);
  }
}
