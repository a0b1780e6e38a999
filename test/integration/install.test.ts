/**
 * The installed form, as a user installs it: every kustomize render (deploy/base and each
 * overlay) and every Helm chart render (defaults and each value switched on) is applied with
 * the built kubectl's `apply --server-side` to a real API server of its own and accepted, then
 * deleted with nothing left behind; `helm install`/`helm uninstall` run with the built helm;
 * `helm lint` passes; and each overlay and the chart with the matching value render the same
 * objects. Its own control plane, because these installs create and delete the CRD that the
 * other test files' control plane needs.
 */
import {
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { ControlPlane, snapshotCrdDir } from '../../dev/control-plane.ts';
import { subcommands } from '../../src/cli/main.ts';
import { parseCommand } from '../../src/cli/options.ts';
import { helmBinary, runTool, type Ran } from '../env/helm.ts';
import { kubectlBinary } from '../env/kubectl.ts';
import { eventually } from '../env/kube.ts';
import { hackScriptOutput } from '../../dev/hack-script.ts';

const CHART = 'deploy/helm/snapcron';
const NS = 'snapcron-system';
const CRD = 'snapshotschedules.snapcron.io';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

const parseObjects = (text: string): Obj[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => !!o?.kind);
const keyOf = (o: Obj): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const byKey = (objs: Obj[]): Map<string, Obj> => new Map(objs.map((o) => [keyOf(o), o]));
interface PodSpec {
  containers: { args?: string[] }[];
}
/** The pod spec of a Deployment or CronJob. */
const podSpec = (o: Obj): PodSpec | undefined => {
  const spec = o.spec as
    { template?: { spec?: PodSpec }; jobTemplate?: { spec: { template: { spec: PodSpec } } } } | undefined;
  return spec?.jobTemplate?.spec.template.spec ?? spec?.template?.spec;
};

/** Each overlay and the chart values that render the same objects (less the Namespace). */
const PAIRS: [dir: string, sets: string[]][] = [
  ['deploy/base', []],
  ['deploy/overlays/cronjob', ['mode=cronjob']],
  ['deploy/overlays/cert-manager', ['certManager.enabled=true']],
  ['deploy/overlays/monitoring', ['monitoring.enabled=true']],
  ['deploy/overlays/ack', ['ack.enabled=true']],
  // The overlay's placeholder range, which the chart has no default for.
  [
    'deploy/overlays/network-policy',
    ['networkPolicy.enabled=true', 'networkPolicy.apiServerCIDR=192.0.2.0/24'],
  ],
];
/** Chart renders that no overlay mirrors. */
const CHART_ONLY: string[][] = [
  ['webhook.enabled=false'],
  [
    'certManager.enabled=true',
    'monitoring.enabled=true',
    'ack.enabled=true',
    'replicas=3',
    'networkPolicy.enabled=true',
    'networkPolicy.apiServerCIDR=10.0.0.0/8',
  ],
  // No pods to guard in cronjob mode: no policy, so no range needed.
  ['mode=cronjob', 'networkPolicy.enabled=true'],
];

describe('install: kustomize and Helm renders on a real API server', () => {
  let cp: ControlPlane;
  let kubectlBin: string;
  let helmBin: string;
  let dir: string;
  // Each call is bounded (the deletes' own --timeout=90s comes first), so a stall fails as its
  // step, with what the cluster looked like (diagnoseOnFailure), not as the test's timeout.
  const STEP_MS = 100_000;
  /** A test of several bounded steps: past the longest step, so the step's failure is the one told. */
  const STEPS_MS = 5 * STEP_MS;
  const kubectl = (...args: string[]): Promise<Ran> =>
    runTool(kubectlBin, args, cp.kubeconfigPath, undefined, STEP_MS);
  const helm = (...args: string[]): Promise<Ran> =>
    runTool(helmBin, args, cp.kubeconfigPath, undefined, STEP_MS);
  let failed = false;
  /** On failure: the namespace's state (its conditions name what is left), what it holds, and the controller manager's log. */
  const diagnoseOnFailure = (): void =>
    onTestFailed(async () => {
      failed = true;
      const text = async (...args: string[]): Promise<string> => {
        const r = await runTool(kubectlBin, args, cp.kubeconfigPath, undefined, 15_000);
        return `$ kubectl ${args.join(' ')}\n${r.out}${r.err}`;
      };
      let kcm: string;
      try {
        kcm = readFileSync(join(cp.dir, 'kube-controller-manager.log'), 'utf8').slice(-8_000);
      } catch (e) {
        kcm = String(e);
      }
      console.error(
        [
          await text('get', 'namespace', NS, '-o', 'yaml', '--ignore-not-found'),
          await text('get', 'all,events', '-n', NS, '--ignore-not-found'),
          await text('get', 'crd', CRD, '-o', 'jsonpath={.status.conditions}', '--ignore-not-found'),
          `--- kube-controller-manager.log (tail) ---\n${kcm}`,
        ].join('\n'),
      );
    });
  const ok = (r: Ran, what: string): string => {
    expect(r.code, `${what} failed:\n${r.err}${r.out}`).toBe(0);
    return r.out;
  };

  const kustomize = async (path: string): Promise<Obj[]> =>
    parseObjects(ok(await kubectl('kustomize', path), `kubectl kustomize ${path}`));
  /** `helm template` as against a cluster that serves VolumeGroupSnapshots (as the test's does), unless told otherwise. */
  const template = async (
    sets: string[],
    namespace = NS,
    apiVersions = ['groupsnapshot.storage.k8s.io/v1/VolumeGroupSnapshotClass'],
  ): Promise<{ text: string; objects: Obj[] }> => {
    const text = ok(
      await helm(
        'template',
        'snapcron',
        CHART,
        '-n',
        namespace,
        '--include-crds',
        ...apiVersions.flatMap((v) => ['--api-versions', v]),
        ...sets.flatMap((s) => ['--set', s]),
      ),
      `helm template ${sets.join(' ')}`,
    );
    return { text, objects: parseObjects(text) };
  };

  /** `kubectl get -f FILE` (or -k DIR): the names of the objects that exist. */
  const existing = async (...source: string[]): Promise<string[]> =>
    ok(await kubectl('get', ...source, '--ignore-not-found', '-o', 'name'), 'kubectl get')
      .split('\n')
      .filter(Boolean);

  /**
   * Waits until the API server lists the schedules as the CRD's deletion finalizer does (no
   * limit, no resourceVersion). Deleting a CRD whose storage is still initializing leaves it
   * Terminating: its finalizer fails with "could not list instances: storage is (re)initializing"
   * and retries with an exponential backoff, past the 90 s delete (CI saw it on a loaded machine).
   */
  const crdServed = (): Promise<true> =>
    eventually(
      async () => {
        const r = await kubectl('get', '--raw', '/apis/snapcron.io/v1/snapshotschedules');
        if (r.code !== 0) throw new Error(`list snapshotschedules (the new CRD served): ${r.err}${r.out}`);
        return true;
      },
      60_000,
      250,
    );

  /** Applies server-side, checks every object was accepted and exists, deletes, checks none is left. */
  const applyAndDelete = async (
    source: string[],
    objects: Obj[],
    before?: () => Promise<void>,
  ): Promise<void> => {
    diagnoseOnFailure();
    await before?.();
    const applied = ok(
      await kubectl('apply', '--server-side', '--field-manager=install-test', ...source),
      'apply',
    )
      .trim()
      .split('\n');
    expect(applied).toHaveLength(objects.length);
    for (const line of applied) expect(line).toMatch(/ serverside-applied$/);
    expect(await existing(...source)).toHaveLength(objects.length);
    if (objects.some((o) => o.kind === 'CustomResourceDefinition')) await crdServed();
    ok(await kubectl('delete', ...source, '--wait=true', '--timeout=90s'), 'delete');
    // The chart renders no Namespace (helm's --create-namespace makes it): remove it here.
    ok(
      await kubectl('delete', 'namespace', NS, '--ignore-not-found', '--wait=true', '--timeout=90s'),
      'delete ns',
    );
    expect(await existing(...source)).toEqual([]);
  };

  beforeAll(async () => {
    kubectlBin = kubectlBinary();
    helmBin = helmBinary();
    dir = mkdtempSync(join(tmpdir(), 'snapcron-install-'));
    cp = await ControlPlane.start({ installCrds: false });
    // The CRDs the overlays' objects need: the snapshot and group snapshot CRDs
    // (VolumeSnapshotClass, VolumeGroupSnapshotClass) and prometheus-operator's and
    // cert-manager's, from their Go modules (hack/addon-crds.sh).
    const addon = hackScriptOutput('hack/addon-crds.sh');
    const files = [
      ...readdirSync(snapshotCrdDir())
        .filter((f) => /^(group)?snapshot\.storage\.k8s\.io_/.test(f))
        .map((f) => join(snapshotCrdDir(), f)),
      ...readdirSync(addon)
        .filter((f) => f.endsWith('.yaml'))
        .map((f) => join(addon, f)),
    ];
    ok(await kubectl('apply', '--server-side', ...files.flatMap((f) => ['-f', f])), 'addon CRDs');
    ok(
      await kubectl('wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s'),
      'CRDs established',
    );
  }, 600_000);

  afterAll(async () => {
    await cp?.stop({ keepLogs: failed });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the chart holds no copy to drift: its CRD and monitoring files are symlinks to the ones kustomize uses', () => {
    for (const [link, target] of [
      [`${CHART}/crds/snapcron.io_snapshotschedules.yaml`, 'crds/snapcron.io_snapshotschedules.yaml'],
      [`${CHART}/files/prometheusrule.yaml`, 'deploy/overlays/monitoring/prometheusrule.yaml'],
      [`${CHART}/files/dashboard.json`, 'deploy/overlays/monitoring/dashboard.json'],
    ] as const) {
      expect(lstatSync(link).isSymbolicLink(), `${link} must be a symlink`).toBe(true);
      expect(realpathSync(link)).toBe(realpathSync(resolve(target)));
    }
  });

  it('helm lint passes with the defaults and with every value switched on', async () => {
    for (const sets of [[], ...PAIRS.map(([, s]) => s), ...CHART_ONLY]) {
      const out = ok(
        await helm('lint', '--strict', CHART, ...sets.flatMap((s) => ['--set', s])),
        `helm lint ${sets.join(' ')}`,
      );
      expect(out).toContain('1 chart(s) linted, 0 chart(s) failed');
    }
    const bad = await helm('template', 'snapcron', CHART, '--set', 'mode=daemon');
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain('mode: "daemon" is neither controller nor cronjob');
  });

  it('neither the base, the chart defaults nor any other overlay has a NetworkPolicy: the webhook works on any cluster unedited', async () => {
    const kinds = (objs: Obj[]): string[] => objs.map((o) => o.kind);
    expect(kinds(await kustomize('deploy/base'))).not.toContain('NetworkPolicy');
    expect(kinds((await template([])).objects)).not.toContain('NetworkPolicy');
    expect(kinds((await template(['mode=cronjob', 'networkPolicy.enabled=true'])).objects)).not.toContain(
      'NetworkPolicy',
    );
    for (const [path] of PAIRS.filter(([p]) => p !== 'deploy/overlays/network-policy'))
      expect(kinds(await kustomize(path)), path).not.toContain('NetworkPolicy');
    // The overlay adds the policy and nothing else.
    const base = byKey(await kustomize('deploy/base'));
    const withPolicy = byKey(await kustomize('deploy/overlays/network-policy'));
    expect([...withPolicy.keys()].filter((k) => !base.has(k))).toEqual([
      `NetworkPolicy/${NS}/snapcron-controller`,
    ]);
    for (const [key, o] of base) expect(withPolicy.get(key), key).toEqual(o);
  });

  it('helm install with networkPolicy.enabled=true and no apiServerCIDR fails, naming the value, before creating the release or the namespace', async () => {
    // What an install with a range would create: none of it may exist after a refused one.
    const { text } = await template(['networkPolicy.enabled=true', 'networkPolicy.apiServerCIDR=10.0.0.0/8']);
    const file = join(dir, 'refused.yaml');
    writeFileSync(file, text);
    try {
      for (const set of [
        'networkPolicy.enabled=true',
        'networkPolicy.enabled=true,networkPolicy.apiServerCIDR=',
      ]) {
        const refused = await helm(
          'install',
          'snapcron',
          CHART,
          '-n',
          NS,
          '--create-namespace',
          '--set',
          set,
        );
        expect(refused.code, `${set}:\n${refused.out}`).not.toBe(0);
        expect(refused.err).toContain(
          'networkPolicy.apiServerCIDR is required when networkPolicy.enabled=true',
        );
        expect(ok(await helm('list', '-A', '-q'), 'helm list').trim()).toBe('');
        expect(await existing('namespace', NS)).toEqual([]);
        // Helm applies crds/ before it renders the templates, so only the CRD may be there.
        expect((await existing('-f', file)).filter((n) => !n.startsWith('customresourcedefinition'))).toEqual(
          [],
        );
      }
    } finally {
      ok(await kubectl('delete', 'crd', CRD, '--ignore-not-found', '--wait=true'), 'delete CRD');
    }
  });

  it.each(PAIRS)('%s and the chart with %j render the same objects', async (path, sets) => {
    const kustomized = await kustomize(path);
    const { objects } = await template(sets);
    // The one object only kustomize renders: helm install makes the namespace (--create-namespace).
    const namespaces = kustomized.filter((o) => o.kind === 'Namespace');
    expect(namespaces.map((o) => o.metadata.name)).toEqual([NS]);
    const fromKustomize = byKey(kustomized.filter((o) => o.kind !== 'Namespace'));
    const fromHelm = byKey(objects);
    expect([...fromHelm.keys()].sort()).toEqual([...fromKustomize.keys()].sort());
    for (const [key, o] of fromKustomize) {
      if (!isDeepStrictEqual(fromHelm.get(key), o)) expect(fromHelm.get(key), key).toEqual(o);
    }
  });

  it('the base is hardened and highly available as the README says', async () => {
    const objects = byKey(await kustomize('deploy/base'));
    const deployment = objects.get(`Deployment/${NS}/snapcron-controller`) as unknown as {
      spec: {
        replicas: number;
        template: {
          spec: {
            securityContext: Record<string, unknown>;
            topologySpreadConstraints: unknown[];
            containers: Record<string, unknown>[];
          };
        };
      };
    };
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec;
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.topologySpreadConstraints.length).toBeGreaterThan(0);
    expect(pod.containers[0]).toMatchObject({
      readinessProbe: { httpGet: { path: '/readyz', port: 'metrics' } },
      livenessProbe: { httpGet: { path: '/healthz', port: 'metrics' } },
      resources: { requests: { cpu: '50m', memory: '160Mi' }, limits: { memory: '512Mi' } },
      securityContext: {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      },
    });
    expect(objects.get(`PodDisruptionBudget/${NS}/snapcron-controller`)).toMatchObject({
      spec: { minAvailable: 1 },
    });
    for (const key of [
      `Service/${NS}/snapcron-webhook`,
      'MutatingWebhookConfiguration//snapcron-restore',
      `CustomResourceDefinition//${CRD}`,
    ])
      expect(objects.has(key), key).toBe(true);

    const cronjob = byKey(await kustomize('deploy/overlays/cronjob'));
    expect([...cronjob.values()].map((o) => o.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'CronJob',
      'CustomResourceDefinition',
      'Namespace',
      'ServiceAccount',
    ]);
    const ack = byKey(await kustomize('deploy/overlays/ack'));
    // README: deletionPolicy Delete, and the seed's forceDelete left out (the driver ignores it).
    const snapClass = ack.get('VolumeSnapshotClass//default-snapclass');
    expect(snapClass).toMatchObject({ driver: 'diskplugin.csi.alibabacloud.com', deletionPolicy: 'Delete' });
    expect(JSON.stringify(snapClass)).not.toMatch(/forceDelete/);
    // The group class for spec.group: v1, deleted with its groups, no parameters (none is needed,
    // and the driver refuses retentionDays on groups), and not a default class.
    const groupClass = ack.get('VolumeGroupSnapshotClass//default-groupsnapclass');
    expect(groupClass).toMatchObject({
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      driver: 'diskplugin.csi.alibabacloud.com',
      deletionPolicy: 'Delete',
    });
    expect(groupClass).not.toHaveProperty('parameters');
    expect(groupClass?.metadata.annotations).toBeUndefined();
    expect(
      (await template(['ack.enabled=true', 'ack.groupSnapshotClassName='])).objects.map((o) => o.kind),
    ).not.toContain('VolumeGroupSnapshotClass');
    // A cluster without groupsnapshot.storage.k8s.io/v1: the chart leaves the class out, so the
    // install does not fail on a kind the API server does not know.
    expect((await template(['ack.enabled=true'], NS, [])).objects.map((o) => o.kind)).not.toContain(
      'VolumeGroupSnapshotClass',
    );
    expect(ack.get(`ServiceAccount/${NS}/snapcron`)?.metadata.annotations).toEqual({
      'pod-identity.alibabacloud.com/role-name': 'snapcron',
    });
    expect(ack.get(`Namespace//${NS}`)?.metadata.labels).toMatchObject({
      'pod-identity.alibabacloud.com/injection': 'on',
    });
    const monitoring = byKey(await kustomize('deploy/overlays/monitoring'));
    expect(monitoring.get(`ServiceMonitor/${NS}/snapcron`)).toMatchObject({
      spec: { endpoints: [{ port: 'metrics', honorLabels: true }] },
    });
    expect(monitoring.has(`Service/${NS}/snapcron-metrics`)).toBe(true);
    expect(monitoring.has(`PrometheusRule/${NS}/snapcron`)).toBe(true);
    expect(monitoring.get(`ConfigMap/${NS}/snapcron-dashboard`)?.metadata.labels).toMatchObject({
      grafana_dashboard: '1',
    });
    const certManager = byKey(await kustomize('deploy/overlays/cert-manager'));
    expect(certManager.get('MutatingWebhookConfiguration//snapcron-restore')?.metadata.annotations).toEqual({
      'cert-manager.io/inject-ca-from': `${NS}/snapcron-webhook`,
    });
    expect(JSON.stringify(certManager.get(`Deployment/${NS}/snapcron-controller`))).toContain(
      '--webhook-cert-dir=/tls',
    );
    expect(
      [...certManager.keys()].filter((k) => k.includes('webhook-tls') || k.includes('cabundle')),
    ).toEqual([]);
  });

  it('the chart in another namespace points the webhook and bindings there', async () => {
    const { objects } = await template([], 'backup');
    const all = byKey(objects);
    expect(JSON.stringify(all.get('Deployment/backup/snapcron-controller'))).toContain(
      '--webhook-dns-names=snapcron-webhook.backup.svc',
    );
    expect(JSON.stringify(all.get('MutatingWebhookConfiguration//snapcron-restore'))).toContain(
      '"namespace":"backup"',
    );
    expect(JSON.stringify(all.get('ClusterRoleBinding//snapcron'))).toContain('"namespace":"backup"');
    expect(objects.some((o) => o.metadata.namespace && o.metadata.namespace !== 'backup')).toBe(false);
  });

  it('every render passes its containers only options snapcron knows', async () => {
    const renders: Obj[][] = [];
    for (const [path] of PAIRS) renders.push(await kustomize(path));
    for (const sets of [...PAIRS.map(([, sets]) => sets), ...CHART_ONLY])
      renders.push((await template(sets)).objects);
    renders.push((await template([], 'backup')).objects);
    let checked = 0;
    for (const o of renders.flat()) {
      const spec = podSpec(o);
      for (const { args = [] } of spec?.containers ?? []) {
        const [name, ...rest] = args;
        const sub = subcommands.find((c) => c.command.name === name);
        expect(sub, `${keyOf(o)}: unknown subcommand ${name}`).toBeDefined();
        if (sub)
          expect(() => parseCommand(sub.command, rest), `${keyOf(o)}: ${args.join(' ')}`).not.toThrow();
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(renders.length);
  });

  it('webhook.enabled=false renders no webhook objects and turns the server off', async () => {
    const { objects } = await template(['webhook.enabled=false']);
    expect(objects.filter((o) => /webhook|restore/.test(o.metadata.name))).toEqual([]);
    expect(JSON.stringify(byKey(objects).get(`Deployment/${NS}/snapcron-controller`))).toContain(
      '--webhook-addr=off',
    );
  });

  it.each(PAIRS.map(([path]) => path))(
    'kubectl apply --server-side -k %s is accepted and deletes cleanly',
    async (path) => {
      const objects = await kustomize(path);
      await applyAndDelete(['-k', path], objects);
    },
    STEPS_MS,
  );

  it.each([[], ...PAIRS.slice(1).map(([, s]) => s), ...CHART_ONLY].map((sets) => ({ sets })))(
    'helm template --set $sets applied with kubectl apply --server-side is accepted and deletes cleanly',
    async ({ sets }) => {
      const { text, objects } = await template(sets);
      const file = join(dir, `render-${sets.join('_').replace(/[^a-z0-9_]/gi, '-') || 'default'}.yaml`);
      writeFileSync(file, text);
      await applyAndDelete(['-f', file], objects, async () => {
        ok(await kubectl('create', 'namespace', NS), 'create namespace');
      });
    },
    STEPS_MS,
  );

  it.each(
    [[], ['certManager.enabled=true', 'monitoring.enabled=true', 'ack.enabled=true'], ['mode=cronjob']].map(
      (sets) => ({
        sets,
      }),
    ),
  )(
    'helm install and uninstall with --set $sets',
    async ({ sets }) => {
      diagnoseOnFailure();
      // One --set with commas, as the README's line has it.
      const setArgs = sets.length > 0 ? ['--set', sets.join(',')] : [];
      const install = ok(
        await helm('install', 'snapcron', CHART, '-n', NS, '--create-namespace', ...setArgs),
        'helm install',
      );
      expect(install).toMatch(/STATUS: deployed/);
      const { text, objects } = await template(sets);
      const file = join(dir, 'installed.yaml');
      writeFileSync(file, text);
      expect((await existing('-f', file)).length).toBe(objects.length);
      ok(await helm('uninstall', 'snapcron', '-n', NS, '--wait', '--timeout=90s'), 'helm uninstall');
      // Helm never deletes CRDs (README says so): everything else is gone.
      expect(await existing('-f', file)).toEqual([`customresourcedefinition.apiextensions.k8s.io/${CRD}`]);
      await crdServed();
      ok(await kubectl('delete', 'crd', CRD, '--wait=true', '--timeout=90s'), 'delete CRD');
      ok(await kubectl('delete', 'namespace', NS, '--wait=true', '--timeout=90s'), 'delete namespace');
    },
    STEPS_MS,
  );
});
