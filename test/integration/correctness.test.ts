/**
 * The controller and tick keep their promises where a process, a cache or time is
 * involved (issue #9): Forbid across passes, one aggregated Event per reason, deletion in
 * tick mode, lease fencing under SIGSTOP, and watch restarts that back off and tell the truth.
 */
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { VolumeSnapshot } from '../../src/api/objects.ts';
import { tick } from '../../src/controller/tick.ts';
import { Kube } from '../../src/kube/client.ts';
import {
  boundPvc,
  createSchedule,
  eventually,
  eventsOf,
  getSchedule,
  kube,
  ALL_VERBS,
  kubeConfig,
  listSnapshots,
  restrictedKubeconfig,
  setSnapshotStatus,
  useNamespace,
} from '../env/kube.ts';
import { runTick, startController } from '../env/processes.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pvcOf = (s: VolumeSnapshot): string => s.spec.source.persistentVolumeClaimName ?? '';
const live = (s: VolumeSnapshot): boolean => !s.metadata.deletionTimestamp;

describe('issue 9 on a real API server', () => {
  const ns = useNamespace('fix');

  it('Forbid: a PVC whose snapshot stays pending gets no more, across passes; one Event counts the skips', async () => {
    await Promise.all([boundPvc(ns(), 'slow'), boundPvc(ns(), 'fast')]);
    await createSchedule(ns(), 'forbid', {
      schedule: '*/2 * * * * *',
      concurrencyPolicy: 'Forbid',
      retention: { maxCount: 1000 },
    });
    const ctl = startController(ns());
    // Play the snapshot controller for `fast` only: its snapshots become ready, `slow`'s never do.
    const deadline = Date.now() + 11_000;
    while (Date.now() < deadline) {
      for (const s of await listSnapshots(ns()))
        if (pvcOf(s) === 'fast' && !s.status?.readyToUse)
          await setSnapshotStatus(ns(), s.metadata.name ?? '', { readyToUse: true, restoreSize: '1Gi' });
      await sleep(100);
    }
    const snaps = (await listSnapshots(ns())).filter(live);
    expect(snaps.filter((s) => pvcOf(s) === 'slow')).toHaveLength(1);
    expect(snaps.filter((s) => pvcOf(s) === 'fast').length).toBeGreaterThanOrEqual(4);

    const status = (await getSchedule(ns(), 'forbid')).status;
    const firstRun = snaps.find((s) => pvcOf(s) === 'slow')?.metadata.annotations?.[
      'snapcron.io/scheduled-at'
    ];
    // Only the first run had no skips.
    expect(Date.parse(status?.lastSuccessfulTime ?? '')).toBe(Date.parse(firstRun ?? ''));
    expect(Date.parse(status?.lastScheduleTime ?? '')).toBeGreaterThan(Date.parse(firstRun ?? ''));

    // Aggregated like Kubernetes' recorder: one Event object per (object, reason), its count growing.
    const skipped = await eventsOf(ns(), 'SkippedPreviousNotReady');
    expect(skipped).toHaveLength(1);
    expect(skipped[0]?.count).toBeGreaterThanOrEqual(3);
    expect((await eventsOf(ns(), 'SnapshotsCreated')).length).toBe(1);
    await ctl.kill();
  });

  it('tick honours deletionPolicy Delete: adds the finalizer, and deletes all but held snapshots when the schedule goes', async () => {
    await boundPvc(ns(), 'data');
    await createSchedule(ns(), 'del', {
      schedule: '* * * * * *',
      deletionPolicy: 'Delete',
      retention: { maxCount: 100 },
    });
    const first = await runTick(ns());
    expect(first.out).toMatch(/finalizer updated/);
    expect((await getSchedule(ns(), 'del')).metadata?.finalizers).toEqual(['snapcron.io/snapshots']);
    // Three ticks, each more than a second after the one before, so each finds a new fire
    // due. The first waits too: a schedule does not fire for times before it existed, and a tick
    // that starts fast (no client-node to import) can still be in the second it was created in
    // ("nothing due"), which once left two snapshots. What each tick said is in the failure.
    const said: string[] = [];
    for (let i = 0; i < 3; i++) {
      await sleep(1100);
      const t = await runTick(ns());
      said.push(t.out.trim());
      expect(t.code, t.out).toBe(0);
    }
    const snaps = await listSnapshots(ns());
    expect(snaps.length, said.join('\n')).toBeGreaterThanOrEqual(3);
    const held = snaps[0]?.metadata.name ?? '';
    const k = kube();
    const snap = (await k.custom.getNamespacedCustomObject({
      ...k.snapshots,
      namespace: ns(),
      name: held,
    })) as VolumeSnapshot;
    snap.metadata.labels = { ...snap.metadata.labels, 'snapcron.io/hold': 'true' };
    await k.custom.replaceNamespacedCustomObject({ ...k.snapshots, namespace: ns(), name: held, body: snap });
    await k.custom.deleteNamespacedCustomObject({ ...k.schedules, namespace: ns(), name: 'del' });
    expect((await getSchedule(ns(), 'del')).metadata?.deletionTimestamp).toBeTruthy();

    const last = await runTick(ns());
    expect(last.code).toBe(0);
    expect(last.out).toMatch(
      /deleting \(deletionPolicy Delete\): \d+ snapshots deleted, 1 held kept, 0 waiting/,
    );
    await eventually(async () => {
      try {
        await getSchedule(ns(), 'del');
        return false;
      } catch (err) {
        return (err as { code?: number }).code === 404;
      }
    }, 10_000);
    expect((await listSnapshots(ns())).filter(live).map((s) => s.metadata.name)).toEqual([held]);
  });

  it('a leader frozen past its lease (SIGSTOP) writes nothing after SIGCONT while the standby leads', async () => {
    await boundPvc(ns(), 'frozen');
    await createSchedule(ns(), 'fence', { schedule: '* * * * * *', retention: { maxCount: 3, minReady: 1 } });
    const a = startController(ns(), [], 'ctl-a');
    await eventually(async () => a.logs().some((l) => l.msg === 'snapshot created'), 10_000);
    const b = startController(ns(), [], 'ctl-b');
    await b.metricsPort();
    // Snapshots must become ready for pruning to happen: play the snapshot controller throughout.
    let playing = true;
    const player = (async () => {
      while (playing) {
        for (const s of await listSnapshots(ns()).catch(() => []))
          if (live(s) && !s.status?.readyToUse)
            await setSnapshotStatus(ns(), s.metadata.name ?? '', { readyToUse: true }).catch(() => undefined);
        await sleep(100);
      }
    })();

    a.proc.kill('SIGSTOP');
    await eventually(async () => b.logs().some((l) => l.msg === 'became leader'), 10_000, 50);
    await eventually(async () => b.logs().some((l) => l.msg === 'snapshot pruned'), 10_000, 50);
    await sleep(1500); // overdue timers pile up in the frozen process
    const contAt = Date.now();
    a.proc.kill('SIGCONT');
    await sleep(4000);
    playing = false;
    await player;

    const after = a.logs().filter((l) => Number(l.time) >= contAt);
    const acted = after.filter((l) =>
      ['snapshot created', 'snapshot pruned', 'snapshot already exists', 'status update failed'].includes(
        String(l.msg),
      ),
    );
    expect(acted).toEqual([]);
    // It did notice: it stopped leading, and B still holds the lease.
    expect(a.logs().some((l) => l.msg === 'stopped leading')).toBe(true);
    const lease = await kube().coordination.readNamespacedLease({
      name: 'snapcron-controller',
      namespace: ns(),
    });
    expect(lease.spec?.holderIdentity).toBe('ctl-b');
    await Promise.all([a.kill(), b.kill()]);
  });

  it('a watch that cannot list backs off, is not ready, says so, and recovers once allowed', async () => {
    await boundPvc(ns(), 'w-0');
    await createSchedule(ns(), 'watched', { schedule: '* * * * * *' });
    // Everything the controller needs except listing VolumeSnapshots.
    const config = await restrictedKubeconfig(ns(), 'no-snapshots', [
      {
        apiGroups: ['snapcron.io'],
        resources: ['snapshotschedules', 'snapshotschedules/status'],
        verbs: ALL_VERBS,
      },
      { apiGroups: [''], resources: ['persistentvolumeclaims', 'events'], verbs: ALL_VERBS },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ALL_VERBS },
    ]);
    const ctl = startController(ns(), [], 'ctl-w', config);
    const port = await ctl.metricsPort();
    await sleep(8000);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(503);
    // The report would describe caches it does not have: refused, saying why (README "/report").
    const early = await fetch(`http://127.0.0.1:${port}/report`);
    expect(early.status).toBe(503);
    expect(await early.text()).toBe('caches not synced\n');
    const logs = ctl.logs();
    const attempts = logs.filter((l) => l.msg === 'restarting watch after backoff');
    // 500 ms, 1 s, 2 s, 4 s (jittered to half at most): at most 6 tries in 8 s, not one every 500 ms.
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts.length).toBeLessThanOrEqual(6);
    const delays = attempts.map((l) => Number(l.delayMs));
    expect(delays[delays.length - 1]).toBeGreaterThan(delays[0] ?? 0);
    expect(logs.some((l) => l.msg === 'watch restarted; cache re-listed')).toBe(false);
    expect(logs.some((l) => l.msg === 'caches synced')).toBe(false);
    expect(await listSnapshots(ns())).toEqual([]); // acted on nothing while blind

    const rbac = kubeConfig().makeApiClient(RbacAuthorizationV1Api);
    const role = await rbac.readNamespacedRole({ name: 'no-snapshots', namespace: ns() });
    role.rules = [
      ...(role.rules ?? []),
      { apiGroups: ['snapshot.storage.k8s.io'], resources: ['volumesnapshots'], verbs: ALL_VERBS },
    ];
    await rbac.replaceNamespacedRole({ name: 'no-snapshots', namespace: ns(), body: role });
    await eventually(
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200,
      40_000,
      250,
    );
    expect(ctl.logs().some((l) => l.msg === 'watch restarted; cache re-listed')).toBe(true);
    expect((await fetch(`http://127.0.0.1:${port}/report`)).status).toBe(200);
    await eventually(async () => (await listSnapshots(ns())).length > 0, 10_000);
    // Its Role grants no VolumeSnapshotClasses (cluster-scoped): one warning naming the grant, and
    // it works on (README "ACK warnings").
    expect(
      ctl.logs().filter((l) => String(l.msg).startsWith('cannot list and watch VolumeSnapshotClasses')),
    ).toHaveLength(1);
    expect(
      ctl.logs().find((l) => String(l.msg).startsWith('cannot list and watch VolumeSnapshotClasses'))?.msg,
    ).toMatch(/grant get, list, watch on volumesnapshotclasses\.snapshot\.storage\.k8s\.io/);
    await ctl.kill();
  });

  it('tick: the injected clock reaches every write, and a deadline shorter than the tick interval is warned about', async () => {
    await boundPvc(ns(), 'c-0');
    await createSchedule(ns(), 'clocked', { schedule: '0 * * * *', startingDeadlineSeconds: 60 });
    // May read and write schedules, but not create snapshots: the run fails and says when.
    const config = await restrictedKubeconfig(ns(), 'no-create', [
      {
        apiGroups: ['snapcron.io'],
        resources: ['snapshotschedules', 'snapshotschedules/status'],
        verbs: ALL_VERBS,
      },
      { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['events'], verbs: ALL_VERBS },
      { apiGroups: ['snapshot.storage.k8s.io'], resources: ['volumesnapshots'], verbs: ['get', 'list'] },
    ]);
    const k = Kube.fromFile(config, { retry: { attempts: 1 } });
    const now = new Date(Date.now() + 24 * 3600_000);
    now.setUTCMinutes(0, 30, 0); // 30 s after an hourly fire time, tomorrow
    const lines: string[] = [];
    const code = await tick({
      kube: k,
      log: pino({ level: 'silent' }),
      namespace: ns(),
      now: () => now,
      intervalSeconds: 300,
      out: (l) => lines.push(l),
    });
    expect(code).toBe(1);
    expect(lines.join('\n')).toMatch(
      /warning: spec\.startingDeadlineSeconds: 60s is shorter than the tick interval/,
    );
    const ready = (await getSchedule(ns(), 'clocked')).status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'False', reason: 'SnapshotCreateFailed' });
    expect(ready?.lastTransitionTime).toBe(now.toISOString().replace('.000Z', 'Z'));
  });
});
