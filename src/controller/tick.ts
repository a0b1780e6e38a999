/**
 * `snapcron tick`: one pass over every schedule, for a Kubernetes CronJob. No watch,
 * no lease: deterministic snapshot names make two overlapping ticks harmless. It runs
 * the same decisions as the controller: `decide` for a live schedule, the finalizer
 * sync, and `planDeletion` for a schedule being deleted with deletionPolicy Delete.
 */
import type { Logger } from 'pino';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../api/objects.ts';
import { asRecoveryPoint, groupOfMember, groupRestores, membersByGroup } from '../group/recovery-points.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import { LABEL_SCHEDULE, SNAPSHOT_GROUP, SNAPSHOT_VERSION } from '../api/constants.ts';
import {
  DEFAULT_TICK_INTERVAL_SECONDS,
  snapshotClassOf,
  tickModeWarnings,
  type SnapshotClassLike,
} from '../api/warnings.ts';
import type { Kube } from '../kube/client.ts';
import { EventRecorder } from '../kube/events.ts';
import { errorMessage } from '../kube/retry.ts';
import { decide, scheduleKey, type SchedulePlan } from './decide.ts';
import { needsFinalizing, planDeletion } from './deletion.ts';
import { Executor, type ExecutionResult } from './executor.ts';

export interface TickOptions {
  kube: Kube;
  log: Logger;
  /** Only this namespace; all namespaces when unset. */
  namespace?: string | undefined;
  /** How often the CronJob runs the tick, for the startingDeadlineSeconds warning. */
  intervalSeconds?: number | undefined;
  now?: () => Date;
  out: (line: string) => void;
}

interface World {
  pvcs: PersistentVolumeClaim[];
  snapshots: VolumeSnapshot[];
  /** For schedules with spec.group, read once per namespace that has one. */
  groups?: { groupSnapshots: VolumeGroupSnapshot[] | undefined; members: VolumeSnapshot[] };
}

/** `; run on demand …: n created, …` for a pass that took one, else nothing. */
export function onDemandSummary(plan: SchedulePlan, r: ExecutionResult): string {
  const od = plan.onDemand;
  if (!od) return '';
  const mine = new Set(plan.creates.filter((c) => c.trigger !== 'Schedule').map((c) => c.name));
  const skipped = r.skips.filter((k) => k.trigger !== undefined && k.trigger !== 'Schedule').length;
  const what = od.trigger === 'RunNow' ? `run-now "${od.runNow ?? ''}"` : 'runOnCreate';
  return `; ${what}: ${r.created.filter((n) => mine.has(n)).length} created, ${
    r.existed.filter((n) => mine.has(n)).length + od.existing.length
  } existed, ${skipped} skipped, ${r.createFailures.filter((f) => mine.has(f.name)).length} failed${od.hold ? ' (held)' : ''}`;
}

/**
 * The namespace's VolumeGroupSnapshots taken by schedules (undefined when the API does not serve
 * them or RBAC refuses: a grouped schedule then says so) and their member VolumeSnapshots.
 */
export async function readGroups(
  kube: Kube,
  namespace: string,
  log: Logger,
): Promise<{ groupSnapshots: VolumeGroupSnapshot[] | undefined; members: VolumeSnapshot[] }> {
  let groupSnapshots: VolumeGroupSnapshot[] | undefined;
  try {
    const l: unknown = await kube.read(() =>
      kube.custom.listNamespacedCustomObject({
        ...kube.groupSnapshots,
        namespace,
        labelSelector: LABEL_SCHEDULE,
      }),
    );
    groupSnapshots = (l as { items: VolumeGroupSnapshot[] }).items;
  } catch (err) {
    log.warn({ namespace, err: errorMessage(err) }, 'cannot list VolumeGroupSnapshots');
  }
  // Members carry no labels of ours: every snapshot of the namespace, filtered.
  const all: unknown = groupSnapshots?.length
    ? await kube.read(() => kube.custom.listNamespacedCustomObject({ ...kube.snapshots, namespace }))
    : { items: [] };
  return {
    groupSnapshots,
    members: (all as { items: VolumeSnapshot[] }).items.filter((s) => groupOfMember(s) !== undefined),
  };
}

export async function tick(opts: TickOptions): Promise<number> {
  const { kube, log, out } = opts;
  const clock = opts.now ?? (() => new Date());
  const interval = opts.intervalSeconds ?? DEFAULT_TICK_INTERVAL_SECONDS;
  const events = new EventRecorder(kube, log, clock);
  const executor = new Executor({ kube, events, log, now: clock });
  const list: unknown = opts.namespace
    ? await kube.read(() =>
        kube.custom.listNamespacedCustomObject({ ...kube.schedules, namespace: opts.namespace as string }),
      )
    : await kube.read(() => kube.custom.listClusterCustomObject({ ...kube.schedules }));
  const schedules = ((list as { items: SnapshotSchedule[] }).items ?? []).filter(
    (s) => !s.metadata?.deletionTimestamp || needsFinalizing(s),
  );
  if (schedules.length === 0) {
    out(`no SnapshotSchedules found${opts.namespace ? ` in namespace ${opts.namespace}` : ''}`);
    return 0;
  }
  // For the AckWarnings condition; a tick without the permission still takes its snapshots.
  const classes = await kube
    .read(() =>
      kube.custom.listClusterCustomObject({
        group: SNAPSHOT_GROUP,
        version: SNAPSHOT_VERSION,
        plural: 'volumesnapshotclasses',
      }),
    )
    .then(
      (l) => (l as { items?: SnapshotClassLike[] }).items ?? [],
      (err: unknown) => {
        log.warn(
          { err: errorMessage(err) },
          'cannot list VolumeSnapshotClasses: the AckWarnings condition is off; grant get, list, watch on volumesnapshotclasses.snapshot.storage.k8s.io',
        );
        return undefined;
      },
    );
  const worlds = new Map<string, World>();
  const worldOf = async (namespace: string): Promise<World> => {
    let world = worlds.get(namespace);
    if (!world) {
      const pvcs = await kube.read(() => kube.core.listNamespacedPersistentVolumeClaim({ namespace }));
      const snaps: unknown = await kube.read(() =>
        kube.custom.listNamespacedCustomObject({
          ...kube.snapshots,
          namespace,
          labelSelector: LABEL_SCHEDULE,
        }),
      );
      world = {
        pvcs: pvcs.items as unknown as PersistentVolumeClaim[],
        snapshots: (snaps as { items: VolumeSnapshot[] }).items,
      };
      worlds.set(namespace, world);
    }
    return world;
  };
  const groupsOf = async (namespace: string, world: World): Promise<NonNullable<World['groups']>> =>
    (world.groups ??= await readGroups(kube, namespace, log));

  let failures = 0;
  for (const schedule of schedules) {
    const key = scheduleKey(schedule);
    const namespace = schedule.metadata?.namespace ?? 'default';
    const slog = log.child({ schedule: schedule.metadata?.name, namespace });
    try {
      const world = await worldOf(namespace);
      const groups = schedule.spec?.group ? await groupsOf(namespace, world) : undefined;
      const snapshots = groups ? [...world.snapshots, ...groups.members] : world.snapshots;
      if (needsFinalizing(schedule)) {
        const members = membersByGroup(snapshots);
        const recoveryPoints = (groups?.groupSnapshots ?? []).map((g) =>
          asRecoveryPoint(g, members.get(g.metadata.name ?? '')),
        );
        const groupOf = new Map<string, string>();
        for (const [group, list] of members) for (const m of list) groupOf.set(m.metadata.name ?? '', group);
        const restoring = groupRestores(world.pvcs, (_ns, snap) => groupOf.get(snap));
        const r = await executor.finalize(
          schedule,
          planDeletion(schedule, [...world.snapshots, ...recoveryPoints], [...world.pvcs, ...restoring]),
        );
        out(
          `${key}: deleting (deletionPolicy Delete): ${r.deleted.length} snapshots deleted, ${r.retained.length} held kept, ${r.waiting.length} waiting for restores; ${r.released ? 'schedule released' : 'finalizer kept until the next tick'}`,
        );
        continue;
      }
      if (await executor.syncFinalizers(schedule)) {
        // The finalizer write changed the object: act on it next tick, from a fresh read.
        out(`${key}: finalizer updated for deletionPolicy ${schedule.spec.deletionPolicy ?? 'Retain'}`);
        continue;
      }
      for (const w of tickModeWarnings(schedule.spec ?? {}, interval)) {
        slog.warn({ path: w.path }, w.message);
        out(`${key}: warning: ${w.path}: ${w.message}`);
      }
      const plan = decide({
        schedule,
        pvcs: world.pvcs,
        snapshots,
        groupSnapshots: groups?.groupSnapshots,
        now: clock(),
        snapshotClass: classes && snapshotClassOf(schedule.spec, classes),
      });
      const r = await executor.execute(schedule, plan);
      const bad = plan.errors.length > 0 || r.createFailures.length > 0 || r.errors.length > 0;
      if (bad) failures++;
      const what =
        plan.errors.length > 0
          ? `invalid: ${plan.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`
          : plan.due.kind === 'due'
            ? `took ${plan.due.scheduledTime.toISOString()}: ${r.created.length} created, ${r.existed.length} existed, ${plan.skips.length} skipped, ${r.createFailures.length} failed`
            : plan.due.kind === 'too-late'
              ? `missed ${plan.due.scheduledTime.toISOString()} (beyond startingDeadlineSeconds)`
              : 'nothing due';
      out(
        `${key}: ${what}${onDemandSummary(plan, r)}; pruned ${r.pruned.length}; next ${plan.status.nextScheduleTime ?? '-'}${r.errors.length ? `; errors: ${r.errors.join('; ')}` : ''}`,
      );
    } catch (err) {
      failures++;
      slog.error({ err: errorMessage(err) }, 'tick failed for schedule');
      out(`${key}: failed: ${errorMessage(err)}`);
    }
  }
  await events.flush();
  return failures === 0 ? 0 : 1;
}
