import { describe, expect, it } from 'vitest';
import type { VolumeSnapshot } from '../../src/api/objects.ts';
import { planRetention } from '../../src/retention/plan.ts';
import { snapshotName } from '../../src/snapshot/naming.ts';
import {
  apiGet,
  boundPvc,
  createSchedule,
  createSnapshot,
  eventually,
  getSchedule,
  kube,
  listSnapshots,
  restartApiServer,
  updateScheduleSpec,
  useNamespace,
} from '../env/kube.ts';
import { metrics, runTick, startController } from '../env/processes.ts';

const at = (s: VolumeSnapshot): number =>
  Date.parse(s.metadata.annotations?.['snapcron.io/scheduled-at'] ?? '');
const of = (schedule: string) => (s: VolumeSnapshot) =>
  s.metadata.labels?.['snapcron.io/schedule'] === schedule;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Every (PVC, time) has exactly one snapshot, and every taken time covers all `pvcs`. With a
 * controller still running, pass `settledBefore`: a run newer than that may be half-listed.
 */
function expectCompleteRuns(snaps: VolumeSnapshot[], pvcs: string[], settledBefore = Infinity): number[] {
  const byTime = new Map<number, string[]>();
  for (const s of snaps)
    byTime.set(at(s), [...(byTime.get(at(s)) ?? []), s.spec.source.persistentVolumeClaimName ?? '']);
  for (const [time, names] of byTime) {
    if (time >= settledBefore) continue;
    expect(names.sort(), `run ${new Date(time).toISOString()}`).toEqual([...pvcs].sort());
  }
  return [...byTime.keys()].sort((a, b) => a - b);
}

/**
 * kube-apiserver's own count of requests by verb for one resource: finished ones
 * (apiserver_request_total), or open long-running ones such as watches.
 */
async function requestCount(
  resource: string,
  verb: string,
  metric = 'apiserver_request_total',
): Promise<number> {
  let total = 0;
  for (const line of (await apiGet('/metrics', 'text/plain')).split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    if (!line.includes(`resource="${resource}"`) || !line.includes(`verb="${verb}"`)) continue;
    if (!line.includes('subresource=""')) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

describe('snapcron controller on a real API server', () => {
  const ns = useNamespace('sched');

  it('fires on time for several schedules and zones, follows selector changes and suspend', async () => {
    await Promise.all([
      boundPvc(ns(), 'web-0', { app: 'web' }),
      boundPvc(ns(), 'web-1', { app: 'web' }),
      boundPvc(ns(), 'db-0', { app: 'db' }),
    ]);
    await createSchedule(ns(), 'every2', {
      schedule: '*/2 * * * * *',
      claimSelector: { matchLabels: { app: 'web' } },
    });
    await createSchedule(ns(), 'shanghai', {
      schedule: '*/3 * * * * *',
      timeZone: 'Asia/Shanghai',
      claimSelector: { matchLabels: { app: 'db' } },
    });
    const ctl = startController(ns());
    const port = await ctl.metricsPort();
    await eventually(async () => (await listSnapshots(ns())).filter(of('every2')).length >= 6, 20_000);

    const listedAt = Date.now();
    const snaps = await listSnapshots(ns());
    for (const s of snaps) {
      const sched = s.metadata.labels?.['snapcron.io/schedule'] ?? '';
      const pvc = s.spec.source.persistentVolumeClaimName ?? '';
      expect(s.metadata.name).toBe(snapshotName(pvc, sched, new Date(at(s))));
      expect(s.metadata.labels?.['snapcron.io/pvc']).toBe(pvc);
      expect((at(s) / 1000) % (sched === 'every2' ? 2 : 3)).toBe(0);
      expect(sched === 'every2' ? pvc.startsWith('web-') : pvc === 'db-0').toBe(true);
    }
    expectCompleteRuns(snaps.filter(of('every2')), ['web-0', 'web-1'], listedAt - 2000);

    // On time: after the start-up catch-up, each run is taken well within a second of its time.
    const lags = ctl
      .logs()
      .filter((l) => l.msg === 'snapshot created' && l.schedule === 'every2')
      .map((l) => Number(l.time) - Date.parse(String(l.scheduledAt)))
      .slice(2)
      .sort((a, b) => a - b);
    expect(lags.length).toBeGreaterThanOrEqual(2);
    expect(lags[Math.floor(lags.length / 2)]).toBeLessThan(500);
    const text = await metrics(port);
    expect(text).toMatch(/snapcron_fire_lag_seconds_count\{namespace="[^"]+",schedule="every2"\} \d+/);
    expect(text).toMatch(/snapcron_snapshots_created_total\{namespace="[^"]+",schedule="every2"\} \d+/);

    const status = (await getSchedule(ns(), 'every2')).status;
    expect(Date.parse(status?.nextScheduleTime ?? '') - Date.parse(status?.lastScheduleTime ?? '')).toBe(
      2000,
    );
    expect(status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');

    // The selector widens without a restart.
    await updateScheduleSpec(ns(), 'every2', {
      claimSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'db'] }] },
    });
    await eventually(
      async () =>
        (await listSnapshots(ns())).some(
          (s) => of('every2')(s) && s.spec.source.persistentVolumeClaimName === 'db-0',
        ),
      10_000,
    );

    // Suspend stops firing.
    await updateScheduleSpec(ns(), 'every2', { suspend: true });
    await eventually(
      async () =>
        (await getSchedule(ns(), 'every2')).status?.conditions?.find((c) => c.type === 'Suspended')
          ?.status === 'True',
      10_000,
    );
    await sleep(500);
    const before = (await listSnapshots(ns())).filter(of('every2')).length;
    await sleep(4500);
    expect((await listSnapshots(ns())).filter(of('every2')).length).toBe(before);
    expect((await listSnapshots(ns())).filter(of('shanghai')).length).toBeGreaterThan(2);

    // Events tell the story on the schedule.
    const events = await kube().core.listNamespacedEvent({ namespace: ns() });
    expect(
      events.items.some((e) => e.reason === 'SnapshotsCreated' && e.involvedObject.name === 'every2'),
    ).toBe(true);
    expect(await ctl.kill('SIGTERM')).toBe(0);
  });

  it("prunes exactly the planner's deletions, never a held, in-use, pending or last-ready snapshot", async () => {
    await boundPvc(ns(), 'web-0');
    // A yearly schedule never fires during the test: only pruning acts.
    const schedule = await createSchedule(ns(), 'keep', {
      schedule: '0 0 1 1 *',
      retention: { maxCount: 2 },
    });
    const k = kube();
    const hour = 3_600_000;
    const specs: [string, number, VolumeSnapshot['status'] | undefined, Record<string, string>?][] = [
      ['s1-pending', 1, undefined],
      ['s2', 2, { readyToUse: true }],
      ['s3', 3, { readyToUse: true }],
      ['s4-held', 4, { readyToUse: true }, { 'snapcron.io/hold': 'true' }],
      ['s5-in-use', 5, { readyToUse: true }],
      ['s6-old', 6, { readyToUse: true }],
      ['s7-failed', 7, { readyToUse: false, error: { message: 'InvalidDiskId.NotFound' } }],
    ];
    for (const [name, hoursAgo, status, extra] of specs) {
      await createSnapshot(ns(), name, {
        pvc: 'web-0',
        schedule: 'keep',
        takenAt: new Date(Date.now() - hoursAgo * hour),
        labels: extra,
        status,
      });
    }
    // A restore still reading s5: its PVC cannot bind (no such class), so it stays Pending.
    await k.core.createNamespacedPersistentVolumeClaim({
      namespace: ns(),
      body: {
        metadata: { name: 'restore-x' },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: 'not-provisioned',
          resources: { requests: { storage: '1Gi' } },
          dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 's5-in-use' },
        },
      },
    });
    const pvcs = (await k.core.listNamespacedPersistentVolumeClaim({ namespace: ns() })).items;
    const oracle = planRetention({
      scheduleName: 'keep',
      retention: schedule.spec.retention,
      timeZone: 'UTC',
      snapshots: await listSnapshots(ns()),
      pvcs: pvcs as never,
      now: new Date(),
    });
    expect(oracle.deletions.map((d) => d.name).sort()).toEqual(['s6-old', 's7-failed']);

    const ctl = startController(ns());
    const survivors = ['s1-pending', 's2', 's3', 's4-held', 's5-in-use'];
    await eventually(async () => {
      const names = (await listSnapshots(ns())).map((s) => s.metadata.name).sort();
      return JSON.stringify(names) === JSON.stringify(survivors);
    }, 20_000);
    await sleep(2000); // and nothing more goes
    expect((await listSnapshots(ns())).map((s) => s.metadata.name).sort()).toEqual(survivors);
    const status = (await getSchedule(ns(), 'keep')).status;
    expect(status?.snapshots).toEqual({ ready: 4, pending: 1, stuck: 0, failed: 0 });
    const events = await k.core.listNamespacedEvent({ namespace: ns() });
    // One aggregated event for the pass's deletions, naming each with its reasons.
    const pruned = events.items.filter((e) => e.reason === 'SnapshotsPruned');
    expect(pruned).toHaveLength(1);
    expect(pruned[0]?.message).toMatch(/^deleted 2 VolumeSnapshot\(s\): /);
    expect(pruned[0]?.message).toContain('s6-old (max-count)');
    expect(pruned[0]?.message).toContain('s7-failed (failed)');
    expect(events.items.find((e) => e.reason === 'SnapshotFailed')?.message).toBe(
      'VolumeSnapshot s7-failed of PVC web-0 failed: InvalidDiskId.NotFound',
    );
    await ctl.kill();
  });

  it('after kill -9 mid-burst and a restart, every taken run is complete, once, and the outage is caught up once', async () => {
    const pvcs = ['d-0', 'd-1', 'd-2', 'd-3'];
    await Promise.all(pvcs.map((p) => boundPvc(ns(), p)));
    await createSchedule(ns(), 'burst', { schedule: '* * * * * *', retention: { maxCount: 1000 } });
    const first = startController(ns());
    await eventually(async () => (await listSnapshots(ns())).length >= 12, 20_000);
    await sleep(Math.random() * 900);
    const killedAt = Date.now();
    await first.kill('SIGKILL');
    await sleep(3500);
    const restartedAt = Date.now();
    const second = startController(ns());
    // Same identity as the killed one (a restarted container): it reclaims the lease at once.
    await eventually(
      async () =>
        second
          .logs()
          .some((l) => l.msg === 'snapshot created' && Date.parse(String(l.scheduledAt)) >= restartedAt),
      15_000,
    );
    await second.kill();

    const times = expectCompleteRuns(await listSnapshots(ns()), pvcs);
    const caughtUp = second
      .logs()
      .filter((l) => l.msg === 'snapshot created')
      .map((l) => Date.parse(String(l.scheduledAt)));
    // The restarted controller's first run after the outage is the one catch-up: the newest
    // fire at its start. Node may start it within a second, so that fire can fall just
    // before restartedAt; it can never be older than the last second before the restart.
    const catchUp = Math.min(...caughtUp.filter((t) => t > killedAt + 1000));
    expect(catchUp).toBeGreaterThanOrEqual(restartedAt - 1000);
    // Nothing was taken for the seconds the controller was down, apart from that catch-up.
    const duringOutage = times.filter((t) => t > killedAt + 1000 && t < catchUp);
    expect(duringOutage).toEqual([]);
    expect(times).toContain(catchUp);
    expect(new Set(caughtUp.filter((t) => t < restartedAt)).size).toBeLessThanOrEqual(2); // one catch-up (+ finishing the interrupted run)
  });

  it('two controllers: one leader, no duplicates; the standby takes over when the leader dies', async () => {
    const pvcs = ['h-0', 'h-1'];
    await Promise.all(pvcs.map((p) => boundPvc(ns(), p)));
    await createSchedule(ns(), 'ha', { schedule: '* * * * * *', retention: { maxCount: 1000 } });
    const a = startController(ns(), [], 'ctl-a');
    await eventually(async () => a.logs().some((l) => l.msg === 'became leader'), 10_000);
    const b = startController(ns(), [], 'ctl-b');
    await b.metricsPort();
    await sleep(3000);
    expect(b.logs().some((l) => l.msg === 'became leader')).toBe(false);
    expect(b.logs().some((l) => l.msg === 'snapshot created')).toBe(false);
    const lease = await kube().coordination.readNamespacedLease({
      name: 'snapcron-controller',
      namespace: ns(),
    });
    expect(lease.spec?.holderIdentity).toBe('ctl-a');

    const killedAt = Date.now();
    await a.kill('SIGKILL');
    await eventually(async () => b.logs().some((l) => l.msg === 'became leader'), 10_000, 50);
    const tookOverMs = Date.now() - killedAt;
    expect(tookOverMs).toBeLessThan(3000 + 1500); // lease duration + a retry period and slack
    await eventually(async () => b.logs().some((l) => l.msg === 'snapshot created'), 5000);
    await sleep(1500);
    expectCompleteRuns(await listSnapshots(ns()), pvcs, Date.now() - 2000);
    console.log(`standby took over ${tookOverMs} ms after the leader was killed`);

    // SIGTERM hands the lease back: a new standby takes over at once, not after the lease duration.
    const bPort = await b.metricsPort();
    expect((await fetch(`http://127.0.0.1:${bPort}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${bPort}/readyz`)).status).toBe(200);
    expect(await metrics(bPort)).toMatch(/^snapcron_leader 1$/m);
    const c = startController(ns(), [], 'ctl-c');
    await c.metricsPort();
    const termAt = Date.now();
    expect(await b.kill('SIGTERM')).toBe(0);
    await eventually(async () => c.logs().some((l) => l.msg === 'became leader'), 10_000, 50);
    const handoverMs = Date.now() - termAt;
    expect(handoverMs).toBeLessThan(2500);
    console.log(`after SIGTERM the lease moved in ${handoverMs} ms`);
    await c.kill();
    expectCompleteRuns(await listSnapshots(ns()), pvcs);
  });

  it('recovers from a kube-apiserver restart without being restarted', async () => {
    await boundPvc(ns(), 'r-0');
    await createSchedule(ns(), 'steady', { schedule: '* * * * * *', retention: { maxCount: 1000 } });
    const ctl = startController(ns());
    await eventually(async () => (await listSnapshots(ns())).length >= 2, 15_000);
    await restartApiServer();
    const back = Date.now();
    await eventually(async () => (await listSnapshots(ns())).some((s) => at(s) > back + 1000), 30_000);
    expect(ctl.proc.exitCode).toBeNull();
    expect(ctl.logs().some((l) => l.msg === 'watch failed; cache not trusted')).toBe(true);
    expect(ctl.logs().some((l) => l.msg === 'watch restarted; cache re-listed')).toBe(true);
    await ctl.kill();
  });

  it('reports an invalid schedule as InvalidSpec naming the field, and keeps running the others', async () => {
    await boundPvc(ns(), 'v-0');
    // Every field is in range, so the CRD accepts it, but no date is 30 February: only code can tell.
    await createSchedule(ns(), 'broken', { schedule: '0 0 30 2 *' });
    await createSchedule(ns(), 'fine', { schedule: '* * * * * *' });
    const ctl = startController(ns());
    const cond = await eventually(async () =>
      (await getSchedule(ns(), 'broken')).status?.conditions?.find(
        (c) => c.type === 'InvalidSpec' && c.status === 'True',
      ),
    );
    expect(cond?.message).toMatch(/spec\.schedule: "0 0 30 2 \*" never fires/);
    await eventually(async () => (await listSnapshots(ns())).filter(of('fine')).length >= 2, 10_000);
    expect((await listSnapshots(ns())).filter(of('broken'))).toEqual([]);
    await ctl.kill();
  });

  it("deletionPolicy Delete removes the schedule's snapshots (but not held ones) before the schedule goes", async () => {
    await boundPvc(ns(), 'f-0');
    await createSchedule(ns(), 'tidy', { schedule: '* * * * * *', deletionPolicy: 'Delete' });
    const ctl = startController(ns());
    await eventually(async () =>
      (await getSchedule(ns(), 'tidy')).metadata?.finalizers?.includes('snapcron.io/snapshots'),
    );
    const [firstSnap] = await eventually(async () => {
      const s = await listSnapshots(ns());
      return s.length >= 2 ? s : undefined;
    });
    const k = kube();
    const heldName = (firstSnap as VolumeSnapshot).metadata.name ?? '';
    const fresh = (await k.custom.getNamespacedCustomObject({
      ...k.snapshots,
      namespace: ns(),
      name: heldName,
    })) as VolumeSnapshot;
    fresh.metadata.labels = { ...fresh.metadata.labels, 'snapcron.io/hold': 'true' };
    await k.custom.replaceNamespacedCustomObject({
      ...k.snapshots,
      namespace: ns(),
      name: heldName,
      body: fresh,
    });
    await k.custom.deleteNamespacedCustomObject({ ...k.schedules, namespace: ns(), name: 'tidy' });
    await eventually(async () => {
      try {
        await getSchedule(ns(), 'tidy');
        return false;
      } catch (err) {
        return (err as { code?: number }).code === 404;
      }
    }, 20_000);
    expect((await listSnapshots(ns())).map((s) => s.metadata.name)).toEqual([heldName]);
    await ctl.kill();
  });

  it('lists each kind once at start-up, then works from watch events, not polling lists', async () => {
    await Promise.all(['w-0', 'w-1'].map((p) => boundPvc(ns(), p)));
    // Earlier tests' namespaces are being deleted: the namespace controller LISTs while it does.
    await eventually(async () => {
      const all = await kube().core.listNamespace();
      return all.items.every((n) => n.status?.phase !== 'Terminating');
    }, 60_000);
    const kinds = ['snapshotschedules', 'volumesnapshots', 'persistentvolumeclaims'];
    const before = await Promise.all(kinds.map((r) => requestCount(r, 'LIST')));
    const ctl = startController(ns());
    await createSchedule(ns(), 'watch', { schedule: '* * * * * *', retention: { maxCount: 1000 } });
    // Ten runs, told by the controller's log (a LIST from the test would count too).
    await eventually(async () => ctl.logs().filter((l) => l.msg === 'snapshot created').length >= 20, 30_000);
    await boundPvc(ns(), 'w-2'); // a new PVC arrives by watch and is snapshotted
    await eventually(
      async () => ctl.logs().some((l) => l.msg === 'snapshot created' && l.pvc === 'w-2'),
      10_000,
    );
    const after = await Promise.all(kinds.map((r) => requestCount(r, 'LIST')));
    // Once each, plus once per watch the server broke (a fresh API server answers the first
    // watch of a kind with "storage is (re)initializing" while its watch cache fills).
    const resumed = kinds.map(
      (r) => ctl.logs().filter((l) => l.msg === 'watch resumed' && String(l.path).endsWith(`/${r}`)).length,
    );
    expect(after.map((n, i) => n - (before[i] ?? 0))).toEqual(resumed.map((n) => 1 + n));
    for (const r of kinds)
      expect(await requestCount(r, 'WATCH', 'apiserver_longrunning_requests'), r).toBeGreaterThan(0);
    await ctl.kill();
  });
});

describe('snapcron tick (CronJob mode) on a real API server', () => {
  const ns = useNamespace('tick');

  it('two ticks at once create no duplicates; after downtime one catch-up; a second tick adds nothing', async () => {
    const pvcs = ['t-0', 't-1', 't-2'];
    await Promise.all(pvcs.map((p) => boundPvc(ns(), p)));
    await createSchedule(ns(), 'hourly', { schedule: '0 * * * *' });
    // Pretend the last run was five hours ago: five runs were missed.
    const k = kube();
    const s = await getSchedule(ns(), 'hourly');
    await k.custom.replaceNamespacedCustomObjectStatus({
      ...k.schedules,
      namespace: ns(),
      name: 'hourly',
      body: {
        ...s,
        status: {
          lastScheduleTime: new Date(Date.now() - 5 * 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z'),
        },
      },
    });
    const [a, b] = await Promise.all([runTick(ns()), runTick(ns())]);
    expect([a.code, b.code], `${a.out}\n${b.out}`).toEqual([0, 0]);
    expect(a.out).toMatch(new RegExp(`${ns()}/hourly: (took|nothing due)`));
    const snaps = await listSnapshots(ns());
    expect(snaps).toHaveLength(3);
    const times = expectCompleteRuns(snaps, pvcs);
    const hourStart = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    expect(times).toEqual([hourStart]);

    const again = await runTick(ns());
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/nothing due/);
    expect(await listSnapshots(ns())).toHaveLength(3);
    expect((await getSchedule(ns(), 'hourly')).status?.lastScheduleTime).toBe(
      new Date(hourStart).toISOString().replace('.000Z', 'Z'),
    );
  });

  it('exits non-zero and names the field when a schedule is invalid', async () => {
    await createSchedule(ns(), 'broken', { schedule: '0 0 30 2 *' });
    const r = await runTick(ns());
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/broken: invalid: spec\.schedule: "0 0 30 2 \*" never fires/);
  });
});
