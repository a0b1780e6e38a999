/**
 * The controller's three caches (SnapshotSchedules, PVCs, VolumeSnapshots) as Reflectors
 * with slim objects and snapcron's indexes, in place of client-node's makeInformer +
 * SupervisedInformer. One namespace or the whole cluster.
 *
 * Reads, all O(size of the answer):
 * - `schedules.store.get(ns, name)`, `schedules.store.list()`, `schedulesOfSnapshot(schedules.store, snap)`;
 * - `snapshotsOfSchedule(snapshots.store, ns, scheduleName)`, `snapshotsOfPvc(...)`;
 * - `pvcsForSchedule(pvcs.store, ns, spec.claimSelector)` (selected PVCs plus restores in
 *   progress: decide/planRetention/planDeletion answer as with every PVC of the namespace).
 */
import type { Logger } from 'pino';
import type { VolumeSnapshot } from '../api/objects.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import type { Kube } from './client.ts';
import { pvcIndexers, scheduleIndexers, snapshotIndexers } from './index-cache.ts';
import { collectionPath, Reflector, type ReflectorOptions } from './reflector.ts';
import { slimPvc, slimSchedule, slimSnapshot, type SlimPvc } from './slim.ts';

export type CacheKind = 'schedules' | 'pvcs' | 'snapshots';

export interface CachesOptions {
  kube: Kube;
  log: Logger;
  /** Watch one namespace only; all when unset. */
  namespace?: string | undefined;
  /** A cache re-listed after a failure or a 410: it may have missed anything. */
  onResynced?: (kind: CacheKind) => void;
  /** Called when `synced` (all three) changes. */
  onSyncChange?: (synced: boolean) => void;
  /** Options for every reflector (page size, timeouts, backoff). */
  reflector?: Partial<
    Omit<ReflectorOptions<never>, 'kc' | 'path' | 'log' | 'transform' | 'indexers' | 'store'>
  >;
}

export class SnapcronCaches {
  readonly schedules: Reflector<SnapshotSchedule>;
  readonly pvcs: Reflector<SlimPvc>;
  readonly snapshots: Reflector<VolumeSnapshot>;
  private all = false;

  constructor(o: CachesOptions) {
    const { kube, namespace } = o;
    const common = (kind: CacheKind) => ({
      ...o.reflector,
      kc: kube.kc,
      log: o.log,
      name: kind,
      onResynced: () => o.onResynced?.(kind),
      onSyncChange: () => {
        const all = this.synced;
        if (all === this.all) return;
        this.all = all;
        o.onSyncChange?.(all);
      },
    });
    this.schedules = new Reflector<SnapshotSchedule>({
      ...common('schedules'),
      path: collectionPath(kube.schedules, namespace),
      transform: (raw) => slimSchedule(raw),
      indexers: scheduleIndexers(),
    });
    this.pvcs = new Reflector<SlimPvc>({
      ...common('pvcs'),
      path: collectionPath({ version: 'v1', plural: 'persistentvolumeclaims' }, namespace),
      transform: (raw) => slimPvc(raw),
      indexers: pvcIndexers(),
    });
    // Every snapshot, not only snapcron's: the restore webhook may restore from a manual one.
    this.snapshots = new Reflector<VolumeSnapshot>({
      ...common('snapshots'),
      path: collectionPath(kube.snapshots, namespace),
      transform: (raw) => slimSnapshot(raw),
      indexers: snapshotIndexers(),
    });
  }

  /** Every cache listed and watching: /readyz, and the gate for acting. */
  get synced(): boolean {
    // During construction the reflectors are not all there yet.
    return !!this.schedules?.synced && !!this.pvcs?.synced && !!this.snapshots?.synced;
  }

  /** Resolves once all three are synced (they keep retrying in the background) or stopped. */
  async start(): Promise<void> {
    await Promise.all([this.schedules.start(), this.pvcs.start(), this.snapshots.start()]);
  }

  async stop(): Promise<void> {
    await Promise.allSettled([this.schedules.stop(), this.pvcs.stop(), this.snapshots.stop()]);
  }
}
