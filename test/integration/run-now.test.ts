/**
 * Runs on demand on the real control plane: the snapcron.io/run-now annotation (set with the
 * real kubectl), `snapcron run` with the controller down and up, spec.runOnCreate, and the race
 * of a request with a timed run. No snapshot controller runs here: tests mark snapshots ready.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { VolumeSnapshot } from '../../src/api/objects.ts';
import {
  boundPvc,
  createSchedule,
  eventually,
  getSchedule,
  kube,
  kubeconfigFor,
  listSnapshots,
  restrictedKubeconfig,
  setSnapshotStatus,
  useNamespace,
} from '../env/kube.ts';
import { runKubectl } from '../env/kubectl.ts';
import { metrics, runCli, runTick, startController } from '../env/processes.ts';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
/** `snapcron ARGS` as a child process with the given kubeconfig file. */
const cliAs = (kubeconfig: string, args: string[]): Promise<{ code: number | null; out: string }> =>
  new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, KUBECONFIG: kubeconfig },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('exit', (code) => resolve({ code, out }));
  });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const trigger = (s: VolumeSnapshot): string | undefined => s.metadata.labels?.['snapcron.io/trigger'];
const runNow = (s: VolumeSnapshot): string | undefined => s.metadata.annotations?.['snapcron.io/run-now'];
const pvcOf = (s: VolumeSnapshot): string => s.spec.source.persistentVolumeClaimName ?? '';
const ofRequest = (snaps: VolumeSnapshot[], value: string): VolumeSnapshot[] =>
  snaps.filter((s) => trigger(s) === 'run-now' && runNow(s) === value);
const annotate = async (ns: string, name: string, value: string): Promise<void> => {
  const r = await runKubectl(
    ['annotate', 'snapsched', name, '-n', ns, `snapcron.io/run-now=${value}`, '--overwrite'],
    '',
  );
  expect(r.code, r.err).toBe(0);
};
/** The request value a `snapcron run` printed. */
const valueOf = (out: string): string => /snapcron\.io\/run-now=(\S+)/.exec(out)?.[1] ?? '';
const markReady = (ns: string, snaps: VolumeSnapshot[]): Promise<void[]> =>
  Promise.all(
    snaps.map((s) =>
      setSnapshotStatus(ns, s.metadata.name ?? '', {
        readyToUse: true,
        creationTime: new Date().toISOString(),
        restoreSize: '1Gi',
      }),
    ),
  );

/** At most one snapshot per (PVC, run): a run is a scheduled time or a request. */
function expectNoDuplicates(snaps: VolumeSnapshot[]): void {
  const seen = new Map<string, string>();
  for (const s of snaps) {
    const run = trigger(s) ?? `at:${s.metadata.annotations?.['snapcron.io/scheduled-at'] ?? ''}`;
    const key = `${pvcOf(s)} ${run} ${runNow(s) ?? ''}`;
    expect(seen.get(key), `${s.metadata.name} duplicates ${seen.get(key)}`).toBeUndefined();
    seen.set(key, s.metadata.name ?? '');
  }
}

describe('runs on demand', () => {
  const ns = useNamespace('runnow');

  it('the annotation takes a run at once without moving the timetable; the same value never again, a new one again', async () => {
    await Promise.all([boundPvc(ns(), 'data-0'), boundPvc(ns(), 'data-1')]);
    await createSchedule(ns(), 'yearly', { schedule: '0 0 1 1 *' });
    const ctl = startController(ns());
    const port = await ctl.metricsPort();
    const next = await eventually(async () => (await getSchedule(ns(), 'yearly')).status?.nextScheduleTime);

    const asked = Date.now();
    await annotate(ns(), 'yearly', 'v1');
    const first = await eventually(async () => {
      const snaps = ofRequest(await listSnapshots(ns()), 'v1');
      return snaps.length === 2 && snaps;
    }, 15_000);
    // At once: the pass follows the annotation within the event coalescing second, not at a fire time.
    expect(Date.now() - asked).toBeLessThan(8_000);
    expect(first.map(pvcOf).sort()).toEqual(['data-0', 'data-1']);
    for (const s of first) {
      expect(s.metadata.name).toMatch(/-[0-9a-f]{10}-rv1$/);
      expect(s.metadata.labels?.['snapcron.io/schedule']).toBe('yearly');
      expect(s.metadata.annotations?.['snapcron.io/scheduled-at']).toBeUndefined();
    }
    const status = await eventually(async () => {
      const s = (await getSchedule(ns(), 'yearly')).status;
      return s?.lastRunNow === 'v1' && s;
    });
    expect(status.nextScheduleTime).toBe(next);
    expect(status.lastScheduleTime).toBeUndefined();
    expect(status.lastRun).toMatchObject({
      trigger: 'RunNow',
      runNow: 'v1',
      created: 2,
      failed: 0,
      skipped: 0,
    });
    const events = await kube().core.listNamespacedEvent({ namespace: ns() });
    expect(events.items.some((e) => e.reason === 'RunNow' && e.message?.includes('created 2'))).toBe(true);
    await eventually(async () =>
      /snapcron_runs_total\{namespace="[^"]+",schedule="yearly",trigger="RunNow"\} 1\b/.test(
        await metrics(port),
      ),
    );

    // The same value again (re-set, and the schedule touched so the controller looks): nothing.
    await annotate(ns(), 'yearly', 'v1');
    await runKubectl(['label', 'snapsched', 'yearly', '-n', ns(), 'touched=1'], '');
    await sleep(3_000);
    expect((await listSnapshots(ns())).length).toBe(2);

    // A controller restart reads the handled value from status: still nothing.
    await ctl.kill();
    const again = startController(ns(), [], 'ctl2');
    await again.metricsPort();
    await sleep(4_000);
    expect((await listSnapshots(ns())).length).toBe(2);

    // A new value: one more run.
    await annotate(ns(), 'yearly', 'v2');
    await eventually(async () => ofRequest(await listSnapshots(ns()), 'v2').length === 2, 15_000);
    expect((await listSnapshots(ns())).length).toBe(4);
    expect((await getSchedule(ns(), 'yearly')).status?.nextScheduleTime).toBe(next);
  });

  it('a request at the instant of a timed run: both runs, each once, also when snapcron run races the controller', async () => {
    await Promise.all([boundPvc(ns(), 'a'), boundPvc(ns(), 'b')]);
    await createSchedule(ns(), 'fast', { schedule: '*/2 * * * * *' });
    const ctl = startController(ns());
    await ctl.metricsPort();
    await eventually(async () => (await getSchedule(ns(), 'fast')).status?.lastScheduleTime);
    const values: string[] = [];
    for (let i = 0; i < 3; i++) {
      // Right at a fire time: the controller fires the timed run, sees the annotation, and
      // `snapcron run` takes the same request itself, all at once.
      await sleep(2_000 - (Date.now() % 2_000));
      const [, cli] = await Promise.all([
        annotate(ns(), 'fast', `k${i}`),
        runCli(['run', 'fast', '-n', ns()]),
      ]);
      expect(cli.code, cli.out + cli.err).toBe(0);
      values.push(`k${i}`, valueOf(cli.out));
    }
    await sleep(3_000);
    const snaps = await listSnapshots(ns());
    expectNoDuplicates(snaps);
    // No lost run: the CLI's own requests always have both PVCs (a kubectl value overwritten by
    // the CLI's before any pass read it is superseded, as any annotation is).
    for (const v of values.filter((_, j) => j % 2 === 1))
      expect(ofRequest(snaps, v).map(pvcOf).sort()).toEqual(['a', 'b']);
    // Every timed run is whole (one per PVC), before and after the requests.
    const byTime = new Map<string, string[]>();
    for (const s of snaps.filter((x) => trigger(x) === undefined)) {
      const at = s.metadata.annotations?.['snapcron.io/scheduled-at'] ?? '';
      byTime.set(at, [...(byTime.get(at) ?? []), pvcOf(s)]);
    }
    const settled = Date.now() - 2_500;
    for (const [at, pvcs] of byTime)
      if (Date.parse(at) < settled) expect(pvcs.sort(), at).toEqual(['a', 'b']);
    // The timetable did not move: every timed run is at a fire time, and they kept coming.
    const times = [...byTime.keys()].map(Date.parse);
    for (const time of times) expect(time % 2_000).toBe(0);
    expect(times.length).toBeGreaterThanOrEqual(5);
  });

  it('snapcron run with the controller down is a one-pass; a tick after it takes nothing more; --hold holds', async () => {
    await Promise.all([boundPvc(ns(), 'db-0'), boundPvc(ns(), 'db-1')]);
    await createSchedule(ns(), 'nightly', { schedule: '0 2 * * *' });
    const r = await runCli(['run', 'nightly', '-n', ns()]);
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(
      /requested a run of SnapshotSchedule [^ ]+\/nightly: annotation snapcron\.io\/run-now=\d{17}/,
    );
    expect(r.out).toMatch(/took the run: 2 created, 0 existed, 0 skipped, 0 failed/);
    const value = valueOf(r.out);
    const taken = ofRequest(await listSnapshots(ns()), value);
    expect(taken.map(pvcOf).sort()).toEqual(['db-0', 'db-1']);
    for (const s of taken) {
      expect(r.out).toContain(`VolumeSnapshot ${s.metadata.name} of PVC ${pvcOf(s)}`);
      expect(s.metadata.labels?.['snapcron.io/hold']).toBeUndefined();
    }
    const status = (await getSchedule(ns(), 'nightly')).status;
    expect(status?.lastRunNow).toBe(value);
    expect(status?.lastRun).toMatchObject({ trigger: 'RunNow', runNow: value, created: 2 });
    expect(status?.lastScheduleTime).toBeUndefined();
    const next = new Date();
    next.setUTCHours(2, 0, 0, 0);
    if (next.getTime() <= Date.now()) next.setUTCDate(next.getUTCDate() + 1);
    expect(status?.nextScheduleTime).toBe(next.toISOString().replace('.000Z', 'Z'));

    const t = await runTick(ns());
    expect(t.code, t.out).toBe(0);
    expect(t.out).toMatch(/nothing due/);
    expect((await listSnapshots(ns())).length).toBe(2);

    const held = await runCli(['run', 'nightly', '-n', ns(), '--hold']);
    expect(held.code, held.out + held.err).toBe(0);
    const heldSnaps = ofRequest(await listSnapshots(ns()), valueOf(held.out));
    expect(heldSnaps).toHaveLength(2);
    for (const s of heldSnaps) expect(s.metadata.labels?.['snapcron.io/hold']).toBe('true');

    // --wait with no snapshot controller: the timeout, named, exit 1.
    const slow = await runCli(['run', 'nightly', '-n', ns(), '--wait', '--timeout', '3s']);
    expect(slow.code, slow.out + slow.err).toBe(1);
    expect(slow.out).toMatch(/timed out after 3s: 2 not ready \(.+\); check the snapshot controller/);

    // A schedule that selects no PVC takes nothing: said, exit 1.
    await createSchedule(ns(), 'empty', {
      schedule: '0 2 * * *',
      claimSelector: { matchLabels: { none: 'x' } },
    });
    const empty = await runCli(['run', 'empty', '-n', ns()]);
    expect(empty.code, empty.out + empty.err).toBe(1);
    expect(empty.out).toMatch(/the run took no snapshot/);

    const missing = await runCli(['run', 'nope', '-n', ns()]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain(
      `SnapshotSchedule ${ns()}/nope not found: list them with kubectl get snapshotschedules -n ${ns()}`,
    );
  });

  it('snapcron run --wait with the controller up waits for the snapshots to be ready, with no duplicate', async () => {
    await Promise.all([boundPvc(ns(), 'web-0'), boundPvc(ns(), 'web-1')]);
    await createSchedule(ns(), 'weekly', { schedule: '0 3 * * 0' });
    const ctl = startController(ns());
    await ctl.metricsPort();
    await eventually(async () => (await getSchedule(ns(), 'weekly')).status?.nextScheduleTime);
    const waiting = runCli(['run', 'weekly', '-n', ns(), '--wait', '--timeout', '60s']);
    // A snapshot controller's part: mark the run's snapshots ready a moment after they appear.
    const snaps = await eventually(async () => {
      const s = (await listSnapshots(ns())).filter((x) => trigger(x) === 'run-now');
      return s.length === 2 && s;
    }, 20_000);
    await sleep(1_500);
    await markReady(ns(), snaps);
    const r = await waiting;
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(/waiting up to 1m for 2 snapshot\(s\) to be ready/);
    for (const s of snaps) {
      expect(r.out).toContain(`${s.metadata.name}: pending`);
      expect(r.out).toContain(`${s.metadata.name}: ready (restoreSize 1Gi)`);
    }
    expect(r.out).toMatch(/all 2 snapshot\(s\) ready after \d+s/);
    await sleep(2_000);
    const all = await listSnapshots(ns());
    expect(all).toHaveLength(2);
    expectNoDuplicates(all);
    expect((await getSchedule(ns(), 'weekly')).status?.lastRunNow).toBe(valueOf(r.out));
  });

  it('snapcron run --wait prints a driver error and waits on; a snapshot deleted before it was ready exits 1', async () => {
    await Promise.all([boundPvc(ns(), 'web-0'), boundPvc(ns(), 'web-1')]);
    await createSchedule(ns(), 'weekly', { schedule: '0 3 * * 0' });
    const waiting = runCli(['run', 'weekly', '-n', ns(), '--wait', '--timeout', '60s']);
    const snaps = await eventually(async () => {
      const s = (await listSnapshots(ns())).filter((x) => trigger(x) === 'run-now');
      return s.length === 2 && s;
    }, 20_000);
    const [erring, deleted] = snaps.map((x) => x.metadata.name ?? '');
    await setSnapshotStatus(ns(), erring ?? '', {
      readyToUse: false,
      error: { message: 'quota exceeded, retrying', time: new Date().toISOString() },
    });
    await sleep(2_500);
    const k = kube();
    await k.custom.deleteNamespacedCustomObject({ ...k.snapshots, namespace: ns(), name: deleted ?? '' });
    const r = await waiting;
    expect(r.code, r.out + r.err).toBe(1);
    expect(r.out).toContain(`${erring}: error: quota exceeded, retrying`);
    expect(r.out).toContain(`${deleted}: gone (deleted)`);
    expect(r.out).toMatch(/1 snapshot\(s\) of the run were deleted before they were ready/);
  });

  it('runOnCreate takes the first snapshots of a yearly schedule right after it is created', async () => {
    await Promise.all([boundPvc(ns(), 'vol-0'), boundPvc(ns(), 'vol-1')]);
    const ctl = startController(ns());
    await ctl.metricsPort();
    const created = Date.now();
    await createSchedule(ns(), 'yearly', { schedule: '0 0 1 1 *', runOnCreate: true });
    await createSchedule(ns(), 'plain', { schedule: '0 0 1 1 *' });
    const first = await eventually(async () => {
      const s = (await listSnapshots(ns())).filter((x) => trigger(x) === 'run-on-create');
      return s.length === 2 && s;
    }, 15_000);
    expect(Date.now() - created).toBeLessThan(10_000);
    for (const s of first) {
      expect(s.metadata.name).toMatch(/^vol-[01]-yearly-[0-9a-f]{10}-first$/);
      expect(s.metadata.labels?.['snapcron.io/schedule']).toBe('yearly');
    }
    const status = await eventually(async () => {
      const s = (await getSchedule(ns(), 'yearly')).status;
      return s?.lastRun && s;
    });
    expect(status.lastRun).toMatchObject({ trigger: 'RunOnCreate', created: 2 });
    expect(status.nextScheduleTime).toBe(`${new Date().getUTCFullYear() + 1}-01-01T00:00:00Z`);
    // Only once, and not for a schedule without the field.
    await sleep(3_000);
    const all = await listSnapshots(ns());
    expect(all).toHaveLength(2);
    expect(all.every((s) => s.metadata.labels?.['snapcron.io/schedule'] === 'yearly')).toBe(true);

    // A schedule created before its PVC: the first run waits for the PVC to be bound.
    await createSchedule(ns(), 'early', {
      schedule: '0 0 1 1 *',
      runOnCreate: true,
      claimSelector: { matchLabels: { app: 'late' } },
    });
    await sleep(2_000);
    await boundPvc(ns(), 'late-0', { app: 'late' });
    const late = await eventually(async () => {
      const s = (await listSnapshots(ns())).filter(
        (x) => x.metadata.labels?.['snapcron.io/schedule'] === 'early',
      );
      return s.length > 0 && s;
    }, 15_000);
    expect(late.map((s) => [pvcOf(s), trigger(s)])).toEqual([['late-0', 'run-on-create']]);
  });

  it('snapcron run works with only the permissions the README names', async () => {
    await boundPvc(ns(), 'data');
    await createSchedule(ns(), 'daily', { schedule: '0 2 * * *' });
    const user = 'run-only';
    const config = await restrictedKubeconfig(ns(), user, [
      { apiGroups: ['snapcron.io'], resources: ['snapshotschedules'], verbs: ['patch'] },
      { apiGroups: ['snapcron.io'], resources: ['snapshotschedules/status'], verbs: ['update'] },
      { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['list'] },
      {
        apiGroups: ['snapshot.storage.k8s.io'],
        resources: ['volumesnapshots'],
        verbs: ['get', 'list', 'create'],
      },
    ]);
    const r = await cliAs(config, ['run', 'daily', '-n', ns()]);
    expect(r.code, r.out).toBe(0);
    expect(ofRequest(await listSnapshots(ns()), valueOf(r.out))).toHaveLength(1);
    expect((await getSchedule(ns(), 'daily')).status?.lastRunNow).toBe(valueOf(r.out));
    // Without patch on the schedule: refused before anything is created, naming what is missing.
    const other = await cliAs(await kubeconfigFor('nobody'), ['run', 'daily', '-n', ns()]);
    expect(other.code).toBe(1);
    expect(other.out).toMatch(
      /not allowed to annotate SnapshotSchedule [^ ]+\/daily: .*needs patch on snapshotschedules\.snapcron\.io/,
    );
    expect(await listSnapshots(ns())).toHaveLength(1);
  });

  it('retention prunes on-demand snapshots like others, unless held', async () => {
    await boundPvc(ns(), 'data');
    await createSchedule(ns(), 'keep1', { schedule: '0 2 * * *', retention: { maxCount: 1, minReady: 1 } });
    const take = async (...extra: string[]): Promise<VolumeSnapshot[]> => {
      const r = await runCli(['run', 'keep1', '-n', ns(), ...extra]);
      expect(r.code, r.out + r.err).toBe(0);
      const snaps = ofRequest(await listSnapshots(ns()), valueOf(r.out));
      await markReady(ns(), snaps);
      await sleep(20); // distinct creation times
      return snaps;
    };
    const [r1] = await take();
    const [held] = await take('--hold');
    const [r3] = await take();
    const t = await runTick(ns());
    expect(t.code, t.out).toBe(0);
    const left = (await listSnapshots(ns())).map((s) => s.metadata.name).sort();
    expect(left).toEqual([held?.metadata.name, r3?.metadata.name].sort());
    expect(left).not.toContain(r1?.metadata.name);
  });
});
