/**
 * README "Deletes re-check, cheaply": each delete carries the resourceVersion the re-check read,
 * so a snapshot changed since that read (here, a hold label put on it a moment later) is never
 * deleted. On the real API server, with the re-check's view held at the read before the change.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { VolumeSnapshot } from '../../src/api/objects.ts';
import { LABEL_HOLD } from '../../src/api/constants.ts';
import { Executor, apiView, type FreshView } from '../../src/controller/executor.ts';
import { Kube } from '../../src/kube/client.ts';
import { EventRecorder } from '../../src/kube/events.ts';
import {
  createSchedule,
  createSnapshot,
  kube,
  kubeconfigPath,
  listSnapshots,
  useNamespace,
} from '../env/kube.ts';

describe('a delete under the resourceVersion of its re-check', () => {
  const ns = useNamespace('precond');
  const log = pino({ level: 'silent' });

  const read = async (name: string): Promise<VolumeSnapshot> => {
    const k = kube();
    return (await k.custom.getNamespacedCustomObject({
      ...k.snapshots,
      namespace: ns(),
      name,
    })) as VolumeSnapshot;
  };

  /** Deletes `name` with its schedule (finalize), the re-check seeing `seen`. */
  const finalize = async (name: string, seen: VolumeSnapshot) => {
    const client = Kube.fromFile(kubeconfigPath());
    // The controller's re-check reads its watch-fed cache: here a cache that has not caught up.
    const view: FreshView = { ...apiView(client), snapshot: async () => seen };
    const executor = new Executor({ kube: client, events: new EventRecorder(client, log), log, view });
    const schedule = await createSchedule(ns(), `app-${name}`, { schedule: '0 2 * * *' });
    return executor.finalize(schedule, {
      deletes: [{ name, resourceVersion: seen.metadata.resourceVersion }],
      retained: [],
      waiting: [],
      done: false,
    });
  };

  it('a snapshot held after the re-check read it is kept, and the schedule waits to look again', async () => {
    await createSnapshot(ns(), 'held-late', { pvc: 'data', schedule: 'app' });
    const seen = await read('held-late');
    const k = kube();
    await k.custom.patchNamespacedCustomObject({
      ...k.snapshots,
      namespace: ns(),
      name: 'held-late',
      body: { metadata: { labels: { [LABEL_HOLD]: 'true' } } },
    });
    const result = await finalize('held-late', seen);
    expect(result.deleted).toEqual([]);
    expect(result.waiting).toEqual(['held-late']);
    expect(result.released).toBe(false);
    expect((await read('held-late')).metadata.deletionTimestamp).toBeUndefined();
  });

  it('a snapshot unchanged since the read is deleted (the precondition holds)', async () => {
    await createSnapshot(ns(), 'unchanged', { pvc: 'data', schedule: 'app' });
    const result = await finalize('unchanged', await read('unchanged'));
    expect(result.deleted).toEqual(['unchanged']);
    expect(await listSnapshots(ns())).toEqual([]);
  });
});
