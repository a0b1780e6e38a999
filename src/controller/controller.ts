/**
 * `snapcron controller`: a reconciler over a keyed work queue, in the shape of
 * controller-runtime and kube-rs' Controller.
 *
 * - Informers keep slim caches of schedules, PVCs and snapshots; their events enqueue the
 *   schedules they concern (found through indexes, not by scanning every schedule).
 * - `reconcile(key)` decides one schedule's pass from the caches and acts on it, then says
 *   when it next needs to run (its next fire time): the queue's delay heap wakes it then.
 *   A failed pass is retried with per-key exponential backoff, reported once.
 * - Reconciles run concurrently (one key never twice at once); their writes share one
 *   fair budget (kube/fair-limiter.ts), so a burst is served schedule by schedule in turn.
 * - Only the lease holder acts, and only while every cache is synced; each write is fenced
 *   by the lease at the moment it goes out.
 * The clock and the queue's timers are injectable, so tests drive time.
 */
import type { Logger } from 'pino';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../api/objects.ts';
import { asRecoveryPoint, groupOfMember, groupRestores, membersByGroup } from '../group/recovery-points.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import type { Kube } from '../kube/client.ts';
import { EventRecorder } from '../kube/events.ts';
import { errorMessage, NotLeaderError } from '../kube/retry.ts';
import { snapshotClassOf } from '../api/warnings.ts';
import { SnapcronCaches } from '../kube/caches.ts';
import {
  LABEL_INDEX,
  labelIndexKey,
  membersOfGroup,
  pvcsForSchedule,
  SCHEDULE_INDEX,
  scheduleIndexKey,
  schedulesOfSnapshot,
  snapshotsOfPvc,
  snapshotsOfSchedule,
} from '../kube/index-cache.ts';
import { decide, nextFireOf, scheduleKey } from './decide.ts';
import { needsFinalizing, planDeletion } from './deletion.ts';
import { LABEL_GROUP, LABEL_SCHEDULE } from '../api/constants.ts';
import { apiView, Executor, scheduleTarget, type FreshView } from './executor.ts';
import { turnsStuckAt } from '../retention/snapshot-state.ts';
import { RESTORE_LABEL } from '../restore/select.ts';
import { LeaderElector } from './leader.ts';
import type { Metrics } from './metrics.ts';
import { OwnWrites } from './own-writes.ts';
import { MAX_TIMER_MS, realClock, WorkQueue, type Clock } from './work-queue.ts';

export interface ControllerOptions {
  kube: Kube;
  log: Logger;
  metrics: Metrics;
  /** Watch one namespace only; all when unset. */
  namespace?: string | undefined;
  lease: {
    namespace: string;
    name: string;
    identity: string;
    durationSeconds: number;
    retryPeriodMs: number;
  };
  /** Reconciles in flight at once (their writes wait in the shared fair budget). */
  concurrency?: number;
  /** Wall clock and timers for decisions and the queue; the lease keeps real time. */
  clock?: Clock;
  /** Every schedule is queued again at each multiple of this on the clock (default 30 minutes). */
  resyncMs?: number;
}

/** A pass whose writes were refused or failed: what went wrong, for one report. */
class PassFailed extends Error {
  readonly failures: string[];
  constructor(failures: string[]) {
    super(
      `${failures.length} write(s) failed: ${failures.slice(0, 3).join('; ')}${failures.length > 3 ? '; …' : ''}`,
    );
    this.failures = failures;
  }
}
export const DEFAULT_CONCURRENCY = 1000;
/** Retry a schedule still waiting for restores to finish (deletionPolicy Delete). */
const FINALIZE_RETRY_MS = 5000;
/**
 * A PVC or snapshot event reaches its schedule's pass this much later, so a run's own burst of
 * events (creates, readiness, deletions) makes one pass, not one each. Fire times are not delayed.
 */
const EVENT_COALESCE_MS = 1000;
/** The safety-net resync's period (see start). */
export const RESYNC_MS = 30 * 60_000;

export class Controller {
  private readonly o: ControllerOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly executor: Executor;
  private readonly own: OwnWrites;
  private readonly events: EventRecorder;
  private readonly elector: LeaderElector;
  private readonly caches: SnapcronCaches;
  readonly queue: WorkQueue;
  private readonly inFlight = new Set<Promise<void>>();
  private workers: Promise<void> | undefined;
  private resyncTimer: unknown;
  private stopping = false;
  /** Per pass in flight: a timer at its schedule's next fire (see promoteAtNextFire). */
  private readonly promotions = new Map<string, { at: number; timer: unknown }>();
  /** The scheduled time each schedule's last run took, until its status write is in the cache. */
  private readonly lastTaken = new Map<string, Date>();
  /** The same for each schedule's last run on demand (its onDemandId). */
  private readonly lastOnDemand = new Map<string, string>();
  /** The status.hooks.pendingPost each schedule's last pass ran and cleared (the cache may lag the write). */
  private readonly postDone = new Map<string, string>();

  constructor(o: ControllerOptions) {
    this.o = o;
    this.clock = o.clock ?? realClock;
    this.log = o.log;
    this.queue = new WorkQueue(this.clock);
    this.caches = new SnapcronCaches({
      kube: o.kube,
      log: o.log,
      namespace: o.namespace,
      // A re-listed cache may have missed anything: look at every schedule again.
      onResynced: () => this.enqueueAll(),
      onSyncChange: (synced) => {
        if (synced) this.enqueueAll();
      },
    });
    const now = (): Date => new Date(this.clock.now());
    // Every write of a pass (snapshots, status, events, finalizers) is fenced by the lease.
    const acting = o.kube.fenced(() => this.elector.holdsLease());
    this.events = new EventRecorder(acting, o.log, now);
    this.own = new OwnWrites(
      () => this.clock.now(),
      (key) => this.enqueueSoon(key),
    );
    this.executor = new Executor({
      kube: acting,
      events: this.events,
      log: o.log,
      metrics: o.metrics,
      now,
      view: this.cacheView(),
      own: this.own,
    });
    this.elector = new LeaderElector({
      kube: o.kube,
      ...o.lease,
      leaseDurationSeconds: o.lease.durationSeconds,
      log: o.log,
      onStartedLeading: () => {
        o.metrics.leader.set(1);
        this.enqueueAll();
      },
      onStoppedLeading: () => o.metrics.leader.set(0),
    });
  }

  /** The re-check before a delete reads the watch caches, not the API server (see FreshView). */
  private cacheView(): FreshView {
    return {
      snapshot: (ns, name) => Promise.resolve(this.caches.snapshots.store.get(ns, name)),
      pvcs: (ns) => apiView(this.o.kube).pvcs(ns),
      siblings: (s) => {
        const ns = s.metadata.namespace ?? '';
        const pvc = s.spec.source.persistentVolumeClaimName ?? '';
        const schedule = s.metadata.labels?.[LABEL_SCHEDULE];
        return Promise.resolve(
          snapshotsOfPvc(this.caches.snapshots.store, ns, pvc).filter(
            (x) => x.metadata.labels?.[LABEL_SCHEDULE] === schedule,
          ),
        );
      },
      groupSnapshot: (ns, name) => Promise.resolve(this.caches.groupSnapshots?.store.get(ns, name)),
      groupSiblings: (g) => {
        const ns = g.metadata.namespace ?? '';
        const labels = g.metadata.labels ?? {};
        const store = this.caches.groupSnapshots?.store;
        return Promise.resolve(
          store
            ? store
                .byIndex(SCHEDULE_INDEX, scheduleIndexKey(ns, labels[LABEL_SCHEDULE] ?? ''))
                .filter((x) => x.metadata.labels?.[LABEL_GROUP] === labels[LABEL_GROUP])
            : [],
        );
      },
      members: (ns, group) => Promise.resolve(membersOfGroup(this.caches.snapshots.store, ns, group)),
    };
  }

  /**
   * What a pass reads of snapshots: the schedule's own, and for spec.group its
   * VolumeGroupSnapshots (undefined when the API or RBAC does not offer them) and their members.
   */
  private snapshotView(schedule: SnapshotSchedule): {
    snapshots: VolumeSnapshot[];
    groupSnapshots: VolumeGroupSnapshot[] | undefined;
  } {
    const namespace = schedule.metadata?.namespace ?? '';
    const name = schedule.metadata?.name ?? '';
    const own = snapshotsOfSchedule(this.caches.snapshots.store, namespace, name);
    const store = this.caches.groupSnapshots?.store;
    if (!schedule.spec.group || !store) return { snapshots: own, groupSnapshots: undefined };
    const groups = snapshotsOfSchedule(store, namespace, name);
    const members = groups.flatMap((g) =>
      membersOfGroup(this.caches.snapshots.store, namespace, g.metadata.name ?? ''),
    );
    return { snapshots: [...own, ...members], groupSnapshots: groups };
  }

  /** The cached schedules, PVCs, snapshots and groups (for /report), of one namespace or all; empty until synced. */
  cached(namespace?: string): {
    schedules: SnapshotSchedule[];
    pvcs: PersistentVolumeClaim[];
    snapshots: VolumeSnapshot[];
    groupSnapshots: VolumeGroupSnapshot[];
  } {
    if (!this.ready) return { schedules: [], pvcs: [], snapshots: [], groupSnapshots: [] };
    return {
      schedules: this.caches.schedules.store.list(namespace),
      pvcs: this.caches.pvcs.store.list(namespace),
      snapshots: this.caches.snapshots.store.list(namespace),
      groupSnapshots: this.caches.groupSnapshots?.store.list(namespace) ?? [],
    };
  }

  /**
   * The last change to a cached object of the namespace (IndexedStore.generation): one clock
   * for every store, so the newest of theirs moves whenever one of them changes.
   */
  generation(namespace: string): number {
    const { schedules, pvcs, snapshots, groupSnapshots } = this.caches;
    return Math.max(
      schedules.store.generation(namespace),
      pvcs.store.generation(namespace),
      snapshots.store.generation(namespace),
      groupSnapshots?.store.generation(namespace) ?? 0,
    );
  }

  /** The namespaces holding a cached schedule or PVC (what a report's verdicts are about), sorted. */
  cachedNamespaces(): string[] {
    if (!this.ready) return [];
    const all = new Set([
      ...this.caches.schedules.store.namespaces(),
      ...this.caches.pvcs.store.namespaces(),
    ]);
    return [...all].sort();
  }

  /** No pass in flight and none waiting: a good moment for work that holds the event loop. */
  get idle(): boolean {
    return this.inFlight.size === 0 && this.queue.length === 0;
  }

  /** Every cache synced and its watch up: /readyz. */
  get ready(): boolean {
    return this.caches.synced;
  }
  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  /** The cached VolumeSnapshots of one source PVC (for the restore webhook); none until synced. */
  snapshotsOf(namespace: string, pvc: string): VolumeSnapshot[] {
    return this.ready ? snapshotsOfPvc(this.caches.snapshots.store, namespace, pvc) : [];
  }

  /** The namespace's cached VolumeGroupSnapshots (restore from a group's member); none until synced. */
  groupSnapshotsOf(namespace: string): VolumeGroupSnapshot[] {
    return this.ready ? (this.caches.groupSnapshots?.store.list(namespace) ?? []) : [];
  }

  /** The namespace's restore PVCs (label snapcron.io/restore=true), whose group a new replica shares. */
  restorePvcsOf(namespace: string): PersistentVolumeClaim[] {
    return this.ready
      ? this.caches.pvcs.store.byIndex(LABEL_INDEX, labelIndexKey(namespace, RESTORE_LABEL, 'true'))
      : [];
  }

  async start(): Promise<void> {
    const { schedules, pvcs, snapshots } = this.caches;
    // Every change is looked at a moment later, coalesced: a burst of events makes one pass, and
    // a restore PVC created right after its schedule is already seen by the first pass. The
    // echoes of a pass's own writes (the snapshots it created, its status write) are not news to
    // it: they made a second pass after every fire, which found nothing to do.
    for (const verb of ['add', 'update', 'delete'] as const) {
      schedules.store.on(verb, (s) => {
        const key = scheduleKey(s);
        if (verb === 'update') {
          this.rearmPromotion(s);
          if (this.own.onUpdate(key, s.metadata?.resourceVersion) !== 'news') return;
        }
        if (verb === 'delete') this.own.forget(key);
        this.enqueueSoon(key);
      });
      pvcs.store.on(verb, (p) => this.enqueueNamespace(p.metadata.namespace));
      snapshots.store.on(verb, (s) => {
        if (this.own.isEcho('snapshot', verb, s.metadata)) return;
        for (const owner of schedulesOfSnapshot(schedules.store, s)) this.enqueueSoon(scheduleKey(owner));
        // A group's member (no labels of ours): its group's schedule.
        const group = s.status?.volumeGroupSnapshotName;
        const g = group
          ? this.caches.groupSnapshots?.store.get(s.metadata.namespace ?? '', group)
          : undefined;
        if (g)
          for (const owner of schedulesOfSnapshot(schedules.store, g)) this.enqueueSoon(scheduleKey(owner));
      });
    }
    await this.caches.start();
    for (const verb of ['add', 'update', 'delete'] as const)
      this.caches.groupSnapshots?.store.on(verb, (g) => {
        if (this.own.isEcho('group', verb, g.metadata)) return;
        for (const owner of schedulesOfSnapshot(schedules.store, g)) this.enqueueSoon(scheduleKey(owner));
      });
    if (this.stopping) return;
    this.log.info({ namespace: this.o.namespace ?? '(all)' }, 'caches synced');
    this.elector.start();
    // A pass asks to run again when a snapshot's state changes by the clock alone (stuck, failed,
    // expired: plan.recheckAt) and at the next fire; this resync is the safety net under both,
    // as controller-runtime's SyncPeriod is. Every 5 minutes, it doubled the passes of a
    // thousand schedules firing every 5 minutes. On the injected clock, so tests drive it, and
    // not through node-cron, which asks ICU for the local time at every tick (8 MiB of RSS).
    this.armResync();
    this.workers = this.work();
    this.enqueueAll();
    void this.watchClasses();
  }

  /** The ACK warnings follow the classes: a changed class re-checks every schedule. */
  private async watchClasses(): Promise<void> {
    if (!(await this.caches.startClasses()) || this.stopping) return;
    const changed = (): void => {
      if (!this.stopping)
        for (const s of this.caches.schedules.store.list()) this.enqueueSoon(scheduleKey(s));
    };
    for (const verb of ['add', 'update', 'delete'] as const) this.caches.classes?.store.on(verb, changed);
    changed();
  }

  private enqueueSoon(key: string): void {
    this.queue.addAfter(key, this.clock.now() + EVENT_COALESCE_MS);
  }
  private enqueueAll(): void {
    if (this.stopping) return;
    for (const s of this.caches.schedules.store.list()) this.queue.add(scheduleKey(s));
  }
  private enqueueNamespace(namespace: string | undefined): void {
    for (const s of this.caches.schedules.store.list(namespace ?? '')) this.enqueueSoon(scheduleKey(s));
  }

  /** Takes keys off the queue and runs up to `concurrency` reconciles at once. */
  private async work(): Promise<void> {
    const limit = this.o.concurrency ?? DEFAULT_CONCURRENCY;
    for (;;) {
      while (this.inFlight.size >= limit) await Promise.race(this.inFlight);
      const key = await this.queue.get();
      if (key === undefined) return;
      this.o.metrics.working();
      const run = this.run(key).finally(() => {
        this.inFlight.delete(run);
        this.clock.clearTimeout(this.promotions.get(key)?.timer);
        this.promotions.delete(key);
        this.o.kube.writes.release(key);
        this.queue.done(key);
      });
      this.inFlight.add(run);
    }
  }

  private async run(key: string): Promise<void> {
    // Not leading, or a cache is not to be trusted: act on nothing. Becoming leader and
    // re-syncing both enqueue every schedule again.
    if (!this.elector.isLeader || !this.ready) return;
    try {
      const wakeAt = await this.reconcile(key);
      this.o.metrics.passes.inc({ result: 'success' });
      this.queue.forget(key);
      if (wakeAt) this.queue.addAfter(key, wakeAt.getTime());
    } catch (err) {
      this.o.metrics.passes.inc({ result: 'error' });
      if (err instanceof NotLeaderError) {
        this.log.warn({ schedule: key }, 'lease lost during a pass; writes stopped');
        return;
      }
      const failures = this.queue.failuresOf(key) + 1;
      const delayMs = this.queue.addBackoff(key);
      const [namespace = '', name = ''] = key.split('/');
      // Reported once per failure streak, then only at debug level: a broken schedule must not flood.
      if (failures === 1) {
        this.log.error(
          { schedule: name, namespace, err: errorMessage(err), retryInMs: delayMs },
          'pass failed',
        );
        const schedule = this.caches.schedules.store.get(namespace, name);
        if (schedule)
          await this.events.record(
            scheduleTarget(schedule),
            'Warning',
            'PassFailed',
            `${errorMessage(err)}; retrying with backoff (next in ${Math.round(delayMs / 1000)}s)`,
          );
      } else {
        this.log.debug({ schedule: name, namespace, failures, retryInMs: delayMs }, 'pass failed again');
      }
    }
  }

  /** One pass over one schedule. Returns when it next needs to run. */
  async reconcile(key: string): Promise<Date | undefined> {
    const [namespace = '', name = ''] = key.split('/');
    const { schedules, pvcs } = this.caches;
    const cached = schedules.store.get(namespace, name);
    if (!cached) {
      this.executor.forget(key);
      this.lastTaken.delete(key);
      this.lastOnDemand.delete(key);
      this.postDone.delete(key);
      this.queue.cancel(key);
      return undefined;
    }
    const schedule = this.executor.fresher(cached);
    if (schedule.metadata?.deletionTimestamp) {
      if (!needsFinalizing(schedule)) return undefined;
      const view = this.snapshotView(schedule);
      const claims = pvcsForSchedule(pvcs.store, namespace, schedule.spec.claimSelector);
      const members = membersByGroup(view.snapshots);
      const groupOf = new Map<string, string>();
      for (const [group, list] of members)
        for (const m of list) groupOf.set(`${namespace}/${m.metadata.name ?? ''}`, group);
      // Both kinds go: a schedule switched to spec.group may still have per-PVC snapshots.
      const plan = planDeletion(
        schedule,
        [
          ...view.snapshots.filter((s) => groupOfMember(s) === undefined),
          ...(view.groupSnapshots ?? []).map((g) => asRecoveryPoint(g, members.get(g.metadata.name ?? ''))),
        ],
        [...claims, ...groupRestores(claims, (ns, snap) => groupOf.get(`${ns}/${snap}`))],
      );
      const result = await this.executor.finalize(schedule, plan);
      return result.released ? undefined : new Date(this.clock.now() + FINALIZE_RETRY_MS);
    }
    if (await this.executor.syncFinalizers(schedule)) return undefined; // the update brings a new event
    const view = this.snapshotView(schedule);
    const plan = decide({
      schedule,
      pvcs: pvcsForSchedule(pvcs.store, namespace, schedule.spec.claimSelector),
      snapshots: view.snapshots,
      groupSnapshots: view.groupSnapshots,
      now: new Date(this.clock.now()),
      lastTakenInMemory: this.lastTaken.get(key),
      lastOnDemandInMemory: this.lastOnDemand.get(key),
      postDoneInMemory: this.postDone.get(key),
      snapshotClass: this.caches.classes && snapshotClassOf(schedule.spec, this.caches.classes.store.list()),
    });
    if (plan.wakeAt) this.promoteAtNextFire(key, plan.wakeAt.getTime());
    const result = await this.executor.execute(schedule, plan, this.queue.failuresOf(key) > 0);
    if (result.postCleared !== undefined && result.statusWritten) this.postDone.set(key, result.postCleared);
    const failed = [...result.createFailures.map((f) => `create ${f.name}: ${f.error}`), ...result.errors];
    // A run not fully taken is retried with backoff (same names: what was created meets
    // AlreadyExists), not left until the next fire time.
    if (failed.length > 0) throw new PassFailed(failed);
    if (plan.due.kind === 'due') this.lastTaken.set(key, plan.due.scheduledTime);
    // Not a first run that took nothing: it stays pending until a PVC can be snapshotted.
    if (
      plan.onDemand &&
      (plan.onDemand.trigger === 'RunNow' ||
        result.created.length + result.existed.length > 0 ||
        // A first run whose pre hook failed was taken too: not again on the echo of its own writes.
        result.skips.some((k) => k.reason === 'PreHookFailed'))
    )
      this.lastOnDemand.set(key, plan.onDemand.id);
    // The snapshots this pass created are not in its plan, and their own events make no pass:
    // each turns stuck pendingDeadline after the API server created it.
    const createdStuckAt =
      result.firstCreatedAt !== undefined && plan.retention
        ? turnsStuckAt(result.firstCreatedAt, plan.retention)
        : Infinity;
    const next = Math.min(
      plan.wakeAt?.getTime() ?? Infinity,
      plan.recheckAt?.getTime() ?? Infinity,
      createdStuckAt,
    );
    return next === Infinity ? undefined : new Date(next);
  }

  /**
   * If this pass still waits for writes when the schedule's next fire comes due (after a burst,
   * a status write behind thousands), its writes go first, so that fire starts on time. Only
   * the next fire: the one a pass is taking must not put it before the schedules still waiting
   * for their first snapshot. The timer ends with the pass.
   */
  private promoteAtNextFire(key: string, at: number): void {
    const delay = at - this.clock.now();
    if (delay > MAX_TIMER_MS) return; // Node fires longer timers at once; no pass lasts that long
    this.clock.clearTimeout(this.promotions.get(key)?.timer);
    this.promotions.set(key, {
      at,
      timer: this.clock.setTimeout(() => this.o.kube.writes.promote(key), Math.max(0, delay)),
    });
  }

  /**
   * A schedule edited while its pass waits for writes: that pass aimed its promotion at the old
   * timetable's next fire (a daily cron moved to every 5 minutes: tomorrow), so the new
   * timetable's first fire would wait behind it. Aim at the new one's next fire if sooner.
   */
  private rearmPromotion(schedule: SnapshotSchedule): void {
    const key = scheduleKey(schedule);
    if (!this.queue.isProcessing(key)) return;
    const next = nextFireOf(schedule.spec, new Date(this.clock.now()));
    if (next && next.getTime() < (this.promotions.get(key)?.at ?? Infinity))
      this.promoteAtNextFire(key, next.getTime());
  }

  /** Every schedule is queued again at each full and half hour (UTC), by default. */
  private armResync(): void {
    const period = this.o.resyncMs ?? RESYNC_MS;
    const now = this.clock.now();
    const next = (Math.floor(now / period) + 1) * period;
    this.resyncTimer = this.clock.setTimeout(
      () => {
        if (this.stopping) return;
        if (this.clock.now() >= next) this.enqueueAll();
        this.armResync();
      },
      Math.min(next - now, MAX_TIMER_MS), // Node fires longer timers at once
    );
  }

  /** SIGTERM: stop taking work, let passes in flight finish, hand the lease back, stop watching. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.queue.shutDown();
    this.clock.clearTimeout(this.resyncTimer);
    await this.workers;
    await Promise.allSettled(this.inFlight);
    await this.elector.release();
    await this.caches.stop();
  }
}
