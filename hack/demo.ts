// `npm run demo`: the seed's flow, scheduled, on an embedded control plane and CSI stack.
// Builds what it needs the first time (with progress), runs `snapcron controller`, and
// narrates: app volume, data written, schedule applied, snapshots appearing and being
// pruned, restore by annotation, data verified. `--exit` stops at the end instead of
// leaving everything up for you to look around. Ctrl-C (or SIGTERM, or an error) at any point
// stops and cleans up everything started so far: the processes run in their own process groups
// (so that a terminal's Ctrl-C reaches only the demo, which stops them in order), and nothing
// else would stop them.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import type { VolumeSnapshot } from '../src/api/objects.ts';
import { ControlPlane, freePort } from '../dev/control-plane.ts';
import { CsiStack, SNAPSHOT_CLASS, STORAGE_CLASS } from '../dev/csi-stack.ts';
import { installRestoreWebhook } from '../dev/restore-webhook.ts';
import { stopStarted } from '../dev/started.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STATE = join(ROOT, '.cluster', 'demo');
const exitAtEnd = process.argv.includes('--exit');
const tty = process.stdout.isTTY;
const bold = (s: string): string => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex').slice(0, 16);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
let stepStart = Date.now();
const timings: [string, number][] = [];
function step(n: number, title: string): void {
  console.log(`\n${bold(`[${n}/6] ${title}`)}`);
  stepStart = Date.now();
}
function done(name: string): void {
  const ms = Date.now() - stepStart;
  timings.push([name, ms]);
  console.log(`      done in ${(ms / 1000).toFixed(1)} s`);
}
async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 120_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    await sleep(300);
  }
  throw new Error(`demo: timed out waiting for ${what}`);
}

// `--node`: the same flow with real pods on a real node (hack/demo-node.ts); it changes host
// settings, so the default demo stays node-less.
if (process.argv.includes('--node')) {
  const { nodeDemo } = await import('./demo-node.ts');
  await nodeDemo(exitAtEnd);
}

let controller: ChildProcess | undefined = undefined;
/** Set once the flow has run to its end: whether the data came back. */
let outcome: boolean | undefined = undefined;
let stopping: Promise<void> | undefined;
/** Stops what was started, newest first: the controller, CSI stacks, control planes (also ones still starting). */
async function stopAll(): Promise<void> {
  if (controller?.exitCode === null && controller.signalCode === null) {
    const exited = new Promise((r) => controller?.once('exit', r));
    try {
      process.kill(-(controller.pid ?? 0), 'SIGTERM');
      await exited;
    } catch {
      /* gone */
    }
  }
  await stopStarted();
}
/** Stops everything once, then exits: with the flow's outcome at its end, else with `code`. */
function stopAndExit(code: number, why: string): void {
  if (stopping) return;
  if (outcome === undefined) console.error(`\ndemo: ${why}; stopping what was started…`);
  stopping = stopAll().then(
    () => process.exit(outcome === undefined ? code : outcome ? 0 : 1),
    (err: unknown) => {
      console.error('demo: could not stop everything:', err);
      process.exit(1);
    },
  );
}
process.on('SIGINT', () => stopAndExit(130, 'interrupted'));
process.on('SIGTERM', () => stopAndExit(143, 'terminated'));
process.on('uncaughtException', (err) => {
  console.error(err);
  stopAndExit(1, 'failed');
});

mkdirSync(STATE, { recursive: true });
step(
  1,
  'Control plane: etcd + kube-apiserver + kube-controller-manager (built from Go modules on first run, ~6 min)',
);
const cp = await ControlPlane.start();
const kubeconfig = join(STATE, 'kubeconfig');
copyFileSync(cp.kubeconfigPath, kubeconfig);
done('control plane');

step(2, 'CSI stack: host-path driver + snapshot-controller + csi-snapshotter + csi-provisioner');
const stack = await CsiStack.start(kubeconfig, join(STATE, 'csi'));
const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);
const custom = kc.makeApiClient(k8s.CustomObjectsApi);
const ns = 'default';
const port = await freePort();
await installRestoreWebhook(kc, 'snapcron-restore', port);
const controllerLog = join(STATE, 'snapcron-controller.log');
controller = spawn(
  process.execPath,
  [join(ROOT, 'src/cli.ts'), 'controller', `--webhook-addr=127.0.0.1:${port}`, '--metrics-addr=127.0.0.1:0'],
  {
    env: { ...process.env, KUBECONFIG: kubeconfig },
    stdio: ['ignore', openSync(controllerLog, 'a'), openSync(controllerLog, 'a')],
    detached: true,
  },
);
console.log(`      snapcron controller running (pid ${controller.pid}), log ${controllerLog}`);
done('CSI stack + controller');

step(3, "App volume disk-ssd-web-0 (the seed's StatefulSet web), data written");
await core.createNamespacedPersistentVolumeClaim({
  namespace: ns,
  body: {
    metadata: { name: 'disk-ssd-web-0', labels: { app: 'nginx' } },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: STORAGE_CLASS,
      resources: { requests: { storage: '1Gi' } },
    },
  },
});
const volumeOf = async (name: string): Promise<string> => {
  const pvc = await until(`PVC ${name} Bound`, async () => {
    const p = await core.readNamespacedPersistentVolumeClaim({ name, namespace: ns });
    return p.status?.phase === 'Bound' ? p : undefined;
  });
  const pv = await core.readPersistentVolume({ name: pvc.spec?.volumeName ?? '' });
  return stack.volumeDir(pv.spec?.csi?.volumeHandle ?? '');
};
const source = await volumeOf('disk-ssd-web-0');
const data = randomBytes(64 * 1024);
writeFileSync(join(source, 'test'), data);
console.log(`      PVC disk-ssd-web-0 Bound; wrote /data/test: 64 KiB, sha256 ${sha(data)}`);
done('app volume');

step(4, 'SnapshotSchedule web: every 5 seconds, keep 3 (watch them appear and be pruned)');
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
      timeZone: 'Asia/Shanghai',
      claimSelector: { matchLabels: { app: 'nginx' } },
      snapshotClassName: SNAPSHOT_CLASS,
      retention: { maxCount: 3 },
    },
  },
});
const seen = new Set<string>();
const listSnapshots = async (): Promise<VolumeSnapshot[]> =>
  (
    (await custom.listNamespacedCustomObject({
      group: 'snapshot.storage.k8s.io',
      version: 'v1',
      namespace: ns,
      plural: 'volumesnapshots',
    })) as { items: VolumeSnapshot[] }
  ).items;
// A pruned snapshot lingers, terminating, until the CSI driver has deleted its backend copy.
const stateOf = (s: VolumeSnapshot | undefined): string =>
  !s
    ? 'PRUNED'
    : s.metadata.deletionTimestamp
      ? 'PRUNED (deleting in backend)'
      : s.status?.readyToUse
        ? 'ready'
        : s.status?.error
          ? 'failed'
          : 'pending';
const table = (items: VolumeSnapshot[]): string => {
  for (const s of items) seen.add(s.metadata.name ?? '');
  const rows = [...seen]
    .sort()
    .map((n) => `      ${n.padEnd(44)} ${stateOf(items.find((x) => x.metadata.name === n))}`);
  return [`      ${'SNAPSHOT'.padEnd(44)} STATE`, ...rows].join('\n');
};
let lines = 0;
const started = Date.now();
while (Date.now() - started < 28_000) {
  const text = table(await listSnapshots());
  if (tty) {
    if (lines > 0) process.stdout.write(`\x1b[${lines}A\x1b[0J`);
    console.log(text);
    lines = text.split('\n').length;
  }
  await sleep(1000);
}
// The summary and the last table come from one listing, so they agree.
const final = await listSnapshots();
const finalText = table(final);
if (tty && lines > 0) process.stdout.write(`\x1b[${lines}A\x1b[0J`);
console.log(finalText);
const kept = final.filter((s) => !s.metadata.deletionTimestamp);
console.log(
  `      ${seen.size} taken, ${seen.size - kept.length} pruned by retention (maxCount 3), ${kept.length} kept`,
);
done('schedule + retention');

step(5, 'Restore: PVC disk-ssd-web-restore-0 with snapcron.io/restore-from: disk-ssd-web-{ordinal}');
writeFileSync(join(source, 'late'), 'written after the snapshots');
await core.createNamespacedPersistentVolumeClaim({
  namespace: ns,
  body: {
    metadata: {
      name: 'disk-ssd-web-restore-0',
      labels: { 'snapcron.io/restore': 'true' },
      annotations: { 'snapcron.io/restore-from': 'disk-ssd-web-{ordinal}' },
    },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: STORAGE_CLASS,
      resources: { requests: { storage: '1Gi' } },
    },
  },
});
const restoredPvc = await core.readNamespacedPersistentVolumeClaim({
  name: 'disk-ssd-web-restore-0',
  namespace: ns,
});
console.log(
  `      webhook chose VolumeSnapshot ${restoredPvc.metadata?.annotations?.['snapcron.io/restored-from-snapshot']} (taken ${restoredPvc.metadata?.annotations?.['snapcron.io/restored-snapshot-time']})`,
);
const restored = await volumeOf('disk-ssd-web-restore-0');
done('restore');

step(6, 'Verify the data came back');
const back = readFileSync(join(restored, 'test'));
console.log(
  `      /data/test in the restored volume: sha256 ${sha(back)} ${back.equals(data) ? '= original ✔' : '≠ original ✘'}`,
);
console.log(
  `      file written after the snapshot present: ${existsSync(join(restored, 'late')) ? 'yes ✘' : 'no ✔ (point in time)'}`,
);
done('verify');

console.log(
  `\n${bold('Timings')}: ${timings.map(([n, ms]) => `${n} ${(ms / 1000).toFixed(1)}s`).join(', ')}`,
);
// `npm run -s kubectl --` is kubectl of the control plane's version (built on first use), with
// the snapcron plugin: whatever kubectl this machine has may be too old for the server.
console.log(
  [
    '\nLook around, with a kubectl of the same version as this control plane:',
    `  export KUBECONFIG=${kubeconfig}`,
    '  npm run -s kubectl -- get snapsched,volumesnapshots,pvc',
    '  npm run -s kubectl -- describe snapsched web',
    '  npm run -s kubectl -- snapcron report',
  ].join('\n'),
);
outcome = back.equals(data);
if (exitAtEnd) stopAndExit(0, 'done');
else {
  console.log('Stop: press Ctrl-C (everything started here is stopped and cleaned up).');
  setInterval(() => undefined, 1 << 30);
}
