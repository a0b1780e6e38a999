// The built image, run the way a kubelet runs the shipped Deployment's pod and the CronJob's
// job: in-cluster config (a TokenRequest token, ca.crt and namespace at the ServiceAccount
// path, KUBERNETES_SERVICE_HOST/PORT), the shipped RBAC, the args of the rendered manifests,
// a read-only root filesystem as user 65532. It proves the image, the in-cluster config, the
// RBAC and the args together: snapshots are taken, probes and metrics answer, the Lease is
// held and handed over on SIGTERM.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer, type Socket } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../dev/control-plane.ts';
import {
  boundPvc,
  createSchedule,
  deleteNamespaceAndWait,
  eventually,
  kube,
  kubeConfig,
  kubeconfigPath,
  listSnapshots,
  useNamespace,
} from '../env/kube.ts';
import { kubectlBinary } from '../env/kubectl.ts';
import {
  buildImage,
  podman,
  removeContainers,
  removeVolume,
  runLikeKubelet,
  serviceAccountVolume,
  type PodContainer,
} from '../env/podman.ts';

const RBAC_KINDS = new Set([
  'Namespace',
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
]);

/** `kubectl kustomize <dir>` with the built kubectl: the objects a user's `apply -k` sends. */
function render(dir: string): k8s.KubernetesObject[] {
  const yaml = execFileSync(kubectlBinary(), ['kustomize', dir], { encoding: 'utf8' });
  return k8s.loadAllYaml(yaml) as k8s.KubernetesObject[];
}

function find<T extends k8s.KubernetesObject>(objects: k8s.KubernetesObject[], kind: string): T {
  const found = objects.find((o) => o.kind === kind);
  if (!found) throw new Error(`the render has no ${kind}`);
  return found as T;
}

/**
 * The container's args as the manifest gives them, but each `--*-addr=[host]:port` on a port
 * another process (or the other replica) may hold on this host's network gets a free port:
 * in a pod each replica has its own network namespace.
 */
async function withFreePorts(args: string[]): Promise<{ args: string[]; ports: Record<string, number> }> {
  const ports: Record<string, number> = {};
  const out: string[] = [];
  for (const arg of args) {
    const m = /^--([a-z-]+-addr)=(.*):(\d+)$/.exec(arg);
    if (!m) {
      out.push(arg);
      continue;
    }
    const port = await freePort();
    ports[m[1] ?? ''] = port;
    out.push(`--${m[1]}=${m[2]}:${port}`);
  }
  return { args: out, ports };
}

const get = async (port: number, path: string): Promise<{ status: number; body: string }> => {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
};

/** The status of a GET over TLS verified with `ca`, to localhost (one of the webhook's DNS names). */
const tlsGet = (port: number, ca: Buffer): Promise<number> =>
  new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', servername: 'localhost', port, path: '/', ca }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('error', reject);
    req.end();
  });

/** Waits until no earlier test's namespace is still being deleted (stripping what blocks it). */
async function settleTerminatingNamespaces(): Promise<void> {
  const namespaces = await kube().core.listNamespace();
  await Promise.all(
    namespaces.items
      .filter((n) => n.status?.phase === 'Terminating')
      .map((n) => deleteNamespaceAndWait(n.metadata?.name ?? '', 60_000)),
  );
}

const lease = (namespace: string, name: string): Promise<k8s.V1Lease> =>
  kube().coordination.readNamespacedLease({ namespace, name });

// Errors, and refusals (a write into an earlier test's namespace that is being deleted is refused
// by the API server, not by RBAC: that one is not a problem of the image).
const problems = (lines: Record<string, unknown>[]): Record<string, unknown>[] =>
  lines.filter((l) => {
    const text = JSON.stringify(l);
    return Number(l.level) >= 50 || (/forbidden|\b403\b/i.test(text) && !/being terminated/.test(text));
  });

// Debian's podman, mmdebstrap and runc build and run the image. CI installs them (.ci/run); on a
// developer's machine without them these tests are skipped, saying so, like the browser test.
const missingTools = ['podman', 'mmdebstrap', 'runc'].filter(
  (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
);
const skipImage = missingTools.length > 0 && !process.env.CI;
if (skipImage) console.warn(`image tests skipped: apt-get install -y ${missingTools.join(' ')} to run them`);

describe.skipIf(skipImage)('the image, run as a kubelet runs the shipped manifests', () => {
  const ns = useNamespace('image');
  let image = '';
  let base: k8s.KubernetesObject[] = [];
  let deployment: k8s.V1Deployment;
  let saDir = '';
  const apiServer = new URL(kubeConfig().getCurrentCluster()?.server ?? '');

  beforeAll(async () => {
    // Built through hack/build-image.sh: on a fresh machine the base image and the first build
    // take minutes (with progress on stderr), later runs reuse the cached layers.
    image = buildImage();
    base = render('deploy/base');
    deployment = find<k8s.V1Deployment>(base, 'Deployment');
    const rbac = base.filter((o) => RBAC_KINDS.has(o.kind ?? ''));
    // An earlier test may have deleted the install namespace: applying into it while it is
    // still terminating would be refused.
    const own = await kube()
      .core.readNamespace({ name: deployment.metadata?.namespace ?? '' })
      .catch(() => undefined);
    if (own?.status?.phase === 'Terminating') await deleteNamespaceAndWait(own.metadata?.name ?? '', 60_000);
    execFileSync(kubectlBinary(), ['apply', '--server-side', '-f', '-'], {
      input: rbac.map((o) => k8s.dumpYaml(o)).join('---\n'),
      env: { ...process.env, KUBECONFIG: kubeconfigPath() },
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    // The ServiceAccount the Deployment names, and a token for it as the kubelet gets one.
    const namespace = deployment.metadata?.namespace ?? '';
    const serviceAccount = deployment.spec?.template.spec?.serviceAccountName ?? '';
    const token = await kube().core.createNamespacedServiceAccountToken({
      namespace,
      name: serviceAccount,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    saDir = serviceAccountVolume({
      token: token.status?.token ?? '',
      caCrt: Buffer.from(kubeConfig().getCurrentCluster()?.caData ?? '', 'base64').toString(),
      namespace,
    });
  }, 30 * 60_000);

  afterEach(removeContainers);
  afterAll(() => removeVolume(saDir));

  it('is small, runs as user 65532 and starts `snapcron`', async () => {
    const [config] = JSON.parse(await podman(['image', 'inspect', image])) as {
      Size: number;
      Config: { User: string; Entrypoint: string[]; Cmd?: string[] };
    }[];
    expect(config?.Config.User).toBe('65532:65532');
    expect(config?.Config.Entrypoint.at(-1)).toBe('/app/dist/cli.js');
    // With no arguments the image runs the controller (README "Image").
    expect(config?.Config.Cmd).toEqual(['controller']);
    // The README's size, with a margin: dev dependencies or an unstripped Node would pass it.
    expect(config?.Size).toBeLessThan(300e6);
    // Production dependencies only: node_modules holds exactly the lockfile's non-dev packages.
    const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const production = Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && !p.dev)
      .map(([path]) => path)
      .sort();
    const listing = await podman([
      'run',
      '--rm',
      '--read-only',
      '--entrypoint=/usr/local/bin/node',
      image,
      '-e',
      `const fs = require('node:fs');
       const walk = (dir) => fs.readdirSync(dir).flatMap((n) => {
         if (n.startsWith('.')) return [];
         const p = dir + '/' + n;
         if (n.startsWith('@')) return walk(p);
         const nested = p + '/node_modules';
         return [p, ...(fs.existsSync(nested) ? walk(nested) : [])];
       });
       console.log(JSON.stringify(walk('node_modules')));`,
    ]);
    const installed = (JSON.parse(listing) as string[]).sort();
    expect(installed).toEqual(production);
    expect(installed).not.toContain('node_modules/typescript');
    // README "Time": zones come from the image's tz database, not ICU.
    const zone = await podman([
      'run',
      '--rm',
      '--read-only',
      '--entrypoint=/usr/local/bin/node',
      image,
      '--input-type=module',
      '-e',
      `const { timeZone } = await import('/app/dist/tz/time-zone.js');
       const z = timeZone('Europe/Berlin');
       console.log(z.constructor.name, z.offset(Date.UTC(2026, 6, 1)));`,
    ]);
    expect(zone.trim()).toBe('TzifZone 120');
  });

  it('the Deployment: snapshots, probes, metrics, the Lease held and handed over on SIGTERM', async () => {
    // Cluster-wide, as shipped: an earlier test's namespace still being deleted would refuse its writes.
    await settleTerminatingNamespaces();
    const leaseNamespace = deployment.metadata?.namespace ?? '';
    // The controller's default Lease name (the manifest does not set one).
    const leaseName = 'snapcron-controller';
    await kube()
      .coordination.deleteNamespacedLease({ namespace: leaseNamespace, name: leaseName })
      .catch(() => undefined);
    await boundPvc(ns(), 'data-0', { app: 'db' });
    await createSchedule(ns(), 'every2s', {
      schedule: '*/2 * * * * *',
      claimSelector: { matchLabels: { app: 'db' } },
    });

    const pod = deployment.spec?.template.spec ?? { containers: [] };
    const container = pod.containers[0];
    if (!container?.args) throw new Error('the Deployment has no container args');
    const start = async (
      hostname: string,
    ): Promise<{ c: PodContainer; metrics: number; webhook: number }> => {
      const { args, ports } = await withFreePorts(container.args ?? []);
      const metrics = ports['metrics-addr'];
      const webhook = ports['webhook-addr'];
      if (!metrics || !webhook)
        throw new Error(
          `no --metrics-addr or --webhook-addr port in the Deployment's args: ${args.join(' ')}`,
        );
      const c = runLikeKubelet({
        image,
        pod,
        container,
        args,
        hostname,
        serviceAccountDir: saDir,
        apiServer,
      });
      await eventually(async () => (await get(metrics, '/readyz')).status === 200, 60_000, 250);
      return { c, metrics, webhook };
    };

    // Replica a: ready, healthy, leader, taking snapshots, counting them.
    const a = await start(`snapcron-controller-a-${ns().slice(-8)}`);
    expect(await get(a.metrics, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    // Identity HOSTNAME-PID: the pod's name, and Node is PID 1.
    await eventually(
      async () => (await lease(leaseNamespace, leaseName)).spec?.holderIdentity === `${a.c.name}-1`,
      20_000,
    );
    const snapshots = await eventually(async () => {
      const list = await listSnapshots(ns());
      return list.length >= 2 ? list : undefined;
    }, 30_000);
    expect(snapshots[0]?.metadata.labels?.['snapcron.io/schedule']).toBe('every2s');
    // The restore webhook serves the certificate it stored in the shipped Secret (over TLS that
    // CA verifies); a GET is not an admission review: 404.
    const secret = await kube().core.readNamespacedSecret({
      namespace: leaseNamespace,
      name: 'snapcron-webhook-tls',
    });
    const ca = Buffer.from(secret.data?.['ca.crt'] ?? '', 'base64');
    expect(await eventually(() => tlsGet(a.webhook, ca), 20_000)).toBe(404);
    // The image's malloc is jemalloc (README "Image"): mapped in the process the kubelet runs,
    // and the loader said nothing about the preload.
    const hostPid = Number(await podman(['inspect', '--format', '{{.State.Pid}}', a.c.name]));
    expect(readFileSync(`/proc/${hostPid}/maps`, 'utf8')).toMatch(/\/libjemalloc\.so\.2$/m);
    expect(a.c.output()).not.toMatch(/LD_PRELOAD|ld\.so/);
    const metrics = (await get(a.metrics, '/metrics')).body;
    expect(metrics).toMatch(/^snapcron_leader 1$/m);
    expect(metrics).toMatch(/^snapcron_snapshots_created_total\{[^}]*namespace="[^"]+"[^}]*\} [1-9]/m);

    // Replica b: ready as a standby.
    const b = await start(`snapcron-controller-b-${ns().slice(-8)}`);
    expect((await get(b.metrics, '/metrics')).body).toMatch(/^snapcron_leader 0$/m);
    expect((await lease(leaseNamespace, leaseName)).spec?.holderIdentity).toBe(`${a.c.name}-1`);

    // SIGTERM (podman stop, as the kubelet stops a pod): a exits 0 within seconds and hands the
    // Lease back, so b leads at its next retry instead of after the 15 s lease duration.
    const stopped = await a.c.stop(30);
    expect(stopped.code).toBe(0);
    expect(stopped.ms).toBeLessThan(10_000);
    const exitedAt = Date.now();
    expect(a.c.logs().some((l) => l.msg === 'shutting down' && l.signal === 'SIGTERM')).toBe(true);
    expect(a.c.logs().some((l) => l.msg === 'stopped')).toBe(true);
    await eventually(
      async () => (await lease(leaseNamespace, leaseName)).spec?.holderIdentity === `${b.c.name}-1`,
      15_000,
      100,
    );
    const handoverMs = Date.now() - exitedAt;
    expect(handoverMs).toBeLessThan(6_000);
    console.log(`image: exited ${stopped.ms} ms after SIGTERM; the standby led ${handoverMs} ms later`);

    const last = await b.c.stop(30);
    expect(last.code).toBe(0);
    expect((await lease(leaseNamespace, leaseName)).spec?.holderIdentity).toBe('');
    expect(problems([...a.c.logs(), ...b.c.logs()])).toEqual([]);
  });

  it("the CronJob's tick: one run takes the due snapshot and exits 0", async () => {
    const cronJob = find<k8s.V1CronJob>(render('deploy/overlays/cronjob'), 'CronJob');
    const pod = cronJob.spec?.jobTemplate.spec?.template.spec ?? { containers: [] };
    const container = pod.containers[0];
    if (!container?.args) throw new Error('the CronJob has no container args');
    expect(pod.serviceAccountName).toBe(deployment.spec?.template.spec?.serviceAccountName);
    await boundPvc(ns(), 'data-0', { app: 'db' });
    await createSchedule(ns(), 'every-second', {
      schedule: '* * * * * *',
      claimSelector: { matchLabels: { app: 'db' } },
    });
    // The tick, as shipped, covers every namespace and fails if any write fails: an earlier test's
    // namespace still being deleted (with its schedules) refuses writes, so let those go first.
    await settleTerminatingNamespaces();
    await new Promise((r) => setTimeout(r, 1500)); // a run falls due after the schedule's creation

    const tick = runLikeKubelet({
      image,
      pod,
      container,
      args: container.args,
      hostname: `snapcron-tick-${ns().slice(-8)}`,
      serviceAccountDir: saDir,
      apiServer,
    });
    expect(await tick.exited).toBe(0);
    expect(tick.output()).toMatch(new RegExp(`${ns()}/every-second`));
    expect(tick.output()).not.toMatch(/forbidden|\b403\b/i);
    const snapshots = await listSnapshots(ns());
    expect(snapshots.length).toBeGreaterThanOrEqual(1);
    expect(snapshots[0]?.metadata.labels?.['snapcron.io/schedule']).toBe('every-second');
  });

  it('a one-shot command as PID 1 exits on SIGTERM instead of waiting out the grace period', async () => {
    // An "API server" that accepts connections and never answers: the tick is stuck mid-request.
    const sockets = new Set<Socket>();
    const server = createServer((s) => sockets.add(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      const cronJob = find<k8s.V1CronJob>(render('deploy/overlays/cronjob'), 'CronJob');
      const pod = cronJob.spec?.jobTemplate.spec?.template.spec ?? { containers: [] };
      const container = pod.containers[0] ?? { name: 'tick' };
      const tick = runLikeKubelet({
        image,
        pod,
        container,
        args: container.args ?? [],
        hostname: `snapcron-hung-${ns().slice(-8)}`,
        serviceAccountDir: saDir,
        apiServer: new URL(`https://127.0.0.1:${port}`),
      });
      await eventually(async () => sockets.size > 0, 30_000, 100);
      const stopped = await tick.stop(20);
      // 128 + 15: ended by SIGTERM, as without PID 1's ignoring it; not SIGKILL (137) after 20 s.
      expect(stopped.code).toBe(143);
      expect(stopped.ms).toBeLessThan(5_000);
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
    }
  });
});
