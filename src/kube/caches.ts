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
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import {
  GROUP_SNAPSHOT_GROUP,
  GROUP_SNAPSHOT_VERSION,
  SNAPSHOT_GROUP,
  SNAPSHOT_VERSION,
} from '../api/constants.ts';
import type { VolumeGroupSnapshot, VolumeSnapshot } from '../api/objects.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import { DEFAULT_CLASS_ANNOTATION, type SnapshotClassLike } from '../api/warnings.ts';
import type { Kube } from './client.ts';
import { errorMessage } from './retry.ts';
import { groupSnapshotIndexers, pvcIndexers, scheduleIndexers, snapshotIndexers } from './index-cache.ts';
import { collectionPath, Reflector, type ReflectorOptions } from './reflector.ts';
import { slimGroupSnapshot, slimPvc, slimSchedule, slimSnapshot, type SlimPvc } from './slim.ts';

export type CacheKind = 'schedules' | 'pvcs' | 'snapshots' | 'groupSnapshots';

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

/**
 * A schedule's new copy with the cached copy's spec object when the spec is unchanged, as after
 * each of the controller's own status writes: validateStoredSpec's answers are kept per spec
 * object, so an unchanged spec is not copied and validated again on the next pass (2.4 % of the
 * controller's CPU at bench:scale's peer load). Compared by value, not by metadata.generation:
 * a CRD's new defaults change what is read without a new generation.
 */
export function keepSpec(next: SnapshotSchedule, cached: SnapshotSchedule | undefined): SnapshotSchedule {
  if (cached === undefined || cached.spec === next.spec || !isDeepStrictEqual(cached.spec, next.spec))
    return next;
  return { ...next, spec: cached.spec };
}

export class SnapcronCaches {
  readonly schedules: Reflector<SnapshotSchedule>;
  readonly pvcs: Reflector<SlimPvc>;
  readonly snapshots: Reflector<VolumeSnapshot>;
  /**
   * VolumeSnapshotClasses, for the ACK warnings only: started by `startClasses` when RBAC
   * allows, and never part of `synced` (a missing permission must not stop snapshots).
   */
  classes: Reflector<SnapshotClassLike> | undefined;
  /**
   * VolumeGroupSnapshots, for schedules with spec.group: there when the API server serves
   * groupsnapshot.storage.k8s.io/v1 and RBAC lets the controller list and watch them (then part
   * of `synced`); undefined otherwise, and such schedules say why in their Ready condition.
   */
  groupSnapshots: Reflector<VolumeGroupSnapshot> | undefined;
  private all = false;
  private readonly options: CachesOptions;
  private readonly common: (
    kind: CacheKind,
  ) => Omit<ReflectorOptions<never>, 'path' | 'transform' | 'indexers' | 'store'>;

  constructor(o: CachesOptions) {
    this.options = o;
    const { kube, namespace } = o;
    const common = (this.common = (kind: CacheKind) => ({
      ...o.reflector,
      rest: kube.rest,
      log: o.log,
      name: kind,
      onResynced: () => o.onResynced?.(kind),
      onSyncChange: () => {
        const all = this.synced;
        if (all === this.all) return;
        this.all = all;
        o.onSyncChange?.(all);
      },
    }));
    this.schedules = new Reflector<SnapshotSchedule>({
      ...common('schedules'),
      path: collectionPath(kube.schedules, namespace),
      transform: (raw) => {
        const s = slimSchedule(raw);
        const m = s.metadata;
        return m?.name === undefined ? s : keepSpec(s, this.schedules?.store.get(m.namespace ?? '', m.name));
      },
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
    return (
      !!this.schedules?.synced &&
      !!this.pvcs?.synced &&
      !!this.snapshots?.synced &&
      (this.groupSnapshots === undefined || this.groupSnapshots.synced)
    );
  }

  /** Resolves once all are synced (they keep retrying in the background) or stopped. */
  async start(): Promise<void> {
    if (await this.groupsAvailable()) {
      this.groupSnapshots = new Reflector<VolumeGroupSnapshot>({
        ...this.common('groupSnapshots'),
        path: collectionPath(this.options.kube.groupSnapshots, this.options.namespace),
        transform: (raw) => slimGroupSnapshot(raw),
        indexers: groupSnapshotIndexers(),
      });
    }
    await Promise.all([
      this.schedules.start(),
      this.pvcs.start(),
      this.snapshots.start(),
      this.groupSnapshots?.start(),
    ]);
  }

  /** Is groupsnapshot.storage.k8s.io/v1 served, and may this controller list and watch it? */
  private async groupsAvailable(): Promise<boolean> {
    const o = this.options;
    try {
      const resources = await o.kube.custom.getAPIResources({
        group: GROUP_SNAPSHOT_GROUP,
        version: GROUP_SNAPSHOT_VERSION,
      });
      if (!resources.resources.some((r) => r.name === 'volumegroupsnapshots')) return false;
    } catch {
      o.log.info(
        { api: `${GROUP_SNAPSHOT_GROUP}/${GROUP_SNAPSHOT_VERSION}` },
        'VolumeGroupSnapshots not served: schedules with spec.group will say so (install the external-snapshotter v8.6+ group snapshot CRDs)',
      );
      return false;
    }
    const authz = o.kube.authorization;
    try {
      for (const verb of ['list', 'watch']) {
        const review = await authz.createSelfSubjectAccessReview({
          body: {
            spec: {
              resourceAttributes: {
                group: GROUP_SNAPSHOT_GROUP,
                resource: 'volumegroupsnapshots',
                verb,
                ...(o.namespace ? { namespace: o.namespace } : {}),
              },
            },
          },
        });
        if (review.status?.allowed !== true) {
          o.log.warn(
            { resource: 'volumegroupsnapshots' },
            `cannot ${verb} VolumeGroupSnapshots: schedules with spec.group will not run; grant get, list, watch, create, delete on volumegroupsnapshots.groupsnapshot.storage.k8s.io (deploy/ RBAC does)`,
          );
          return false;
        }
      }
    } catch (err) {
      o.log.warn({ resource: 'volumegroupsnapshots', err: errorMessage(err) }, 'access review failed');
      return false;
    }
    return true;
  }

  /**
   * Starts the (cluster-scoped, small) VolumeSnapshotClass cache and resolves once listed, or
   * resolves false at once when RBAC does not allow list and watch: an older install keeps
   * working without the ACK warnings, told once how to turn them on.
   */
  async startClasses(): Promise<boolean> {
    const o = this.options;
    const authz = o.kube.authorization;
    const allowed = async (verb: string): Promise<boolean> => {
      const review = await authz.createSelfSubjectAccessReview({
        body: {
          spec: { resourceAttributes: { group: SNAPSHOT_GROUP, resource: 'volumesnapshotclasses', verb } },
        },
      });
      return review.status?.allowed === true;
    };
    try {
      if (!(await allowed('list')) || !(await allowed('watch'))) {
        o.log.warn(
          { resource: 'volumesnapshotclasses' },
          'cannot list and watch VolumeSnapshotClasses: the AckWarnings condition is off; grant get, list, watch on volumesnapshotclasses.snapshot.storage.k8s.io (deploy/ RBAC does)',
        );
        return false;
      }
    } catch (err) {
      o.log.warn(
        { resource: 'volumesnapshotclasses', err: errorMessage(err) },
        'access review failed; AckWarnings condition off',
      );
      return false;
    }
    this.classes ??= new Reflector<SnapshotClassLike>({
      ...o.reflector,
      rest: o.kube.rest,
      log: o.log,
      name: 'volumesnapshotclasses',
      path: collectionPath({
        group: SNAPSHOT_GROUP,
        version: SNAPSHOT_VERSION,
        plural: 'volumesnapshotclasses',
      }),
      transform: slimClass,
    });
    await this.classes.start();
    return true;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([
      this.schedules.stop(),
      this.pvcs.stop(),
      this.snapshots.stop(),
      this.groupSnapshots?.stop(),
      this.classes?.stop(),
    ]);
  }
}

/** What the ACK warnings read of a VolumeSnapshotClass, and nothing else. */
function slimClass(raw: unknown): SnapshotClassLike {
  const c = raw as SnapshotClassLike & { metadata?: { resourceVersion?: string; uid?: string } };
  const isDefault = c.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION];
  return {
    metadata: {
      name: c.metadata?.name,
      ...(c.metadata?.resourceVersion ? { resourceVersion: c.metadata.resourceVersion } : {}),
      ...(isDefault ? { annotations: { [DEFAULT_CLASS_ANNOTATION]: isDefault } } : {}),
    },
    driver: c.driver,
    parameters: c.parameters,
  };
}
