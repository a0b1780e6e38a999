// kubectl as users run it against snapcron, on the real API server: the kubectl of the same
// Kubernetes version as the control plane (hack/build-kubectl.sh), through `npm run kubectl --`
// too (hack/kubectl.ts), with the CRD's printer columns, field docs, status and events, the
// plugin, and the shipped example manifests.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import type { SnapshotSchedule } from '../../src/api/types.generated.ts';
import {
  boundPvc,
  createSchedule,
  eventually,
  getSchedule,
  kubeconfigPath,
  listSnapshots,
  setSnapshotStatus,
  useNamespace,
} from '../env/kube.ts';
import { kubectlBinary, pluginDir, runKubectl } from '../env/kubectl.ts';
import { startController } from '../env/processes.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLES = 'deploy/examples/snapshotschedules.yaml';

/** The CRD's schema node at a dotted path under the SnapshotSchedule, e.g. `spec.retention`. */
function crdField(path: string): { description: string; properties: Record<string, unknown> } {
  const crd = parse(readFileSync(join(ROOT, 'crds/snapcron.io_snapshotschedules.yaml'), 'utf8')) as {
    spec: { versions: { schema: { openAPIV3Schema: unknown } }[] };
  };
  let node = crd.spec.versions[0]?.schema.openAPIV3Schema as { properties: Record<string, unknown> };
  for (const key of path.split('.')) node = node.properties[key] as typeof node;
  return node as { description: string; properties: Record<string, unknown> };
}

const words = (text: string): string => text.replace(/\s+/g, ' ').trim();

/** Runs a command from the repository root (npm, node), as a user at a shell would. */
function sh(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.once('exit', (code) => resolve({ code, out, err }));
  });
}

describe('kubectl (v1.36.3, built like the control plane) against snapcron', () => {
  let plugins: string;
  beforeAll(() => {
    plugins = pluginDir();
  });
  afterAll(() => rmSync(plugins, { recursive: true, force: true }));

  describe('a schedule the controller has run', () => {
    const ns = useNamespace('kubectl');
    let schedule: SnapshotSchedule;

    /** Runs the controller until the schedule has fired and counted a ready snapshot, then stops it, freezing the status. */
    async function runSchedule(): Promise<void> {
      await boundPvc(ns(), 'web-0', { app: 'web' });
      await createSchedule(ns(), 'web', {
        schedule: '*/2 * * * * *',
        timeZone: 'Asia/Shanghai',
        claimSelector: { matchLabels: { app: 'web' } },
        retention: { maxCount: 5 },
      });
      const ctl = startController(ns());
      const first = await eventually(async () => (await listSnapshots(ns()))[0], 20_000);
      // As the CSI snapshotter would: the snapshot's data is cut and it is ready.
      await setSnapshotStatus(ns(), first.metadata.name ?? '', {
        readyToUse: true,
        creationTime: new Date().toISOString(),
        restoreSize: '1Gi',
      });
      await eventually(
        async () => ((await getSchedule(ns(), 'web')).status?.snapshots?.ready ?? 0) >= 1,
        20_000,
      );
      expect(await ctl.kill()).toBe(0);
      schedule = await getSchedule(ns(), 'web');
    }

    it('get snapsched shows the printer columns with the real status values', async () => {
      await runSchedule();
      const r = await runKubectl(['get', 'snapsched', '-n', ns()], plugins);
      expect(r.code, r.err).toBe(0);
      const [header, row, ...rest] = r.out.trimEnd().split('\n');
      expect(rest).toEqual([]);
      // The CRD's additionalPrinterColumns, in order.
      expect(header?.split(/\s{2,}/)).toEqual([
        'NAME',
        'SCHEDULE',
        'TIMEZONE',
        'SUSPEND',
        'LAST',
        'NEXT',
        'READY',
        'AGE',
      ]);
      // Columns are separated by at least two spaces; the schedule itself holds single ones.
      const cells = row?.split(/\s{2,}/) ?? [];
      const status = schedule.status;
      expect(cells.slice(0, 4)).toEqual(['web', '*/2 * * * * *', 'Asia/Shanghai', 'false']);
      expect(status?.lastScheduleTime).toBeDefined();
      expect(cells[4]).toMatch(/^\d+s$/); // a date column: shown as an age
      expect(cells[5]).toBe(status?.nextScheduleTime);
      expect(Number(cells[6])).toBe(status?.snapshots?.ready);
      expect(Number(cells[6])).toBeGreaterThanOrEqual(1);
      expect(cells[7]).toMatch(/^\d+s$/);

      // The same table through `npm run kubectl --` (what the README and the demo print).
      const viaNpm = await sh('npm', ['run', '-s', 'kubectl', '--', 'get', 'snapsched', '-n', ns()], {
        ...process.env,
        KUBECONFIG: kubeconfigPath(),
      });
      expect(viaNpm.code, viaNpm.err).toBe(0);
      expect(viaNpm.out.split('\n')[0]).toBe(header);
      expect(
        viaNpm.out
          .split('\n')[1]
          ?.split(/\s{2,}/)
          .slice(0, 4),
      ).toEqual(cells.slice(0, 4));
    });

    it('describe shows the spec, the status and the events of the runs', async () => {
      await runSchedule();
      const r = await runKubectl(['describe', 'snapshotschedule', 'web', '-n', ns()], plugins);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/^Name:\s+web$/m);
      expect(r.out).toMatch(/^Kind:\s+SnapshotSchedule$/m);
      expect(r.out).toMatch(/^\s+Schedule:\s+\*\/2 \* \* \* \* \*$/m);
      expect(r.out).toMatch(/^Status:$/m);
      expect(r.out).toMatch(
        new RegExp(`^\\s+Next Schedule Time:\\s+${schedule.status?.nextScheduleTime ?? 'missing'}$`, 'm'),
      );
      expect(r.out).toMatch(/^\s+Last Schedule Time:\s+\d{4}-\d\d-\d\dT/m);
      expect(r.out).toMatch(
        new RegExp(`^\\s+Ready:\\s+${schedule.status?.snapshots?.ready ?? 'missing'}$`, 'm'),
      );
      // Events, from the controller's recorder.
      const events = r.out.slice(r.out.indexOf('\nEvents:'));
      expect(events).toMatch(/Normal\s+SnapshotsCreated\s+.*created 1 VolumeSnapshot\(s\) for the run of /);
    });
  });

  it('explain prints the CRD field descriptions', async () => {
    const r = await runKubectl(['explain', 'snapshotschedule.spec.retention'], plugins);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^GROUP:\s+snapcron\.io$/m);
    expect(r.out).toMatch(/^KIND:\s+SnapshotSchedule$/m);
    expect(r.out).toMatch(/^FIELD:\s+retention <Object>$/m);
    const retention = crdField('spec.retention');
    expect(words(r.out)).toContain(words(retention.description));
    for (const field of Object.keys(retention.properties))
      expect(r.out).toMatch(new RegExp(`^\\s+${field}\\s+<`, 'm'));
    const maxCount = await runKubectl(['explain', 'snapshotschedule.spec.retention.maxCount'], plugins);
    expect(words(maxCount.out)).toContain(words(crdField('spec.retention.maxCount').description));
  });

  it('kubectl snapcron: the plugin answers help and works offline', async () => {
    const help = await runKubectl(['snapcron', '--help'], plugins);
    expect(help.code, help.err).toBe(0);
    for (const sub of ['next', 'validate', 'plan', 'controller', 'tick', 'restore', 'report'])
      expect(help.out).toContain(`snapcron ${sub}`);
    const next = await runKubectl(
      [
        'snapcron',
        'next',
        '0 2 * * *',
        '--tz',
        'Asia/Shanghai',
        '--from',
        '2026-01-01T00:00:00Z',
        '--count',
        '1',
      ],
      plugins,
    );
    expect(next.code, next.err).toBe(0);
    expect(next.out.trim()).toBe('2026-01-01T18:00:00Z  2026-01-02 02:00:00 +08:00');
    // Through `npm run kubectl --`, which puts this checkout's plugin on the PATH itself.
    const viaNpm = await sh('npm', ['run', '-s', 'kubectl', '--', 'snapcron', 'next', '--help'], {
      ...process.env,
      KUBECONFIG: kubeconfigPath(),
    });
    expect(viaNpm.code, viaNpm.err).toBe(0);
    expect(viaNpm.out).toMatch(/^Usage: snapcron next/);
  });

  it('apply -f deploy/examples/snapshotschedules.yaml is accepted as written', async () => {
    const names = parseAllDocuments(readFileSync(join(ROOT, EXAMPLES), 'utf8')).map(
      (d) => (d.toJS() as { metadata: { name: string } }).metadata.name,
    );
    expect(names.length).toBeGreaterThan(0);
    try {
      const r = await runKubectl(['apply', '-f', join(ROOT, EXAMPLES)], plugins);
      expect(r.code, r.err).toBe(0);
      expect(r.err).toBe('');
      expect(r.out.trim().split('\n').sort()).toEqual(
        names.map((n) => `snapshotschedule.snapcron.io/${n} created`).sort(),
      );
      // Stored with the schema's defaults applied (timeZone defaults to UTC).
      const got = await runKubectl(
        [
          'get',
          'snapsched',
          '-n',
          'default',
          ...names,
          '-o',
          'jsonpath={range .items[*]}{.metadata.name}={.spec.timeZone}{"\\n"}{end}',
        ],
        plugins,
      );
      expect(got.code, got.err).toBe(0);
      expect(got.out).toContain('web-nightly=Asia/Shanghai');
      expect(got.out).toContain('demo-fast=UTC');
      // Applying again changes nothing.
      const again = await runKubectl(['apply', '-f', join(ROOT, EXAMPLES)], plugins);
      expect(
        again.out
          .trim()
          .split('\n')
          .every((l) => l.endsWith(' unchanged')),
      ).toBe(true);
    } finally {
      await runKubectl(['delete', '-f', join(ROOT, EXAMPLES), '--ignore-not-found'], plugins);
    }
  });

  it('npm run kubectl uses the running `npm run cluster:up` cluster when no KUBECONFIG is set', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snapcron-kubectl-state-'));
    try {
      // What hack/cluster.ts records while it runs; this process stands in for its pid.
      const state = join(dir, 'state.json');
      writeFileSync(state, JSON.stringify({ pid: process.pid, kubeconfig: kubeconfigPath(), server: '' }));
      // HOME without ~/.kube/config; the kubectl already built.
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        SNAPCRON_CLUSTER_STATE: state,
        HOME: dir,
        SNAPCRON_KUBECTL: kubectlBinary(),
      };
      delete env.KUBECONFIG;
      const r = await sh(
        'npm',
        ['run', '-s', 'kubectl', '--', 'get', 'crd', 'snapshotschedules.snapcron.io', '-o', 'name'],
        env,
      );
      expect(r.code, r.err).toBe(0);
      expect(r.out.trim()).toBe(
        'customresourcedefinition.apiextensions.k8s.io/snapshotschedules.snapcron.io',
      );
      // A stopped cluster (its pid gone) is not used.
      writeFileSync(state, JSON.stringify({ pid: 2 ** 22 + 1, kubeconfig: kubeconfigPath(), server: '' }));
      const stale = await sh(process.execPath, [join(ROOT, 'hack/kubectl.ts'), 'get', 'ns'], env);
      expect(stale.code).not.toBe(0);
      expect(stale.err).toMatch(/no cluster: start one with `npm run cluster:up`, or set KUBECONFIG/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The demo's closing hint names this alias; keep them together.
it('the demo prints `npm run -s kubectl --` commands, and package.json defines that script', () => {
  const demo = readFileSync(join(ROOT, 'hack/demo.ts'), 'utf8');
  expect(demo).toContain("'  npm run -s kubectl -- get snapsched,volumesnapshots,pvc'");
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  expect(pkg.scripts.kubectl).toBe('node hack/kubectl.ts');
});
