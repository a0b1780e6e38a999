/**
 * One pass over one schedule, decided without I/O: which snapshots to create, which
 * PVCs to skip and why, what retention deletes, and the status to record. The
 * controller and `snapcron tick` both run this and hand the plan to the executor.
 */
import { byCodePoint } from '../api/order.ts';
import { LABEL_HOLD, SNAPSHOT_GROUP, SNAPSHOT_VERSION } from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../api/objects.ts';
import type { Hook, SnapshotSchedule, SnapshotScheduleStatus } from '../api/types.generated.ts';
import { validateStoredSpec, type FieldError } from '../api/validate.ts';
import { ACK_DISK_DRIVER, ackCondition, ackWarnings, type SnapshotClassLike } from '../api/warnings.ts';
import {
  asRecoveryPoint,
  groupManifest,
  groupOfMember,
  groupRestores,
  groupsOf,
  membersByGroup,
  unboundMembers,
} from '../group/recovery-points.ts';
import { matchesSelector } from '../kube/selector.ts';
import { belongsTo, planRetention, shouldHoldBack, type RetentionPlan } from '../retention/plan.ts';
import { scheduledTime, snapshotState, snapshotTime, sourcePvc } from '../retention/snapshot-state.ts';
import { dueRun, nextFireTime, parseSchedule, type DueRun } from '../schedule/cron.ts';
import {
  ANNOTATION_RUN_NOW,
  ANNOTATION_RUN_NOW_HOLD,
  onDemandId,
  onDemandMetadata,
  onDemandOf,
  onDemandSnapshotName,
  runNowKey,
  snapshotMetadata,
  snapshotName,
  type OnDemandRun,
} from '../snapshot/naming.ts';
import { findCondition, setConditions, type ConditionInput } from './conditions.ts';

export interface ScheduleObservation {
  schedule: SnapshotSchedule;
  /** PVCs in the schedule's namespace. */
  pvcs: PersistentVolumeClaim[];
  /** VolumeSnapshots in the schedule's namespace (others' are ignored). */
  snapshots: VolumeSnapshot[];
  now: Date;
  /** A scheduled time this process already took but may not see in status yet (cache lag). */
  lastTakenInMemory?: Date | undefined;
  /** The on-demand run (see onDemandId) this process already took but may not see in status yet. */
  lastOnDemandInMemory?: string | undefined;
  /** The VolumeSnapshotClass the schedule's snapshots get, when known: ACK's limits depend on it. */
  snapshotClass?: SnapshotClassLike | undefined;
  /** The status.hooks.pendingPost (its scheduledTime) this process already ran and cleared, in case the cache still shows it. */
  postDoneInMemory?: string | undefined;
  /** VolumeGroupSnapshots in the namespace, for a schedule with spec.group (others' are ignored). */
  groupSnapshots?: VolumeGroupSnapshot[] | undefined;
}

/** What started a run: a fire time, the run-now annotation, or spec.runOnCreate. */
export type RunTrigger = 'Schedule' | 'RunNow' | 'RunOnCreate';

export interface SnapshotCreate {
  name: string;
  /** The PVC; for a group (spec.group), the group key. */
  pvc: string;
  /** The fire time; for a run on demand, the pass's `now`. */
  scheduledTime: Date;
  trigger: RunTrigger;
  manifest: VolumeSnapshot | VolumeGroupSnapshot;
  /** For a VolumeGroupSnapshot: its member PVCs as planned (the snapshot-controller picks them by selector). */
  members?: string[];
}

export type SkipReason =
  'NotBound' | 'PreviousNotReady' | 'TooManyPending' | 'DeadlinePassed' | 'PreHookFailed' | 'NotInGroup';
export interface PvcSkip {
  pvc: string;
  reason: SkipReason;
  message: string;
  /** The run the PVC was left out of; Schedule when unset. */
  trigger?: RunTrigger;
}

/** A run on demand in this pass: its creates and skips carry its trigger. */
export interface OnDemandPlan {
  trigger: 'RunNow' | 'RunOnCreate';
  /** Which run (onDemandId): what the controller remembers until its status write is cached. */
  id: string;
  /** The run-now value answered (see runNowKey), for RunNow. */
  runNow?: string;
  at: Date;
  /** Its snapshots get snapcron.io/hold=true (snapcron run --hold). */
  hold: boolean;
  /** Its snapshots that exist already (an earlier pass took them), by name. */
  existing: string[];
}

/**
 * The hooks around this pass's creates: the executor runs pre (recording status.hooks.pendingPost
 * first when there is a post), then the creates (none if pre failed with onFailure Fail), then post.
 */
export interface HookPlan {
  /** The run the hooks wrap: the timed run when the pass has one, else the run on demand. */
  scheduledTime: Date;
  pre: Hook | undefined;
  post: Hook | undefined;
  /** pre.onFailure, defaulted: Fail skips the run's creates when pre fails in any pod. */
  preOnFailure: 'Continue' | 'Fail';
}

/** A post hook owed by an earlier pass (status.hooks.pendingPost): run before anything else. */
export interface PendingPost {
  scheduledTime: string;
  pods: string[];
  /** The schedule's post hook now; unset when it was removed (the record is just cleared). */
  hook: Hook | undefined;
}

export interface SchedulePlan {
  key: string;
  errors: FieldError[];
  due: DueRun;
  creates: SnapshotCreate[];
  skips: PvcSkip[];
  retention: RetentionPlan | undefined;
  /** The run on demand this pass takes (besides any timed run), if any. */
  onDemand: OnDemandPlan | undefined;
  /** Hooks to run around the creates (only when the pass creates snapshots). */
  hooks?: HookPlan | undefined;
  /** A post hook an earlier pass owes: the executor runs it first and clears the record. */
  pendingPost?: PendingPost | undefined;
  /** Status to write if every create succeeds; the executor adjusts it on failures. */
  status: SnapshotScheduleStatus;
  /** The next fire time, if any: when this schedule next needs a pass to take a run. */
  wakeAt: Date | undefined;
  /**
   * When a snapshot's state changes by the clock alone (stuck, failed, expired: retention's
   * changesAt), if before the next fire: the pass to see it is due then. The snapshots this
   * pass creates are not in it: the controller adds when they turn stuck.
   */
  recheckAt?: Date | undefined;
}

const isoSeconds = (t: Date): string => t.toISOString().replace(/\.\d{3}Z$/, 'Z');
const parseTime = (s: string | undefined): Date | undefined => {
  if (!s) return undefined;
  const t = new Date(s);
  return Number.isNaN(t.getTime()) ? undefined : t;
};
const scheduledAt = scheduledTime;
const later = (a: Date | undefined, b: Date | undefined): Date | undefined =>
  a && b ? (a > b ? a : b) : (a ?? b);

const triggerOf = (run: OnDemandRun): 'RunNow' | 'RunOnCreate' =>
  run.kind === 'run-now' ? 'RunNow' : 'RunOnCreate';
/** For ordering a PVC's snapshots: the scheduled time, or when an on-demand one was cut. */
const takenAt = (s: VolumeSnapshot): number => (scheduledAt(s) ?? snapshotTime(s))?.getTime() ?? 0;

export const scheduleKey = (s: SnapshotSchedule): string =>
  `${s.metadata?.namespace ?? 'default'}/${s.metadata?.name ?? ''}`;

/**
 * The schedule's next fire after `now` by its spec: none while suspended, or if the spec does
 * not parse (decide reports that as InvalidSpec).
 */
export function nextFireOf(spec: SnapshotSchedule['spec'], now: Date): Date | undefined {
  if (spec.suspend === true) return undefined;
  try {
    return nextFireTime(parseSchedule(spec.schedule, spec.timeZone), now);
  } catch {
    return undefined;
  }
}

export function decide(obs: ScheduleObservation): SchedulePlan {
  const { schedule, now } = obs;
  const key = scheduleKey(schedule);
  const name = schedule.metadata?.name ?? '';
  const namespace = schedule.metadata?.namespace ?? 'default';
  const generation = schedule.metadata?.generation;
  const prior = schedule.status ?? {};
  // With spec.group the units are groups and their snapshots the recovery points (see src/group).
  const grouped = !!schedule.spec?.group;
  const own = grouped ? recoveryPointsOf(obs, name) : obs.snapshots.filter((s) => belongsTo(s, name));
  const counts = { ready: 0, pending: 0, failed: 0 };
  for (const s of own) if (!s.metadata.deletionTimestamp) counts[snapshotState(s)]++;

  const { errors, schedule: valid } = validateStoredSpec(schedule);
  /** A pass that takes nothing and says why in its conditions (the spec or the cluster is not fit). */
  const idle = (errs: FieldError[], conditions: ConditionInput[], extra: SnapshotScheduleStatus) => ({
    key,
    errors: errs,
    due: { kind: 'idle' as const },
    creates: [],
    skips: [],
    retention: undefined,
    onDemand: undefined,
    wakeAt: undefined,
    status: {
      ...prior,
      observedGeneration: generation,
      ...extra,
      conditions: setConditions(prior.conditions, conditions, now, generation),
    },
  });
  if (!valid) {
    const message = errors.map((e) => `${e.path}: ${e.message}`).join('; ');
    return idle(
      errors,
      [
        { type: 'InvalidSpec', status: 'True', reason: 'InvalidSpec', message },
        { type: 'Ready', status: 'False', reason: 'InvalidSpec', message },
      ],
      { nextScheduleTime: undefined, snapshots: counts },
    );
  }

  const spec = valid.spec;
  if (spec.group && obs.groupSnapshots === undefined) {
    // Taking per-PVC snapshots instead would break the promise of one instant: take nothing, say why.
    const message =
      'spec.group needs VolumeGroupSnapshots (groupsnapshot.storage.k8s.io/v1), which the API server does not serve or this controller may not list and watch: install the external-snapshotter v8.6+ CRDs with the CSIVolumeGroupSnapshot feature, and grant get, list, watch, create, delete on volumegroupsnapshots (deploy/ does); the controller looks again when restarted';
    return idle(
      [],
      [
        { type: 'InvalidSpec', status: 'False', reason: 'Valid', message: 'spec is valid' },
        { type: 'Ready', status: 'False', reason: 'GroupSnapshotsUnavailable', message },
      ],
      {},
    );
  }
  const cron = parseSchedule(spec.schedule, spec.timeZone);
  const suspended = spec.suspend === true;
  const created = parseTime(String(schedule.metadata?.creationTimestamp ?? '')) ?? now;
  // The newer of status and what this process itself took (its status write may not be cached yet).
  const lastTaken = later(parseTime(prior.lastScheduleTime), obs.lastTakenInMemory);
  // Runs missed while suspended are never caught up. The pass that first sees the schedule
  // resumed counts from `now`, and records that moment as the Suspended condition's
  // transition (reason Resumed), which later passes and ticks count from.
  const wasSuspended = findCondition(prior.conditions, 'Suspended');
  const resumingNow = !suspended && wasSuspended?.status === 'True';
  const resumedAt = resumingNow
    ? now
    : !suspended && wasSuspended?.status === 'False' && wasSuspended.reason === 'Resumed'
      ? parseTime(wasSuspended.lastTransitionTime)
      : undefined;
  const due: DueRun = suspended
    ? { kind: 'idle' }
    : dueRun({
        schedule: cron,
        lastScheduleTime: later(lastTaken, resumedAt),
        createdAt: created,
        now,
        startingDeadlineSeconds: spec.startingDeadlineSeconds,
      });

  // The PVC whose newest snapshot is oldest goes first (never snapshotted: first of all), so
  // when a burst cannot finish before the next fire, those left out last time lead next time.
  const newestTaken = new Map<string, number>();
  for (const s of own) {
    const pvc = sourcePvc(s) ?? '';
    const t = scheduledAt(s)?.getTime() ?? 0;
    if (t > (newestTaken.get(pvc) ?? -Infinity)) newestTaken.set(pvc, t);
  }
  const claimed = obs.pvcs
    .filter((p) => (p.metadata.namespace ?? namespace) === namespace && !p.metadata.deletionTimestamp)
    .filter((p) => matchesSelector(p.metadata.labels, spec.claimSelector));
  const groups = spec.group ? groupsOf(spec.group, spec.claimSelector, namespace, claimed) : undefined;
  const groupOfKey = new Map(groups?.groups.map((g) => [g.key, g]));
  const selected = (groups ? groups.groups.map((g) => g.unit) : claimed).sort(
    (a, b) =>
      (newestTaken.get(a.metadata.name ?? '') ?? -Infinity) -
        (newestTaken.get(b.metadata.name ?? '') ?? -Infinity) ||
      byCodePoint(a.metadata.name ?? '', b.metadata.name ?? ''),
  );
  // De-duplication is by scheduled time (the name's time), never by when the data was cut.
  const taken = new Set(own.map((s) => `${sourcePvc(s) ?? ''}\0${scheduledAt(s)?.getTime() ?? 0}`));
  // Runs on demand are de-duplicated by the request they answer (PVC, run), never by time.
  const takenOnDemand = new Map<string, string>();
  for (const s of own) {
    const id = onDemandOf(s);
    if (id !== undefined && !s.metadata.deletionTimestamp)
      takenOnDemand.set(`${sourcePvc(s) ?? ''}\0${id}`, s.metadata.name ?? '');
  }

  const creates: SnapshotCreate[] = [];
  const skips: PvcSkip[] = [];
  const createFor = (
    pvc: PersistentVolumeClaim,
    at: Date,
    run?: OnDemandRun,
    hold = false,
  ): SnapshotCreate => {
    const pvcName = pvc.metadata.name ?? '';
    const snapName = run ? onDemandSnapshotName(pvcName, name, run) : snapshotName(pvcName, name, at);
    const meta = run ? onDemandMetadata(pvcName, name, run) : snapshotMetadata(pvcName, name, at);
    if (hold) meta.labels[LABEL_HOLD] = 'true';
    const group = groupOfKey.get(pvcName);
    const manifest: VolumeSnapshot = {
      apiVersion: `${SNAPSHOT_GROUP}/${SNAPSHOT_VERSION}`,
      kind: 'VolumeSnapshot',
      metadata: {
        name: snapName,
        namespace,
        labels: { ...spec.snapshotTemplate?.labels, ...meta.labels },
        annotations: { ...spec.snapshotTemplate?.annotations, ...meta.annotations },
      },
      spec: {
        source: { persistentVolumeClaimName: pvcName },
        ...(spec.snapshotClassName ? { volumeSnapshotClassName: spec.snapshotClassName } : {}),
      },
    };
    return {
      name: snapName,
      pvc: pvcName,
      scheduledTime: at,
      trigger: run ? triggerOf(run) : 'Schedule',
      manifest: group
        ? groupManifest(manifest, group.selector, spec.group?.volumeGroupSnapshotClassName)
        : manifest,
      ...(group ? { members: group.members } : {}),
    };
  };

  const retention = planRetention({
    scheduleName: name,
    retention: spec.retention,
    timeZone: spec.timeZone ?? 'UTC',
    snapshots: own,
    pvcs: grouped ? groupRestores(obs.pvcs, memberLookup(obs)) : obs.pvcs,
    now,
  });

  /**
   * The same checks for every run, due or being completed: Bound, Forbid's previous snapshot,
   * and the bound on not-ready snapshots per PVC (retention.maxPending, whatever the policy).
   */
  const takeOrSkip = (pvc: PersistentVolumeClaim, at: Date, run?: OnDemandRun, hold = false): void => {
    const pvcName = pvc.metadata.name ?? '';
    const trigger = run ? { trigger: triggerOf(run) } : {};
    if (run) {
      const existing = takenOnDemand.get(`${pvcName}\0${onDemandId(run)}`);
      if (existing !== undefined) {
        onDemandExisting.push(existing);
        return;
      }
    } else if (taken.has(`${pvcName}\0${at.getTime()}`)) return;
    if (pvc.status?.phase !== 'Bound') {
      const unbound = unboundMembers(pvc);
      skips.push({
        pvc: pvcName,
        reason: 'NotBound',
        message: grouped
          ? `group ${pvcName} is left out of this run: its PVC(s) ${unbound.join(', ')} in ${namespace} are not Bound yet; the group is taken whole once every member is Bound`
          : run
            ? `PVC ${namespace}/${pvcName} is ${pvc.status?.phase ?? 'not Bound'}; it is left out of this run on demand: run again once it is Bound`
            : `PVC ${namespace}/${pvcName} is ${pvc.status?.phase ?? 'not Bound'}; it will be snapshotted at the next fire time once Bound`,
        ...trigger,
      });
      return;
    }
    if (spec.concurrencyPolicy === 'Forbid') {
      const previous = own
        .filter((s) => sourcePvc(s) === pvcName && !s.metadata.deletionTimestamp)
        .sort((a, b) => takenAt(b) - takenAt(a))[0];
      const state = previous && snapshotState(previous, now, spec.retention);
      if (state === 'pending' || state === 'stuck') {
        skips.push({
          pvc: pvcName,
          reason: 'PreviousNotReady',
          message: `concurrencyPolicy Forbid: previous snapshot ${previous?.metadata.name} of PVC ${pvcName} is not ready yet`,
          ...trigger,
        });
        return;
      }
    }
    const holdBack = shouldHoldBack(retention, pvcName);
    if (holdBack) {
      skips.push({ pvc: pvcName, reason: 'TooManyPending', message: holdBack.message, ...trigger });
      return;
    }
    creates.push(createFor(pvc, at, run, hold));
  };
  const onDemandExisting: string[] = [];

  // A run interrupted before its status was written (a crash mid-burst) is finished, not
  // skipped: its snapshots exist for some PVCs, so it was due for all of them. This is
  // completion of one run, never a catch-up of missed ones. "Interrupted" is judged against
  // the newer of status and memory: a pass that follows the run's pass (a snapshot turned
  // ready) before the run's status write reached the cache is not an interrupted run.
  const newestOwn = own.map(scheduledAt).reduce<Date | undefined>((a, b) => later(a, b), undefined);
  const interrupted =
    !suspended &&
    newestOwn &&
    (!lastTaken || newestOwn > lastTaken) &&
    (due.kind !== 'due' || newestOwn < due.scheduledTime)
      ? newestOwn
      : undefined;
  if (interrupted) {
    for (const pvc of selected) {
      const created = parseTime(String(pvc.metadata.creationTimestamp ?? ''));
      if (created && created > interrupted) continue; // did not exist at that run
      takeOrSkip(pvc, interrupted);
    }
  }

  if (due.kind === 'due') for (const pvc of selected) takeOrSkip(pvc, due.scheduledTime);
  // by Label: a selected PVC without the label is in no group; said on each run, not each pass.
  const runs = due.kind === 'due' || interrupted !== undefined;
  if (groups && runs)
    for (const pvc of groups.unlabeled)
      skips.push({
        pvc,
        reason: 'NotInGroup',
        message: `PVC ${namespace}/${pvc} matches the claimSelector but has no label ${spec.group?.labelKey}: it is in no group and not snapshotted; label it or narrow the claimSelector`,
      });

  // One run on demand, besides any timed run and without moving the timetable: a new run-now
  // value (even while suspended: it is an explicit request, like kubectl create job --from), or
  // runOnCreate for a schedule that has never run (a due timed run already takes the first copy).
  const requested = runNowKey(schedule.metadata?.annotations?.[ANNOTATION_RUN_NOW]);
  const runNowPending =
    requested !== undefined &&
    requested !== prior.lastRunNow &&
    obs.lastOnDemandInMemory !== onDemandId({ kind: 'run-now', key: requested });
  // A first run that could take nothing (no selected PVC Bound yet, as when a chart creates the
  // PVCs and the schedule together) is still pending: the pass that sees a PVC bound takes it.
  // (A first run whose pre hook failed was taken: it said so, and is not retried on every pass.)
  const firstRunEmpty =
    prior.lastRun?.trigger === 'RunOnCreate' &&
    !prior.lastRun.created &&
    !prior.lastRun.skips?.some((k) => k.reason === 'PreHookFailed');
  const neverRan =
    (!prior.lastRun || firstRunEmpty) &&
    !prior.lastScheduleTime &&
    !lastTaken &&
    own.every((s) => onDemandOf(s) === 'run-on-create') &&
    obs.lastOnDemandInMemory !== 'run-on-create';
  const run: OnDemandRun | undefined =
    requested !== undefined && runNowPending
      ? { kind: 'run-now', key: requested }
      : spec.runOnCreate === true && !suspended && neverRan && due.kind !== 'due'
        ? { kind: 'run-on-create' }
        : undefined;
  let onDemand: OnDemandPlan | undefined;
  if (run) {
    const hold =
      run.kind === 'run-now' &&
      runNowKey(schedule.metadata?.annotations?.[ANNOTATION_RUN_NOW_HOLD]) === run.key;
    for (const pvc of selected) takeOrSkip(pvc, now, run, hold);
    onDemand = {
      trigger: triggerOf(run),
      id: onDemandId(run),
      ...(run.kind === 'run-now' ? { runNow: run.key } : {}),
      at: now,
      hold,
      existing: onDemandExisting,
    };
  }

  const next = suspended ? undefined : nextFireTime(cron, now);
  const conditions: ConditionInput[] = [
    { type: 'InvalidSpec', status: 'False', reason: 'Valid', message: 'spec is valid' },
    suspended
      ? {
          type: 'Suspended',
          status: 'True',
          reason: 'Suspended',
          message: 'spec.suspend is true: no new snapshots',
        }
      : resumedAt
        ? {
            type: 'Suspended',
            status: 'False',
            reason: 'Resumed',
            message: 'resumed: taking snapshots on schedule; runs missed while suspended are not caught up',
          }
        : { type: 'Suspended', status: 'False', reason: 'Active', message: 'taking snapshots on schedule' },
  ];
  // A snapshot pending past retention.pendingDeadline: kept (it may still complete), but said.
  const stuck = retention.stuck;
  conditions.push(
    stuck.length > 0
      ? {
          type: 'SnapshotsStuck',
          status: 'True',
          reason: 'PendingPastDeadline',
          message: `${stuck.length} snapshot(s) not ready after retention.pendingDeadline ${retention.pendingDeadline}: ${stuck
            .slice(0, 5)
            .map((v) => `${v.name} (PVC ${v.pvc})`)
            .join(', ')}${stuck.length > 5 ? ', …' : ''}; check the snapshot controller and the CSI driver`,
        }
      : { type: 'SnapshotsStuck', status: 'False', reason: 'NoneStuck', message: 'no snapshot is stuck' },
  );
  // On ACK only: elsewhere the condition would be noise.
  if (obs.snapshotClass?.driver === ACK_DISK_DRIVER)
    conditions.push(ackCondition(ackWarnings(spec, obs.snapshotClass, now)));
  if (due.kind === 'too-late') {
    conditions.push({
      type: 'Ready',
      status: 'False',
      reason: 'MissedSchedule',
      message: `missed the run of ${isoSeconds(due.scheduledTime)} by ${Math.round(due.lateMs / 1000)}s, more than startingDeadlineSeconds ${spec.startingDeadlineSeconds}`,
    });
  } else {
    conditions.push({
      type: 'Ready',
      status: 'True',
      reason: 'Scheduled',
      message: 'schedule is valid and running',
    });
  }

  const status: SnapshotScheduleStatus = {
    ...prior,
    observedGeneration: generation,
    nextScheduleTime: next ? isoSeconds(next) : undefined,
    snapshots: { ...retention.counts, pending: retention.counts.pending + creates.length },
    conditions: setConditions(prior.conditions, conditions, now, generation),
  };
  if (due.kind === 'due') {
    status.lastScheduleTime = isoSeconds(due.scheduledTime);
    if (skips.length === 0) status.lastSuccessfulTime = isoSeconds(due.scheduledTime);
  } else if (interrupted) {
    status.lastScheduleTime = isoSeconds(interrupted);
    if (skips.length === 0) status.lastSuccessfulTime = isoSeconds(interrupted);
  }
  // Recorded once the run's creates succeed (the executor keeps the old value otherwise, so a
  // failed create is retried under the same names).
  if (onDemand?.runNow !== undefined) status.lastRunNow = onDemand.runNow;

  // Hooks wrap a pass that creates snapshots; a pass with nothing to create runs none.
  const hookSpec = spec.hooks;
  const hooks: HookPlan | undefined =
    creates.length > 0 && (hookSpec?.pre || hookSpec?.post)
      ? {
          scheduledTime:
            creates.find((c) => c.trigger === 'Schedule')?.scheduledTime ??
            (creates[0] as SnapshotCreate).scheduledTime,
          pre: hookSpec.pre,
          post: hookSpec.post,
          preOnFailure: hookSpec.pre?.onFailure ?? 'Fail',
        }
      : undefined;
  const owed = prior.hooks?.pendingPost;
  const pendingPost: PendingPost | undefined =
    owed && owed.scheduledTime !== obs.postDoneInMemory
      ? { scheduledTime: owed.scheduledTime ?? '', pods: owed.pods ?? [], hook: hookSpec?.post }
      : undefined;
  // Already run and cleared by this process: a status planned from the stale cache must not
  // write the record back.
  if (owed && !pendingPost) status.hooks = { ...prior.hooks, pendingPost: undefined };
  return {
    key,
    errors: [],
    due,
    creates,
    skips,
    retention,
    onDemand,
    hooks,
    pendingPost,
    status,
    wakeAt: next,
    recheckAt: retention.changesAt === undefined ? undefined : new Date(retention.changesAt),
  };
}

/** The schedule's VolumeGroupSnapshots as recovery points, each judged with its members. */
function recoveryPointsOf(obs: ScheduleObservation, name: string): VolumeSnapshot[] {
  const mine = (obs.groupSnapshots ?? []).filter((g) => belongsTo(g as unknown as VolumeSnapshot, name));
  if (mine.length === 0) return [];
  const members = membersByGroup(obs.snapshots);
  return mine.map((g) => asRecoveryPoint(g, members.get(g.metadata.name ?? '')));
}

/** Which of the schedule's groups a snapshot is a member of (for in-use protection). */
function memberLookup(obs: ScheduleObservation): (namespace: string, snapshot: string) => string | undefined {
  const byName = new Map<string, VolumeSnapshot>();
  for (const s of obs.snapshots) byName.set(`${s.metadata.namespace ?? ''}/${s.metadata.name ?? ''}`, s);
  return (namespace, snapshot) => {
    const s = byName.get(`${namespace}/${snapshot}`);
    return s ? groupOfMember(s) : undefined;
  };
}
