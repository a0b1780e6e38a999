// The objects bench:scale and bench:memory create on their local control plane, and the
// client-node informer baseline both measure against: one definition, so the two benches
// measure the same thing.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AdminKube } from '../dev/admin-kube.ts';
import type { Kube } from '../src/kube/client.ts';
import { snapshotMetadata } from '../src/snapshot/naming.ts';
import { parse as parseYaml } from 'yaml';

/**
 * The controller's kubeconfig as JSON, beside the YAML one. In a pod the controller reads its
 * service account's files and never loads the YAML library, whose parse of a kubeconfig file
 * holds 6-9 MiB of its RSS for the process's life (BENCHMARKS.md); a JSON kubeconfig is read
 * with JSON.parse, so the bench measures the controller as a pod runs it.
 */
export function jsonKubeconfig(file: string): string {
  const json = `${file}.json`;
  writeFileSync(json, JSON.stringify(parseYaml(readFileSync(file, 'utf8'))), { mode: 0o600 });
  return json;
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Bytes as MiB with one decimal ('-' for no reading). */
export const mib = (b: number | undefined): string => (b === undefined ? '-' : (b / 2 ** 20).toFixed(1));

/**
 * A process's memory from /proc/<pid>/status, in bytes: RSS, its anonymous part (heaps,
 * buffers), its file-backed and shared-memory parts (the node binary's pages), and the peak.
 */
export function procStatus(pid: number): {
  rss: number;
  rssAnon: number;
  rssFile: number;
  rssShmem: number;
  hwm: number;
} {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1]) * 1024;
  return {
    rss: kb('VmRSS'),
    rssAnon: kb('RssAnon'),
    rssFile: kb('RssFile'),
    rssShmem: kb('RssShmem'),
    hwm: kb('VmHWM'),
  };
}

/**
 * CPU seconds (user + system) of each of a process's threads, by thread id, from
 * /proc/<pid>/task/<tid>/stat. The thread whose id is the pid is the main thread (the event
 * loop); the others are V8's workers (parallel and concurrent GC, background compilers) and
 * libuv's pool. A thread that ended since is missing from a later reading.
 */
export function threadCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // Fields after the parenthesised name: state is field 3, utime 14 and stime 15.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), (Number(f[11]) + Number(f[12])) / CLOCK_TICKS);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** USER_HZ, the unit of /proc's CPU times: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;

/** The main thread's and the other threads' CPU between two `threadCpu` readings. */
export function threadCpuSplit(
  pid: number,
  from: Map<number, number>,
  to: Map<number, number>,
): { main: number; others: number } {
  let main = 0;
  let others = 0;
  for (const [tid, s] of to) {
    const d = s - (from.get(tid) ?? 0);
    if (tid === pid) main += d;
    else others += d;
  }
  return { main, others };
}

/** Runs `fn` over `items` with at most `n` in flight. */
export async function pool<T>(
  items: T[],
  n: number,
  fn: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

/** Retries a 429 (a CRD's storage still initializing right after install). */
export async function retrying<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if ((err as { code?: number }).code !== 429 || attempt >= 30) throw err;
      await sleep(1000);
    }
  }
}

/** Creates, taking 409 AlreadyExists for done (a re-run on the same cluster): undefined then. */
export async function create(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    return await retrying(fn);
  } catch (err) {
    if ((err as { code?: number }).code === 409) return undefined;
    throw err;
  }
}

export interface PvcRef {
  ns: string;
  name: string;
}

/** PVCs `data-0..n-1` labelled app=bench in each namespace. */
export const benchPvcs = (namespaces: string[], perNamespace: number): PvcRef[] =>
  namespaces.flatMap((ns) => Array.from({ length: perNamespace }, (_, j) => ({ ns, name: `data-${j}` })));

/**
 * A PV pre-bound to each PVC (no provisioner needed: the PV binder binds them), then waits until
 * every PVC is Bound. PVCs already there are left alone.
 */
export async function createBoundPvcs(
  admin: AdminKube,
  pvcs: PvcRef[],
  log: (line: string) => void,
): Promise<void> {
  const have = new Set(
    (await admin.core.listPersistentVolumeClaimForAllNamespaces({ limit: 1_000_000 })).items.map(
      (p) => `${p.metadata?.namespace}/${p.metadata?.name}`,
    ),
  );
  const missing = pvcs.filter((p) => !have.has(`${p.ns}/${p.name}`));
  log(`creating ${missing.length} PVs and pre-bound PVCs (${pvcs.length - missing.length} there)`);
  await pool(missing, 64, async ({ ns, name }) => {
    const pv = `pv-${ns}-${name}`;
    await create(() =>
      admin.core.createPersistentVolume({
        body: {
          metadata: { name: pv },
          spec: {
            capacity: { storage: '1Gi' },
            accessModes: ['ReadWriteOnce'],
            storageClassName: 'manual',
            hostPath: { path: `/tmp/${pv}` },
            claimRef: { namespace: ns, name },
          },
        },
      }),
    );
    await create(() =>
      admin.core.createNamespacedPersistentVolumeClaim({
        namespace: ns,
        body: {
          metadata: { name, labels: { app: 'bench' } },
          spec: {
            accessModes: ['ReadWriteOnce'],
            storageClassName: 'manual',
            volumeName: pv,
            resources: { requests: { storage: '1Gi' } },
          },
        },
      }),
    );
  });
  for (;;) {
    const list = await admin.core.listPersistentVolumeClaimForAllNamespaces({ limit: 1_000_000 });
    const bound = list.items.filter((p) => p.status?.phase === 'Bound').length;
    if (bound >= pvcs.length) break;
    log(`waiting for the PV binder: ${bound}/${pvcs.length} bound`);
    await sleep(2000);
  }
}

/** The bench's SnapshotSchedule `app` in `namespace`: every PVC labelled app=bench, keeping 2. */
export function createBenchSchedule(admin: Kube, namespace: string, cron: string): Promise<unknown> {
  return create(() =>
    admin.custom.createNamespacedCustomObject({
      ...admin.schedules,
      namespace,
      body: {
        apiVersion: 'snapcron.io/v1',
        kind: 'SnapshotSchedule',
        metadata: { name: 'app' },
        spec: {
          schedule: cron,
          claimSelector: { matchLabels: { app: 'bench' } },
          retention: { maxCount: 2, maxPending: 1000 },
        },
      },
    }),
  );
}

/**
 * Old VolumeSnapshots of schedule `app`, `old-<pvc>-<i>` for each index, spread round-robin over
 * the PVCs a minute apart, with kubectl's last-applied annotation (as `kubectl apply` leaves
 * objects). Those with an index below `readyBelow` are marked ready through the status
 * subresource, as a snapshot controller would.
 */
export async function createOldSnapshots(
  admin: AdminKube,
  pvcs: PvcRef[],
  indices: number[],
  o: { readyBelow?: number; onCreated?: (done: number) => void } = {},
): Promise<void> {
  let done = 0;
  await pool(indices, 200, async (i) => {
    const p = pvcs[i % pvcs.length] as PvcRef;
    const when = new Date(Date.UTC(2026, 0, 1) + i * 60_000);
    const meta = snapshotMetadata(p.name, 'app', when);
    const name = `old-${p.name}-${i}`;
    const created = (await create(() =>
      admin.custom.createNamespacedCustomObject({
        ...admin.snapshots,
        namespace: p.ns,
        body: {
          apiVersion: 'snapshot.storage.k8s.io/v1',
          kind: 'VolumeSnapshot',
          metadata: {
            name,
            ...meta,
            annotations: {
              ...meta.annotations,
              'kubectl.kubernetes.io/last-applied-configuration': '{"padding":"as kubectl apply leaves it"}',
            },
          },
          spec: { source: { persistentVolumeClaimName: p.name } },
        },
      }),
    )) as Record<string, unknown> | undefined;
    if (created && i < (o.readyBelow ?? 0)) {
      await admin.custom.replaceNamespacedCustomObjectStatus({
        ...admin.snapshots,
        namespace: p.ns,
        name,
        body: {
          ...created,
          status: {
            readyToUse: true,
            creationTime: when.toISOString().replace('.000Z', 'Z'),
            restoreSize: '1Gi',
            boundVolumeSnapshotContentName: `snapcontent-${p.ns}-${p.name}-${i}`,
          },
        },
      });
    }
    o.onCreated?.(++done);
  });
}

/** RSS of a process holding every PVC and VolumeSnapshot in client-node informers (the old controller's way). */
export function naiveInformerRss(kubeconfig: string): Promise<number> {
  const script = `
    import * as k8s from '@kubernetes/client-node';
    const kc = new k8s.KubeConfig(); kc.loadFromDefault();
    const custom = kc.makeApiClient(k8s.CustomObjectsApi); const core = kc.makeApiClient(k8s.CoreV1Api);
    const snaps = k8s.makeInformer(kc, '/apis/snapshot.storage.k8s.io/v1/volumesnapshots',
      () => custom.listClusterCustomObject({ group: 'snapshot.storage.k8s.io', version: 'v1', plural: 'volumesnapshots' }));
    const pvcs = k8s.makeInformer(kc, '/api/v1/persistentvolumeclaims', () => core.listPersistentVolumeClaimForAllNamespaces({}));
    await snaps.start(); await pvcs.start(); await new Promise((r) => setTimeout(r, 3000)); globalThis.gc?.();
    process.stdout.write(String(process.memoryUsage().rss)); process.exit(0);`;
  return childNumber(['--input-type=module', '-e', script], { KUBECONFIG: kubeconfig });
}

/** Runs node with `args` and reads the number it prints. */
export async function childNumber(args: string[], env: Record<string, string>): Promise<number> {
  return Number(await childOutput(args, env));
}

/** Runs node with `args` and reads what it prints. */
export function childOutput(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exited ${code}`))));
  });
}
