/**
 * The only code that writes snapshots and schedule status. It carries out a
 * SchedulePlan: AlreadyExists on create and NotFound on delete count as success, and
 * every delete re-checks the snapshot's protections from the freshest view it has (the
 * controller's caches, or API reads in `tick`) and carries its resourceVersion, so a
 * snapshot that became held or a restore source since the plan was made is never deleted.
 */
import type { Logger } from 'pino';
import {
  FINALIZER,
  GROUP_SNAPSHOT_KIND,
  LABEL_GROUP,
  LABEL_HOLD,
  LABEL_PVC,
  LABEL_SCHEDULE,
  SNAPSHOT_GROUP,
  SNAPSHOT_VERSION,
} from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../api/objects.ts';
import { asRecoveryPoint, groupOfMember, groupRestores } from '../group/recovery-points.ts';
import type {
  Hook,
  PendingPostHook,
  SnapshotSchedule,
  SnapshotScheduleStatus,
} from '../api/types.generated.ts';
import type { Kube } from '../kube/client.ts';
import type { EventRecorder, EventTarget } from '../kube/events.ts';
import { errorMessage, NotLeaderError, statusOf } from '../kube/retry.ts';
import { pendingSince } from '../retention/snapshot-state.ts';
import { snapshotsInUse, whyNotPrune, type Deletion, type ProtectReason } from '../retention/plan.ts';
import { ANNOTATION_RUN_NOW, labelValue, runNowKey } from '../snapshot/naming.ts';
import { setConditions, type ConditionInput } from './conditions.ts';
import { scheduleKey, type PvcSkip, type RunTrigger, type SchedulePlan } from './decide.ts';
import { wantedFinalizers, type DeletionPlan } from './deletion.ts';
import { describeFailure, HOOK_TIMEOUT_SECONDS, HookRunner, type HookExec } from './hooks.ts';
import type { Metrics } from './metrics.ts';
import type { OwnWrites } from './own-writes.ts';

export interface ExecutionResult {
  created: string[];
  /** The earliest creationTimestamp the API server gave this pass's creates (epoch ms). */
  firstCreatedAt?: number;
  existed: string[];
  createFailures: { name: string; error: string }[];
  pruned: string[];
  pruneSkipped: { name: string; why: string }[];
  /** PVCs of the run left out, with why: the plan's skips and runs that waited past their deadline. */
  skips: PvcSkip[];
  statusWritten: boolean;
  errors: string[];
  /** Hook failures of the pass (pre and post), one line per pod. */
  hookFailures: string[];
  /** The status.hooks.pendingPost (its scheduledTime) this pass ran and cleared. */
  postCleared?: string;
}

export const scheduleTarget = (s: SnapshotSchedule): EventTarget => ({
  apiVersion: 'snapcron.io/v1',
  kind: 'SnapshotSchedule',
  name: s.metadata?.name ?? '',
  namespace: s.metadata?.namespace ?? 'default',
  uid: s.metadata?.uid,
});

const pvcTarget = (namespace: string, name: string): EventTarget => ({
  apiVersion: 'v1',
  kind: 'PersistentVolumeClaim',
  name,
  namespace,
});

/**
 * Status equality that ignores key order and undefined fields, so an unchanged pass writes
 * nothing. Walked in place: comparing normalized JSON texts made two sorted copies of the
 * status at every pass, 6 % of all the controller allocated in bench:scale at the peer's load.
 */
export function sameStatus(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameStatus(a[i], b[i])) return false;
    return true;
  }
  if (!a || !b || typeof a !== 'object' || typeof b !== 'object') return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let fields = 0;
  for (const k in x) {
    if (x[k] === undefined) continue;
    fields++;
    if (!sameStatus(x[k], y[k])) return false;
  }
  for (const k in y) if (y[k] !== undefined) fields--;
  return fields === 0;
}
export interface FinalizeResult {
  deleted: string[];
  waiting: string[];
  retained: string[];
  /** The finalizer was removed: the schedule can go. */
  released: boolean;
}

/**
 * Where the re-check before a delete reads the latest state. `snapcron tick` reads the API
 * server (it has no cache); the controller reads its watch-fed caches, which are as fresh as
 * the watch, and the delete's resourceVersion precondition turns any change to the snapshot
 * itself since then (a hold label, a new status) into a refused delete.
 */
export interface FreshView {
  snapshot(namespace: string, name: string): Promise<VolumeSnapshot | undefined>;
  /** Read from the API server in both modes, once per pass that deletes: a restore PVC created a moment ago must count. */
  pvcs(namespace: string): Promise<PersistentVolumeClaim[]>;
  /** The schedule's snapshots of the same PVC (by labels). */
  siblings(snapshot: VolumeSnapshot): Promise<VolumeSnapshot[]>;
  /** Consistency groups (spec.group): one VolumeGroupSnapshot, */
  groupSnapshot(namespace: string, name: string): Promise<VolumeGroupSnapshot | undefined>;
  /** the schedule's groups of the same group key (by labels), */
  groupSiblings(group: VolumeGroupSnapshot): Promise<VolumeGroupSnapshot[]>;
  /** and a group's member VolumeSnapshots. */
  members(namespace: string, group: string): Promise<VolumeSnapshot[]>;
}

/** The re-check from API reads: a GET and two filtered LISTs per delete. */
export function apiView(kube: Kube): FreshView {
  return {
    snapshot: async (namespace, name) => {
      try {
        return (await kube.read(() =>
          kube.custom.getNamespacedCustomObject({ ...kube.snapshots, namespace, name }),
        )) as VolumeSnapshot;
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw err;
      }
    },
    pvcs: async (namespace) =>
      (await kube.read(() => kube.core.listNamespacedPersistentVolumeClaim({ namespace })))
        .items as unknown as PersistentVolumeClaim[],
    siblings: async (snapshot) => {
      const labels = snapshot.metadata.labels ?? {};
      const selector = `${LABEL_SCHEDULE}=${labels[LABEL_SCHEDULE] ?? ''},${LABEL_PVC}=${labels[LABEL_PVC] ?? ''}`;
      const list = (await kube.read(() =>
        kube.custom.listNamespacedCustomObject({
          ...kube.snapshots,
          namespace: snapshot.metadata.namespace ?? 'default',
          labelSelector: selector,
        }),
      )) as { items: VolumeSnapshot[] };
      return list.items;
    },
    groupSnapshot: async (namespace, name) => {
      try {
        return (await kube.read(() =>
          kube.custom.getNamespacedCustomObject({ ...kube.groupSnapshots, namespace, name }),
        )) as VolumeGroupSnapshot;
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw err;
      }
    },
    groupSiblings: async (group) => {
      const labels = group.metadata.labels ?? {};
      const list = (await kube.read(() =>
        kube.custom.listNamespacedCustomObject({
          ...kube.groupSnapshots,
          namespace: group.metadata.namespace ?? 'default',
          labelSelector: `${LABEL_SCHEDULE}=${labels[LABEL_SCHEDULE] ?? ''},${LABEL_GROUP}=${labels[LABEL_GROUP] ?? ''}`,
        }),
      )) as { items: VolumeGroupSnapshot[] };
      return list.items;
    },
    // Members carry no labels: the namespace's snapshots, filtered (tick only; the controller reads its cache).
    members: async (namespace, group) => {
      const list = (await kube.read(() =>
        kube.custom.listNamespacedCustomObject({ ...kube.snapshots, namespace }),
      )) as { items: VolumeSnapshot[] };
      return list.items.filter((s) => groupOfMember(s) === group);
    },
  };
}

/** How long the post hook waits for the run's snapshots to be cut by the driver (README "Hooks"). */
export const CUT_WAIT_MS = 120_000;

export interface ExecutorOptions {
  kube: Kube;
  events: EventRecorder;
  log: Logger;
  metrics?: Metrics | undefined;
  now?: (() => Date) | undefined;
  /** Fresh reads before deletes: the controller's caches; the API server unless given. */
  view?: FreshView | undefined;
  /** This process's own writes, told to the controller's event handlers (own-writes.ts). */
  own?: OwnWrites | undefined;
  /** Where hooks find pods and exec in them; pods/exec through the API server unless a test gives its own. */
  hooks?: HookExec | undefined;
  /** How long post waits for the snapshots to be cut (default CUT_WAIT_MS). */
  cutWaitMs?: number | undefined;
}

/** A create whose turn in the write budget came after the run's startingDeadlineSeconds. */
class PastDeadline extends Error {}

/** Names for a message: all of a few, the first ones of many. */
const listed = (names: string[], max = 10): string =>
  names.length <= max
    ? names.join(', ')
    : `${names.slice(0, max).join(', ')}, … (${names.length - max} more)`;

/** The write budget's key of a delete: its schedule's, when pruning (see FairLimiter.promote). */
const scheduleKeyOf = (check: { mode: string; schedule?: SnapshotSchedule }): string | undefined =>
  check.schedule
    ? `${check.schedule.metadata?.namespace ?? 'default'}/${check.schedule.metadata?.name ?? ''}`
    : undefined;

/** A lost lease ends the pass at once; every other error is one object's failure. */
const rethrowIfFenced = (err: unknown): void => {
  if (err instanceof NotLeaderError) throw err;
};

export class Executor {
  private readonly kube: Kube;
  private readonly events: EventRecorder;
  private readonly log: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly now: () => Date;
  private readonly view: FreshView;
  /** Reads from the API server, for what the view (the controller's caches) may not have yet. */
  private readonly api: FreshView;
  private readonly hooks: HookExec;
  /**
   * Each schedule's last status write, until the cache shows it: a pass that follows its own
   * write (a snapshot turned ready a moment later) before the watch brings that write would plan
   * from the version it replaced, write again what is already there, and meet a conflict.
   */
  private readonly written = new Map<string, { replaced: Set<string>; object: SnapshotSchedule }>();
  /** This process's own writes, told to the controller's event handlers (own-writes.ts). */
  private readonly own: OwnWrites | undefined;
  private readonly cutWaitMs: number;
  constructor(o: ExecutorOptions) {
    this.own = o.own;
    this.kube = o.kube;
    this.events = o.events;
    this.log = o.log;
    this.metrics = o.metrics;
    this.now = o.now ?? (() => new Date());
    this.api = apiView(o.kube);
    this.view = o.view ?? this.api;
    this.hooks = o.hooks ?? new HookRunner(o.kube);
    this.cutWaitMs = o.cutWaitMs ?? CUT_WAIT_MS;
  }

  /** Runs one hook in the pods, counts and logs each outcome; returns the failures, described. */
  private async runHook(
    which: 'pre' | 'post',
    namespace: string,
    pods: string[],
    hook: Hook,
    labels: { namespace: string; schedule: string },
    log: Logger,
  ): Promise<string[]> {
    const outcomes = await this.hooks.run(namespace, pods, hook);
    const failures: string[] = [];
    for (const o of outcomes) {
      const result = o.ok ? 'success' : o.timedOut ? 'timeout' : 'failure';
      this.metrics?.hookRuns.inc({ ...labels, hook: which, result });
      const line = describeFailure(o, hook.timeoutSeconds ?? HOOK_TIMEOUT_SECONDS);
      if (o.ok) log.info({ hook: which, pod: o.pod, container: o.container, ms: o.ms }, 'hook succeeded');
      else {
        failures.push(line);
        log.warn(
          { hook: which, pod: o.pod, container: o.container, ms: o.ms, result },
          `hook failed: ${line}`,
        );
      }
    }
    return failures;
  }

  /** Writes status.hooks.pendingPost before a pre hook runs; returns the schedule as written. */
  private async recordPendingPost(
    schedule: SnapshotSchedule,
    owed: PendingPostHook,
  ): Promise<SnapshotSchedule> {
    const namespace = schedule.metadata?.namespace ?? 'default';
    const name = schedule.metadata?.name ?? '';
    let current = schedule;
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.kube.write(() =>
          this.kube.custom.replaceNamespacedCustomObjectStatus({
            ...this.kube.schedules,
            namespace,
            name,
            body: { ...current, status: { ...current.status, hooks: { pendingPost: owed } } },
          }),
        )) as SnapshotSchedule;
      } catch (err) {
        rethrowIfFenced(err);
        if (statusOf(err) !== 409 || attempt === 5)
          throw new Error(
            `SnapshotSchedule ${namespace}/${name}: could not record status.hooks.pendingPost before the pre hook, so the pre hook was not run: ${errorMessage(err)}`,
            { cause: err },
          );
        current = (await this.kube.read(() =>
          this.kube.custom.getNamespacedCustomObject({ ...this.kube.schedules, namespace, name }),
        )) as SnapshotSchedule;
      }
    }
  }

  /** Waits until each named snapshot has status.creationTime or an error; returns those that never got one. */
  private async waitForCut(namespace: string, names: string[], grouped = false): Promise<string[]> {
    const deadline = Date.now() + this.cutWaitMs;
    let left = names;
    while (left.length > 0) {
      const states = await Promise.all(
        left.map(async (n) => {
          try {
            const read = (view: FreshView) =>
              grouped ? view.groupSnapshot(namespace, n) : view.snapshot(namespace, n);
            // Not in the controller's cache may only mean its watch has not brought the create
            // yet: ask the API server before taking it for gone (post would unfreeze too early).
            const v = (await read(this.view)) ?? (await read(this.api));
            return v?.status?.creationTime || v?.status?.error || !v ? undefined : n;
          } catch (err) {
            rethrowIfFenced(err);
            return n;
          }
        }),
      );
      left = states.filter((n): n is string => n !== undefined);
      if (left.length === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    return left;
  }

  /** The pods a hook runs in; a failed list (RBAC: pods list) ends the pass with the fix named. */
  private async hookPods(namespace: string, name: string, which: string, hook: Hook): Promise<string[]> {
    try {
      return await this.hooks.selectPods(namespace, hook.podSelector);
    } catch (err) {
      rethrowIfFenced(err);
      throw new Error(
        `SnapshotSchedule ${namespace}/${name}: could not list pods for spec.hooks.${which}.podSelector: ${errorMessage(err)} (hooks need the pods get/list and pods/exec get/create permissions, see the README's Hooks section)`,
        { cause: err },
      );
    }
  }

  /** Carries out a plan. `quiet`: a retry of a pass already reported as failing logs at debug only. */
  async execute(schedule: SnapshotSchedule, plan: SchedulePlan, quiet = false): Promise<ExecutionResult> {
    const name = schedule.metadata?.name ?? '';
    const namespace = schedule.metadata?.namespace ?? 'default';
    const log = this.log.child({ schedule: name, namespace }, quiet ? { level: 'debug' } : {});
    const target = scheduleTarget(schedule);
    const labels = { namespace, schedule: name };
    const result: ExecutionResult = {
      created: [],
      existed: [],
      createFailures: [],
      pruned: [],
      pruneSkipped: [],
      skips: [],
      statusWritten: false,
      errors: [],
      hookFailures: [],
    };

    if (plan.errors.length > 0) {
      const message = plan.errors.map((e) => `${e.path}: ${e.message}`).join('; ');
      if (schedule.status?.conditions?.find((c) => c.type === 'InvalidSpec')?.status !== 'True') {
        log.warn({ errors: plan.errors }, 'schedule spec is invalid');
        this.events.emit(target, 'Warning', 'InvalidSpec', message);
      }
      result.statusWritten = await this.writeStatus(schedule, plan.status, log);
      return result;
    }

    if (plan.due.kind === 'due') {
      this.metrics?.fireLag.observe(labels, plan.due.lateMs / 1000);
      if (plan.due.skippedEarlier) {
        this.events.emit(
          target,
          'Normal',
          'CatchUp',
          `taking one catch-up run for ${plan.due.scheduledTime.toISOString()}; earlier missed times are skipped`,
        );
      }
    } else if (plan.due.kind === 'too-late') {
      if (schedule.status?.conditions?.find((c) => c.type === 'Ready')?.reason !== 'MissedSchedule') {
        this.events.emit(
          target,
          'Warning',
          'MissedSchedule',
          `skipped the run of ${plan.due.scheduledTime.toISOString()}: ${Math.round(plan.due.lateMs / 1000)}s late, beyond startingDeadlineSeconds`,
        );
      }
    }

    // Hooks (spec.hooks): a post hook owed by an earlier pass first, then pre, the creates, post.
    let current = schedule;
    let hookRan = false;
    let clearPending = false;
    let preFailed = false;
    if (plan.pendingPost) {
      hookRan = true;
      clearPending = true;
      if (plan.pendingPost.hook) {
        log.info(
          { run: plan.pendingPost.scheduledTime, pods: plan.pendingPost.pods },
          'running an owed post hook',
        );
        const failed = await this.runHook(
          'post',
          namespace,
          plan.pendingPost.pods,
          plan.pendingPost.hook,
          labels,
          log,
        );
        result.hookFailures.push(
          ...failed.map((f) => `post hook (owed by the run of ${plan.pendingPost?.scheduledTime}): ${f}`),
        );
      }
      result.postCleared = plan.pendingPost.scheduledTime;
    }
    let creates = plan.creates;
    const hookSkips: PvcSkip[] = [];
    const hp = plan.hooks;
    let postPods: string[] | undefined;
    const runAt = hp?.scheduledTime.toISOString().replace('.000Z', 'Z') ?? '';
    if (hp?.pre) {
      hookRan = true;
      const pods = await this.hookPods(namespace, name, 'pre', hp.pre);
      postPods = pods;
      // Recorded before pre runs, so the post hook is owed even if this process dies mid-run.
      if (hp.post && pods.length > 0) {
        current = await this.recordPendingPost(current, { scheduledTime: runAt, pods });
        clearPending = true;
        // Cleared by this pass's status write; a pass that sees the write's echo must not run post again.
        result.postCleared = runAt;
      }
      const failed = await this.runHook('pre', namespace, pods, hp.pre, labels, log);
      if (failed.length > 0) {
        const message = `pre hook failed in ${failed.length} of ${pods.length} pod(s) for the run of ${runAt}: ${failed.join('; ')}`;
        result.hookFailures.push(message);
        if (hp.preOnFailure === 'Fail') {
          preFailed = true;
          creates = [];
          for (const c of plan.creates)
            hookSkips.push({
              pvc: c.pvc,
              reason: 'PreHookFailed',
              message: `PVC ${namespace}/${c.pvc} was not snapshotted: the pre hook failed (onFailure Fail); see the schedule's HookFailed condition`,
              trigger: c.trigger,
            });
        }
        this.events.emit(
          target,
          'Warning',
          'PreHookFailed',
          `${message}; ${preFailed ? 'no snapshots taken in this run (onFailure Fail)' : 'snapshots taken anyway (onFailure Continue)'}`,
        );
      }
    }

    // Every create of the run is handed to the shared write budget at once; the budget serves
    // schedules in turn (creates before deletions before status), so a burst is fair.
    const key = `${namespace}/${name}`;
    const deadlineMs =
      plan.due.kind === 'due' && schedule.spec.startingDeadlineSeconds !== undefined
        ? plan.due.scheduledTime.getTime() + schedule.spec.startingDeadlineSeconds * 1000
        : Infinity;
    const lateSkips: PvcSkip[] = [];
    await Promise.all(
      creates.map(async (c) => {
        const slog = log.child({ pvc: c.pvc, snapshot: c.name });
        const kind = c.members ? 'group' : 'snapshot';
        try {
          this.own?.creating(kind, namespace, c.name);
          const out: unknown = await this.kube.write(
            () => {
              // Waited so long for the budget that the run is past its deadline: say so, don't take it late.
              // A run on demand has no fire time, so no starting deadline.
              if (c.trigger === 'Schedule' && this.now().getTime() > deadlineMs) throw new PastDeadline();
              return this.kube.custom.createNamespacedCustomObject({
                ...(c.members ? this.kube.groupSnapshots : this.kube.snapshots),
                namespace,
                body: c.manifest,
              });
            },
            { key, lane: 'create' },
          );
          result.created.push(c.name);
          // What a pending snapshot's stuck time counts from (a group snapshot's too).
          const createdAt = pendingSince(out as VolumeSnapshot)?.getTime() ?? Infinity;
          if (createdAt < (result.firstCreatedAt ?? Infinity)) result.firstCreatedAt = createdAt;
          this.metrics?.created.inc(labels);
          if (c.trigger === 'Schedule')
            this.metrics?.createLag.observe((this.now().getTime() - c.scheduledTime.getTime()) / 1000);
          if (c.members)
            slog.info(
              { scheduledAt: c.scheduledTime.toISOString(), trigger: c.trigger, members: c.members },
              'group snapshot created',
            );
          else
            slog.info({ scheduledAt: c.scheduledTime.toISOString(), trigger: c.trigger }, 'snapshot created');
        } catch (err) {
          this.own?.createFailed(kind, namespace, c.name);
          rethrowIfFenced(err);
          if (err instanceof PastDeadline) {
            lateSkips.push({
              pvc: c.pvc,
              reason: 'DeadlinePassed',
              message: `PVC ${namespace}/${c.pvc}: the run of ${c.scheduledTime.toISOString()} waited for the client write budget (--qps) past startingDeadlineSeconds ${schedule.spec.startingDeadlineSeconds}; not taken late. Raise --qps/--burst or the deadline`,
            });
            return;
          }
          if (statusOf(err) === 409 && (await this.isOurs(namespace, c.name, name, c.pvc, !!c.members))) {
            result.existed.push(c.name);
            slog.debug('snapshot already exists');
            return;
          }
          const error = errorMessage(err);
          result.createFailures.push({ name: c.name, error });
          this.metrics?.failed.inc(labels);
          slog.error({ err: error }, 'snapshot create failed');
          this.events.emit(
            target,
            'Warning',
            'SnapshotCreateFailed',
            c.members
              ? `could not create VolumeGroupSnapshot ${c.name} of group ${c.pvc} (PVCs ${c.members.join(', ')}): ${error}`
              : `could not create VolumeSnapshot ${c.name} of PVC ${c.pvc}: ${error}`,
          );
        }
      }),
    );
    // The post hook: after the creates, or after a failed pre hook, in the pods pre ran in.
    if (hp?.post) {
      hookRan = true;
      // A VolumeSnapshot object is only a request: the data is cut when the driver answers
      // (status.creationTime). Post must not unfreeze before that.
      const uncut = await this.waitForCut(
        namespace,
        [...result.created, ...result.existed],
        !!schedule.spec.group,
      );
      if (uncut.length > 0) {
        const message = `VolumeSnapshot(s) ${listed(uncut)} not cut (no status.creationTime) within ${this.cutWaitMs / 1000}s of their creation; the post hook runs anyway, so they may not be consistent`;
        log.warn({ uncut }, message);
        this.events.emit(target, 'Warning', 'HookSnapshotNotCut', message);
      }
      const pods = postPods ?? (await this.hookPods(namespace, name, 'post', hp.post));
      const failed = await this.runHook('post', namespace, pods, hp.post, labels, log);
      if (failed.length > 0) {
        const message = `post hook failed in ${failed.length} of ${pods.length} pod(s) for the run of ${runAt}: ${failed.join('; ')}`;
        result.hookFailures.push(message);
        this.events.emit(target, 'Warning', 'PostHookFailed', message);
      }
    }

    const triggerOf = new Map(plan.creates.map((c) => [c.name, c.trigger]));
    const timedCreated = result.created.filter((n) => triggerOf.get(n) === 'Schedule');
    if (timedCreated.length > 0) {
      const at = plan.creates.find((c) => c.trigger === 'Schedule')?.scheduledTime.toISOString() ?? '';
      this.events.emit(
        target,
        'Normal',
        'SnapshotsCreated',
        `created ${timedCreated.length} VolumeSnapshot(s) for the run of ${at}: ${listed(timedCreated)}`,
      );
    }
    const od = plan.onDemand;
    const odCreated = result.created.filter((n) => triggerOf.get(n) !== 'Schedule');
    const odFailed = result.createFailures.filter((f) => triggerOf.get(f.name) !== 'Schedule');
    if (od) {
      const what =
        od.trigger === 'RunNow'
          ? `the run on demand (snapcron.io/run-now "${od.runNow ?? ''}")`
          : 'the first run (spec.runOnCreate)';
      // A first run that found nothing to take stays pending (see decide): its skips say why.
      const tookSome = odCreated.length + od.existing.length > 0 || od.trigger === 'RunNow';
      if (odCreated.length > 0 || (odFailed.length === 0 && tookSome))
        this.events.emit(
          target,
          'Normal',
          od.trigger,
          `created ${odCreated.length} VolumeSnapshot(s) for ${what}${od.hold ? ', held' : ''}${odCreated.length ? `: ${listed(odCreated)}` : ''}${od.existing.length ? `; ${od.existing.length} existed already` : ''}`,
        );
      if (odFailed.length === 0 && tookSome) this.metrics?.runs.inc({ ...labels, trigger: od.trigger });
    }
    if (plan.due.kind === 'due') this.metrics?.runs.inc({ ...labels, trigger: 'Schedule' });

    const skips = [...plan.skips, ...lateSkips, ...hookSkips];
    result.skips = skips;
    for (const skip of skips) {
      log.info({ pvc: skip.pvc, reason: skip.reason }, 'pvc skipped');
      this.metrics?.skipped.inc({ ...labels, reason: skip.reason });
    }
    // PreHookFailed has its own event on the schedule.
    for (const reason of new Set(skips.map((k) => k.reason).filter((r) => r !== 'PreHookFailed'))) {
      const these = skips.filter((k) => k.reason === reason);
      this.events.emit(
        target,
        'Warning',
        `Skipped${reason}`,
        these.length === 1
          ? (these[0]?.message ?? '')
          : `${these.length} PVCs skipped (${listed(these.map((k) => k.pvc))}): ${these[0]?.message ?? ''}`,
      );
    }
    for (const skip of skips)
      this.events.emit(pvcTarget(namespace, skip.pvc), 'Warning', `Snapshot${skip.reason}`, skip.message);

    const deletions = plan.retention?.deletions ?? [];
    // One fresh read of the namespace's PVCs for every delete of the pass: a restore admitted a
    // moment ago must protect its snapshot even before the watch brings the PVC.
    const freshPvcs = deletions.length > 0 ? await this.view.pvcs(namespace) : [];
    await Promise.all(
      deletions.map(async (v) => {
        const slog = log.child({ pvc: v.pvc, snapshot: v.name });
        try {
          const outcome = await this.deleteChecked(
            namespace,
            v.name,
            { mode: 'prune', planned: v, schedule },
            freshPvcs,
            !!schedule.spec.group,
          );
          if (outcome !== 'deleted') {
            result.pruneSkipped.push({ name: v.name, why: outcome });
            slog.info({ why: outcome }, 'prune skipped: protection found on re-read');
            return;
          }
          result.pruned.push(v.name);
          this.metrics?.pruned.inc({ ...labels, reason: v.reasons[0] ?? 'unknown' });
          if (v.state === 'failed') {
            this.metrics?.failed.inc(labels);
            this.events.emit(
              target,
              'Warning',
              'SnapshotFailed',
              `VolumeSnapshot ${v.name} of PVC ${v.pvc} failed: ${v.error ?? 'no error message from the driver'}`,
            );
          }
          slog.info({ reasons: v.reasons }, 'snapshot pruned');
        } catch (err) {
          rethrowIfFenced(err);
          result.errors.push(`delete ${v.name}: ${errorMessage(err)}`);
          slog.error({ err: errorMessage(err) }, 'snapshot prune failed');
        }
      }),
    );
    if (result.pruned.length > 0) {
      const pruned = (plan.retention?.deletions ?? []).filter((v) => result.pruned.includes(v.name));
      this.events.emit(
        target,
        'Normal',
        'SnapshotsPruned',
        `deleted ${pruned.length} VolumeSnapshot(s): ${listed(pruned.map((v) => `${v.name} (${v.reasons.join(', ')})`))}`,
      );
    }
    // Stuck snapshots are kept; say so once when their number grows (the condition says it always).
    const stuck = plan.retention?.stuck ?? [];
    if (stuck.length > (schedule.status?.snapshots?.stuck ?? 0)) {
      const message =
        plan.status.conditions?.find((c) => c.type === 'SnapshotsStuck')?.message ??
        `${stuck.length} snapshot(s) stuck`;
      log.warn({ stuck: stuck.map((v) => v.name) }, 'snapshots stuck pending');
      this.events.emit(target, 'Warning', 'SnapshotStuck', message);
    }
    for (const [state, count] of Object.entries(plan.retention?.counts ?? {}))
      this.metrics?.snapshots.set({ ...labels, state }, count);

    const prunedStates = (plan.retention?.deletions ?? []).filter((v) => result.pruned.includes(v.name));
    const status: SnapshotScheduleStatus = { ...plan.status };
    if (status.snapshots) {
      const counts = { ...status.snapshots };
      for (const v of prunedStates) counts[v.state] = Math.max(0, (counts[v.state] ?? 0) - 1);
      counts.pending = Math.max(
        0,
        (counts.pending ?? 0) - result.createFailures.length - lateSkips.length - hookSkips.length,
      );
      status.snapshots = counts;
    }
    // What the run did, so no fire is ever short without a recorded reason. A timed run wins
    // the record when both kinds fall in one pass; the run on demand keeps its event.
    const timed = (trigger: RunTrigger | undefined): boolean => (trigger ?? 'Schedule') === 'Schedule';
    const timedRun =
      plan.due.kind === 'due'
        ? plan.due.scheduledTime
        : plan.creates.find((c) => c.trigger === 'Schedule')?.scheduledTime;
    const record = (
      at: Date,
      trigger: RunTrigger,
      existing: number,
      mine: (trigger: RunTrigger | undefined) => boolean,
    ): void => {
      const these = skips.filter((k) => mine(k.trigger));
      status.lastRun = {
        scheduledTime: at.toISOString().replace('.000Z', 'Z'),
        trigger,
        ...(trigger === 'RunNow' && od?.runNow !== undefined ? { runNow: od.runNow } : {}),
        created:
          [...result.created, ...result.existed].filter((n) => mine(triggerOf.get(n))).length + existing,
        failed: result.createFailures.filter((f) => mine(triggerOf.get(f.name))).length,
        skipped: these.length,
        ...(these.length > 0
          ? { skips: these.slice(0, 50).map((k) => ({ pvc: k.pvc, reason: k.reason, message: k.message })) }
          : {}),
      };
    };
    if (timedRun) record(timedRun, 'Schedule', 0, timed);
    else if (od) record(od.at, od.trigger, od.existing.length, (t) => !timed(t));
    // A run on demand whose creates failed stays requested: the retry takes the rest, same names.
    if (odFailed.length > 0) status.lastRunNow = schedule.status?.lastRunNow;
    if (lateSkips.length > 0 || preFailed) status.lastSuccessfulTime = schedule.status?.lastSuccessfulTime;
    if (clearPending) status.hooks = { ...status.hooks, pendingPost: undefined };
    if (hookRan) {
      const hookCondition: ConditionInput =
        result.hookFailures.length > 0
          ? {
              type: 'HookFailed',
              status: 'True',
              reason: preFailed ? 'PreHookFailed' : 'HookFailed',
              message: result.hookFailures.join('; ').slice(0, 4000),
            }
          : {
              type: 'HookFailed',
              status: 'False',
              reason: 'HooksSucceeded',
              message: `hooks of the run of ${runAt || result.postCleared || ''} succeeded`,
            };
      status.conditions = setConditions(
        status.conditions,
        [hookCondition],
        this.now(),
        schedule.metadata?.generation,
      );
    }
    if (result.createFailures.length > 0) {
      status.lastSuccessfulTime = schedule.status?.lastSuccessfulTime;
      // A timed run with a failed create is not taken yet: the pass's retry (backoff) plans it
      // again and creates what is missing (the PVCs that have their snapshot are not asked again).
      if (result.createFailures.length > odFailed.length)
        status.lastScheduleTime = schedule.status?.lastScheduleTime;
      status.conditions = setConditions(
        status.conditions,
        [
          {
            type: 'Ready',
            status: 'False',
            reason: 'SnapshotCreateFailed',
            message: result.createFailures.map((f) => `${f.name}: ${f.error}`).join('; '),
          },
        ],
        this.now(),
        schedule.metadata?.generation,
      );
    }
    try {
      result.statusWritten = await this.writeStatus(current, status, log);
    } catch (err) {
      rethrowIfFenced(err);
      result.errors.push(`status: ${errorMessage(err)}`);
      log.error({ err: errorMessage(err) }, 'status update failed');
    }
    if (plan.wakeAt) this.metrics?.nextFire.set(labels, plan.wakeAt.getTime() / 1000);

    return result;
  }

  /**
   * Deletes one snapshot unless a fresh read shows a protection the plan did not see; returns
   * why not. Pruning re-checks every protection with the planner's own rules (hold, pending,
   * stuck, in-use, min-ready among the PVC's fresh snapshots) and that the state it was planned
   * in still holds; deleting a schedule's snapshots (finalize) re-checks hold and in-use. The
   * delete carries the resourceVersion of the read, so a change in between makes it a no-op.
   */
  private async deleteChecked(
    namespace: string,
    name: string,
    check: { mode: 'finalize' } | { mode: 'prune'; planned: Deletion; schedule: SnapshotSchedule },
    pvcs: PersistentVolumeClaim[],
    group = false,
  ): Promise<'deleted' | 'gone' | ProtectReason | 'changed'> {
    if (group) return this.deleteGroupChecked(namespace, name, check, pvcs);
    const fresh = await this.view.snapshot(namespace, name);
    if (!fresh) return 'gone';
    if (fresh.metadata.deletionTimestamp) return 'gone';
    if (fresh.metadata.labels?.[LABEL_HOLD] === 'true') return 'hold';
    if (check.mode === 'prune') {
      const why = whyNotPrune(check.planned, fresh, {
        scheduleName: check.schedule.metadata?.name ?? '',
        retention: check.schedule.spec.retention,
        snapshots: await this.view.siblings(fresh),
        pvcs,
        now: this.now(),
      });
      if (why) return why;
    } else if (snapshotsInUse(pvcs).has(`${namespace}/${name}`)) return 'in-use';
    return this.deleteAt(this.kube.snapshots, namespace, name, fresh.metadata.resourceVersion, check);
  }

  /**
   * A consistency group is deleted whole, as one VolumeGroupSnapshot (its members go with it),
   * after the same re-checks as a snapshot, on the group seen as one recovery point: hold on
   * the group, any member being restored from, and the state it was planned in.
   */
  private async deleteGroupChecked(
    namespace: string,
    name: string,
    check: { mode: 'finalize' } | { mode: 'prune'; planned: Deletion; schedule: SnapshotSchedule },
    pvcs: PersistentVolumeClaim[],
  ): Promise<'deleted' | 'gone' | ProtectReason | 'changed'> {
    const fresh = await this.view.groupSnapshot(namespace, name);
    if (!fresh || fresh.metadata.deletionTimestamp) return 'gone';
    if (fresh.metadata.labels?.[LABEL_HOLD] === 'true') return 'hold';
    const members = await this.view.members(namespace, name);
    const memberNames = new Set(members.map((m) => `${namespace}/${m.metadata.name ?? ''}`));
    const restoring = groupRestores(pvcs, (ns, snap) =>
      memberNames.has(`${ns}/${snap}`) ? name : undefined,
    );
    if (check.mode === 'prune') {
      const siblings = await this.view.groupSiblings(fresh);
      const why = whyNotPrune(check.planned, asRecoveryPoint(fresh, members), {
        scheduleName: check.schedule.metadata?.name ?? '',
        retention: check.schedule.spec.retention,
        // Siblings are judged by their own status (their members are not read: one GET per delete).
        snapshots: siblings.map((g) =>
          g.metadata.name === name ? asRecoveryPoint(g, members) : asRecoveryPoint(g),
        ),
        pvcs: restoring,
        now: this.now(),
      });
      if (why) return why;
    } else if (restoring.length > 0) return 'in-use';
    return this.deleteAt(this.kube.groupSnapshots, namespace, name, fresh.metadata.resourceVersion, check);
  }

  /** The delete itself, under the resourceVersion the checks read: a change in between makes it a no-op. */
  private async deleteAt(
    resource: Kube['snapshots'] | Kube['groupSnapshots'],
    namespace: string,
    name: string,
    resourceVersion: string | undefined,
    check: { mode: string; schedule?: SnapshotSchedule },
  ): Promise<'deleted' | 'gone' | 'changed'> {
    const kind = resource === this.kube.snapshots ? 'snapshot' : 'group';
    this.own?.deleting(kind, namespace, name);
    try {
      await this.kube.write(
        () =>
          this.kube.custom.deleteNamespacedCustomObject({
            ...resource,
            namespace,
            name,
            body: { preconditions: { resourceVersion } },
          }),
        { key: scheduleKeyOf(check), lane: 'delete' },
      );
      return 'deleted';
    } catch (err) {
      this.own?.deleteFailed(kind, namespace, name);
      if (statusOf(err) === 404) return 'gone';
      if (statusOf(err) === 409) return 'changed';
      throw err;
    }
  }

  private async isOurs(
    namespace: string,
    name: string,
    schedule: string,
    pvc: string,
    group = false,
  ): Promise<boolean> {
    try {
      const existing = (await this.kube.read(() =>
        this.kube.custom.getNamespacedCustomObject({
          ...(group ? this.kube.groupSnapshots : this.kube.snapshots),
          namespace,
          name,
        }),
      )) as VolumeSnapshot;
      const l = existing.metadata.labels ?? {};
      return (
        l[LABEL_SCHEDULE] === labelValue(schedule) && l[group ? LABEL_GROUP : LABEL_PVC] === labelValue(pvc)
      );
    } catch {
      return false;
    }
  }

  /** Adds or removes our finalizer to match deletionPolicy; true when it wrote (a new event follows). */
  async syncFinalizers(schedule: SnapshotSchedule): Promise<boolean> {
    const next = wantedFinalizers(schedule);
    if (!next) return false;
    await this.replaceFinalizers(schedule, next);
    return true;
  }

  /** deletionPolicy Delete: carries out a DeletionPlan, and releases the schedule when it is done. */
  async finalize(schedule: SnapshotSchedule, plan: DeletionPlan): Promise<FinalizeResult> {
    const namespace = schedule.metadata?.namespace ?? 'default';
    const log = this.log.child({ schedule: schedule.metadata?.name, namespace });
    const result: FinalizeResult = {
      deleted: [],
      waiting: [...plan.waiting],
      retained: [...plan.retained],
      released: false,
    };
    const freshPvcs = plan.deletes.length > 0 ? await this.view.pvcs(namespace) : [];
    for (const d of plan.deletes) {
      const outcome = await this.deleteChecked(
        namespace,
        d.name,
        { mode: 'finalize' },
        freshPvcs,
        d.kind === GROUP_SNAPSHOT_KIND,
      );
      if (outcome === 'deleted' || outcome === 'gone') {
        result.deleted.push(d.name);
        log.info({ snapshot: d.name }, 'snapshot deleted with its schedule');
      } else if (outcome === 'hold') result.retained.push(d.name);
      else result.waiting.push(d.name); // in use, or changed since read: look again next pass
    }
    if (result.waiting.length > 0) {
      this.events.emit(
        scheduleTarget(schedule),
        'Normal',
        'WaitingForRestore',
        `${result.waiting.length} snapshot(s) are restore sources of PVCs not yet Bound (or changed); deleting them once the restores finish`,
      );
      return result;
    }
    await this.replaceFinalizers(
      schedule,
      (schedule.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER),
    );
    result.released = true;
    if (result.retained.length > 0)
      log.info({ retained: result.retained }, 'held snapshots left in place with the schedule gone');
    return result;
  }

  /** Replaces the finalizer list under the schedule's resourceVersion; a conflict waits for the next pass. */
  private async replaceFinalizers(schedule: SnapshotSchedule, finalizers: string[]): Promise<void> {
    // A merge patch of the finalizers alone (with the resourceVersion as a precondition): a PUT
    // of the cached, slimmed object would drop what the cache does not keep, such as kubectl's
    // last-applied annotation.
    try {
      await this.kube.write(() =>
        this.kube.custom.patchNamespacedCustomObject({
          ...this.kube.schedules,
          namespace: schedule.metadata?.namespace ?? 'default',
          name: schedule.metadata?.name ?? '',
          body: { metadata: { resourceVersion: schedule.metadata?.resourceVersion, finalizers } },
        }),
      );
    } catch (err) {
      if (statusOf(err) !== 409 && statusOf(err) !== 404) throw err;
    }
  }

  /**
   * `cached`, or this process's own later status write of it while the cache still holds a
   * version one of its writes in a row replaced (the spec is then the same: an edit makes a
   * version none of them replaced).
   */
  fresher(cached: SnapshotSchedule): SnapshotSchedule {
    const key = scheduleKey(cached);
    const w = this.written.get(key);
    if (!w) return cached;
    if (w.replaced.has(cached.metadata?.resourceVersion ?? ''))
      return {
        ...cached,
        metadata: { ...cached.metadata, resourceVersion: w.object.metadata?.resourceVersion },
        status: w.object.status,
      };
    this.written.delete(key); // the cache caught up, or someone else wrote since
    return cached;
  }

  /** Records a status write `out` that replaced version `replaced` (see fresher). */
  private remember(key: string, replaced: string | undefined, out: SnapshotSchedule | undefined): void {
    const rv = out?.metadata?.resourceVersion;
    if (!replaced || !rv) return;
    const w = this.written.get(key);
    // Written over our own last write: the cache may still hold any version of the chain.
    const chain = w && w.object.metadata?.resourceVersion === replaced ? w.replaced : new Set<string>();
    chain.add(replaced);
    this.written.set(key, {
      replaced: chain,
      object: { metadata: { resourceVersion: rv }, status: out.status } as SnapshotSchedule,
    });
  }

  /** Forgets a deleted schedule's last write. */
  forget(key: string): void {
    this.written.delete(key);
  }

  /** Writes the status subresource when it changed, re-reading and retrying on conflict. */
  async writeStatus(
    schedule: SnapshotSchedule,
    status: SnapshotScheduleStatus,
    log: Logger,
  ): Promise<boolean> {
    if (sameStatus(schedule.status ?? {}, status)) return false;
    const namespace = schedule.metadata?.namespace ?? 'default';
    const name = schedule.metadata?.name ?? '';
    let current = schedule;
    const key = `${namespace}/${name}`;
    for (let attempt = 1; attempt <= 5; attempt++) {
      this.own?.writingStatus(key);
      try {
        const out = (await this.kube.write(
          () =>
            this.kube.custom.replaceNamespacedCustomObjectStatus({
              ...this.kube.schedules,
              namespace,
              name,
              // As it is: the API server stores it re-encoded (keys sorted, undefined ones never sent).
              body: { ...current, status },
            }),
          { key, lane: 'other' },
        )) as SnapshotSchedule;
        this.own?.statusWritten(key, out.metadata?.resourceVersion);
        this.remember(key, current.metadata?.resourceVersion, out);
        return true;
      } catch (err) {
        this.own?.statusWritten(key, undefined);
        if (statusOf(err) === 404) return false;
        if (statusOf(err) !== 409 || attempt === 5) throw err;
        log.debug({ attempt }, 'status conflict; re-reading');
        current = (await this.kube.read(() =>
          this.kube.custom.getNamespacedCustomObject({ ...this.kube.schedules, namespace, name }),
        )) as SnapshotSchedule;
        // Never move the run times backwards: another writer (a parallel tick), or this
        // process's own previous pass when the cache it planned from was stale, got further.
        const newer = (a: string | undefined, b: string | undefined): string | undefined =>
          a && b ? (Date.parse(a) >= Date.parse(b) ? a : b) : (a ?? b);
        // Conditions this pass did not set (it planned from a cache without another pass's
        // write, e.g. HookFailed) are kept as the fresh read has them, not dropped.
        const planned = new Set((status.conditions ?? []).map((c) => c.type));
        const kept = (current.status?.conditions ?? []).filter((c) => !planned.has(c.type));
        status = {
          ...status,
          ...(kept.length > 0 ? { conditions: [...(status.conditions ?? []), ...kept] } : {}),
          lastScheduleTime: newer(current.status?.lastScheduleTime, status.lastScheduleTime),
          lastSuccessfulTime: newer(current.status?.lastSuccessfulTime, status.lastSuccessfulTime),
          // Another writer answered the schedule's current run-now request: never un-answer it.
          lastRunNow:
            current.status?.lastRunNow !== undefined &&
            current.status.lastRunNow === runNowKey(current.metadata?.annotations?.[ANNOTATION_RUN_NOW])
              ? current.status.lastRunNow
              : status.lastRunNow,
        };
      }
    }
    return false;
  }
}

export const snapshotApiVersion = `${SNAPSHOT_GROUP}/${SNAPSHOT_VERSION}`;
