// bench:scale — snapcron controller at scale on a real local control plane (etcd +
// kube-apiserver + the PV binder), every figure next to a baseline measured in the same run.
// Not a test: it asserts nothing (test/integration/bench-scale.test.ts runs a small one and
// checks loose bounds). No CSI driver runs: the bench plays the snapshot controller and marks
// snapshots ready through the status subresource, and says so in its output.
//
// Usage: npm run bench:scale -- [--schedules 1000] [--pvcs 10] [--minutes 30] [--quiet-minutes 10]
//          [--snapshots 100000] [--broken 100] [--qps 100] [--burst 200] [--out BENCHMARKS.json]
//          [--no-ready] [--cpu-prof <dir>]   (the controller's CPU profile, written when it stops)
//          [--alloc-prof <dir>]              (what the controller allocates, written when it stops)
//          [--node-options '<flags>']        (the controller's NODE_OPTIONS instead of the image's)
//          [--node-args '<flags>']           (V8 flags on node's command line, which NODE_OPTIONS refuses)
//          [--allocator jemalloc|glibc]      (the controller's malloc: the image's jemalloc by default
//                                             where libjemalloc2 is installed, else glibc's)
//          [--malloc-conf '<conf>']          (jemalloc's MALLOC_CONF instead of the image's)
//        npm run bench:scale -- --small        (50 schedules x 4 PVCs, --qps 20, short windows: CI's size)
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { cpus, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import type { VolumeSnapshot } from '../src/api/objects.ts';
import { AdminKube } from '../dev/admin-kube.ts';
import { Kube } from '../src/kube/client.ts';
import { errorMessage } from '../src/kube/retry.ts';
import { ControlPlane, freePort } from '../dev/control-plane.ts';
import {
  type Allocator,
  allocatorNote,
  allocatorOption,
  CONTROLLER_NODE_OPTIONS,
  controllerEnv,
} from './controller-env.ts';
import {
  benchPvcs,
  childOutput,
  createBenchSchedule,
  createBoundPvcs,
  createOldSnapshots,
  jsonKubeconfig,
  mib,
  naiveInformerRss,
  pool,
  procStatus,
  threadCpu,
  threadCpuSplit,
  sleep,
} from './fixtures.ts';

// The built CLI, as users run it (`npm run bench:scale` builds first): running src/ through
// Node's type stripping would add its WebAssembly compiler to the RSS measured.
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
/** Preloaded for `--alloc-prof` (Node strips its types: a profiling run, not a measured one). */
const ALLOC_PROFILER = fileURLToPath(new URL('./alloc-profile.ts', import.meta.url));
const PACED_CLIENT = fileURLToPath(new URL('./paced-client.ts', import.meta.url));
export interface ScaleOptions {
  schedules: number;
  pvcsPerSchedule: number;
  /** Sustained window, minutes; schedules fire every `period` minutes, spread over it. */
  minutes: number;
  period: number;
  quietMinutes: number;
  /** Snapshots cached for the memory and webhook figures. */
  snapshots: number;
  broken: number;
  qps: number;
  burst: number;
  /**
   * Mark new snapshots ready in the sustained window (default true), so retention prunes as on a
   * cluster with a CSI driver. False (`--no-ready`): nothing becomes ready and nothing is pruned,
   * as in the run the issue measured snapscheduler with.
   */
  ready?: boolean | undefined;
  /** Write the controller's V8 CPU profile (whole run) into this directory (`--cpu-prof <dir>`). */
  cpuProfDir?: string | undefined;
  /**
   * Write the controller's sampling allocation profile (whole run, collected objects included)
   * into this directory (`--alloc-prof <dir>`, bench/alloc-profile.ts).
   */
  allocProfDir?: string | undefined;
  /** The controller's NODE_OPTIONS in place of the image's (`--node-options '<flags>'`). */
  nodeOptions?: string | undefined;
  /** Flags on node's own command line, before the CLI: V8 flags NODE_OPTIONS refuses (`--node-args`). */
  nodeArgs?: string | undefined;
  /**
   * The controller's malloc (`--allocator`): the image's jemalloc (the default where
   * libjemalloc2 is installed) or glibc's.
   */
  allocator?: Allocator | undefined;
  /** jemalloc's settings in place of the image's (`--malloc-conf`). */
  mallocConf?: string | undefined;
  out?: string | undefined;
  log?: (line: string) => void;
}

/**
 * CI's size. A budget of 20 writes a second makes its burst (180 snapshots) take about 9 s, so
 * the burst's time against the bare client and its fairness measure something, as at full size.
 */
export const SMALL: ScaleOptions = {
  schedules: 50,
  pvcsPerSchedule: 4,
  minutes: 2,
  period: 1,
  quietMinutes: 1,
  snapshots: 4000,
  broken: 5,
  qps: 20,
  burst: 20,
};

export interface Figure {
  measure: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number } | undefined;
  target?: string | undefined;
  ok?: boolean | undefined;
}

export interface ScaleResult {
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string };
  options: ScaleOptions;
  figures: Figure[];
  notes: string[];
}

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};

/** kube-apiserver's own request counters, by verb and resource (resource requests only). */
async function requestCounts(kc: k8s.KubeConfig): Promise<Map<string, number>> {
  const text = await rawGet(kc, '/metrics');
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const resource = /resource="([^"]*)"/.exec(line)?.[1] ?? '';
    if (!resource) continue;
    const verb = /verb="([^"]*)"/.exec(line)?.[1] ?? '';
    const sub = /subresource="([^"]*)"/.exec(line)?.[1] ?? '';
    const key = `${verb} ${resource}${sub ? `/${sub}` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return counts;
}
const diff = (a: Map<string, number>, b: Map<string, number>): Map<string, number> =>
  new Map([...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)] as [string, number]).filter(([, v]) => v > 0));
const total = (m: Map<string, number>, filter: (k: string) => boolean = () => true): number =>
  [...m].filter(([k]) => filter(k)).reduce((s, [, v]) => s + v, 0);

function rawGet(kc: k8s.KubeConfig, path: string): Promise<string> {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const b64 = (v: string | undefined): Buffer => Buffer.from(v ?? '', 'base64');
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      new URL(path, cluster?.server),
      { ca: b64(cluster?.caData), cert: b64(user?.certData), key: b64(user?.keyData) },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(body));
      },
    );
    req.once('error', reject);
    req.end();
  });
}

interface Controller {
  proc: ChildProcess;
  port: number;
  webhookPort: number;
  metrics: () => Promise<string>;
  stop: () => Promise<void>;
}

async function startController(
  kubeconfig: string,
  o: ScaleOptions,
  extra: string[] = [],
  log: (l: string) => void,
): Promise<Controller> {
  const webhookPort = await freePort();
  const proc = spawn(
    process.execPath,
    [
      ...(o.nodeArgs ? o.nodeArgs.split(/\s+/).filter(Boolean) : []),
      CLI,
      'controller',
      '--metrics-addr=127.0.0.1:0',
      `--webhook-addr=127.0.0.1:${webhookPort}`,
      '--webhook-config-name=bench-restore',
      '--lease-namespace=default',
      `--qps=${o.qps}`,
      `--burst=${o.burst}`,
      '--log-level=warn',
      ...extra,
    ],
    // The memory flags deploy/base/controller.yaml and the image set.
    {
      env: {
        ...process.env,
        KUBECONFIG: kubeconfig,
        ...controllerEnv(o.allocator, o.mallocConf),
        NODE_OPTIONS: [
          o.nodeOptions ?? CONTROLLER_NODE_OPTIONS,
          ...(o.cpuProfDir ? [`--cpu-prof --cpu-prof-dir=${o.cpuProfDir}`] : []),
          ...(o.allocProfDir ? [`--import=${ALLOC_PROFILER}`] : []),
        ].join(' '),
        ...(o.allocProfDir ? { SNAPCRON_ALLOC_PROF_DIR: o.allocProfDir } : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
  proc.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
  // The port: log level warn hides the line, so ask /proc for the listening socket instead.
  let port = 0;
  for (let i = 0; i < 300 && !port; i++) {
    await sleep(100);
    port = listeningPort(proc.pid ?? 0, webhookPort);
  }
  if (!port) throw new Error(`controller did not start:\n${out}`);
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  for (let i = 0; i < 1200; i++) {
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) break;
    await sleep(250);
  }
  log(`controller pid ${proc.pid} ready on :${port}`);
  return {
    proc,
    port,
    webhookPort,
    metrics,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      } else {
        log(
          `controller had already exited (code ${proc.exitCode}, signal ${proc.signalCode}):\n${out.slice(-2000)}`,
        );
      }
      if (/"level":50/.test(out))
        log(
          `controller errors (last lines):\n${out
            .split('\n')
            .filter((l) => l.includes('"level":50'))
            .slice(-5)
            .join('\n')}`,
        );
    },
  };
}

/** The TCP port a process listens on, other than `except` (from /proc/net/tcp via its fds). */
function listeningPort(pid: number, except: number): number {
  try {
    const inodes = new Set<string>();
    for (const fd of readdirSafe(`/proc/${pid}/fd`)) {
      try {
        const link = readlinkSafe(`/proc/${pid}/fd/${fd}`);
        const m = /socket:\[(\d+)\]/.exec(link);
        if (m) inodes.add(m[1] as string);
      } catch {
        /* gone */
      }
    }
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
      for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f[3] !== '0A' || !inodes.has(f[9] ?? '')) continue;
        const p = parseInt((f[1] ?? '').split(':')[1] ?? '0', 16);
        if (p !== except) return p;
      }
    }
  } catch {
    /* not yet */
  }
  return 0;
}
const readdirSafe = (p: string): string[] => {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
};
const readlinkSafe = (p: string): string => readlinkSync(p);

/** Changes the bench schedule's cron in `namespace`, re-reading on conflict (the controller writes status). */
async function setCron(admin: AdminKube, namespace: string, cron: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const s = (await admin.custom.getNamespacedCustomObject({
      ...admin.schedules,
      namespace,
      name: 'app',
    })) as {
      spec: Record<string, unknown>;
    };
    s.spec.schedule = cron;
    try {
      await admin.custom.replaceNamespacedCustomObject({
        ...admin.schedules,
        namespace,
        name: 'app',
        body: s,
      });
      return;
    } catch (err) {
      if ((err as { code?: number }).code !== 409 || attempt > 10) throw err;
    }
  }
}

const metric = (text: string, name: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
};

/** V8's GC pauses by kind (major, minor, incremental, weakcb) from a /metrics page: count and seconds. */
const gcByKind = (text: string): Map<string, { count: number; seconds: number }> => {
  const out = new Map<string, { count: number; seconds: number }>();
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_(sum|count)\{kind="([^"]+)"\} (\S+)$/gm)) {
    const e = out.get(m[2] ?? '') ?? { count: 0, seconds: 0 };
    if (m[1] === 'sum') e.seconds = Number(m[3]);
    else e.count = Number(m[3]);
    out.set(m[2] ?? '', e);
  }
  return out;
};

/** Every series of a family, summed. */
const metricSum = (text: string, name: string): number =>
  text
    .split('\n')
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

const rssOf = (pid: number): number => procStatus(pid).rss;

/** RSS in anonymous memory (heaps, buffers) and in file-backed pages (the node binary's code and ICU data, shared and reclaimable). */
const rssSplit = (pid: number): { anon: number; file: number } => {
  const m = procStatus(pid);
  return { anon: m.rssAnon, file: m.rssFile + m.rssShmem };
};

/** Seconds of the sustained period the paced baseline replays: a minute at most (a fifth of the full size's 5-minute period). */
const PACED_SECONDS = (o: ScaleOptions): number => Math.min(60, o.period * 60);

/**
 * The CPU of a bare Node process (bench/paced-client.ts) making the sustained window's creates
 * at its pace for PACED_SECONDS, under the controller's NODE_OPTIONS and environment.
 */
async function pacedClientCpu(
  kubeconfig: string,
  o: ScaleOptions,
  namespaces: string[],
  transport: 'h1' | 'node-https' = 'h1',
): Promise<{ creates: number; cpuSeconds: number }> {
  const options = {
    transport,
    namespaces,
    pvcsPerSchedule: o.pvcsPerSchedule,
    periodSeconds: o.period * 60,
    seconds: PACED_SECONDS(o),
    qps: o.qps,
    burst: o.burst,
  };
  const out = await childOutput([PACED_CLIENT, JSON.stringify(options)], {
    KUBECONFIG: kubeconfig,
    ...controllerEnv(o.allocator, o.mallocConf),
    NODE_OPTIONS: o.nodeOptions ?? CONTROLLER_NODE_OPTIONS,
  });
  return JSON.parse(out) as { creates: number; cpuSeconds: number };
}

/** A bare node's RSS split, the floor under any Node controller (no module loaded, nothing cached). */
async function bareNodeSplit(): Promise<{ anon: number; file: number }> {
  const proc = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
  await sleep(1000);
  const split = rssSplit(proc.pid ?? 0);
  proc.kill();
  return split;
}

/** A histogram's cumulative bucket counts (`le` → count) from a Prometheus text page. */
const buckets = (text: string, name: string): Map<number, number> => {
  const out = new Map<number, number>();
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} (\\S+)$`, 'gm'))) {
    const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
    out.set(le, (out.get(le) ?? 0) + Number(m[2]));
  }
  return out;
};

/** The smallest bucket bound holding `p` % of the observations between two readings of a histogram. */
const bucketPct = (before: Map<number, number>, after: Map<number, number>, p: number): number => {
  const les = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (total === 0) return 0;
  for (const le of les) if ((after.get(le) ?? 0) - (before.get(le) ?? 0) >= (total * p) / 100) return le;
  return Infinity;
};

/** The controller's write queue and create lag, read every 5 s: where a lag tail comes from. */
interface Sample {
  t: number;
  queued: Record<string, number>;
  createLag: Map<number, number>;
}

class Sampler {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly metrics: () => Promise<string>;
  constructor(metrics: () => Promise<string>) {
    this.metrics = metrics;
  }
  start(): void {
    const tick = async (): Promise<void> => {
      const text = await this.metrics().catch(() => '');
      if (text) {
        const queued: Record<string, number> = {};
        for (const m of text.matchAll(/^snapcron_writes_waiting\{lane="(\w+)"\} (\S+)$/gm))
          queued[m[1] as string] = Number(m[2]);
        this.samples.push({
          t: Date.now(),
          queued,
          createLag: buckets(text, 'snapcron_snapshot_create_lag_seconds'),
        });
      }
      this.timer = setTimeout(() => void tick(), 5000);
    };
    void tick();
  }
  stop(): void {
    clearTimeout(this.timer);
  }
  /** Between t0 and t1: the create lag p99 by the controller's histogram, and the longest queue per lane. */
  between(t0: number, t1: number): { createLagP99: number; maxQueued: Record<string, number> } {
    const inside = this.samples.filter((s) => s.t >= t0 && s.t <= t1);
    const maxQueued: Record<string, number> = {};
    for (const s of inside)
      for (const [lane, n] of Object.entries(s.queued)) maxQueued[lane] = Math.max(maxQueued[lane] ?? 0, n);
    const first = inside[0];
    const last = inside.at(-1);
    return {
      createLagP99: first && last ? bucketPct(first.createLag, last.createLag, 99) : NaN,
      maxQueued,
    };
  }
}

/** Watches every VolumeSnapshot: arrival times, and (optionally) marks new ones ready like a snapshot controller. */
class SnapshotObserver {
  /** `at`: when the watch delivered it; `created`: the API server's creationTimestamp (whole seconds). */
  readonly arrivals = new Map<
    string,
    { at: number; created: number; scheduledAt: number; namespace: string; schedule: string; pvc: string }
  >();
  private req: { abort: () => void } | undefined;
  markReady = false;
  private readonly marking: Promise<void>[] = [];
  private readonly kube: Kube;
  private readonly kc: k8s.KubeConfig;
  constructor(kc: k8s.KubeConfig, kubeconfigPath: string) {
    this.kc = kc;
    this.kube = Kube.fromFile(kubeconfigPath, { qps: 2000, burst: 2000 });
  }
  private lastRv = '';
  private stopped = false;
  async start(resourceVersion: string): Promise<void> {
    this.lastRv = resourceVersion;
    await this.watch();
  }
  /** Watches from the last resourceVersion seen; a watch that ends is resumed from there. */
  private async watch(): Promise<void> {
    this.req = await new k8s.Watch(this.kc).watch(
      '/apis/snapshot.storage.k8s.io/v1/volumesnapshots',
      { resourceVersion: this.lastRv, allowWatchBookmarks: true },
      (phase: string, obj: VolumeSnapshot) => {
        if (obj.metadata?.resourceVersion) this.lastRv = obj.metadata.resourceVersion;
        if (phase !== 'ADDED') return;
        const key = `${obj.metadata.namespace}/${obj.metadata.name}`;
        const scheduled = obj.metadata.annotations?.['snapcron.io/scheduled-at'];
        if (!scheduled || this.arrivals.has(key)) return;
        this.arrivals.set(key, {
          at: Date.now(),
          created: Date.parse(String(obj.metadata.creationTimestamp)),
          scheduledAt: Date.parse(scheduled),
          namespace: obj.metadata.namespace ?? '',
          schedule: obj.metadata.labels?.['snapcron.io/schedule'] ?? '',
          pvc: obj.spec.source.persistentVolumeClaimName ?? '',
        });
        if (this.markReady) this.marking.push(this.ready(obj));
      },
      (err: unknown) => {
        if (this.stopped) return;
        // client-node's Watch ends a quiet watch after 30 s: resume from the last version, quietly.
        const timeout = (err as { name?: string } | null)?.name === 'TimeoutError';
        if (err && !timeout)
          process.stderr.write(`[bench:scale] snapshot watch ended: ${errorMessage(err)}; resuming\n`);
        setTimeout(() => void this.watch().catch(() => undefined), err ? 500 : 0);
      },
    );
  }
  private async ready(obj: VolumeSnapshot): Promise<void> {
    await this.kube
      .write(() =>
        this.kube.custom.replaceNamespacedCustomObjectStatus({
          ...this.kube.snapshots,
          namespace: obj.metadata.namespace ?? '',
          name: obj.metadata.name ?? '',
          body: {
            ...obj,
            status: { readyToUse: true, creationTime: new Date().toISOString(), restoreSize: '1Gi' },
          },
        }),
      )
      .catch(() => undefined);
  }
  stop(): void {
    this.stopped = true;
    this.req?.abort();
  }
}

export async function runScaleBench(o: ScaleOptions): Promise<ScaleResult> {
  const log = o.log ?? ((l: string) => void process.stderr.write(`[bench:scale] ${l}\n`));
  const figures: Figure[] = [];
  const notes: string[] = [
    o.ready === false
      ? 'No CSI driver, and --no-ready: no snapshot becomes ready, so nothing is pruned (as in the run the issue measured snapscheduler with).'
      : 'No CSI driver: the bench marks snapshots ready through the status subresource, as a snapshot controller would.',
    `Controller flags: --qps ${o.qps} --burst ${o.burst} (the defaults are 100/200); malloc: ${allocatorNote(o.allocator, o.mallocConf)}; NODE_OPTIONS ${o.nodeOptions ?? CONTROLLER_NODE_OPTIONS}${o.nodeArgs ? `; node ${o.nodeArgs}` : ''}${o.cpuProfDir ? ' with --cpu-prof (CPU figures include the profiler)' : ''}${o.allocProfDir ? ' with --alloc-prof (CPU and memory figures include the profiler and Node stripping its types)' : ''}.`,
    'snapscheduler could not be run beside it: the Go module proxy refuses github.com/backube/snapscheduler (403).',
  ];
  const add = (f: Figure): void => {
    figures.push(f);
    const base = f.baseline
      ? `  (baseline ${f.baseline.name}: ${f.baseline.value.toFixed(2)} ${f.unit}; ratio ${(f.value / f.baseline.value).toFixed(2)}x)`
      : '';
    log(
      `${f.measure}: ${f.value.toFixed(2)} ${f.unit}${base}${f.target ? `  target ${f.target}: ${f.ok ? 'OK' : 'MISS'}` : ''}`,
    );
  };
  const cp = await ControlPlane.start();
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  const admin = AdminKube.fromFile(cp.kubeconfigPath, { qps: 5000, burst: 5000 });
  const namespaces = Array.from({ length: o.schedules }, (_, i) => `bench-${String(i).padStart(4, '0')}`);
  const brokenSet = new Set(namespaces.slice(0, o.broken));
  try {
    // --- Setup: namespaces, pre-bound PVs and PVCs.
    const t0 = Date.now();
    await pool(namespaces, 50, async (ns) => {
      await admin.core.createNamespace({ body: { metadata: { name: ns } } });
    });
    const pairs = benchPvcs(namespaces, o.pvcsPerSchedule);
    await createBoundPvcs(admin, pairs, log);
    log(
      `setup: ${o.schedules} namespaces, ${pairs.length} bound PVCs in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    );

    // --- RBAC for the controller's user: everything in healthy namespaces; in the broken ones it
    // may read but not write snapshots or status, so their passes fail permanently.
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    const read = ['get', 'list', 'watch'];
    await rbac.createClusterRole({
      body: {
        metadata: { name: 'bench-read' },
        rules: [
          {
            apiGroups: ['snapcron.io'],
            resources: ['snapshotschedules', 'snapshotschedules/status'],
            verbs: read,
          },
          {
            apiGroups: ['snapshot.storage.k8s.io'],
            resources: ['volumesnapshots', 'volumesnapshotclasses'],
            verbs: read,
          },
          { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: read },
          { apiGroups: [''], resources: ['events'], verbs: ['get', 'create', 'update'] },
          { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
          { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create', 'update'] },
          {
            apiGroups: ['admissionregistration.k8s.io'],
            resources: ['mutatingwebhookconfigurations'],
            verbs: ['get', 'update'],
          },
        ],
      },
    });
    await rbac.createClusterRole({
      body: {
        metadata: { name: 'bench-write' },
        rules: [
          {
            apiGroups: ['snapcron.io'],
            resources: ['snapshotschedules', 'snapshotschedules/status'],
            verbs: ['update', 'patch'],
          },
          {
            apiGroups: ['snapshot.storage.k8s.io'],
            resources: ['volumesnapshots'],
            verbs: ['create', 'delete'],
          },
        ],
      },
    });
    const subject = [{ kind: 'User', name: 'bench-controller', apiGroup: 'rbac.authorization.k8s.io' }];
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: 'bench-read' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'bench-read' },
        subjects: subject,
      },
    });
    await pool(
      namespaces.filter((ns) => !brokenSet.has(ns)),
      50,
      async (ns) => {
        await rbac.createNamespacedRoleBinding({
          namespace: ns,
          body: {
            metadata: { name: 'bench-write' },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'bench-write' },
            subjects: subject,
          },
        });
      },
    );
    const controllerKubeconfig = jsonKubeconfig(await cp.kubeconfigFor('bench-controller'));
    // The webhook configuration the controller keeps the caBundle of (for the admission figure).
    await kc.makeApiClient(k8s.AdmissionregistrationV1Api).createMutatingWebhookConfiguration({
      body: { metadata: { name: 'bench-restore' }, webhooks: [] },
    });

    // --- Baseline: a bare client creating the burst's VolumeSnapshots with the same budget.
    const burstSize = o.schedules * o.pvcsPerSchedule;
    const bare = Kube.fromFile(controllerKubeconfig, { qps: o.qps, burst: o.burst });
    const healthyPairs = pairs.filter((p) => !brokenSet.has(p.ns));
    const tb = performance.now();
    await pool(healthyPairs, 1000, async ({ ns, name }, i) => {
      await bare.write(
        () =>
          bare.custom.createNamespacedCustomObject({
            ...bare.snapshots,
            namespace: ns,
            body: {
              apiVersion: 'snapshot.storage.k8s.io/v1',
              kind: 'VolumeSnapshot',
              metadata: { name: `bare-${name}-${i}` },
              spec: { source: { persistentVolumeClaimName: name } },
            },
          }),
        { key: ns, lane: 'create' },
      );
    });
    const bareMs = performance.now() - tb;
    log(`bare client: ${healthyPairs.length} creates in ${(bareMs / 1000).toFixed(1)} s`);
    // --- Baseline for the controller's CPU: the window's creates at the window's pace, by a bare process.
    const paced = await pacedClientCpu(
      controllerKubeconfig,
      o,
      namespaces.filter((ns) => !brokenSet.has(ns)),
    );
    log(
      `paced bare client: ${paced.creates} creates over ${PACED_SECONDS(o)} s at the window's pace, ${paced.cpuSeconds.toFixed(2)} s of CPU`,
    );
    // The same through node's https (what src/kube/rest.ts used before src/kube/h1.ts).
    const pacedNode = await pacedClientCpu(
      controllerKubeconfig,
      o,
      namespaces.filter((ns) => !brokenSet.has(ns)),
      'node-https',
    );
    log(
      `paced bare client through node:https: ${pacedNode.creates} creates, ${pacedNode.cpuSeconds.toFixed(2)} s of CPU`,
    );
    await pool(namespaces, 50, async (ns) => {
      await admin.custom.deleteCollectionNamespacedCustomObject({ ...admin.snapshots, namespace: ns });
    });

    // --- Schedules: all fire at one instant T (the burst), then every `period` minutes, spread.
    const T = Math.ceil((Date.now() + 45_000) / 60_000) * 60_000 + 30_000; // hh:mm:30, at least 45 s away
    const at = new Date(T);
    const burstCron = `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
    await pool(namespaces, 50, async (ns) => {
      await createBenchSchedule(admin, ns, burstCron);
    });
    const rv = (await admin.custom.listClusterCustomObject({ ...admin.snapshots, limit: 1 })) as {
      metadata: { resourceVersion: string };
    };
    const observer = new SnapshotObserver(kc, cp.kubeconfigPath);
    await observer.start(rv.metadata.resourceVersion);
    const ctl = await startController(controllerKubeconfig, o, [], log);
    const sampler = new Sampler(ctl.metrics);
    sampler.start();
    const startedAt = Date.now();
    const requestsAtStart = await requestCounts(kc);
    await ctl.metrics(); // resets the event-loop delay window
    log(`burst at ${at.toISOString()}: ${burstSize - o.broken * o.pvcsPerSchedule} snapshots due`);
    const expected = healthyPairs.length;
    const deadline = T + 600_000;
    while (
      Date.now() < deadline &&
      [...observer.arrivals.values()].filter((a) => a.scheduledAt === T).length < expected
    )
      await sleep(200);
    const burstArrivals = [...observer.arrivals.values()].filter((a) => a.scheduledAt === T);
    const burstMs = Math.max(...burstArrivals.map((a) => a.at)) - T;
    const firsts = new Map<string, number>();
    for (const [key, a] of observer.arrivals) {
      if (a.scheduledAt !== T) continue;
      const ns = key.split('/')[0] as string;
      firsts.set(ns, Math.min(firsts.get(ns) ?? Infinity, a.at - T));
    }
    const burstMetrics = await ctl.metrics();
    add({
      measure: `burst: ${burstArrivals.length}/${expected} snapshots due at one instant, time to create all`,
      value: burstMs / 1000,
      unit: 's',
      baseline: { name: 'bare client, same budget and concurrency', value: bareMs / 1000 },
      target: '≤ 1.25 × baseline',
      ok: burstArrivals.length === expected && burstMs <= 1.25 * bareMs,
    });
    // One fire of every schedule at once, as the issue's side-by-side measured the peer.
    const burstLags = burstArrivals.map((a) => a.at - T);
    add({
      measure: 'burst: fire lag p99 (watch-observed; p50 in the notes)',
      value: pct(burstLags, 99) / 1000,
      unit: 's',
    });
    notes.push(
      `burst fire lag p50 ${(pct(burstLags, 50) / 1000).toFixed(2)} s, p99 ${(pct(burstLags, 99) / 1000).toFixed(2)} s`,
    );
    const latestFirst = Math.max(...firsts.values());
    add({
      measure: 'burst fairness: latest first snapshot of a schedule',
      value: (latestFirst / burstMs) * 100,
      unit: '% of the burst',
      target: '≤ 10%',
      ok: latestFirst / burstMs <= 0.1,
    });
    const loopP99 = metric(burstMetrics, 'nodejs_eventloop_lag_p99_seconds') * 1000;
    add({
      measure: 'event-loop delay p99 during the burst',
      value: loopP99,
      unit: 'ms',
      target: '≤ 50 ms',
      ok: loopP99 <= 50,
    });

    // --- Sustained: every `period` minutes, spread over the period; snapshots made ready, retention prunes.
    observer.markReady = o.ready !== false;
    await sleep(5000);
    const spreadSeconds = o.period * 60;
    await pool(namespaces, 50, async (ns, i) => {
      const offset = Math.floor((i * spreadSeconds) / o.schedules);
      const sec = offset % 60;
      const min = Math.floor(offset / 60);
      const cron = o.period === 1 ? `${sec} * * * * *` : `${sec} ${min}/${o.period} * * * *`;
      await setCron(admin, ns, cron);
    });
    // A new cron's fire times between the burst and this edit count as missed (as a CronJob
    // counts them) and are caught up at once (380 to 4,400 snapshots at full size, by where the
    // burst fell in the 5-minute cycle). The window starts once they are in, so it measures the
    // sustained load, not this transition; the transition is reported on its own.
    const edited = Date.now();
    const catchUps = (): number =>
      [...observer.arrivals.values()].filter((a) => a.scheduledAt > T && a.scheduledAt <= edited).length;
    for (let seen = -1; catchUps() !== seen;) {
      seen = catchUps();
      await sleep(5000);
    }
    add({
      measure: 'catch-up runs after moving every schedule to its sustained cron (before the window)',
      value: catchUps(),
      unit: 'snapshots',
    });
    const caughtUp = Date.now();
    // And once the write budget's queue is down to under a second of it: the burst leaves about
    // 2,000 status writes and events queued behind its creates (full size), and a window that
    // began while they drained measured the transition (its first slice's p99 4 s, 2026-11-27).
    const drainBy = caughtUp + 600_000;
    let waiting = metricSum(await ctl.metrics(), 'snapcron_writes_waiting');
    while (waiting >= o.qps && Date.now() < drainBy) {
      await sleep(5000);
      waiting = metricSum(await ctl.metrics(), 'snapcron_writes_waiting');
    }
    notes.push(
      `the catch-up runs took ${((caughtUp - edited) / 1000).toFixed(0)} s after the crons were set (measured to 5 s, from 10 s); the write budget's queue was under a second of it (${waiting} writes waiting, --qps ${o.qps}) ${((Date.now() - caughtUp) / 1000).toFixed(0)} s later; the window starts 5 s after that`,
    );
    const windowStart = Date.now() + 5000;
    const windowEnd = windowStart + o.minutes * 60_000;
    const countedFrom = Date.now();
    const before = await ctl.metrics();
    const cpu0 = metric(before, 'process_cpu_seconds_total');
    const threads0 = threadCpu(ctl.proc.pid ?? 0);
    const passes0 = metricSum(before, 'snapcron_passes_total');
    const req0 = await requestCounts(kc);
    log(
      `sustained window: ${o.minutes} min, ${o.schedules} schedules every ${o.period} min, ~${((o.schedules * o.pvcsPerSchedule) / spreadSeconds).toFixed(1)} creates/s`,
    );
    let peakRss = 0;
    while (Date.now() < windowEnd) {
      await sleep(Math.min(5000, Math.max(0, windowEnd - Date.now())));
      peakRss = Math.max(peakRss, rssOf(ctl.proc.pid ?? 0));
    }
    // The window's own fires (at the peer's load, two of every schedule, as the issue's figure
    // for the peer counts them): to 1 s after its last scheduled time, when its last runs are in
    // (the tail below also holds the next period's first fires).
    await sleep(1000);
    const atFires = threadCpuSplit(ctl.proc.pid ?? 0, threads0, threadCpu(ctl.proc.pid ?? 0));
    const createsAtFires = diff(req0, await requestCounts(kc)).get('POST volumesnapshots') ?? 0;
    await sleep(Math.min(30_000, spreadSeconds * 1000) - 1000); // let the last runs land
    if (ctl.proc.exitCode !== null || ctl.proc.signalCode !== null)
      throw new Error(
        `the controller exited during the window (code ${ctl.proc.exitCode}, signal ${ctl.proc.signalCode})`,
      );
    const after = await ctl.metrics();
    const countedUntil = Date.now();
    const cpu1 = metric(after, 'process_cpu_seconds_total');
    const threads = threadCpuSplit(ctl.proc.pid ?? 0, threads0, threadCpu(ctl.proc.pid ?? 0));
    const passes = metricSum(after, 'snapcron_passes_total') - passes0;
    const reqs = diff(req0, await requestCounts(kc));
    const creates = reqs.get('POST volumesnapshots') ?? 0;
    const windowArrivals = [...observer.arrivals.values()].filter(
      (a) => a.scheduledAt >= windowStart && a.scheduledAt < windowEnd,
    );
    const lags = (filter: (a: { schedule: string }) => boolean, arrivals: typeof windowArrivals) =>
      arrivals.filter(filter).map((a) => a.at - a.scheduledAt);
    const allLags = lags(() => true, windowArrivals);
    // Where the slow ones sit in time says more than one p99: a start-up transient, a steady
    // backlog or a pause (GC, a stalled API server) look different here.
    const sliceMs = spreadSeconds * 1000;
    const slices: string[] = [];
    for (let t = windowStart; t < windowEnd; t += sliceMs) {
      const inSlice = windowArrivals.filter((a) => a.scheduledAt >= t && a.scheduledAt < t + sliceMs);
      const l = inSlice.map((a) => a.at - a.scheduledAt);
      // The API server's creationTimestamp (whole seconds) against the watch's arrival: a lag in
      // creating the object, or in delivering its event; and the controller's own view of it.
      const server = inSlice.map((a) => a.created - Math.floor(a.scheduledAt / 1000) * 1000);
      const c = sampler.between(t, t + sliceMs);
      slices.push(
        `${Math.round((t - windowStart) / 60_000)}m: n=${l.length} p99=${(pct(l, 99) / 1000).toFixed(2)}s max=${(Math.max(0, ...l) / 1000).toFixed(2)}s, by creationTimestamp p99=${(pct(server, 99) / 1000).toFixed(0)}s max=${(Math.max(0, ...server) / 1000).toFixed(0)}s, controller's create lag p99 (any run answered in the slice, catch-ups too) ≤ ${c.createLagP99}s, writes waiting at most ${JSON.stringify(c.maxQueued)}`,
      );
    }
    notes.push(`fire lag by ${o.period}-minute slice of the window: ${slices.join('; ')}`);
    // From the burst to the window's first slice, minute by minute: the queue the budget held.
    const timeline: string[] = [];
    for (let t = T; t < Math.min(windowEnd, windowStart + sliceMs); t += 60_000) {
      const c = sampler.between(t, t + 60_000);
      timeline.push(`${Math.round((t - T) / 60_000)}m ${JSON.stringify(c.maxQueued)} lag≤${c.createLagP99}s`);
    }
    notes.push(
      `writes waiting by lane, minute by minute from the burst (window starts at minute ${Math.round((windowStart - T) / 60_000)}): ${timeline.join('; ')}`,
    );
    sampler.stop();
    add({ measure: 'fire lag p50 (watch-observed)', value: pct(allLags, 50) / 1000, unit: 's' });
    add({
      measure: 'fire lag p99 (watch-observed)',
      value: pct(allLags, 99) / 1000,
      unit: 's',
      target: '≤ 1 s',
      ok: pct(allLags, 99) <= 1000,
    });
    // Expected runs: every healthy (schedule, PVC) for every fire time in the window.
    const firesPerSchedule = Math.floor((o.minutes * 60) / spreadSeconds);
    const expectedRuns = healthyPairs.length * firesPerSchedule;
    add({
      measure: `snapshots taken in the window (healthy schedules; ${o.broken} broken ones backed off)`,
      value: windowArrivals.length,
      unit: 'snapshots',
      baseline: { name: 'due', value: expectedRuns },
      target: '= due (none missed)',
      ok: windowArrivals.length >= expectedRuns,
    });
    add({ measure: 'controller CPU over the window', value: cpu1 - cpu0, unit: 's' });
    add({
      measure: `controller CPU for the window's fires alone (to 1 s after its end: ${createsAtFires} creates)`,
      value: atFires.main + atFires.others,
      unit: 's',
    });
    // Per create, against a bare process making creates at the same pace: what the controller
    // spends above the HTTP client under the same V8 settings is its own (watches, caches,
    // passes, status, events, metrics).
    add({
      measure: 'controller CPU per 1,000 creates over the window and its tail',
      value: creates ? ((cpu1 - cpu0) / creates) * 1000 : 0,
      unit: 's',
      baseline: {
        name: "a bare Node process making the window's creates at its pace, the controller's V8 settings",
        value: paced.creates ? (paced.cpuSeconds / paced.creates) * 1000 : 0,
      },
    });
    add({
      measure: "the short-request HTTP client alone: CPU per create at the window's pace (src/kube/h1.ts)",
      value: paced.creates ? (paced.cpuSeconds / paced.creates) * 1000 : 0,
      unit: 'ms',
      baseline: {
        name: 'the same creates through node:https with a keep-alive Agent',
        value: pacedNode.creates ? (pacedNode.cpuSeconds / pacedNode.creates) * 1000 : 0,
      },
    });
    const gc0 = gcByKind(before);
    notes.push(
      `controller CPU over the window by thread: main (the event loop) ${threads.main.toFixed(2)} s, the others (V8's GC and compiler workers, libuv's pool) ${threads.others.toFixed(2)} s`,
      `controller GC pauses over the window and its tail (main thread): ${[...gcByKind(after)]
        .map(([kind, g]) => {
          const b = gc0.get(kind) ?? { count: 0, seconds: 0 };
          return `${kind} ${g.count - b.count} (${(g.seconds - b.seconds).toFixed(2)} s)`;
        })
        .join(', ')}`,
    );
    // Runs (a schedule's fire) whose snapshots arrived while the passes were counted.
    const runs = new Set(
      [...observer.arrivals.values()]
        .filter((a) => a.at >= countedFrom && a.at <= countedUntil)
        .map((a) => `${a.namespace}/${a.schedule}@${a.scheduledAt}`),
    ).size;
    notes.push(
      `passes over the window and its tail: ${passes} (snapcron_passes_total) for ${runs} runs (a schedule's fire), ${(passes / Math.max(1, runs)).toFixed(2)} a run`,
    );
    add({ measure: 'controller RSS peak over the window', value: peakRss / 2 ** 20, unit: 'MiB' });
    // The bench's own writes are the readiness marks (PUT volumesnapshots/status); the rest is
    // the controller's (and the control plane's, a few). The count runs to the end of the tail.
    const controllerReqs = total(reqs, (k) => k !== 'PUT volumesnapshots/status');
    add({
      measure: "API requests over the window and its tail (the bench's readiness writes left out)",
      value: controllerReqs,
      unit: 'requests',
    });
    add({
      measure: 'of which not snapshot creates, per 1,000 creates',
      value: creates ? ((controllerReqs - creates) / creates) * 1000 : 0,
      unit: 'requests',
    });
    notes.push(`requests in the window by verb and resource: ${JSON.stringify(Object.fromEntries(reqs))}`);

    // --- Quiet: nothing due; only lease renewals should reach the API server. The broken
    // schedules are fixed first (their backed-off retries are not quiet by design).
    await pool([...brokenSet], 50, async (ns) => {
      await rbac.createNamespacedRoleBinding({
        namespace: ns,
        body: {
          metadata: { name: 'bench-write' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'bench-write' },
          subjects: subject,
        },
      });
    });
    const farCron = '0 0 0 1 1 *';
    await pool(namespaces, 50, async (ns) => {
      await setCron(admin, ns, farCron);
    });
    observer.markReady = false;
    await sleep(20_000); // the passes the spec change triggered
    const q0 = await requestCounts(kc);
    const quietCpu0 = threadCpu(ctl.proc.pid ?? 0);
    await sleep(o.quietMinutes * 60_000);
    const quietCpu = threadCpuSplit(ctl.proc.pid ?? 0, quietCpu0, threadCpu(ctl.proc.pid ?? 0));
    if (ctl.proc.exitCode !== null || ctl.proc.signalCode !== null)
      throw new Error(
        `the controller exited during the quiet window (code ${ctl.proc.exitCode}, signal ${ctl.proc.signalCode})`,
      );
    const quiet = diff(q0, await requestCounts(kc));
    // Only what the controller touches: the API server's own bookkeeping (its endpoints and
    // identity lease) and kube-controller-manager's watches are not ours.
    const ours = (k: string): boolean =>
      /\b(snapshotschedules|volumesnapshots|volumesnapshotclasses|persistentvolumeclaims|events|secrets|mutatingwebhookconfigurations)\b/.test(
        k,
      );
    const lists = total(quiet, (k) => k.startsWith('LIST ') && ours(k));
    const nonLease = total(quiet, (k) => ours(k) && !k.startsWith('WATCH '));
    add({
      measure: `LIST requests over a quiet ${o.quietMinutes} min`,
      value: lists,
      unit: 'requests',
      target: '0',
      ok: lists === 0,
    });
    add({
      measure: 'requests per quiet hour other than lease renewals and watch re-connects',
      value: (nonLease * 60) / o.quietMinutes,
      unit: 'requests',
      baseline: {
        name: 'lease renewals per hour',
        value: (total(quiet, (k) => k.includes('leases')) * 60) / o.quietMinutes,
      },
      target: '0',
      ok: nonLease === 0,
    });
    notes.push(`quiet window requests: ${JSON.stringify(Object.fromEntries(quiet))}`);
    // What the controller costs while nothing is due: lease renewals, watches kept open, timers.
    add({
      measure: 'controller CPU per quiet minute',
      value: (quietCpu.main + quietCpu.others) / o.quietMinutes,
      unit: 's',
    });
    notes.push(
      `controller CPU over the quiet window by thread: main ${quietCpu.main.toFixed(2)} s, the others ${quietCpu.others.toFixed(2)} s, over ${o.quietMinutes} min`,
    );
    notes.push(
      `requests since the controller started, ${((Date.now() - startedAt) / 60000).toFixed(1)} min: ${total(diff(requestsAtStart, await requestCounts(kc)))}`,
    );
    observer.stop();
    await ctl.stop();

    // --- Memory with many snapshots cached; the webhook under load.
    const have = (await admin.custom.listClusterCustomObject({ ...admin.snapshots, limit: 1 })) as {
      metadata: { remainingItemCount?: number };
    };
    const existing = (have.metadata.remainingItemCount ?? 0) + 1;
    const more = Math.max(0, o.snapshots - existing);
    log(`creating ${more} more VolumeSnapshots (to ${o.snapshots})`);
    const tm = Date.now();
    await createOldSnapshots(
      admin,
      pairs,
      Array.from({ length: more }, (_, i) => i),
    );
    log(`created in ${((Date.now() - tm) / 1000).toFixed(0)} s`);
    const ctl2 = await startController(controllerKubeconfig, o, [], log);
    await sleep(5000);
    global.gc?.();
    const rss = rssOf(ctl2.proc.pid ?? 0);
    const split = rssSplit(ctl2.proc.pid ?? 0);
    const page = await ctl2.metrics();
    const bareSplit = await bareNodeSplit();
    const naive = await naiveInformerRss(controllerKubeconfig);
    notes.push(
      `controller RSS split: ${mib(split.anon)} MiB anonymous (heaps, buffers), ${mib(split.file)} MiB file-backed (the node binary's pages, shared and reclaimable); a bare node in the same run: ${mib(bareSplit.anon)} + ${mib(bareSplit.file)} MiB`,
      `controller V8 heap: ${mib(metricSum(page, 'nodejs_heap_size_used_bytes'))} MiB used of ${mib(metricSum(page, 'nodejs_heap_size_total_bytes'))} MiB committed, ${mib(metricSum(page, 'nodejs_external_memory_bytes'))} MiB external (buffers)`,
    );
    add({
      measure: `controller RSS with ${pairs.length} PVCs and ${o.snapshots} VolumeSnapshots cached`,
      value: rss / 2 ** 20,
      unit: 'MiB',
      baseline: { name: 'client-node informers holding the same objects', value: naive / 2 ** 20 },
      target: '≤ 256 MB',
      ok: rss <= 256e6,
    });
    // Admission: 50 concurrent restore PVCs (webhook) against 50 plain ones (no webhook).
    const wh = await admissionLatency(
      kc,
      ctl2.webhookPort,
      namespaces[o.broken] ?? 'bench-0000',
      ctl2.metrics,
    );
    add({
      measure: `webhook admission p99 in the webhook, 50 concurrent PVC creates, ${o.snapshots} snapshots cached`,
      value: wh.inWebhook,
      unit: 'ms',
      baseline: { name: 'PVC create p99 without the webhook', value: wh.without },
      target: '≤ 20 ms',
      ok: wh.inWebhook <= 20,
    });
    add({
      measure: 'PVC create p99 through the webhook (API server, TLS, webhook)',
      value: wh.withWebhook,
      unit: 'ms',
      baseline: { name: 'the same creates without the webhook', value: wh.without },
    });
    await ctl2.stop();
  } finally {
    await cp.stop();
  }
  const result: ScaleResult = {
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? '',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
    },
    options: { ...o, log: undefined },
    figures,
    notes,
  };
  if (o.out) writeFileSync(o.out, `${JSON.stringify(result, null, 2)}\n`);
  printTable(result, log);
  return result;
}

/** p99 (a bucket's upper bound) of the observations a Prometheus histogram gained between two scrapes. */
function histogramP99(before: string, after: string, name: string): number {
  const buckets = (text: string): Map<number, number> => {
    const m = new Map<number, number>();
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}_bucket{`)) continue;
      const le = /le="([^"]+)"/.exec(line)?.[1] ?? '';
      const bound = le === '+Inf' ? Infinity : Number(le);
      m.set(bound, (m.get(bound) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
    }
    return m;
  };
  const a = buckets(before);
  const b = [...buckets(after)]
    .map(([le, n]) => [le, n - (a.get(le) ?? 0)] as const)
    .sort((x, y) => x[0] - y[0]);
  const count = b[b.length - 1]?.[1] ?? 0;
  const bucket = b.find(([, n]) => n >= 0.99 * count);
  return (bucket?.[0] ?? NaN) * 1000;
}

async function admissionLatency(
  kc: k8s.KubeConfig,
  webhookPort: number,
  namespace: string,
  controllerMetrics: () => Promise<string>,
): Promise<{ withWebhook: number; without: number; inWebhook: number }> {
  const admission = kc.makeApiClient(k8s.AdmissionregistrationV1Api);
  const current = await admission.readMutatingWebhookConfiguration({ name: 'bench-restore' });
  // The controller's shared serving pair (it names 127.0.0.1): trust its CA.
  const secret = await kc
    .makeApiClient(k8s.CoreV1Api)
    .readNamespacedSecret({ name: 'snapcron-webhook-tls', namespace: 'default' });
  const caBundle = secret.data?.['ca.crt'];
  await admission.replaceMutatingWebhookConfiguration({
    name: 'bench-restore',
    body: {
      ...current,
      webhooks: [
        {
          name: 'restore.snapcron.io',
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: 'Fail',
          timeoutSeconds: 5,
          clientConfig: { url: `https://127.0.0.1:${webhookPort}/mutate-v1-pvc`, caBundle },
          objectSelector: { matchLabels: { 'snapcron.io/restore': 'true' } },
          rules: [
            {
              apiGroups: [''],
              apiVersions: ['v1'],
              operations: ['CREATE'],
              resources: ['persistentvolumeclaims'],
            },
          ],
        },
      ],
    },
  });
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const timeCreates = async (label: boolean, tag: string): Promise<number[]> => {
    const times: number[] = [];
    await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const t = performance.now();
        await core.createNamespacedPersistentVolumeClaim({
          namespace,
          body: {
            metadata: {
              name: `${tag}-${i}`,
              ...(label
                ? {
                    labels: { 'snapcron.io/restore': 'true' },
                    annotations: {
                      'snapcron.io/restore-from': 'data-0',
                      'snapcron.io/restore-policy': 'IfAvailable',
                    },
                  }
                : {}),
            },
            spec: {
              accessModes: ['ReadWriteOnce'],
              storageClassName: 'none',
              resources: { requests: { storage: '1Gi' } },
            },
          },
        });
        times.push(performance.now() - t);
      }),
    );
    return times;
  };
  await timeCreates(true, 'warm'); // TLS handshakes and caches
  await timeCreates(false, 'warm-plain');
  const without = pct(await timeCreates(false, 'plain'), 99);
  const before = await controllerMetrics();
  const withWebhook = pct(await timeCreates(true, 'restore'), 99);
  const inWebhook = histogramP99(
    before,
    await controllerMetrics(),
    'snapcron_webhook_admission_duration_seconds',
  );
  return { withWebhook, without, inWebhook };
}

function printTable(r: ScaleResult, log: (l: string) => void): void {
  const rows = r.figures.map((f) => [
    f.measure,
    `${f.value.toFixed(2)} ${f.unit}`,
    f.baseline ? `${f.baseline.value.toFixed(2)} ${f.unit} (${f.baseline.name})` : '',
    f.baseline ? `${(f.value / f.baseline.value).toFixed(2)}x` : '',
    f.target ? `${f.target}: ${f.ok ? 'OK' : 'MISS'}` : '',
  ]);
  const header = ['measure', 'snapcron', 'baseline', 'ratio', 'target'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  log('');
  log(line(header));
  log(line(widths.map((w) => '-'.repeat(w))));
  for (const row of rows) log(line(row));
  for (const n of r.notes) log(`note: ${n}`);
}

/**
 * The bench's options from its command line. `--node-options` takes V8 flags, which begin with
 * dashes: parseArgs reads such a value as the next option unless it is joined with `=`, so the
 * separate form the README gives is joined here.
 */
export function parseScaleArgs(argv: string[]): ScaleOptions {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    const value = argv[i + 1];
    if (a === '--node-options' && value !== undefined) {
      args.push(`--node-options=${value}`);
      i++;
    } else args.push(a);
  }
  const { values } = parseArgs({
    args,
    options: {
      small: { type: 'boolean', default: false },
      schedules: { type: 'string' },
      pvcs: { type: 'string' },
      minutes: { type: 'string' },
      period: { type: 'string' },
      'quiet-minutes': { type: 'string' },
      snapshots: { type: 'string' },
      broken: { type: 'string' },
      qps: { type: 'string' },
      burst: { type: 'string' },
      'no-ready': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      'alloc-prof': { type: 'string' },
      'node-options': { type: 'string' },
      'node-args': { type: 'string' },
      allocator: { type: 'string' },
      'malloc-conf': { type: 'string' },
      out: { type: 'string', default: 'bench/scale-results.json' },
    },
  });
  const base: ScaleOptions = values.small
    ? SMALL
    : {
        schedules: 1000,
        pvcsPerSchedule: 10,
        minutes: 30,
        period: 5,
        quietMinutes: 10,
        snapshots: 100_000,
        broken: 100,
        qps: 100,
        burst: 200,
      };
  const n = (v: string | undefined, d: number): number => {
    if (v === undefined) return d;
    const x = Number(v);
    if (!Number.isFinite(x) || x < 0)
      throw new Error(`bench:scale: a count or duration must be a number ≥ 0, got "${v}"`);
    return x;
  };
  return {
    schedules: n(values.schedules, base.schedules),
    pvcsPerSchedule: n(values.pvcs, base.pvcsPerSchedule),
    minutes: n(values.minutes, base.minutes),
    period: n(values.period, base.period),
    quietMinutes: n(values['quiet-minutes'], base.quietMinutes),
    snapshots: n(values.snapshots, base.snapshots),
    broken: n(values.broken, base.broken),
    qps: n(values.qps, base.qps),
    burst: n(values.burst, base.burst),
    ready: !values['no-ready'],
    cpuProfDir: values['cpu-prof'],
    allocProfDir: values['alloc-prof'] === undefined ? undefined : resolve(values['alloc-prof']),
    nodeOptions: values['node-options'],
    nodeArgs: values['node-args'],
    allocator: allocatorOption(values.allocator),
    mallocConf: values['malloc-conf'],
    out: values.out,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url))
  await runScaleBench(parseScaleArgs(process.argv.slice(2)));
