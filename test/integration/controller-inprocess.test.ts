/**
 * The Controller in-process, on the real API server, with a clock the test moves (as
 * snapscheduler's envtest suite and kube-rs' controller tests do): fire times come from the
 * queue's delay heap on that clock, not from the wall clock.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Controller, RESYNC_MS, type ControllerOptions } from '../../src/controller/controller.ts';
import { Metrics } from '../../src/controller/metrics.ts';
import { Kube } from '../../src/kube/client.ts';
import { snapshotName } from '../../src/snapshot/naming.ts';
import { ManualClock } from '../support/manual-clock.ts';
import {
  boundPvc,
  createSchedule,
  createSnapshot,
  eventually,
  getSchedule,
  kube,
  kubeconfigPath,
  listSnapshots,
  setSnapshotStatus,
  updateScheduleSpec,
  useNamespace,
} from '../env/kube.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Passes of one result counted so far (snapcron_passes_total). */
const passesOf = async (metrics: Metrics, result: 'success' | 'error'): Promise<number> =>
  Number(
    new RegExp(`^snapcron_passes_total\\{result="${result}"\\} (\\d+)`, 'm').exec(
      await metrics.registry.metrics(),
    )?.[1] ?? 0,
  );

describe('the Controller in-process with a controlled clock', () => {
  const ns = useNamespace('inproc');
  /** A controller of the test's namespace on the test's clock. */
  const inProcess = (
    kube: Kube,
    clock: ManualClock,
    metrics = new Metrics(),
    log = pino({ level: 'silent' }),
    more: Partial<ControllerOptions> = {},
  ): Controller =>
    new Controller({
      kube,
      log,
      metrics,
      namespace: ns(),
      lease: { namespace: ns(), name: 'inproc', identity: 'inproc', durationSeconds: 15, retryPeriodMs: 200 },
      clock,
      ...more,
    });

  /**
   * A started in-process controller on a test clock at `start`, with its successful passes
   * counted, and `settle`: lets the watch bring what was written, then moves the clock past the
   * events' coalescing delay.
   */
  const counted = async (start: number) => {
    const clock = new ManualClock(start);
    const metrics = new Metrics();
    const controller = inProcess(Kube.fromFile(kubeconfigPath(), { qps: 100, burst: 100 }), clock, metrics);
    await controller.start();
    const passes = (): Promise<number> => passesOf(metrics, 'success');
    const settle = async (): Promise<void> => {
      await sleep(1500);
      clock.advance(2_000);
      await sleep(1000);
    };
    return { clock, controller, passes, settle };
  };

  /**
   * Moves the clock to `fire` once the start-up pass has written the schedule's status and
   * ended: until it ends, it aims a promotion at that fire.
   */
  const fireAfterStartUp = async (
    controller: Controller,
    clock: ManualClock,
    schedule: string,
    fire: number,
  ): Promise<void> => {
    await eventually(async () => (await getSchedule(ns(), schedule)).status?.nextScheduleTime, 10_000);
    await eventually(async () => controller.idle, 10_000);
    clock.advanceTo(fire);
  };

  /** A start on the test clock two hours ahead of the wall clock, with two fire minutes left in its hour. */
  const startOfTwoFires = (): number => {
    const start = Math.floor(Date.now() / 60_000) * 60_000 + 2 * 3_600_000;
    return new Date(start).getUTCMinutes() > 55 ? start + 5 * 60_000 : start;
  };
  /** One write a second, so a pass over 8 PVCs outlasts the test's steps; records promotions. */
  const slowKube = (): { kube: Kube; promoted: string[] } => {
    const kube = Kube.fromFile(kubeconfigPath(), { qps: 1, burst: 1 });
    const promoted: string[] = [];
    const promote = kube.writes.promote.bind(kube.writes);
    kube.writes.promote = (key: string) => {
      promoted.push(key);
      promote(key);
    };
    return { kube, promoted };
  };

  it('fires at the fire times of its clock, a day apart in minutes of real time, and not before', async () => {
    // The test clock starts two hours ahead of the wall clock, a minute before the daily fire:
    // no fire falls between the schedule's creation and that start (a fixed 02:00 would make
    // the run between 00:00 and 02:00 a missed run the controller rightly catches up on).
    const start = new Date(Math.floor(Date.now() / 60_000) * 60_000 + 2 * 3_600_000);
    const fire = new Date(start.getTime() + 60_000);
    await boundPvc(ns(), 'data');
    await createSchedule(ns(), 'nightly', {
      schedule: `${fire.getUTCMinutes()} ${fire.getUTCHours()} * * *`,
      timeZone: 'UTC',
      retention: { maxCount: 10 },
    });
    const clock = new ManualClock(start.getTime());
    const controller = inProcess(Kube.fromFile(kubeconfigPath(), { qps: 100, burst: 100 }), clock);
    await controller.start();
    try {
      await eventually(async () => controller.isLeader, 10_000);
      // The first pass ran and aimed at 02:00 of the test clock: nothing yet.
      await eventually(async () => (await getSchedule(ns(), 'nightly')).status?.nextScheduleTime, 10_000);
      expect((await getSchedule(ns(), 'nightly')).status?.nextScheduleTime).toBe(
        new Date(start.getTime() + 60_000).toISOString().replace('.000Z', 'Z'),
      );
      clock.advanceTo(start.getTime() + 59_000); // a second before the fire
      await sleep(1500);
      expect(await listSnapshots(ns())).toEqual([]);

      clock.advanceTo(start.getTime() + 60_000); // the fire
      const first = await eventually(async () => (await listSnapshots(ns()))[0], 10_000);
      expect(first.metadata.annotations?.['snapcron.io/scheduled-at']).toBe(
        new Date(start.getTime() + 60_000).toISOString().replace('.000Z', 'Z'),
      );

      // A day later on the test clock: the next night's run, once.
      clock.advanceTo(start.getTime() + 86_400_000 + 60_000);
      await eventually(async () => (await listSnapshots(ns())).length === 2, 10_000);
      await sleep(1500);
      expect((await listSnapshots(ns())).length).toBe(2);
    } finally {
      await controller.stop();
    }
  });

  it("makes one pass per fire: its own creates' and status write's events make none, another writer's do", async () => {
    const start = startOfTwoFires();
    const fire = start + 60_000;
    const at = new Date(fire);
    for (let i = 0; i < 3; i++) await boundPvc(ns(), `data-${i}`);
    await createSchedule(ns(), 'echo', {
      schedule: `${at.getUTCMinutes()} ${at.getUTCHours()} * * *`,
      timeZone: 'UTC',
      retention: { maxCount: 10 },
    });
    const { clock, controller, passes, settle } = await counted(start);
    try {
      await eventually(async () => (await getSchedule(ns(), 'echo')).status?.nextScheduleTime, 10_000);
      await settle(); // the first pass's own status write
      const before = await passes();
      expect(before).toBeGreaterThan(0);

      clock.advanceTo(fire);
      await eventually(
        async () => (await getSchedule(ns(), 'echo')).status?.snapshots?.pending === 3,
        10_000,
      );
      await settle();
      expect((await listSnapshots(ns())).length).toBe(3);
      expect(await passes()).toBe(before + 1);

      // The snapshot controller marks one ready: news, looked at once.
      const [first] = await listSnapshots(ns());
      await setSnapshotStatus(ns(), first?.metadata.name ?? '', { readyToUse: true });
      await settle();
      expect(await passes()).toBe(before + 2);
      expect((await getSchedule(ns(), 'echo')).status?.snapshots).toMatchObject({ ready: 1, pending: 2 });
    } finally {
      await controller.stop();
    }
  });

  it("a prune's delete makes no pass of its own: the pass that deleted already counted it", async () => {
    const start = startOfTwoFires();
    await boundPvc(ns(), 'data-0');
    // Fires once a day, at an hour this test never reaches: only events make passes here.
    await createSchedule(ns(), 'prune', {
      schedule: `0 ${(new Date(start).getUTCHours() + 12) % 24} * * *`,
      timeZone: 'UTC',
      retention: { maxCount: 1 },
    });
    const { controller, passes, settle } = await counted(start);
    try {
      await eventually(async () => (await getSchedule(ns(), 'prune')).status?.nextScheduleTime, 10_000);
      // Two copies another writer made, both pending: news, but nothing to delete yet.
      const takenAt = { older: new Date(start - 3 * 3_600_000), newer: new Date(start - 2 * 3_600_000) };
      for (const [name, at] of Object.entries(takenAt))
        await createSnapshot(ns(), name, { pvc: 'data-0', schedule: 'prune', takenAt: at });
      await settle();
      const before = await passes();
      // Both turn ready: one pass sees it, keeps the newer (maxCount 1) and deletes the older.
      for (const [name, at] of Object.entries(takenAt))
        await setSnapshotStatus(ns(), name, { readyToUse: true, creationTime: at.toISOString() });
      await settle();
      await eventually(
        async () => (await listSnapshots(ns())).map((s) => s.metadata.name).join() === 'newer' || undefined,
        10_000,
      );
      await settle(); // the delete's event is in
      expect(await passes()).toBe(before + 1);
      expect((await getSchedule(ns(), 'prune')).status?.snapshots).toMatchObject({ ready: 1, pending: 0 });
    } finally {
      await controller.stop();
    }
  });

  it('passes over every schedule again at each full and half hour of its clock (the resync), and not between', async () => {
    // Two schedules that fire once a year, so a pass between start-up and the resync is the resync's.
    await boundPvc(ns(), 'data-0');
    for (const name of ['yearly-a', 'yearly-b'])
      await createSchedule(ns(), name, {
        schedule: '0 0 1 1 *',
        timeZone: 'UTC',
        retention: { maxCount: 3 },
      });
    const start = Date.UTC(2031, 5, 1, 10, 7);
    const { clock, controller, passes, settle } = await counted(start);
    try {
      for (const name of ['yearly-a', 'yearly-b'])
        await eventually(async () => (await getSchedule(ns(), name)).status?.nextScheduleTime, 10_000);
      await eventually(async () => controller.idle, 10_000);
      await settle();
      const before = await passes();
      expect(RESYNC_MS).toBe(30 * 60_000);
      clock.advanceTo(Date.UTC(2031, 5, 1, 10, 29, 59));
      await sleep(1000);
      expect(await passes()).toBe(before);
      clock.advanceTo(Date.UTC(2031, 5, 1, 10, 30, 1));
      await eventually(async () => ((await passes()) === before + 2 ? true : undefined), 10_000);
      clock.advanceTo(Date.UTC(2031, 5, 1, 10, 59, 59));
      await sleep(1000);
      expect(await passes()).toBe(before + 2);
      clock.advanceTo(Date.UTC(2031, 5, 1, 11, 0, 1));
      await eventually(async () => ((await passes()) === before + 4 ? true : undefined), 10_000);
    } finally {
      await controller.stop();
    }
  });

  it('looks again when a snapshot turns stuck by the clock alone (pendingDeadline), with no event and no resync', async () => {
    const start = startOfTwoFires();
    const fire = start + 60_000;
    const at = new Date(fire);
    await boundPvc(ns(), 'data-0');
    await createSchedule(ns(), 'deadline', {
      schedule: `${at.getUTCMinutes()} ${at.getUTCHours()} * * *`,
      timeZone: 'UTC',
      retention: { maxCount: 10, pendingDeadline: '6h' },
    });
    const clock = new ManualClock(start);
    // No resync within the test's hours: the look again must come from the plan's recheckAt.
    const controller = inProcess(
      Kube.fromFile(kubeconfigPath(), { qps: 100, burst: 100 }),
      clock,
      new Metrics(),
      pino({ level: 'silent' }),
      { resyncMs: 100 * 365 * 86_400_000 },
    );
    await controller.start();
    try {
      await eventually(async () => (await getSchedule(ns(), 'deadline')).status?.nextScheduleTime, 10_000);
      clock.advanceTo(fire);
      const [taken] = await eventually(async () => {
        const l = await listSnapshots(ns());
        return l.length === 1 ? l : undefined;
      }, 10_000);
      const stuckCondition = async () =>
        (await getSchedule(ns(), 'deadline')).status?.conditions?.find((c) => c.type === 'SnapshotsStuck');
      await eventually(async () => (await stuckCondition())?.status === 'False', 10_000);
      // The deadline counts from the object's creation (the API server's clock, whole seconds; the
      // test clock runs two hours ahead of it, inside the 6 h).
      const deadline = new Date(taken?.metadata.creationTimestamp ?? 0).getTime() + 6 * 3_600_000;
      clock.advanceTo(deadline - 60_000);
      await sleep(1500);
      expect((await stuckCondition())?.status).toBe('False');
      clock.advanceTo(deadline + 2_000);
      const stuck = await eventually(async () => {
        const c = await stuckCondition();
        return c?.status === 'True' ? c : undefined;
      }, 10_000);
      expect(stuck.reason).toBe('PendingPastDeadline');
      expect((await getSchedule(ns(), 'deadline')).status?.snapshots?.stuck).toBe(1);
      // README "Retention": a stuck snapshot is kept and raises a SnapshotStuck event, once.
      const stuckEvents = await eventually(async () => {
        const e = (await kube().core.listNamespacedEvent({ namespace: ns() })).items.filter(
          (x) => x.reason === 'SnapshotStuck',
        );
        return e.length > 0 ? e : undefined;
      }, 10_000);
      expect(stuckEvents).toHaveLength(1);
      expect(stuckEvents[0]?.count ?? 1).toBe(1);
      expect(await listSnapshots(ns())).toHaveLength(1);
    } finally {
      await controller.stop();
    }
  });

  it("promotes a pass's writes when its next fire comes due during it, not for the fire it is taking", async () => {
    // Two fires a minute apart within one hour of the test clock.
    const start = startOfTwoFires();
    const fire = start + 60_000;
    const next = fire + 60_000;
    const at = (t: number): Date => new Date(t);
    for (let i = 0; i < 8; i++) await boundPvc(ns(), `data-${i}`);
    await createSchedule(ns(), 'twice', {
      schedule: `${at(fire).getUTCMinutes()},${at(next).getUTCMinutes()} ${at(fire).getUTCHours()} * * *`,
      timeZone: 'UTC',
      retention: { maxCount: 10 },
    });
    const clock = new ManualClock(start);
    // The fire's pass (8 creates, then status and events) outlasts the steps below.
    const { kube, promoted } = slowKube();
    const controller = inProcess(kube, clock);
    await controller.start();
    try {
      await fireAfterStartUp(controller, clock, 'twice', fire);
      await eventually(async () => (await listSnapshots(ns())).length >= 1, 10_000);
      // Its own snapshots' watch events re-add the schedule while the pass runs (after the
      // coalescing delay, on the test clock): the fire it is taking is no reason to go first.
      await sleep(1200);
      clock.advanceTo(fire + 5_000);
      await sleep(1200);
      expect(promoted).toEqual([]);
      // The next fire comes due while the pass still waits for writes: it goes first, with no
      // event needed to notice (the pass queued its next fire when it decided).
      clock.advanceTo(next);
      expect(promoted).toEqual([`${ns()}/twice`]);
      expect((await listSnapshots(ns())).length).toBeLessThan(8); // the first pass was still running
      await eventually(async () => (await listSnapshots(ns())).length === 16, 60_000);
    } finally {
      await controller.stop();
    }
  });

  it('a create that waits for the write budget past startingDeadlineSeconds is skipped and recorded, not taken late', async () => {
    const start = startOfTwoFires();
    const fire = start + 60_000;
    const at = new Date(fire);
    for (let i = 0; i < 5; i++) await boundPvc(ns(), `data-${i}`);
    await createSchedule(ns(), 'late', {
      schedule: `${at.getUTCMinutes()} ${at.getUTCHours()} * * *`,
      timeZone: 'UTC',
      startingDeadlineSeconds: 10,
    });
    const clock = new ManualClock(start);
    const metrics = new Metrics();
    // One write a second, events and status included: the pass outlasts the steps below.
    const { kube: slow } = slowKube();
    const controller = inProcess(slow, clock, metrics);
    await controller.start();
    try {
      await fireAfterStartUp(controller, clock, 'late', fire);
      await eventually(async () => (await listSnapshots(ns())).length >= 1, 10_000);
      // The deadline passes on the controller's clock while the other creates wait for the budget.
      clock.advanceTo(fire + 11_000);
      const lastRun = await eventually(async () => {
        const run = (await getSchedule(ns(), 'late')).status?.lastRun;
        return run?.skips?.some((k) => k.reason === 'DeadlinePassed') ? run : undefined;
      }, 90_000);
      const late = (lastRun.skips ?? []).filter((k) => k.reason === 'DeadlinePassed').map((k) => k.pvc);
      const taken = (await listSnapshots(ns())).map((s) => s.spec.source.persistentVolumeClaimName);
      // Every PVC is either taken or named as skipped, never both, never neither.
      expect(late.length).toBeGreaterThan(0);
      expect([...taken, ...late].sort()).toEqual(Array.from({ length: 5 }, (_, i) => `data-${i}`));
      // Nothing is taken late afterwards.
      await sleep(2000);
      expect((await listSnapshots(ns())).length).toBe(taken.length);
      const events = (await kube().core.listNamespacedEvent({ namespace: ns() })).items;
      expect(events.map((e) => e.reason)).toContain('SkippedDeadlinePassed');
      expect(await metrics.registry.metrics()).toMatch(
        new RegExp(`snapcron_pvcs_skipped_total\\{[^}]*reason="DeadlinePassed"[^}]*\\} ${late.length}\\b`),
      );
    } finally {
      await controller.stop();
    }
  });

  it('a failing pass backs off, is reported once per streak, and takes the missing snapshot once it can; the other schedules fire on time', async () => {
    const start = startOfTwoFires();
    const fire = start + 60_000;
    const at = new Date(fire);
    const cron = `${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
    await boundPvc(ns(), 'good-0', { app: 'good' });
    await boundPvc(ns(), 'bad-0', { app: 'bad' });
    for (const app of ['good', 'bad'])
      await createSchedule(ns(), app, {
        schedule: cron,
        timeZone: 'UTC',
        claimSelector: { matchLabels: { app } },
      });
    // Someone else's object already holds the name of bad's snapshot: its create fails, every time.
    await createSnapshot(ns(), snapshotName('bad-0', 'bad', at), { pvc: 'bad-0' });
    type Line = { level: number; msg: string; schedule?: string };
    const lines: Line[] = [];
    const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as Line) });
    const clock = new ManualClock(start);
    const metrics = new Metrics();
    const controller = inProcess(
      Kube.fromFile(kubeconfigPath(), { qps: 100, burst: 100 }),
      clock,
      metrics,
      log,
    );
    await controller.start();
    const failures = (): Promise<number> => passesOf(metrics, 'error');
    try {
      await fireAfterStartUp(controller, clock, 'bad', fire);
      await eventually(async () => (await failures()) >= 1, 10_000);
      const good = (await listSnapshots(ns())).filter(
        (x) => x.spec.source.persistentVolumeClaimName === 'good-0',
      );
      expect(good).toHaveLength(1);
      // Retries come at 1 s, 2 s, 4 s, … of the controller's clock (jittered): move it a minute.
      for (let i = 0; i < 60; i++) {
        clock.advance(1_000);
        await sleep(20);
      }
      await eventually(async () => (await failures()) >= 4, 10_000);
      const bad = lines.filter((l) => l.schedule === 'bad');
      expect(bad.filter((l) => l.msg === 'pass failed' && l.level === 50)).toHaveLength(1);
      expect(bad.filter((l) => l.msg === 'pass failed again').every((l) => l.level === 20)).toBe(true);
      expect(bad.filter((l) => l.msg === 'pass failed again').length).toBeGreaterThanOrEqual(3);
      // Retries are backed off, not every second: fewer than a minute's worth.
      expect(await failures()).toBeLessThan(12);
      const events = (await kube().core.listNamespacedEvent({ namespace: ns() })).items.filter(
        (e) => e.reason === 'PassFailed',
      );
      expect(events).toHaveLength(1);
      expect(events[0]?.count ?? 1).toBe(1);
      expect(events[0]?.involvedObject.name).toBe('bad');
      expect(events[0]?.message).toMatch(/retrying with backoff/);

      // The obstacle goes: a retry takes the run's missing snapshot, for the same fire time, not
      // the next one (the PVCs that had theirs are not asked again).
      const k = kube();
      const name = snapshotName('bad-0', 'bad', at);
      await k.custom.deleteNamespacedCustomObject({ ...k.snapshots, namespace: ns(), name });
      await eventually(async () => {
        clock.advance(30_000);
        const s = (await listSnapshots(ns())).find((x) => x.metadata.name === name);
        return s?.metadata.labels?.['snapcron.io/schedule'] === 'bad';
      }, 20_000);
      await eventually(
        async () =>
          (await getSchedule(ns(), 'bad')).status?.lastScheduleTime ===
          at.toISOString().replace('.000Z', 'Z'),
        10_000,
      );
      expect((await listSnapshots(ns())).map((x) => x.metadata.name).sort()).toEqual(
        [name, snapshotName('good-0', 'good', at)].sort(),
      );
    } finally {
      await controller.stop();
    }
  });

  it("re-aims a running pass's promotion when an edit brings the schedule's next fire sooner", async () => {
    const start = startOfTwoFires();
    const fire = start + 60_000;
    const sooner = fire + 60_000;
    const at = (t: number): Date => new Date(t);
    for (let i = 0; i < 8; i++) await boundPvc(ns(), `data-${i}`);
    // Daily: the fire's pass aims its promotion at tomorrow.
    await createSchedule(ns(), 'edited', {
      schedule: `${at(fire).getUTCMinutes()} ${at(fire).getUTCHours()} * * *`,
      timeZone: 'UTC',
      retention: { maxCount: 10 },
    });
    const clock = new ManualClock(start);
    const { kube, promoted } = slowKube();
    const controller = inProcess(kube, clock);
    await controller.start();
    try {
      await fireAfterStartUp(controller, clock, 'edited', fire);
      await eventually(async () => (await listSnapshots(ns())).length >= 1, 10_000);
      // While that pass waits for the budget, the timetable moves to a fire a minute away.
      const soonerCron = `${at(sooner).getUTCMinutes()} ${at(sooner).getUTCHours()} * * *`;
      await updateScheduleSpec(ns(), 'edited', { schedule: soonerCron });
      // The watch brings the edit (its handler re-aims at once): the cache holds the new timetable.
      await eventually(
        async () => controller.cached(ns()).schedules[0]?.spec.schedule === soonerCron,
        10_000,
      );
      expect(promoted).toEqual([]);
      clock.advanceTo(sooner);
      expect(promoted).toEqual([`${ns()}/edited`]);
      expect((await listSnapshots(ns())).length).toBeLessThan(8); // the first pass was still running
      await eventually(async () => (await listSnapshots(ns())).length === 16, 60_000);
    } finally {
      await controller.stop();
    }
  });
});
