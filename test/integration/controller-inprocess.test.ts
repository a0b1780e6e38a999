/**
 * The Controller in-process, on the real API server, with a clock the test moves (as
 * snapscheduler's envtest suite and kube-rs' controller tests do): fire times come from the
 * queue's delay heap on that clock, not from the wall clock.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.ts';
import { Metrics } from '../../src/controller/metrics.ts';
import { Kube } from '../../src/kube/client.ts';
import { ManualClock } from '../support/manual-clock.ts';
import {
  boundPvc,
  createSchedule,
  eventually,
  getSchedule,
  kubeConfig,
  listSnapshots,
  useNamespace,
} from '../env/kube.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('the Controller in-process with a controlled clock', () => {
  const ns = useNamespace('inproc');

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
    const controller = new Controller({
      kube: new Kube(kubeConfig(), { qps: 100, burst: 100 }),
      log: pino({ level: 'silent' }),
      metrics: new Metrics(),
      namespace: ns(),
      lease: { namespace: ns(), name: 'inproc', identity: 'inproc', durationSeconds: 15, retryPeriodMs: 200 },
      clock,
    });
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
});
