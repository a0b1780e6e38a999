/**
 * The floor under the controller's CPU in bench:scale: a bare Node process that makes the
 * sustained window's VolumeSnapshot creates at the window's pace (each schedule's PVCs at once,
 * at its offset in the period), through snapcron's own client, under the controller's V8
 * settings, and nothing else: no watches, caches, passes, status, events or metrics. What the
 * controller spends per create above this is its own work.
 *
 * bench/scale.ts runs it as `node bench/paced-client.ts '<json Options>'` with the controller's
 * NODE_OPTIONS and KUBECONFIG; it prints `{"creates":n,"cpuSeconds":s}`: the CPU of its whole
 * process (every thread) from the first create to the last answer.
 */
import { setFlagsFromString } from 'node:v8';
import { Kube } from '../src/kube/client.ts';
import { snapshotMetadata } from '../src/snapshot/naming.ts';
import { benchPvcs, sleep } from './fixtures.ts';

// As src/cli.ts sets it for the controller.
setFlagsFromString('--optimize-for-size');

interface Options {
  namespaces: string[];
  pvcsPerSchedule: number;
  /** The period the fires are spread over, and how much of it to replay. */
  periodSeconds: number;
  seconds: number;
  qps: number;
  burst: number;
}

const o = JSON.parse(process.argv[2] ?? '{}') as Options;
const kube = Kube.fromFile(process.env.KUBECONFIG ?? '', { qps: o.qps, burst: o.burst });
const pvcs = benchPvcs(o.namespaces, o.pvcsPerSchedule);
const byNamespace = Map.groupBy(pvcs, (p) => p.ns);

// Warm up as the controller is warm by its window: the first requests open connections and
// compile the client's code.
await Promise.all(
  pvcs
    .slice(0, 32)
    .map((p) => kube.core.readNamespacedPersistentVolumeClaim({ namespace: p.ns, name: p.name })),
);

const start = performance.now();
const cpu0 = process.cpuUsage();
const made: Promise<unknown>[] = [];
let creates = 0;
for (const [i, ns] of o.namespaces.entries()) {
  const offsetMs = ((i * o.periodSeconds) / o.namespaces.length) * 1000;
  if (offsetMs >= o.seconds * 1000) break;
  await sleep(Math.max(0, offsetMs - (performance.now() - start)));
  const scheduledAt = new Date();
  for (const p of byNamespace.get(ns) ?? []) {
    creates++;
    made.push(
      kube.write(
        () =>
          kube.custom.createNamespacedCustomObject({
            ...kube.snapshots,
            namespace: ns,
            body: {
              apiVersion: 'snapshot.storage.k8s.io/v1',
              kind: 'VolumeSnapshot',
              metadata: { name: `paced-${p.name}-${i}`, ...snapshotMetadata(p.name, 'bench', scheduledAt) },
              spec: { source: { persistentVolumeClaimName: p.name } },
            },
          }),
        { key: ns, lane: 'create' },
      ),
    );
  }
}
await Promise.all(made);
const used = process.cpuUsage(cpu0);
process.stdout.write(JSON.stringify({ creates, cpuSeconds: (used.user + used.system) / 1e6 }));
process.exit(0);
