/**
 * A real node on top of a control plane (dev/control-plane.ts): containerd (with runc and
 * the CNI bridge from Debian), a kubelet registered as this machine's hostname,
 * kube-scheduler, and a second kube-controller-manager running the workload controllers
 * (Deployments, StatefulSets, Jobs, garbage collection, node lifecycle) that the control
 * plane's own one leaves out. Images come from hack/images/build.sh and are imported into
 * containerd without a registry. Binaries: hack/build-node.sh (Go modules, cached).
 *
 * It changes the host, as any kubelet does: kernel sysctls (restored by stop()), mounts and
 * files under /var/lib/kubelet, /var/log/pods and /var/log/containers, a bridge
 * `snapcron0` with veth links, /run/netns, cgroup `kubepods` folders. stop() deletes the
 * pods, unmounts, removes what it created and puts the sysctls back.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { controlPlaneBinaries, freePort } from './control-plane.ts';
import { hackScriptOutput } from './hack-script.ts';

export const KUBELET_ROOT = '/var/lib/kubelet';
/** Where CSI drivers put their registration sockets for the kubelet's plugin watcher. */
export const PLUGINS_REGISTRY = join(KUBELET_ROOT, 'plugins_registry');
export const PAUSE_IMAGE = 'snapcron.local/pause:1';
/** busybox (sh, httpd, wget, …) from Debian's busybox-static; give pods a command. */
export const WEB_IMAGE = 'snapcron.local/web:1';
const BRIDGE = 'snapcron0';
/** The pods' subnet on the bridge; its first address is the host's side (the pods' gateway). */
const POD_SUBNET = '10.244.0.0/24';
/** Where pods reach this host (and a control plane started with `podNetwork` on it). */
export const POD_GATEWAY = '10.244.0.1';
const NETNS = '/run/netns';
const CNI_BIN = '/usr/lib/cni';
// What a kubelet sets (protectKernelDefaults: false) and the bridge plugin may turn on.
const SYSCTLS = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
  'net.ipv4.ip_forward',
];
// Host paths the kubelet creates; removed again by stop() when they did not exist before.
const HOST_DIRS = [KUBELET_ROOT, '/var/log/pods', '/var/log/containers', NETNS];
const log = (msg: string): void => void process.stderr.write(`[node] ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const sysctlPath = (key: string): string => join('/proc/sys', ...key.split('.'));

const lastLine = hackScriptOutput;

/** The node's binaries dir (kubelet, kube-scheduler, containerd, shim, ctr), built or cached. */
export const nodeBinaries = (): string => lastLine('hack/build-node.sh');
/** The dir holding pause.tar and web.tar (OCI archives), built or cached. */
export const nodeImages = (): string => lastLine('hack/images/build.sh');

/** Mount points at or under `prefix`, newest first: a later mount may cover an earlier one. */
function mountsUnder(prefix: string): string[] {
  const unescape = (p: string): string =>
    p.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => unescape(l.split(' ')[4] ?? ''))
    .filter((p) => p === prefix || p.startsWith(`${prefix}/`))
    .reverse();
}

function unmountAll(prefix: string): void {
  for (let pass = 0; pass < 3 && mountsUnder(prefix).length > 0; pass++)
    for (const m of mountsUnder(prefix)) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      } catch {
        /* already gone, or covered: the next pass gets it */
      }
    }
}

/** Removes empty cgroup folders depth-first; a folder still holding a process stays. */
function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {
    /* busy or already gone */
  }
}

/** Checks the Debian parts before anything starts, naming the package that is missing. */
export function nodePreflight(): void {
  const missing: string[] = [];
  try {
    execFileSync('runc', ['--version'], { stdio: 'ignore' });
  } catch {
    missing.push('runc');
  }
  if (!existsSync(join(CNI_BIN, 'bridge')) || !existsSync(join(CNI_BIN, 'host-local')))
    missing.push('containernetworking-plugins');
  if (missing.length > 0)
    throw new Error(
      `a node needs Debian's ${missing.join(' and ')}: apt-get install -y ${missing.join(' ')}`,
    );
  if (process.getuid?.() !== 0) throw new Error('a node needs root (the kubelet mounts and makes cgroups)');
}

export interface NodeOptions {
  /** The admin kubeconfig of the control plane (the kubelet and controllers use it). */
  kubeconfig: string;
  /** Config, containerd's state and every log; removed by stop() unless something failed. */
  dir: string;
}

export class Node {
  /** The Node object's name: this machine's hostname, as the kubelet registers it. */
  readonly name = hostname().toLowerCase();
  readonly dir: string;
  readonly kubeconfig: string;
  readonly containerdSocket: string;
  private readonly procs = new Map<string, ChildProcess>();
  private bin = '';
  private savedSysctls: Record<string, string> = {};
  private createdDirs: string[] = [];
  private stopping = false;
  private netnsBound = false;
  private failed = false;
  readonly timings: Record<string, number> = {};

  private constructor(opts: NodeOptions) {
    this.dir = opts.dir;
    this.kubeconfig = opts.kubeconfig;
    this.containerdSocket = join(opts.dir, 'containerd', 'containerd.sock');
  }

  static async start(opts: NodeOptions): Promise<Node> {
    nodePreflight();
    const node = new Node(opts);
    const t0 = Date.now();
    mkdirSync(node.dir, { recursive: true });
    node.bin = nodeBinaries();
    const images = nodeImages();
    const cpBin = controlPlaneBinaries();
    node.timings.binariesMs = Date.now() - t0;
    node.saveHost();
    try {
      await node.startContainerd(images);
      await node.startKubelet();
      await node.startControllers(cpBin);
      await node.waitReady();
      node.timings.startMs = Date.now() - t0;
      log(`node ${node.name} Ready in ${node.timings.startMs} ms; logs in ${node.dir}`);
      return node;
    } catch (err) {
      node.failed = true;
      await node.stop();
      throw err;
    }
  }

  private saveHost(): void {
    for (const key of SYSCTLS) {
      try {
        this.savedSysctls[key] = readFileSync(sysctlPath(key), 'utf8').trim();
      } catch {
        /* not in this kernel */
      }
    }
    this.createdDirs = HOST_DIRS.filter((d) => !existsSync(d));
    writeFileSync(
      join(this.dir, 'host-before.json'),
      JSON.stringify({ sysctls: this.savedSysctls, createdDirs: this.createdDirs }, null, 2),
    );
  }

  private async startContainerd(images: string): Promise<void> {
    const cd = join(this.dir, 'containerd');
    const cniConf = join(this.dir, 'cni');
    mkdirSync(cd, { recursive: true });
    mkdirSync(cniConf, { recursive: true });
    // No masquerade and no portmap: pods talk to the host and each other only, so no iptables.
    writeFileSync(
      join(cniConf, '10-snapcron.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'snapcron',
        plugins: [
          {
            type: 'bridge',
            bridge: BRIDGE,
            isGateway: true,
            ipMasq: false,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: POD_SUBNET }]],
              dataDir: join(this.dir, 'cni-ipam'),
            },
          },
        ],
      }),
    );
    const q = (s: string): string => JSON.stringify(s);
    writeFileSync(
      join(cd, 'config.toml'),
      [
        'version = 3',
        `root = ${q(join(cd, 'root'))}`,
        `state = ${q(join(cd, 'state'))}`,
        '[grpc]',
        `  address = ${q(this.containerdSocket)}`,
        '[ttrpc]',
        `  address = ${q(`${this.containerdSocket}.ttrpc`)}`,
        "[plugins.'io.containerd.cri.v1.images'.pinned_images]",
        `  sandbox = ${q(PAUSE_IMAGE)}`,
        "[plugins.'io.containerd.cri.v1.runtime']",
        // No CAP_SYS_RESOURCE in this sandbox: without it runc cannot lower oom_score_adj and
        // the pause container dies with "can't get final child's PID from pipe: EOF".
        '  restrict_oom_score_adj = true',
        "[plugins.'io.containerd.cri.v1.runtime'.cni]",
        `  bin_dirs = [${q(CNI_BIN)}]`,
        `  conf_dir = ${q(cniConf)}`,
        "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]",
        // cgroupfs: there is no systemd here; the kubelet uses cgroupfs too.
        '  SystemdCgroup = false',
        '',
      ].join('\n'),
    );
    // Pod network namespaces are files bind-mounted under /run/netns. Make it a shared mount of
    // its own first, as `ip netns` does: a tool that does so later (ip, podman) would otherwise
    // cover the pods' namespaces, and containerd could then never remove them (EBUSY).
    if (!mountsUnder(NETNS).includes(NETNS) && mountsUnder(NETNS).length === 0) {
      mkdirSync(NETNS, { recursive: true });
      execFileSync('mount', ['--bind', NETNS, NETNS]);
      execFileSync('mount', ['--make-shared', NETNS]);
      this.netnsBound = true;
    }
    this.spawn('containerd', join(this.bin, 'containerd'), ['--config', join(cd, 'config.toml')]);
    await this.waitFor('containerd', () => existsSync(this.containerdSocket), 30_000);
    const t = Date.now();
    for (const image of ['pause.tar', 'web.tar'])
      execFileSync(
        join(this.bin, 'ctr'),
        ['--address', this.containerdSocket, '-n', 'k8s.io', 'images', 'import', join(images, image)],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
    this.timings.imagesMs = Date.now() - t;
  }

  private async startKubelet(): Promise<void> {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(this.kubeconfig);
    const caData = kc.getCurrentCluster()?.caData;
    if (!caData)
      throw new Error(`${this.kubeconfig} has no certificate-authority-data for the kubelet to trust`);
    const ca = join(this.dir, 'ca.crt');
    writeFileSync(ca, Buffer.from(caData, 'base64'));
    const healthz = await freePort();
    const config = join(this.dir, 'kubelet.yaml');
    writeFileSync(
      config,
      JSON.stringify(
        {
          apiVersion: 'kubelet.config.k8s.io/v1beta1',
          kind: 'KubeletConfiguration',
          // This sandbox: cgroups v1, no systemd, swap may be on, no iptables chains needed.
          failCgroupV1: false,
          cgroupDriver: 'cgroupfs',
          failSwapOn: false,
          makeIPTablesUtilChains: false,
          containerRuntimeEndpoint: `unix://${this.containerdSocket}`,
          // kube-apiserver reaches the kubelet by the node's hostname; only clients with a
          // certificate from the cluster's CA get in (it presents admin's, see control-plane.ts).
          port: await freePort(),
          readOnlyPort: 0,
          healthzBindAddress: '127.0.0.1',
          healthzPort: healthz,
          authentication: {
            anonymous: { enabled: false },
            webhook: { enabled: false },
            x509: { clientCAFile: ca },
          },
          authorization: { mode: 'AlwaysAllow' },
          // Flex volumes would otherwise go to /usr/libexec/kubernetes.
          volumePluginDir: join(this.dir, 'flexvolume'),
          podLogsDir: '/var/log/pods',
          // A busy dev machine's disk must not taint the node with DiskPressure.
          evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
          imageGCHighThresholdPercent: 100,
          imageGCLowThresholdPercent: 99,
          serializeImagePulls: false,
          registerNode: true,
        },
        null,
        2,
      ),
    );
    this.spawn('kubelet', join(this.bin, 'kubelet'), [
      `--config=${config}`,
      `--kubeconfig=${this.kubeconfig}`,
      `--root-dir=${KUBELET_ROOT}`,
      '--v=2',
    ]);
    await this.waitFor(
      'kubelet /healthz',
      async () => (await fetch(`http://127.0.0.1:${healthz}/healthz`)).ok,
      60_000,
    );
  }

  private async startControllers(cpBin: string): Promise<void> {
    const common = async (): Promise<string[]> => [
      `--kubeconfig=${this.kubeconfig}`,
      '--leader-elect=false',
      `--secure-port=${await freePort()}`,
      '--bind-address=127.0.0.1',
    ];
    this.spawn('kube-scheduler', join(this.bin, 'kube-scheduler'), [...(await common()), '--v=1']);
    this.spawn('kube-controller-manager-workloads', join(cpBin, 'kube-controller-manager'), [
      ...(await common()),
      // The control plane's own controller manager runs the PV binder and namespaces; pods of
      // workloads need these. node-lifecycle lifts the new node's not-ready taint.
      '--controllers=deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller,job-controller,cronjob-controller,ttl-after-finished-controller,garbage-collector-controller,pod-garbage-collector-controller,node-lifecycle-controller,endpointslice-controller',
      '--node-monitor-grace-period=20s',
      '--v=1',
    ]);
  }

  private async waitReady(): Promise<void> {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(this.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await this.waitFor(
      `node ${this.name} Ready and untainted`,
      async () => {
        const n = await core.readNode({ name: this.name });
        const ready = n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        return !!ready && !(n.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/'));
      },
      90_000,
    );
  }

  private spawn(name: string, bin: string, args: string[]): void {
    const logFile = join(this.dir, `${name}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawn(bin, args, { stdio: ['ignore', fd, fd], detached: true });
    child.once('exit', (code, signal) => {
      if (!this.stopping) {
        log(`${name} exited unexpectedly (code ${code}, signal ${signal}); log: ${logFile}`);
        this.failed = true;
      }
    });
    this.procs.set(name, child);
  }

  private async kill(name: string): Promise<void> {
    const p = this.procs.get(name);
    this.procs.delete(name);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    const group = -(p.pid ?? 0);
    try {
      process.kill(group, 'SIGTERM');
    } catch {
      return;
    }
    const t = setTimeout(() => {
      try {
        process.kill(group, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 10_000);
    await exited;
    clearTimeout(t);
  }

  private async waitFor(
    what: string,
    check: () => boolean | Promise<boolean>,
    timeoutMs: number,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        if (await check()) return;
      } catch (err) {
        last = err;
      }
      await sleep(250);
    }
    throw new Error(`${what} not ready after ${timeoutMs} ms (${String(last)}); logs in ${this.dir}`);
  }

  /**
   * Loads an OCI archive (e.g. `podman save --format oci-archive`) into the kubelet's image
   * store, under the name its `org.opencontainers.image.ref.name` annotation gives, so pods
   * run it with `imagePullPolicy: Never` and no registry.
   */
  importImage(archive: string): void {
    execFileSync(
      join(this.bin, 'ctr'),
      ['--address', this.containerdSocket, '-n', 'k8s.io', 'images', 'import', archive],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
  }

  /** The kubelet's containers (for the pods still running) as containerd sees them. */
  private ctr(args: string[]): string {
    return execFileSync(
      join(this.bin, 'ctr'),
      ['--address', this.containerdSocket, '-n', 'k8s.io', ...args],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
  }

  /**
   * Deletes the pods on this node (the kubelet unmounts their volumes), stops everything,
   * kills leftover containers, unmounts, removes the bridge and the folders the node made,
   * restores the sysctls and deletes the Node object.
   */
  async stop(opts: { keepLogs?: boolean } = {}): Promise<void> {
    this.stopping = true;
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(this.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const onNode = async (): Promise<k8s.V1Pod[]> =>
      (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${this.name}` })).items;
    if (this.procs.has('kubelet')) {
      try {
        // Controllers first, so no ReplicaSet or StatefulSet makes new pods while these go.
        await this.kill('kube-controller-manager-workloads');
        await this.kill('kube-scheduler');
        for (const p of await onNode())
          await core
            .deleteNamespacedPod({
              name: p.metadata?.name ?? '',
              namespace: p.metadata?.namespace ?? '',
              gracePeriodSeconds: 1,
            })
            .catch(() => undefined);
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline && (await onNode()).length > 0) await sleep(500);
      } catch (err) {
        log(`could not delete the node's pods through the API (${String(err)}); cleaning up directly`);
      }
    }
    for (const name of ['kube-controller-manager-workloads', 'kube-scheduler', 'kubelet'])
      await this.kill(name);
    if (this.procs.has('containerd')) {
      // Whatever the kubelet left: kill every task so no shim keeps a mount or netns busy.
      try {
        for (const line of this.ctr(['tasks', 'ls', '-q']).split('\n').filter(Boolean)) {
          try {
            this.ctr(['tasks', 'kill', '-s', 'SIGKILL', line]);
          } catch {
            /* exited */
          }
        }
        await sleep(500);
        for (const line of this.ctr(['tasks', 'ls', '-q']).split('\n').filter(Boolean)) {
          try {
            this.ctr(['tasks', 'delete', '-f', line]);
          } catch {
            /* gone */
          }
        }
      } catch {
        /* containerd not answering: the unmounts below still run */
      }
      await this.kill('containerd');
    }
    // Shims outlive containerd by design; ours live under this node's state folder.
    try {
      const shims = execFileSync(
        'pgrep',
        ['-f', `containerd-shim-runc-v2 .*-address ${this.containerdSocket}`],
        {
          encoding: 'utf8',
        },
      );
      for (const pid of shims.split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* none left */
    }
    // Each step on its own: one that fails (and is logged) must not leave the rest undone.
    const problems: string[] = [];
    const phase = (what: string, fn: () => void): void => {
      try {
        fn();
      } catch (err) {
        problems.push(`${what}: ${String(err)}`);
      }
    };
    phase('unmount pod volumes', () => unmountAll(KUBELET_ROOT));
    phase('unmount container filesystems', () => unmountAll(join(this.dir, 'containerd')));
    phase('remove pod network namespaces', () => {
      for (const m of mountsUnder(NETNS).filter((p) => p.startsWith(`${NETNS}/cni-`))) unmountAll(m);
      for (const f of existsSync(NETNS) ? readdirSync(NETNS) : [])
        if (f.startsWith('cni-')) rmSync(join(NETNS, f), { force: true });
      // Our shared bind of /run/netns goes too, unless someone else keeps a namespace there.
      if (this.netnsBound) {
        const left = readdirSync(NETNS);
        if (left.length === 0) unmountAll(NETNS);
        else log(`${NETNS} stays mounted: it holds ${left.join(', ')}`);
      }
    });
    phase('delete the bridge', () => {
      if (existsSync(`/sys/class/net/${BRIDGE}`)) execFileSync('ip', ['link', 'delete', BRIDGE]);
    });
    phase('remove kubepods cgroups', () => {
      for (const controller of existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : [])
        removeCgroupTree(join('/sys/fs/cgroup', controller, 'kubepods'));
    });
    for (const [key, value] of Object.entries(this.savedSysctls))
      phase(`restore ${key}=${value}`, () => {
        if (readFileSync(sysctlPath(key), 'utf8').trim() !== value) writeFileSync(sysctlPath(key), value);
      });
    // Only folders that did not exist before, and only after every mount below them is gone,
    // so rm never reaches a volume's data through a bind mount.
    for (const d of this.createdDirs)
      phase(`remove ${d}`, () => {
        // /run/netns is shared with other tools: only ever removed empty and unmounted.
        if (d === NETNS) {
          if (existsSync(d) && readdirSync(d).length === 0 && mountsUnder(d).length === 0) rmdirSync(d);
          return;
        }
        unmountAll(d);
        if (mountsUnder(d).length > 0) throw new Error(`still mounted: ${mountsUnder(d).join(', ')}`);
        rmSync(d, { recursive: true, force: true });
      });
    await core.deleteNode({ name: this.name }).catch(() => undefined);
    for (const p of problems) log(`stop: could not ${p}`);
    if (this.failed || opts.keepLogs || problems.length > 0) {
      log(`logs kept in ${this.dir}`);
    } else {
      unmountAll(this.dir);
      if (mountsUnder(this.dir).length === 0) rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
