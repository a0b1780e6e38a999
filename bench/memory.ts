// bench:memory — the controller's memory with many objects cached (issue #10: RSS ≤ 256 MB with
// 10,000 PVCs and 100,000 VolumeSnapshots), measured as bench:scale's "Memory with many snapshots
// cached" section does (RSS 5 s after /readyz) without that bench's 35 minutes of load phases,
// with baselines from the same run: a bare Node process, the same controller watching an empty
// namespace (Node + snapcron's modules, nothing cached), and client-node informers holding the
// same objects. Not a test: it asserts nothing.
//
// The objects are bench:scale's: namespaces of pre-bound PVCs (the PV binder binds them), one
// SnapshotSchedule per namespace (a far-off cron: nothing fires), and VolumeSnapshots with
// snapcron's labels and kubectl's last-applied annotation, a fraction of them ready.
//
// The controller runs as users run it (`node dist/cli.js controller`, built by the npm script)
// with deploy/'s NODE_OPTIONS, plus --expose-gc and SNAPCRON_MEMORY_PROBE=1: on SIGUSR2 it prints
// its heap figures, then the same after a full GC (src/cli.ts), read after the RSS figure.
//
// Usage: npm run bench:memory -- [--namespaces 1000] [--pvcs 10] [--snapshots 100000]
//          [--ready 0.2] [--no-schedules] [--settle 5] [--runs 1] [--linger 0]
//          [--kubeconfig <path>]   (an existing cluster: only missing objects are created)
//          [--cli dist/cli.js]... [--node-options '<flags>']... [--node-args '<flags>']...
//          [--allocator jemalloc|glibc]... (the image's jemalloc by default where libjemalloc2 is
//          installed, else glibc's)
//          (each combination is measured; --node-args go on node's command line)
//          [--no-naive] [--no-empty] [--out <file.json>]
//        npm run bench:memory -- --small   (100 namespaces x 10 PVCs, 10,000 snapshots)
//
// One reading varies by 10 to 20 % with where the last full GC fell: compare with --runs 3 or
// more. --linger 75 also covers the controller's first report-metrics refresh (a minute after
// it starts). The controller gets the image's environment (bench/controller-env.ts: NODE_OPTIONS
// and jemalloc), which the caller's environment overrides.
// Another build: `npx tsc -p tsconfig.build.json --outDir /tmp/x/dist`, with /tmp/x holding
// a package.json of {"type":"module"} and a node_modules link to the repository's, then
// --cli /tmp/x/dist/cli.js beside the default.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { AdminKube } from '../dev/admin-kube.ts';
import type { Kube } from '../src/kube/client.ts';
import { ControlPlane, freePort } from '../dev/control-plane.ts';
import {
  benchPvcs,
  childNumber,
  create,
  createBenchSchedule,
  createBoundPvcs,
  createOldSnapshots,
  jsonKubeconfig,
  mib,
  naiveInformerRss,
  pool,
  procStatus,
  retrying,
  sleep,
} from './fixtures.ts';
import {
  type Allocator,
  allocatorNote,
  allocatorOption,
  CONTROLLER_NODE_OPTIONS,
  controllerEnv,
  defaultAllocator,
} from './controller-env.ts';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const EMPTY_NAMESPACE = 'memory-probe-empty';
const WEBHOOK_CONFIG = 'memory-probe-restore';

export interface MemoryOptions {
  namespaces: number;
  pvcsPerNamespace: number;
  snapshots: number;
  /** Fraction of the snapshots given a ready status (bench:scale's window leaves ~20 % ready). */
  ready: number;
  schedules: boolean;
  /** Seconds between /readyz and the RSS reading (bench:scale: 5). */
  settle: number;
  runs: number;
  /**
   * Seconds to keep sampling RSS after the heap figures: does it fall when idle, what does the
   * report-metrics refresh (every minute from the start) add?
   */
  linger: number;
  kubeconfig?: string | undefined;
  clis: string[];
  nodeOptions: string[];
  /** Node flags on the command line (as an image's ENTRYPOINT would give them), each a variant. */
  nodeArgs: string[];
  /** The controller's malloc, each a variant (`--allocator`): the image's jemalloc or glibc's. */
  allocators: Allocator[];
  naive: boolean;
  empty: boolean;
  out?: string | undefined;
}

/** What one controller process measured. */
export interface ControllerMemory {
  label: string;
  readyMs: number;
  /** CPU seconds (user + system) the controller used until the RSS reading. */
  cpu: number;
  /** /proc/<pid>/status at `settle` seconds after ready: RSS, its anonymous and file parts, peak. */
  rss: number;
  rssAnon: number;
  rssFile: number;
  hwm: number;
  heap?: HeapFigures | undefined;
  heapAfterGc?: HeapFigures | undefined;
  rssAfterGc?: number | undefined;
  /** RSS at the end of `linger`, and the most it reached meanwhile (sampled every 0.5 s). */
  rssLater?: number | undefined;
  rssLaterMax?: number | undefined;
}

interface HeapFigures {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** V8 heap spaces: [committed, used] bytes. */
  spaces: Record<string, [number, number]>;
}

const log = (line: string): void => void process.stderr.write(`[bench:memory] ${line}\n`);

/** User + system CPU seconds of a process (/proc/<pid>/stat, in USER_HZ ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const namespaceName = (i: number): string => `mem-${String(i).padStart(4, '0')}`;

/** The bench's objects, creating only what the cluster lacks. */
async function populate(admin: AdminKube, kc: k8s.KubeConfig, o: MemoryOptions): Promise<void> {
  const t0 = Date.now();
  const namespaces = Array.from({ length: o.namespaces }, (_, i) => namespaceName(i));
  const haveNs = new Set((await admin.core.listNamespace()).items.map((n) => n.metadata?.name ?? ''));
  await pool(
    [...namespaces, EMPTY_NAMESPACE].filter((n) => !haveNs.has(n)),
    50,
    async (name) => {
      await create(() => admin.core.createNamespace({ body: { metadata: { name } } }));
    },
  );
  const pairs = benchPvcs(namespaces, o.pvcsPerNamespace);
  await createBoundPvcs(admin, pairs, log);
  if (o.schedules) {
    const haveSched = new Set(
      (
        (await retrying(() =>
          admin.custom.listClusterCustomObject({ ...admin.schedules }),
        )) as k8s.KubernetesListObject<k8s.KubernetesObject>
      ).items.map((s) => s.metadata?.namespace ?? ''),
    );
    await pool(
      namespaces.filter((ns) => !haveSched.has(ns)),
      50,
      async (ns) => {
        // bench:scale's memory phase: a far-off cron.
        await createBenchSchedule(admin, ns, '0 0 0 1 1 *');
      },
    );
  }
  // The webhook configuration the controller keeps the caBundle of.
  await create(() =>
    kc.makeApiClient(k8s.AdmissionregistrationV1Api).createMutatingWebhookConfiguration({
      body: { metadata: { name: WEBHOOK_CONFIG }, webhooks: [] },
    }),
  );
  const existing = await countSnapshots(admin);
  const readyCount = Math.round(o.snapshots * o.ready);
  const todo = Array.from({ length: Math.max(0, o.snapshots - existing) }, (_, k) => existing + k);
  log(`creating ${todo.length} VolumeSnapshots (${existing} there), the first ${readyCount} ready`);
  const ts = Date.now();
  await createOldSnapshots(admin, pairs, todo, {
    readyBelow: readyCount,
    onCreated: (done) => done % 10_000 === 0 && log(`${done}/${todo.length} snapshots`),
  });
  log(
    `setup in ${((Date.now() - t0) / 1000).toFixed(0)} s (snapshots ${((Date.now() - ts) / 1000).toFixed(0)} s)`,
  );
}

async function countSnapshots(admin: Kube): Promise<number> {
  const list = (await retrying(() =>
    admin.custom.listClusterCustomObject({ ...admin.snapshots, limit: 1 }),
  )) as {
    items: unknown[];
    metadata: { remainingItemCount?: number };
  };
  return list.items.length + (list.metadata.remainingItemCount ?? 0);
}

/** Starts the controller, reads its memory `settle` s after /readyz, stops it. */
async function measureController(
  label: string,
  cli: string,
  nodeOptions: string,
  nodeArgs: string,
  allocator: Allocator,
  kubeconfig: string,
  o: MemoryOptions,
  extra: string[] = [],
): Promise<ControllerMemory> {
  const port = await freePort();
  const webhookPort = await freePort();
  const t0 = Date.now();
  const proc: ChildProcess = spawn(
    process.execPath,
    [
      '--expose-gc',
      ...nodeArgs.split(' ').filter(Boolean),
      cli,
      'controller',
      `--metrics-addr=127.0.0.1:${port}`,
      `--webhook-addr=127.0.0.1:${webhookPort}`,
      `--webhook-config-name=${WEBHOOK_CONFIG}`,
      '--lease-namespace=default',
      `--lease-name=memory-probe-${process.pid}-${port}`,
      '--log-level=warn',
      ...extra,
    ],
    {
      env: {
        ...controllerEnv(allocator),
        ...process.env,
        KUBECONFIG: jsonKubeconfig(kubeconfig),
        NODE_OPTIONS: nodeOptions,
        SNAPCRON_MEMORY_PROBE: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let probe: ((line: string) => void) | undefined;
  const onData = (d: Buffer): void => {
    out = (out + d.toString()).slice(-200_000);
    const m = /^snapcron-memory (.*)\n/m.exec(out);
    if (m && probe) {
      out = out.replace(m[0], '');
      probe(m[1] as string);
    }
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const alive = (): boolean => proc.exitCode === null && proc.signalCode === null;
  try {
    let ready = false;
    for (let i = 0; i < 2400 && !ready && alive(); i++) {
      ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (!ready) await sleep(250);
    }
    if (!ready) throw new Error(`${label}: the controller did not become ready:\n${out.slice(-3000)}`);
    const readyMs = Date.now() - t0;
    await sleep(o.settle * 1000);
    const pid = proc.pid ?? 0;
    const at = procStatus(pid);
    const cpu = cpuSeconds(pid);
    const line = await new Promise<string>((resolve, reject) => {
      probe = resolve;
      proc.kill('SIGUSR2');
      setTimeout(() => reject(new Error(`${label}: no heap figures on SIGUSR2`)), 30_000).unref();
    });
    const figures = JSON.parse(line) as { before: HeapFigures; afterGc: HeapFigures };
    const rssAfterGc = procStatus(pid).rss;
    let rssLater: number | undefined;
    let rssLaterMax: number | undefined;
    for (const end = Date.now() + o.linger * 1000; Date.now() < end;) {
      await sleep(500);
      rssLater = procStatus(pid).rss;
      rssLaterMax = Math.max(rssLaterMax ?? 0, rssLater);
    }
    const errors = out.split('\n').filter((l) => l.includes('"level":50'));
    if (errors.length)
      log(`${label}: ${errors.length} error lines, the last: ${errors.slice(-3).join('\n')}`);
    return {
      label,
      readyMs,
      cpu,
      ...at,
      heap: figures.before,
      heapAfterGc: figures.afterGc,
      rssAfterGc,
      rssLater,
      rssLaterMax,
    };
  } finally {
    if (alive()) proc.kill('SIGTERM');
    await exited;
  }
}

/** RSS of a bare Node process with the same flags: the floor. */
function bareNodeRss(nodeOptions: string): Promise<number> {
  return childNumber(
    ['-e', 'setTimeout(() => process.stdout.write(String(process.memoryUsage().rss)), 1000)'],
    { NODE_OPTIONS: nodeOptions },
  );
}

export async function runMemoryBench(o: MemoryOptions): Promise<ControllerMemory[]> {
  const cp = o.kubeconfig ? undefined : await ControlPlane.start();
  const kubeconfig = o.kubeconfig ?? (cp as ControlPlane).kubeconfigPath;
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const admin = AdminKube.fromFile(kubeconfig, { qps: 5000, burst: 5000 });
  const results: ControllerMemory[] = [];
  const baselines: string[] = [];
  try {
    await populate(admin, kc, o);
    const snapshots = await countSnapshots(admin);
    const pvcs = o.namespaces * o.pvcsPerNamespace;
    log(`measuring: ${pvcs} PVCs, ${snapshots} VolumeSnapshots in the cluster`);
    for (const a of o.allocators) log(`malloc ${a}: ${allocatorNote(a)}`);
    for (const nodeOptions of o.nodeOptions) {
      const bare = await bareNodeRss(nodeOptions);
      baselines.push(`bare node [${nodeOptions}]: RSS ${mib(bare)} MiB`);
      log(baselines.at(-1) as string);
    }
    if (o.empty) {
      const empty = await measureController(
        `empty namespace [${o.nodeOptions[0]}]`,
        o.clis[0] as string,
        o.nodeOptions[0] as string,
        o.nodeArgs[0] as string,
        o.allocators[0] as Allocator,
        kubeconfig,
        o,
        [`--namespace=${EMPTY_NAMESPACE}`],
      );
      results.push(empty);
      log(row(empty));
    }
    for (let run = 0; run < o.runs; run++) {
      for (const cli of o.clis) {
        for (const nodeOptions of o.nodeOptions) {
          for (const nodeArgs of o.nodeArgs) {
            for (const allocator of o.allocators) {
              const label = `${cli === CLI ? 'dist/cli.js' : cli} [${nodeOptions}]${nodeArgs ? ` node ${nodeArgs}` : ''} ${allocator}${o.runs > 1 ? ` run ${run + 1}` : ''}`;
              const r = await measureController(label, cli, nodeOptions, nodeArgs, allocator, kubeconfig, o);
              results.push(r);
              log(row(r));
            }
          }
        }
      }
    }
    const after = await countSnapshots(admin);
    if (after !== snapshots) log(`note: the cluster held ${snapshots} snapshots before and ${after} after`);
    if (o.naive) {
      const naive = await naiveInformerRss(kubeconfig);
      baselines.push(
        `client-node informers holding the same objects (no NODE_OPTIONS): RSS ${mib(naive)} MiB`,
      );
      log(baselines.at(-1) as string);
    }
    log('');
    log(`${pvcs} PVCs, ${snapshots} VolumeSnapshots; RSS ${o.settle} s after /readyz (MiB):`);
    log(header());
    for (const r of results) log(row(r));
    for (const b of baselines) log(`baseline: ${b}`);
    if (o.out) writeFileSync(o.out, `${JSON.stringify({ options: o, results, baselines }, null, 2)}\n`);
    return results;
  } finally {
    await cp?.stop();
  }
}

const COLUMNS =
  'rss | anon | file | peak | heapUsed | heapTotal | new | old | code | lo | external | after GC: heapUsed, rss | later, max | ready s | cpu s';
const header = (): string => `${COLUMNS} | label`;
function row(r: ControllerMemory): string {
  const sp = (name: string): string => mib(r.heap?.spaces[name]?.[0]);
  return [
    mib(r.rss),
    mib(r.rssAnon),
    mib(r.rssFile),
    mib(r.hwm),
    mib(r.heap?.heapUsed),
    mib(r.heap?.heapTotal),
    sp('new_space'),
    sp('old_space'),
    sp('code_space'),
    sp('large_object_space'),
    mib(r.heap?.external),
    `${mib(r.heapAfterGc?.heapUsed)}, ${mib(r.rssAfterGc)}`,
    r.rssLater === undefined ? '-' : `${mib(r.rssLater)}, ${mib(r.rssLaterMax)}`,
    (r.readyMs / 1000).toFixed(1),
    r.cpu.toFixed(1),
    r.label,
  ].join(' | ');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      small: { type: 'boolean', default: false },
      namespaces: { type: 'string' },
      pvcs: { type: 'string' },
      snapshots: { type: 'string' },
      ready: { type: 'string' },
      'no-schedules': { type: 'boolean', default: false },
      settle: { type: 'string' },
      runs: { type: 'string' },
      linger: { type: 'string' },
      kubeconfig: { type: 'string' },
      cli: { type: 'string', multiple: true },
      'node-options': { type: 'string', multiple: true },
      'node-args': { type: 'string', multiple: true },
      allocator: { type: 'string', multiple: true },
      'no-naive': { type: 'boolean', default: false },
      'no-empty': { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  });
  const n = (v: string | undefined, d: number): number => (v === undefined ? d : Number(v));
  await runMemoryBench({
    namespaces: n(values.namespaces, values.small ? 100 : 1000),
    pvcsPerNamespace: n(values.pvcs, 10),
    snapshots: n(values.snapshots, values.small ? 10_000 : 100_000),
    ready: n(values.ready, 0.2),
    schedules: !values['no-schedules'],
    settle: n(values.settle, 5),
    runs: n(values.runs, 1),
    linger: n(values.linger, 0),
    kubeconfig: values.kubeconfig,
    clis: values.cli?.length ? values.cli : [CLI],
    nodeOptions: values['node-options']?.length ? values['node-options'] : [CONTROLLER_NODE_OPTIONS],
    nodeArgs: values['node-args']?.length ? values['node-args'] : [''],
    allocators: values.allocator?.length
      ? values.allocator.map((a) => allocatorOption(a) as Allocator)
      : [defaultAllocator()],
    naive: !values['no-naive'],
    empty: !values['no-empty'],
    out: values.out,
  });
}
