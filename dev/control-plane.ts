/**
 * A real Kubernetes control plane on loopback, like controller-runtime's envtest:
 * etcd + kube-apiserver (RBAC on, client-certificate admin) + kube-controller-manager
 * running the PV binder, so PVCs bind to PVs for real. Binaries come from
 * hack/build-control-plane.sh (built from Go modules, cached; KUBEBUILDER_ASSETS wins).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { CertificateAuthority, serviceAccountKeys } from './pki.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const log = (msg: string): void => void process.stderr.write(`[control-plane] ${msg}\n`);

/**
 * The CN of the client certificate kube-apiserver presents to every admission webhook that asks
 * for one (its admission kubeconfig's `*` user), signed by the control plane's CA: a webhook
 * run with `--webhook-client-ca <that CA> --webhook-client-names` this name serves only it.
 */
export const WEBHOOK_CLIENT_NAME = 'kube-apiserver-webhook-client';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Binaries dir: KUBEBUILDER_ASSETS, else built/cached by hack/build-control-plane.sh. */
export function controlPlaneBinaries(): string {
  const out = execFileSync('bash', [join(ROOT, 'hack/build-control-plane.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return out.trim().split('\n').at(-1) ?? '';
}

export function snapshotCrdDir(): string {
  const out = execFileSync('bash', [join(ROOT, 'hack/snapshot-crds.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return out.trim().split('\n').at(-1) ?? '';
}

interface Proc {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

export interface ControlPlaneOptions {
  /** Keep the directory (and its logs) after stop. */
  keep?: boolean;
  /** Install snapcron's and the snapshot CRDs (default true). */
  installCrds?: boolean;
  /**
   * For pods on a dev/node.ts node that talk to the API server, as an installed snapcron does:
   * kube-apiserver listens on every address (pods reach it at `address`, the node bridge's
   * host side, which appears only with the first pod, and there is no kube-proxy for the
   * ClusterIP), advertises `address`, admits pods with the ServiceAccount plugin (projected
   * token volumes), calls webhook Services at their endpoints (--enable-aggregator-routing),
   * and the controller manager creates `default` ServiceAccounts and `kube-root-ca.crt`.
   */
  podNetwork?: { address: string };
}

export class ControlPlane {
  readonly dir: string;
  readonly kubeconfigPath: string;
  server = '';
  private bin = '';
  private apiPort = 0;
  private etcdPort = 0;
  private procs = new Map<string, Proc>();
  private ca!: CertificateAuthority;
  private failed = false;
  readonly timings: Record<string, number> = {};

  private podNetwork: ControlPlaneOptions['podNetwork'];

  /**
   * Control planes of this process started (or starting) and not yet stopped: what a Ctrl-C
   * handler stops, even one that comes while a start is still under way (hack/demo.ts).
   */
  static readonly running = new Set<ControlPlane>();

  private constructor(dir: string) {
    this.dir = dir;
    this.kubeconfigPath = join(dir, 'kubeconfig');
  }

  static async start(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const t0 = Date.now();
    const cp = new ControlPlane(mkdtempSync(join(tmpdir(), 'snapcron-cp-')));
    ControlPlane.running.add(cp);
    cp.podNetwork = opts.podNetwork;
    try {
      cp.bin = controlPlaneBinaries();
      cp.timings.binariesMs = Date.now() - t0;
      await cp.boot();
      if (opts.installCrds ?? true) await cp.installCrds();
      cp.timings.startMs = Date.now() - t0;
      log(`ready in ${cp.timings.startMs} ms: ${cp.server} (KUBECONFIG=${cp.kubeconfigPath})`);
      return cp;
    } catch (err) {
      cp.failed = true;
      await cp.stop();
      throw err;
    }
  }

  private async boot(): Promise<void> {
    const pki = join(this.dir, 'pki');
    mkdirSync(pki);
    this.ca = await CertificateAuthority.create('snapcron-test-ca');
    const serving = await this.ca.issue('CN=kube-apiserver', {
      dns: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
      ips: ['127.0.0.1', '10.0.0.1', ...(this.podNetwork ? [this.podNetwork.address] : [])],
      server: true,
    });
    const admin = await this.ca.issue('CN=admin,O=system:masters');
    const webhookClient = await this.ca.issue(`CN=${WEBHOOK_CLIENT_NAME}`);
    const sa = serviceAccountKeys();
    const files: Record<string, string> = {
      'ca.crt': this.ca.certPem,
      'apiserver.crt': serving.certPem,
      'apiserver.key': serving.keyPem,
      'admin.crt': admin.certPem,
      'admin.key': admin.keyPem,
      'sa.pub': sa.publicPem,
      'sa.key': sa.privatePem,
    };
    for (const [f, text] of Object.entries(files)) writeFileSync(join(pki, f), text, { mode: 0o600 });
    this.writeAdmissionConfig(webhookClient.certPem, webhookClient.keyPem);

    this.etcdPort = await freePort();
    const peerPort = await freePort();
    this.apiPort = await freePort();
    this.server = `https://127.0.0.1:${this.apiPort}`;
    this.writeKubeconfig(this.kubeconfigPath, admin.certPem, admin.keyPem);

    const etcdUrl = `http://127.0.0.1:${this.etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    this.spawn('etcd', join(this.bin, 'etcd'), [
      '--name=default',
      `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await this.waitFor('etcd', async () => (await fetch(`${etcdUrl}/health`)).ok);
    await this.startApiServer();
    this.spawn('kube-controller-manager', join(this.bin, 'kube-controller-manager'), [
      `--kubeconfig=${this.kubeconfigPath}`,
      // The PV binder (PVCs bind for real) and the namespace controller (a test's deleted
      // namespace really goes, with its snapshots: the CSI snapshot-controller watches every
      // namespace and would otherwise wade through all earlier tests' leftovers).
      `--controllers=persistentvolume-binder-controller,persistentvolume-protection-controller,persistentvolumeclaim-protection-controller,namespace-controller${
        this.podNetwork ? ',serviceaccount-controller,root-ca-certificate-publisher-controller' : ''
      }`,
      ...(this.podNetwork ? [`--root-ca-file=${join(pki, 'ca.crt')}`] : []),
      '--leader-elect=false',
      // Its client's default 20 QPS binds ~3 PVCs a second; bench:scale pre-binds 10,000.
      '--kube-api-qps=1000',
      '--kube-api-burst=2000',
      `--secure-port=${await freePort()}`,
      '--bind-address=127.0.0.1',
      '--v=1',
    ]);
  }

  private async startApiServer(): Promise<void> {
    const pki = join(this.dir, 'pki');
    this.spawn('kube-apiserver', join(this.bin, 'kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${this.etcdPort}`,
      `--secure-port=${this.apiPort}`,
      `--bind-address=${this.podNetwork ? '0.0.0.0' : '127.0.0.1'}`,
      `--advertise-address=${this.podNetwork?.address ?? '127.0.0.1'}`,
      `--cert-dir=${pki}`,
      `--tls-cert-file=${join(pki, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
      `--client-ca-file=${join(pki, 'ca.crt')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--authorization-mode=RBAC',
      ...(this.podNetwork
        ? ['--enable-aggregator-routing=true']
        : ['--disable-admission-plugins=ServiceAccount']),
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${join(pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      // How it authenticates to a kubelet (dev/node.ts) for exec, logs and port-forward; that
      // kubelet trusts this CA's clients only. Unused while no node runs.
      `--kubelet-client-certificate=${join(pki, 'admin.crt')}`,
      `--kubelet-client-key=${join(pki, 'admin.key')}`,
      `--admission-control-config-file=${join(this.dir, 'admission.yaml')}`,
      '--v=1',
    ]);
    await this.waitFor(
      'kube-apiserver',
      async () => {
        const kc = this.kubeConfig();
        const res = await kc.makeApiClient(k8s.CoreV1Api).listNamespace();
        // Ready too (RBAC bootstrap roles and all): kube-controller-manager, started next, gives
        // up after 10 s of an unready API server, which a busy machine can exceed.
        return res.items.length > 0 && (await new k8s.Health(kc).readyz({}));
      },
      60_000,
    );
  }

  /**
   * Webhooks see a client certificate (CN WEBHOOK_CLIENT_NAME) when they request one: the
   * admission kubeconfig's `*` user matches every webhook host, as a cluster operator would
   * configure it (see the README's Webhook security).
   */
  private writeAdmissionConfig(certPem: string, keyPem: string): void {
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const kubeconfig = join(this.dir, 'admission-kubeconfig');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'users:',
        "- name: '*'",
        `  user: {client-certificate-data: ${b64(certPem)}, client-key-data: ${b64(keyPem)}}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const webhookConfig = [
      '    apiVersion: apiserver.config.k8s.io/v1',
      '    kind: WebhookAdmissionConfiguration',
      `    kubeConfigFile: "${kubeconfig}"`,
    ];
    writeFileSync(
      join(this.dir, 'admission.yaml'),
      [
        'apiVersion: apiserver.config.k8s.io/v1',
        'kind: AdmissionConfiguration',
        'plugins:',
        '- name: MutatingAdmissionWebhook',
        '  configuration:',
        ...webhookConfig,
        '- name: ValidatingAdmissionWebhook',
        '  configuration:',
        ...webhookConfig,
        '',
      ].join('\n'),
    );
  }

  /** Stops and starts kube-apiserver on the same port (for fault tests). */
  async restartApiServer(downMs = 0): Promise<void> {
    await this.kill('kube-apiserver');
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.startApiServer();
  }

  private writeKubeconfig(path: string, cert: string, key: string, user = 'admin'): void {
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const text = [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: snapcron-test`,
      `  cluster: {server: "${this.server}", certificate-authority-data: ${b64(this.ca.certPem)}}`,
      'users:',
      `- name: ${user}`,
      `  user: {client-certificate-data: ${b64(cert)}, client-key-data: ${b64(key)}}`,
      'contexts:',
      `- name: ${user}@snapcron-test`,
      `  context: {cluster: snapcron-test, user: ${user}, namespace: default}`,
      `current-context: ${user}@snapcron-test`,
      '',
    ].join('\n');
    writeFileSync(path, text, { mode: 0o600 });
  }

  kubeConfig(): k8s.KubeConfig {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(this.kubeconfigPath);
    return kc;
  }

  /**
   * A kubeconfig for another identity, e.g. `system:serviceaccount:ns:name` with group
   * `system:serviceaccounts`: a client certificate the API server trusts, so RBAC applies for real.
   */
  async kubeconfigFor(user: string, groups: string[] = []): Promise<string> {
    const subject = [`CN=${user}`, ...groups.map((g) => `O=${g}`)].join(',');
    const { certPem, keyPem } = await this.ca.issue(subject);
    const path = join(this.dir, `kubeconfig-${user.replace(/[^a-z0-9]/gi, '_')}`);
    this.writeKubeconfig(path, certPem, keyPem, user.replace(/[^a-z0-9-]/gi, '-'));
    return path;
  }

  async installCrds(): Promise<void> {
    const kc = this.kubeConfig();
    const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
    const files = [
      ...readdirSync(join(ROOT, 'crds')).map((f) => join(ROOT, 'crds', f)),
      ...readdirSync(snapshotCrdDir())
        // VolumeSnapshots and VolumeGroupSnapshots (consistency groups), from one module version.
        .filter(
          (f) => f.startsWith('snapshot.storage.k8s.io_') || f.startsWith('groupsnapshot.storage.k8s.io_'),
        )
        .map((f) => join(snapshotCrdDir(), f)),
    ];
    const names: string[] = [];
    for (const file of files) {
      // loadAllYaml maps YAML keys onto client-node's typed models (x-kubernetes-validations,
      // default, enum); a plain object would lose them in serialization.
      for (const doc of k8s.loadAllYaml(
        readFileSync(file, 'utf8'),
      ) as (k8s.V1CustomResourceDefinition | null)[]) {
        const crd = doc;
        if (crd?.kind !== 'CustomResourceDefinition') continue;
        await api.createCustomResourceDefinition({ body: crd });
        names.push(crd.metadata?.name ?? '');
      }
    }
    for (const name of names) {
      await this.waitFor(`CRD ${name}`, async () => {
        const crd = await api.readCustomResourceDefinition({ name });
        return !!crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
      });
    }
  }

  private spawn(name: string, bin: string, args: string[]): void {
    // Stopped while starting: start nothing more (the start fails with this).
    if (this.stopping) throw new Error(`control plane in ${this.dir} stopped while starting ${name}`);
    const logFile = join(this.dir, `${name}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawn(bin, args, { stdio: ['ignore', fd, fd], detached: true });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('exit', (code, signal) => {
      if (this.procs.get(name)?.child === child && !this.stopping) {
        log(`${name} exited unexpectedly (code ${code}, signal ${signal}); log: ${logFile}`);
        this.failed = true;
      }
    });
    this.procs.set(name, { name, child, exited });
  }

  private stopping = false;

  private async kill(name: string): Promise<void> {
    const p = this.procs.get(name);
    if (!p) return;
    this.procs.delete(name);
    if (p.child.exitCode !== null || p.child.signalCode !== null) return;
    const group = -(p.child.pid ?? 0);
    try {
      process.kill(group, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const timeout = setTimeout(() => {
      try {
        process.kill(group, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, 5000);
    await p.exited;
    clearTimeout(timeout);
  }

  private async waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        if (await check()) return;
      } catch (err) {
        last = err;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${what} not ready after ${timeoutMs} ms (${String(last)}); logs in ${this.dir}`);
  }

  /** Stops every process; removes the directory unless something failed (then its logs are kept). */
  async stop(opts: { keepLogs?: boolean } = {}): Promise<void> {
    this.stopping = true;
    ControlPlane.running.delete(this);
    for (const name of ['kube-controller-manager', 'kube-apiserver', 'etcd']) await this.kill(name);
    if (this.failed || opts.keepLogs) {
      const keep = mkdtempSync(join(tmpdir(), 'snapcron-cp-logs-'));
      for (const f of readdirSync(this.dir).filter((f) => f.endsWith('.log')))
        cpSync(join(this.dir, f), join(keep, f));
      log(`logs kept in ${keep}`);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
