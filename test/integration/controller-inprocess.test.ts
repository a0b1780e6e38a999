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
    await boundPvc(ns(), 'data');
    await createSchedule(ns(), 'nightly', {
      schedule: '0 2 * * *',
      timeZone: 'UTC',
      retention: { maxCount: 10 },
    });
    const tomorrow = new Date();
    tomorrow.setUTCDate(tomorrow.getUTCDate() + 1);
    tomorrow.setUTCHours(1, 59, 0, 0);
    const clock = new ManualClock(tomorrow.getTime());
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
        new Date(tomorrow.getTime() + 60_000).toISOString().replace('.000Z', 'Z'),
      );
      clock.advanceTo(tomorrow.getTime() + 59_000); // 01:59:59
      await sleep(1500);
      expect(await listSnapshots(ns())).toEqual([]);

      clock.advanceTo(tomorrow.getTime() + 60_000); // 02:00:00
      const first = await eventually(async () => (await listSnapshots(ns()))[0], 10_000);
      expect(first.metadata.annotations?.['snapcron.io/scheduled-at']).toBe(
        new Date(tomorrow.getTime() + 60_000).toISOString().replace('.000Z', 'Z'),
      );

      // A day later on the test clock: the next night's run, once.
      clock.advanceTo(tomorrow.getTime() + 86_400_000 + 60_000);
      await eventually(async () => (await listSnapshots(ns())).length === 2, 10_000);
      await sleep(1500);
      expect((await listSnapshots(ns())).length).toBe(2);
    } finally {
      await controller.stop();
    }
  });
});
