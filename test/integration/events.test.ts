/**
 * The EventRecorder on the real API server: repeats of one Event are folded into few writes,
 * never racing each other into conflicts (which at 1,000 schedules ate the write budget).
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { EventRecorder, eventName } from '../../src/kube/events.ts';
import { Kube } from '../../src/kube/client.ts';
import { kube, kubeconfigPath, useNamespace } from '../env/kube.ts';

describe('EventRecorder', () => {
  const ns = useNamespace('events');

  it('folds 50 quick repeats of one Event into a few writes with the whole count, and the latest message', async () => {
    // A small write budget, as when snapshot writes hold most of it.
    const client = Kube.fromFile(kubeconfigPath(), { qps: 5, burst: 1 });
    const events = new EventRecorder(client, pino({ level: 'silent' }));
    const target = {
      apiVersion: 'snapcron.io/v1',
      kind: 'SnapshotSchedule',
      name: 'app',
      namespace: ns(),
      uid: 'u-1',
    };
    for (let i = 1; i <= 50; i++) events.emit(target, 'Normal', 'SnapshotsPruned', `pruned run ${i}`);
    await events.flush();
    const stored = await kube().core.readNamespacedEvent({
      namespace: ns(),
      name: eventName(target, 'Normal', 'SnapshotsPruned'),
    });
    expect(stored.count).toBe(50);
    expect(stored.message).toBe('pruned run 50');
    // One create, then one update carrying the 49 that arrived meanwhile.
    expect(client.writes.requested.other).toBe(2);

    // Later repeats, one at a time, are one update each (no read first).
    for (let i = 51; i <= 53; i++) {
      events.emit(target, 'Normal', 'SnapshotsPruned', `pruned run ${i}`);
      await events.flush();
    }
    expect(client.writes.requested.other).toBe(5);
    const again = await kube().core.readNamespacedEvent({
      namespace: ns(),
      name: eventName(target, 'Normal', 'SnapshotsPruned'),
    });
    expect(again.count).toBe(53);
  });

  it('keeps different Events apart', async () => {
    const client = Kube.fromFile(kubeconfigPath(), { qps: 50, burst: 50 });
    const events = new EventRecorder(client, pino({ level: 'silent' }));
    const target = (name: string) => ({
      apiVersion: 'snapcron.io/v1',
      kind: 'SnapshotSchedule',
      name,
      namespace: ns(),
    });
    for (let i = 0; i < 3; i++)
      for (const name of ['a', 'b']) events.emit(target(name), 'Normal', 'SnapshotsCreated', `${name} ${i}`);
    events.emit(target('a'), 'Warning', 'PassFailed', 'boom');
    await events.flush();
    const list = await kube().core.listNamespacedEvent({ namespace: ns() });
    const seen = list.items.map((e) => `${e.involvedObject.name}/${e.reason}/${e.count}/${e.message}`).sort();
    expect(seen).toEqual(['a/PassFailed/1/boom', 'a/SnapshotsCreated/3/a 2', 'b/SnapshotsCreated/3/b 2']);
  });
});
