/**
 * `snapcron report` on the real control plane with the CSI stack: snapshots made ready by
 * the real snapshot-controller and csi-snapshotter, one failing in the driver for real, one
 * stuck with a class no driver serves, one read by a restore in progress, PVCs with and
 * without schedules. Checked field by field, with --fail-on's exit codes, as a table, through
 * a real kubectl (plugin and offline files), for its LIST calls, and as a page in Chromium.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VolumeSnapshot } from '../../src/api/objects.ts';
import type { Report } from '../../src/report/model.ts';
import { fireTimes, nextFireTimes, parseSchedule } from '../../src/schedule/cron.ts';
import { snapshotMetadata, snapshotName } from '../../src/snapshot/naming.ts';
import { requestCount } from '../env/apiserver-metrics.ts';
import { Browser, chromiumPath } from '../env/browser.ts';
import { CsiStack, SNAPSHOT_CLASS, STORAGE_CLASS } from '../../dev/csi-stack.ts';
import {
  createSchedule,
  deleteNamespaceAndWait,
  eventually,
  kube,
  kubeconfigPath,
  listSnapshots,
} from '../env/kube.ts';
import { pluginDir, runKubectl } from '../env/kubectl.ts';
import { recordingProxy } from '../env/recording-proxy.ts';
import { metrics, runCli, startController } from '../env/processes.ts';

const ARTIFACTS = join(import.meta.dirname, '../../test-artifacts');
const STUCK_CLASS = 'report-no-driver';
const iso = (t: Date | number): string => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
const HOUR = 3_600_000;

describe('snapcron report on a real control plane with the CSI stack', () => {
  let stack: CsiStack;
  let dir: string;
  let ns: string;
  let plugins: string;
  /** The report's clock: 90 minutes after the objects were made. */
  let now: Date;
  /** web-0's four ready snapshots, oldest first (by the cut time the CSI stack recorded). */
  let ready: VolumeSnapshot[];
  let stuck: VolumeSnapshot;
  let failed: VolumeSnapshot;
  let created: number;

  const k = () => kube();
  const report = async (...args: string[]) => runCli(['report', '-n', ns, '--now', iso(now), ...args]);
  const json = async (...args: string[]): Promise<Report> => {
    const r = await report('-o', 'json', ...args);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.out) as Report;
  };

  async function provision(name: string, labels: Record<string, string>): Promise<string> {
    await k().core.createNamespacedPersistentVolumeClaim({
      namespace: ns,
      body: {
        metadata: { name, labels },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: STORAGE_CLASS,
          resources: { requests: { storage: '1Gi' } },
        },
      },
    });
    const pvc = await eventually(async () => {
      const p = await k().core.readNamespacedPersistentVolumeClaim({ name, namespace: ns });
      return p.status?.phase === 'Bound' ? p : undefined;
    }, 60_000);
    const pv = await k().core.readPersistentVolume({ name: pvc.spec?.volumeName ?? '' });
    return pv.spec?.csi?.volumeHandle ?? '';
  }

  async function snapshot(pvc: string, at: Date, className: string): Promise<string> {
    const name = snapshotName(pvc, 'web', at);
    await k().custom.createNamespacedCustomObject({
      ...k().snapshots,
      namespace: ns,
      body: {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshot',
        metadata: { name, ...snapshotMetadata(pvc, 'web', at) },
        spec: { source: { persistentVolumeClaimName: pvc }, volumeSnapshotClassName: className },
      },
    });
    return name;
  }
  const byName = async (name: string): Promise<VolumeSnapshot> =>
    (await listSnapshots(ns)).find((s) => s.metadata.name === name) as VolumeSnapshot;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'snapcron-report-'));
    mkdirSync(ARTIFACTS, { recursive: true });
    stack = await CsiStack.start(kubeconfigPath(), dir);
    plugins = pluginDir();
    ns = `report-${Date.now().toString(36)}`;
    await k().core.createNamespace({ body: { metadata: { name: ns } } });
    // A snapshot class whose driver nobody runs: its snapshots stay not ready, without an error.
    await k()
      .custom.createClusterCustomObject({
        group: 'snapshot.storage.k8s.io',
        version: 'v1',
        plural: 'volumesnapshotclasses',
        body: {
          apiVersion: 'snapshot.storage.k8s.io/v1',
          kind: 'VolumeSnapshotClass',
          metadata: { name: STUCK_CLASS },
          driver: 'nobody.snapcron.io',
          deletionPolicy: 'Delete',
        },
      })
      .catch((err: { code?: number }) => {
        if (err.code !== 409) throw err;
      });

    created = Date.now();
    const web = { app: 'web' };
    const [, , broken] = await Promise.all([
      provision('web-0', web),
      provision('web-1', web),
      provision('broken-0', web),
      provision('db-0', { app: 'db' }),
      provision('scratch-0', {}),
    ]);
    // broken-0's volume loses its record in the driver: CreateSnapshot answers NOT_FOUND, for real.
    rmSync(`${stack.volumeDir(broken)}.json`);

    await createSchedule(ns, 'web', {
      schedule: '0 * * * *',
      claimSelector: { matchLabels: web },
      snapshotClassName: SNAPSHOT_CLASS,
      retention: { maxCount: 2, failedAfter: '10m', pendingDeadline: '30m' },
    });
    // Valid to the API server (every field in range), never fires: only code can tell.
    await createSchedule(ns, 'db', {
      schedule: '0 0 30 2 *',
      claimSelector: { matchLabels: { app: 'db' } },
      retention: { maxCount: 3 },
    });

    // Runs of the last hours, as the schedule names them.
    const runs = [...fireTimes(parseSchedule('0 * * * *'), created - 5 * HOUR, created)];
    const names = await Promise.all(runs.slice(-4).map((at) => snapshot('web-0', at, SNAPSHOT_CLASS)));
    const stuckName = await snapshot('web-1', runs.at(-1) as Date, STUCK_CLASS);
    const failedName = await snapshot('broken-0', runs.at(-1) as Date, SNAPSHOT_CLASS);
    await eventually(async () => {
      const all = await listSnapshots(ns);
      const done = all.filter((s) => names.includes(s.metadata.name ?? '') && s.status?.readyToUse);
      const err = all.find((s) => s.metadata.name === failedName)?.status?.error;
      return done.length === 4 && err !== undefined;
    }, 90_000);
    // The CSI stack decides the cut times; order by them, as retention does.
    // (creationTime has whole seconds; ties go by name, as the planner breaks them).
    ready = (await Promise.all(names.map(byName))).sort(
      (a, b) =>
        Date.parse(a.status?.creationTime ?? '') - Date.parse(b.status?.creationTime ?? '') ||
        ((a.metadata.name ?? '') < (b.metadata.name ?? '') ? -1 : 1),
    );
    const [oldest, second] = ready as [VolumeSnapshot, VolumeSnapshot];
    // The oldest is held; the second oldest is being restored into a PVC that stays Pending.
    await k().custom.patchNamespacedCustomObject({
      ...k().snapshots,
      namespace: ns,
      name: oldest.metadata.name ?? '',
      body: [{ op: 'add', path: '/metadata/labels/snapcron.io~1hold', value: 'true' }],
    });
    const ref = {
      apiGroup: 'snapshot.storage.k8s.io',
      kind: 'VolumeSnapshot',
      name: second.metadata.name ?? '',
    };
    await k().core.createNamespacedPersistentVolumeClaim({
      namespace: ns,
      body: {
        metadata: { name: 'restore-web-0', labels: web },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: 'report-no-such-class',
          resources: { requests: { storage: '1Gi' } },
          dataSource: ref,
          dataSourceRef: ref,
        },
      },
    });
    ready = await Promise.all(names.map(byName)).then((all) =>
      ready.map((r) => all.find((s) => s.metadata.name === r.metadata.name) as VolumeSnapshot),
    );
    stuck = await byName(stuckName);
    failed = await byName(failedName);
    // The status a controller would have written for the last run.
    const sched = (await k().custom.getNamespacedCustomObject({
      ...k().schedules,
      namespace: ns,
      name: 'web',
    })) as {
      metadata: Record<string, unknown>;
    };
    await k().custom.replaceNamespacedCustomObjectStatus({
      ...k().schedules,
      namespace: ns,
      name: 'web',
      body: {
        ...sched,
        status: { lastScheduleTime: iso(runs.at(-1) as Date), lastSuccessfulTime: iso(runs.at(-2) as Date) },
      },
    });
    now = new Date(Date.now() + 90 * 60_000);
  }, 600_000);

  afterAll(async () => {
    await deleteNamespaceAndWait(ns);
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(plugins, { recursive: true, force: true });
  });

  it('the objects are what the test needs: a driver error for real, a snapshot no driver takes', () => {
    expect(failed.status?.readyToUse).not.toBe(true);
    expect(failed.status?.error?.message).toMatch(/not found/i);
    expect(stuck.status?.readyToUse).not.toBe(true);
    expect(stuck.status?.error).toBeUndefined();
    for (const s of ready) expect(s.status?.restoreSize).toBeDefined();
  });

  it('reports every field of the JSON as the objects say', async () => {
    const r = await json();
    const [oldest, second, third, newest] = ready as [
      VolumeSnapshot,
      VolumeSnapshot,
      VolumeSnapshot,
      VolumeSnapshot,
    ];
    const cut = (s: VolumeSnapshot): string => iso(Date.parse(s.status?.creationTime ?? ''));
    const name = (s: VolumeSnapshot): string => s.metadata.name ?? '';
    const cron = parseSchedule('0 * * * *');
    const [next, , third3] = nextFireTimes(cron, now, 3) as [Date, Date, Date];

    expect(r).toMatchObject({ apiVersion: 'snapcron.io/v1', kind: 'RetentionReport', generatedAt: iso(now) });
    expect(r.scope).toEqual({ namespace: ns, schedule: null });
    expect(r.unprotected).toEqual([
      {
        namespace: ns,
        pvc: 'db-0',
        phase: 'Bound',
        storage: '1Gi',
        selectedBy: [{ schedule: 'db', why: 'invalid' }],
      },
      { namespace: ns, pvc: 'scratch-0', phase: 'Bound', storage: '1Gi', selectedBy: [] },
    ]);
    expect(r.schedules.map((s) => s.name)).toEqual(['db', 'web']);
    const [db, web] = r.schedules as [Report['schedules'][0], Report['schedules'][0]];
    expect(db).toMatchObject({
      suspended: false,
      nextFireTime: null,
      intervalSeconds: null,
      pvcs: [{ pvc: 'db-0' }],
    });
    expect(db.errors).toEqual([
      { path: 'spec.schedule', message: expect.stringMatching(/never fires/) as string },
    ]);

    const status = (await k().custom.getNamespacedCustomObject({
      ...k().schedules,
      namespace: ns,
      name: 'web',
    })) as {
      status: { lastScheduleTime: string; lastSuccessfulTime: string };
    };
    expect(web).toMatchObject({
      namespace: ns,
      name: 'web',
      schedule: '0 * * * *',
      timeZone: 'UTC',
      suspended: false,
      errors: [],
      lastScheduleTime: status.status.lastScheduleTime,
      lastSuccessfulTime: status.status.lastSuccessfulTime,
      nextFireTime: iso(next),
      intervalSeconds: 3600,
      counts: { ready: 4, pending: 0, stuck: 1, failed: 1 },
      restoreSizeBytes: 4 * 2 ** 30,
    });
    expect(web.retention).toMatchObject({ maxCount: 2, failedAfter: '10m', pendingDeadline: '30m' });
    expect(web.pvcs.map((p) => p.pvc)).toEqual(['broken-0', 'restore-web-0', 'web-0', 'web-1']);
    const [broken, restore, web0, web1] = web.pvcs as [
      (typeof web.pvcs)[0],
      (typeof web.pvcs)[0],
      (typeof web.pvcs)[0],
      (typeof web.pvcs)[0],
    ];

    // web-0: four ready; maxCount 2 would delete the two oldest, but one is held and a restore reads the other.
    expect(web0).toEqual({
      pvc: 'web-0',
      phase: 'Bound',
      selected: true,
      counts: { ready: 4, pending: 0, stuck: 0, failed: 0 },
      newestReady: {
        name: name(newest),
        time: cut(newest),
        ageSeconds: Math.floor((now.getTime() - Date.parse(newest.status?.creationTime ?? '')) / 1000),
      },
      oldestKept: { name: name(oldest), time: cut(oldest) },
      restoreSizeBytes: 4 * 2 ** 30,
      stale: false,
      protected: [
        { name: name(newest), time: cut(newest), reasons: ['min-ready'] },
        { name: name(second), time: cut(second), reasons: ['in-use'] },
        { name: name(oldest), time: cut(oldest), reasons: ['hold'] },
      ],
      // The next run's snapshot pushes the third newest past maxCount.
      nextDeletion: {
        at: iso(next),
        trigger: 'run',
        name: name(third),
        time: cut(third),
        reasons: ['max-count'],
        planned: false,
        count: 1,
      },
    });
    // web-1: its only snapshot is stuck, so it has no copy although the schedule fired; in three
    // runs the first of them is pushed out by maxCount (the stuck one is kept).
    expect(web1).toMatchObject({
      phase: 'Bound',
      counts: { ready: 0, pending: 0, stuck: 1, failed: 0 },
      newestReady: null,
      oldestKept: null,
      stale: true,
      protected: [{ name: name(stuck), reasons: ['stuck'] }],
      nextDeletion: {
        at: iso(third3),
        trigger: 'run',
        name: snapshotName('web-1', 'web', next),
        time: iso(next),
        reasons: ['max-count'],
        planned: true,
        count: 1,
      },
    });
    // broken-0: the driver's error has lasted past failedAfter: failed, deleted at the next pass.
    expect(broken).toMatchObject({
      counts: { ready: 0, pending: 0, stuck: 0, failed: 1 },
      stale: true,
      protected: [],
      nextDeletion: {
        at: iso(now),
        trigger: 'now',
        name: name(failed),
        reasons: ['failed'],
        planned: false,
        count: 1,
      },
    });
    // restore-web-0: selected, not Bound: nothing to snapshot yet, so not stale either.
    expect(restore).toMatchObject({
      phase: 'Pending',
      selected: true,
      stale: false,
      newestReady: null,
      nextDeletion: null,
    });

    expect(r.findings.map((f) => [f.kind, f.schedule, f.pvc, f.snapshots])).toEqual([
      ['unprotected', null, 'db-0', []],
      ['unprotected', null, 'scratch-0', []],
      ['invalid', 'db', null, []],
      ['stale', 'web', 'broken-0', []],
      ['stale', 'web', 'web-1', []],
      ['failed', 'web', 'broken-0', [name(failed)]],
      ['stuck', 'web', 'web-1', [name(stuck)]],
    ]);
    expect(r.findings.find((f) => f.kind === 'failed')?.message).toContain(
      failed.status?.error?.message ?? '?',
    );
    expect(r.totals).toEqual({
      schedules: 2,
      suspendedSchedules: 0,
      invalidSchedules: 1,
      pvcs: 6,
      unprotectedPvcs: 2,
      stalePvcs: 2,
      snapshots: { ready: 4, pending: 0, stuck: 1, failed: 1 },
      restoreSizeBytes: 4 * 2 ** 30,
      findings: { unprotected: 2, invalid: 1, stale: 2, failed: 1, stuck: 1 },
    });

    // --plan adds the planner's verdicts, newest first.
    const planned = await json('--plan');
    const verdicts = planned.schedules[1]?.pvcs.find((p) => p.pvc === 'web-0')?.snapshots;
    expect(verdicts?.map((v) => [v.name, v.verdict, v.reasons, v.overridden])).toEqual([
      [name(newest), 'keep', ['min-ready'], []],
      [name(third), 'keep', ['within-policy'], []],
      [name(second), 'keep', ['in-use'], ['max-count']],
      [name(oldest), 'keep', ['hold'], ['max-count']],
    ]);
  });

  it('--fail-on exits 2 on a finding of those kinds, one line each on stderr; 0 otherwise', async () => {
    const stale = await report('--fail-on', 'stale');
    expect(stale.code).toBe(2);
    expect(stale.err.trim().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(`^stale: PVC ${ns}/broken-0 \\(schedule ${ns}/web\\): no ready snapshot`),
      ) as string,
      expect.stringMatching(
        new RegExp(`^stale: PVC ${ns}/web-1 \\(schedule ${ns}/web\\): no ready snapshot`),
      ) as string,
      'snapcron report: 2 finding(s) of the kinds in --fail-on stale',
    ]);
    const codes = await Promise.all(
      [
        ['--fail-on', 'unprotected'],
        ['--fail-on', 'invalid'],
        ['--fail-on', 'failed'],
        ['--fail-on', 'stuck'],
        ['--schedule', 'web', '--fail-on', 'unprotected,invalid'],
        ['--schedule', 'db', '--fail-on', 'stale,failed,stuck'],
      ].map(async (args) => (await report(...args)).code),
    );
    expect(codes).toEqual([2, 2, 2, 2, 0, 0]);
  });

  it('prints a table a person can read: unprotected first, a row per PVC, findings, totals', async () => {
    const r = await report();
    expect(r.code).toBe(0);
    const out = r.out;
    expect(out.indexOf('Unprotected PVCs: 2')).toBeLessThan(out.indexOf(`Schedule ${ns}/db:`));
    expect(out).toMatch(new RegExp(`^  ${ns} +db-0 +Bound +1Gi +selected only by invalid schedule db$`, 'm'));
    expect(out).toMatch(new RegExp(`^Schedule ${ns}/web: 0 \\* \\* \\* \\* UTC, active, every 1h$`, 'm'));
    expect(out).toMatch(/^ {2}web-0 +Bound +4 +0 +0 +0 .* ok +\S+ at \S+ \(run: max-count\)$/m);
    expect(out).toMatch(/^ {2}web-1 +Bound +0 +0 +1 +0 .* STALE .*\(a future run's, taken /m);
    expect(out).toMatch(/^ {2}broken-0 +Bound +0 +0 +0 +1 .* STALE +\S+ at the next pass \(failed\)$/m);
    expect(out).toMatch(/^ {2}restore-web-0 +Pending .* not Bound +-$/m);
    expect(out).toMatch(/^Findings: 7$/m);
    expect(out).toMatch(/^ {2}STUCK PVC .*\/web-1 .*not ready after pendingDeadline 30m/m);
    expect(out).toMatch(
      /^ {2}2 schedule\(s\) \(0 suspended, 1 invalid\); 6 PVC\(s\), 2 unprotected, 2 stale;/m,
    );
  });

  it('reads the cluster with one LIST per kind, paged, never an object at a time', async () => {
    const files = mkdtempSync(join(tmpdir(), 'snapcron-report-proxy-'));
    const proxy = await recordingProxy(files);
    try {
      const calls = (): string[] =>
        proxy.requests.splice(0).map(({ method, url }) => {
          const u = new URL(url, 'http://x');
          const cont = u.searchParams.get('continue') ? ' continue' : '';
          return `${method} ${u.pathname} limit=${u.searchParams.get('limit')}${cont}`;
        });
      const whole = await report('-o', 'json', '--kubeconfig', proxy.kubeconfig);
      expect(whole.code, whole.err).toBe(0);
      const schedules = `/apis/snapcron.io/v1/namespaces/${ns}/snapshotschedules`;
      const pvcs = `/api/v1/namespaces/${ns}/persistentvolumeclaims`;
      const snapshots = `/apis/snapshot.storage.k8s.io/v1/namespaces/${ns}/volumesnapshots`;
      expect(calls().sort()).toEqual(
        [`GET ${schedules} limit=500`, `GET ${pvcs} limit=500`, `GET ${snapshots} limit=500`].sort(),
      );
      // 2 schedules, 6 PVCs, 6 snapshots in pages of 2: 1, 3 and 3 LISTs, and the same report.
      const paged = await report('-o', 'json', '--kubeconfig', proxy.kubeconfig, '--chunk-size', '2');
      expect(paged.out).toBe(whole.out);
      expect(calls().sort()).toEqual(
        [
          `GET ${schedules} limit=2`,
          `GET ${pvcs} limit=2`,
          `GET ${pvcs} limit=2 continue`,
          `GET ${pvcs} limit=2 continue`,
          `GET ${snapshots} limit=2`,
          `GET ${snapshots} limit=2 continue`,
          `GET ${snapshots} limit=2 continue`,
        ].sort(),
      );
      // And the API server agrees that these were LISTs.
      const before = await requestCount('volumesnapshots', 'LIST');
      await report('-o', 'json', '--kubeconfig', proxy.kubeconfig, '--chunk-size', '2');
      expect((await requestCount('volumesnapshots', 'LIST')) - before).toBe(3);
    } finally {
      await proxy.close();
      rmSync(files, { recursive: true, force: true });
    }
  });

  it('kubectl snapcron report: the same report through a real kubectl and its plugin mechanism', async () => {
    const list = await runKubectl(['plugin', 'list'], plugins);
    expect(list.out).toContain(join(plugins, 'kubectl-snapcron'));
    const cli = await report('-o', 'json');
    const viaKubectl = await runKubectl(
      ['snapcron', 'report', '-n', ns, '--now', iso(now), '-o', 'json'],
      plugins,
    );
    expect(viaKubectl.err).toBe('');
    expect(viaKubectl.code).toBe(0);
    expect(JSON.parse(viaKubectl.out)).toEqual(JSON.parse(cli.out));
    // Its exit code is the plugin's.
    expect((await runKubectl(['snapcron', 'report', '-n', ns, '--fail-on', 'invalid'], plugins)).code).toBe(
      2,
    );
    const help = await runKubectl(['snapcron', 'report', '--help'], plugins);
    expect(help.out).toMatch(/^Usage: snapcron report/);
  });

  it("takes --kubeconfig and --context itself; defaults to the context's namespace; -A is every namespace", async () => {
    const files = mkdtempSync(join(tmpdir(), 'snapcron-report-kc-'));
    try {
      // A kubeconfig whose context points at the test namespace, made with kubectl itself.
      const own = join(files, 'kubeconfig');
      writeFileSync(own, readFileSync(kubeconfigPath()));
      const set = await runKubectl(['config', 'set-context', '--current', `--namespace=${ns}`], plugins, own);
      expect(set.code, set.err).toBe(0);
      const missing = join(files, 'missing');
      const viaFlag = await runKubectl(
        ['snapcron', 'report', '--kubeconfig', own, '-o', 'json', '--now', iso(now)],
        plugins,
        missing,
      );
      expect(viaFlag.code, viaFlag.err).toBe(0);
      expect(JSON.parse(viaFlag.out)).toEqual(JSON.parse((await report('-o', 'json')).out));
      const context = (await runKubectl(['config', 'current-context'], plugins, own)).out.trim();
      const named = await runKubectl(
        ['snapcron', 'report', '--kubeconfig', own, '--context', context, '-o', 'json'],
        plugins,
        missing,
      );
      expect((JSON.parse(named.out) as Report).scope.namespace).toBe(ns);
      const wrong = await runKubectl(
        ['snapcron', 'report', '--kubeconfig', own, '--context', 'nope'],
        plugins,
        missing,
      );
      expect(wrong.code).toBe(1);
      expect(wrong.err).toMatch(/context "nope" is not defined in kubeconfig/);
      const all = await runCli(['report', '-A', '-o', 'json', '--now', iso(now)]);
      const everything = JSON.parse(all.out) as Report;
      expect(everything.scope.namespace).toBeNull();
      expect(everything.schedules.filter((x) => x.namespace === ns).map((x) => x.name)).toEqual([
        'db',
        'web',
      ]);
    } finally {
      rmSync(files, { recursive: true, force: true });
    }
  });

  it('offline from what kubectl get -o json saves is the same report', async () => {
    const files = mkdtempSync(join(tmpdir(), 'snapcron-report-files-'));
    try {
      const save = async (resource: string): Promise<string> => {
        const r = await runKubectl(['get', resource, '-n', ns, '-o', 'json'], plugins);
        expect(r.code, r.err).toBe(0);
        const file = join(files, `${resource}.json`);
        writeFileSync(file, r.out);
        return file;
      };
      const offline = await runCli([
        'report',
        '-n',
        ns,
        '--now',
        iso(now),
        '-o',
        'json',
        '-f',
        await save('snapshotschedules'),
        '--snapshots',
        await save('volumesnapshots'),
        '--pvcs',
        await save('pvc'),
      ]);
      expect(offline.code).toBe(0);
      expect(JSON.parse(offline.out)).toEqual(JSON.parse((await report('-o', 'json')).out));
    } finally {
      rmSync(files, { recursive: true, force: true });
    }
  });

  it('the HTML page in headless Chromium: content through the DOM, nothing loaded, a screenshot', async (ctx) => {
    const binary = chromiumPath();
    if (!binary) {
      // CI installs it (.ci/run); a developer machine without it skips, saying so.
      if (process.env.CI) throw new Error('chromium is not installed (apt-get install chromium)');
      ctx.skip();
      return;
    }
    const r = await report('-o', 'html');
    expect(r.code).toBe(0);
    const data = await json('--plan');
    const browser = await Browser.launch(binary);
    try {
      await browser.openHtml(r.out, join(ARTIFACTS, 'report.html'));
      // Nothing but the page itself was requested: no script, font, image or style from anywhere.
      expect(browser.requests).toEqual([`file://${join(ARTIFACTS, 'report.html')}`]);
      const page = await browser.evaluate<{
        title: string;
        cards: Record<string, string>;
        findings: { kind: string; text: string; background: string }[];
        unprotected: string[];
        schedules: string[];
        pvcs: Record<
          string,
          {
            marks: { name: string; state: string; classes: string; inside: boolean }[];
            next: string;
            fold: { open: boolean | null; rows: number };
          }
        >;
        overflow: boolean;
      }>(`(() => {
        const q = (s, root = document) => [...root.querySelectorAll(s)];
        const pvcs = {};
        for (const row of q('section.schedule[data-schedule="web"] .pvc')) {
          const line = row.querySelector('.timeline').getBoundingClientRect();
          pvcs[row.dataset.pvc] = {
            marks: q('.mark', row).map((m) => {
              const box = m.getBoundingClientRect();
              return { name: m.dataset.name, state: m.dataset.state, classes: m.className,
                inside: box.left >= line.left - 8 && box.right <= line.right + 8 && box.top >= line.top && box.bottom <= line.bottom };
            }),
            next: row.querySelector('.next-deletion').textContent,
            fold: { open: row.querySelector('details')?.open ?? null, rows: q('details tbody tr', row).length },
          };
        }
        return {
          title: document.title,
          cards: Object.fromEntries(q('[data-total]').map((c) => [c.dataset.total, c.querySelector('b').textContent])),
          findings: q('li.finding').map((f) => ({ kind: f.dataset.kind, text: f.textContent, background: getComputedStyle(f).backgroundColor })),
          unprotected: q('#unprotected tr[data-pvc]').map((r) => r.dataset.pvc),
          schedules: q('section.schedule').map((s) => s.dataset.schedule),
          pvcs,
          overflow: document.documentElement.scrollWidth > window.innerWidth,
        };
      })()`);
      expect(page.title).toBe(`snapcron retention report · ${iso(now)}`);
      expect(page.cards).toMatchObject({
        unprotected: '2',
        stale: '2',
        failed: '1',
        stuck: '1',
        ready: '4',
        bytes: '4Gi',
      });
      expect(page.findings.map((f) => f.kind)).toEqual(data.findings.map((f) => f.kind));
      expect(page.findings.map((f) => f.text)).toEqual(data.findings.map((f) => `${f.kind}${f.message}`));
      // Findings stand out: tinted, never the page's white.
      for (const f of page.findings)
        expect(f.background).not.toMatch(/rgba?\(255, 255, 255|rgba\(0, 0, 0, 0\)/);
      expect(page.unprotected).toEqual(['db-0', 'scratch-0']);
      expect(page.schedules).toEqual(['db', 'web']);
      const web0 = page.pvcs['web-0'];
      expect(web0?.marks.map((m) => m.state)).toEqual(['ready', 'ready', 'ready', 'ready']);
      expect(web0?.marks.filter((m) => m.classes.includes('next')).map((m) => m.name)).toEqual([
        ready[2]?.metadata.name,
      ]);
      expect(page.pvcs['web-1']?.marks.map((m) => m.state).sort()).toEqual(['planned', 'stuck']);
      expect(page.pvcs['broken-0']?.marks).toEqual([
        expect.objectContaining({
          name: failed.metadata.name,
          state: 'failed',
          classes: 'mark failed delete next',
        }),
      ]);
      expect(page.pvcs['broken-0']?.next).toBe(`${failed.metadata.name} at the next pass (failed)`);
      for (const row of Object.values(page.pvcs))
        for (const m of row.marks) expect(m.inside, m.name).toBe(true);
      // Every snapshot's verdict, folded away until asked for.
      expect(page.pvcs['web-0']?.fold).toEqual({ open: false, rows: 4 });
      expect(page.overflow).toBe(false);
      await browser.screenshot(join(ARTIFACTS, 'report.png'));
    } finally {
      await browser.close();
    }
  });

  it("the controller's /report is the CLI's report, from its cache, and its alert gauges are on /metrics", async () => {
    const ctl = startController(ns, ['--report-metrics-period=1s']);
    const port = await ctl.metricsPort();
    await eventually(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 30_000);
    const url = (query: string): string =>
      `http://127.0.0.1:${port}/report?namespace=${ns}&now=${iso(now)}${query}`;
    const probe = await fetch(url(''));
    expect(probe.status).toBe(200);
    const before = await requestCount('volumesnapshots', 'LIST');
    let cliRuns = 0;
    const cli = async (format: string): Promise<string> => {
      cliRuns++;
      return (await report('-o', format)).out;
    };
    // The controller may act meanwhile (a run at the top of the hour, a prune): compare until
    // one /report and one CLI run see the same objects.
    await eventually(async () => {
      const served = (await (await fetch(url(''))).json()) as Report;
      expect(served).toEqual(JSON.parse(await cli('json')));
      const page = await fetch(url('&format=html'));
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await page.text()).toBe(await cli('html'));
      return true;
    }, 30_000);
    // Served from the informer cache: the only LISTs of snapshots were the CLI's, one a run.
    expect((await requestCount('volumesnapshots', 'LIST')) - before).toBe(cliRuns);
    // The alerting gauges, refreshed from the same cache.
    const text = await eventually(async () => {
      const t = await metrics(port);
      return t.includes('snapcron_pvc_newest_ready_snapshot_timestamp_seconds{') ? t : undefined;
    }, 15_000);
    for (const name of [
      'snapcron_pvc_newest_ready_snapshot_timestamp_seconds',
      'snapcron_schedule_interval_seconds',
      'snapcron_stale_pvcs',
      'snapcron_stuck_pvcs',
      'snapcron_unprotected_pvcs',
    ])
      expect(text).toMatch(new RegExp(`^${name}\\{namespace="${ns}"`, 'm'));
    // Refreshes build a namespace again only when its objects changed (or the clock moved a
    // gauge): a new PVC no schedule selects shows at the next one.
    const unprotected = (t: string): number =>
      Number(new RegExp(`^snapcron_unprotected_pvcs\\{namespace="${ns}"\\} (\\d+)$`, 'm').exec(t)?.[1] ?? 0);
    const was = unprotected(text);
    await k().core.createNamespacedPersistentVolumeClaim({
      namespace: ns,
      body: {
        metadata: { name: 'late-unprotected' },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: 'report-no-such-class',
          resources: { requests: { storage: '1Gi' } },
        },
      },
    });
    try {
      await eventually(async () => unprotected(await metrics(port)) === was + 1 || undefined, 15_000);
    } finally {
      await k().core.deleteNamespacedPersistentVolumeClaim({ namespace: ns, name: 'late-unprotected' });
    }
    await eventually(async () => unprotected(await metrics(port)) === was || undefined, 15_000);
    await ctl.kill();
  });
});
