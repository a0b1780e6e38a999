/**
 * Status writes on the real API server: a pass that follows its own status write before the
 * watch brings it (its snapshots' events re-queue it at once) plans from the version that write
 * replaced. At 1,000 schedules that cost a conflict, a re-read and a second write per pass
 * (bench:scale counted 1,212 conflicts in 10 minutes, out of a shared 100 writes/s budget).
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Executor } from '../../src/controller/executor.ts';
import { Kube } from '../../src/kube/client.ts';
import { EventRecorder } from '../../src/kube/events.ts';
import {
  createSchedule,
  getSchedule,
  kubeconfigPath,
  updateScheduleSpec,
  useNamespace,
} from '../env/kube.ts';

describe('status writes', () => {
  const ns = useNamespace('status');
  const log = pino({ level: 'silent' });

  it('a pass planned from the version its own last write replaced writes under the new one, without a conflict', async () => {
    const client = Kube.fromFile(kubeconfigPath());
    let rereads = 0;
    const get = client.custom.getNamespacedCustomObject.bind(client.custom);
    client.custom.getNamespacedCustomObject = ((...args: Parameters<typeof get>) => {
      rereads++;
      return get(...args);
    }) as typeof get;
    const executor = new Executor({ kube: client, events: new EventRecorder(client, log), log });
    await createSchedule(ns(), 'app', { schedule: '0 2 * * *' });
    // The cache's copy, which stays as it is below: the watch has not brought the writes yet.
    const cached = await getSchedule(ns(), 'app');

    expect(await executor.writeStatus(cached, { lastScheduleTime: '2026-11-26T02:00:00Z' }, log)).toBe(true);
    const planned = executor.fresher(cached);
    expect(planned.status?.lastScheduleTime).toBe('2026-11-26T02:00:00Z');
    expect(planned.metadata?.resourceVersion).not.toBe(cached.metadata?.resourceVersion);
    // Nothing new to say: no write at all.
    expect(await executor.writeStatus(planned, { ...planned.status }, log)).toBe(false);
    // Something new: one write, under the version the last write made.
    const more = { ...planned.status, lastSuccessfulTime: '2026-11-26T02:00:00Z' };
    expect(await executor.writeStatus(planned, more, log)).toBe(true);
    expect(rereads).toBe(0);
    expect((await getSchedule(ns(), 'app')).status).toMatchObject(more);
    // The cache still lags both writes: the next pass plans from the second.
    expect(executor.fresher(cached).status).toMatchObject(more);
    expect(executor.fresher(planned).status).toMatchObject(more);

    // Someone else wrote since (an edit): the cache's newer version wins, and the memory goes.
    await updateScheduleSpec(ns(), 'app', { schedule: '0 3 * * *' });
    const edited = await getSchedule(ns(), 'app');
    expect(executor.fresher(edited)).toBe(edited);
    expect(executor.fresher(cached)).toBe(cached);
  });
});
