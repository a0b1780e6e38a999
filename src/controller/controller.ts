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
import * as k8s from '@kubernetes/client-node';
import { schedule as cronSchedule, type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { LABEL_PVC, LABEL_SCHEDULE } from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../api/objects.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import type { Kube } from '../kube/client.ts';
import { EventRecorder } from '../kube/events.ts';
import { errorMessage, NotLeaderError } from '../kube/retry.ts';
import { SupervisedInformer } from '../kube/supervised-informer.ts';
import { decide, scheduleKey } from './decide.ts';
import { needsFinalizing, planDeletion } from './deletion.ts';
import { apiView, Executor, scheduleTarget, type FreshView } from './executor.ts';
import { LeaderElector } from './leader.ts';
import type { Metrics } from './metrics.ts';
import { realClock, WorkQueue, type Clock } from './work-queue.ts';

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
}

type Obj = k8s.KubernetesObject;

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

export class Controller {
  private readonly o: ControllerOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly executor: Executor;
  private readonly events: EventRecorder;
  private readonly elector: LeaderElector;
  private readonly supervisors: SupervisedInformer[] = [];
  private schedules!: k8s.Informer<Obj> & k8s.ObjectCache<Obj>;
  private pvcs!: k8s.Informer<Obj> & k8s.ObjectCache<Obj>;
  private snapshots!: k8s.Informer<Obj> & k8s.ObjectCache<Obj>;
  readonly queue: WorkQueue;
  private readonly inFlight = new Set<Promise<void>>();
  private workers: Promise<void> | undefined;
  private resync: ScheduledTask | undefined;
  private stopping = false;
  /** The scheduled time each schedule's last run took, until its status write is in the cache. */
  private readonly lastTaken = new Map<string, Date>();

  constructor(o: ControllerOptions) {
    this.o = o;
    this.clock = o.clock ?? realClock;
    this.log = o.log;
    this.queue = new WorkQueue(this.clock);
    const now = (): Date => new Date(this.clock.now());
    // Every write of a pass (snapshots, status, events, finalizers) is fenced by the lease.
    const acting = o.kube.fenced(() => this.elector.holdsLease());
    this.events = new EventRecorder(acting, o.log, now);
    this.executor = new Executor(acting, this.events, o.log, o.metrics, now, this.cacheView());
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
    const snapshots = (ns: string): VolumeSnapshot[] =>
      this.snapshots.list(ns) as unknown as VolumeSnapshot[];
    return {
      snapshot: (ns, name) => Promise.resolve(this.snapshots.get(name, ns) as VolumeSnapshot | undefined),
      pvcs: apiView(this.o.kube).pvcs,
      siblings: (s) => {
        const l = s.metadata.labels ?? {};
        return Promise.resolve(
          snapshots(s.metadata.namespace ?? '').filter(
            (x) =>
              x.metadata.labels?.[LABEL_SCHEDULE] === l[LABEL_SCHEDULE] &&
              x.metadata.labels?.[LABEL_PVC] === l[LABEL_PVC],
          ),
        );
      },
    };
  }

  /** The cached schedules, PVCs and snapshots (for /report); empty until synced. */
  cached(): { schedules: SnapshotSchedule[]; pvcs: PersistentVolumeClaim[]; snapshots: VolumeSnapshot[] } {
    if (!this.ready) return { schedules: [], pvcs: [], snapshots: [] };
    return {
      schedules: this.allSchedules(),
      pvcs: this.pvcs.list() as unknown as PersistentVolumeClaim[],
      snapshots: this.snapshots.list() as unknown as VolumeSnapshot[],
    };
  }

  /** No pass in flight and none waiting: a good moment for work that holds the event loop. */
  get idle(): boolean {
    return this.inFlight.size === 0 && this.queue.length === 0;
  }

  /** Every cache synced and its watch up: /readyz. */
  get ready(): boolean {
    return this.supervisors.length === 3 && this.supervisors.every((s) => s.synced);
  }
  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  /** The cached VolumeSnapshots of one source PVC (for the restore webhook); none until synced. */
  snapshotsOf(namespace: string, pvc: string): VolumeSnapshot[] {
    if (!this.ready) return [];
    return (this.snapshots.list(namespace) as unknown as VolumeSnapshot[]).filter(
      (s) => s.spec.source.persistentVolumeClaimName === pvc,
    );
  }

  async start(): Promise<void> {
    const { kube } = this.o;
    const ns = this.o.namespace;
    const nsPath = ns ? `/namespaces/${ns}` : '';
    this.schedules = this.informer(
      `/apis/${kube.schedules.group}/${kube.schedules.version}${nsPath}/${kube.schedules.plural}`,
      () =>
        ns
          ? kube.custom.listNamespacedCustomObject({ ...kube.schedules, namespace: ns })
          : kube.custom.listClusterCustomObject({ ...kube.schedules }),
      (o) => this.queue.add(scheduleKey(o as SnapshotSchedule)),
    );
    this.pvcs = this.informer(
      `/api/v1${nsPath}/persistentvolumeclaims`,
      () =>
        ns
          ? kube.core.listNamespacedPersistentVolumeClaim({ namespace: ns })
          : kube.core.listPersistentVolumeClaimForAllNamespaces({}),
      (o) => this.enqueueNamespace(o.metadata?.namespace),
    );
    this.snapshots = this.informer(
      `/apis/${kube.snapshots.group}/${kube.snapshots.version}${nsPath}/${kube.snapshots.plural}`,
      () =>
        ns
          ? kube.custom.listNamespacedCustomObject({ ...kube.snapshots, namespace: ns })
          : kube.custom.listClusterCustomObject({ ...kube.snapshots }),
      // Every snapshot, not only ours: the restore webhook may restore from a manual one too.
      (o) => this.enqueueOwner(o as unknown as VolumeSnapshot),
    );
    await Promise.all(this.supervisors.map((s) => s.start()));
    if (this.stopping) return;
    this.log.info({ namespace: ns ?? '(all)' }, 'caches synced');
    this.elector.start();
    // Housekeeping resync: state changes that no event announces (a snapshot turning stuck or
    // expiring) are picked up within five minutes. Fire times never wait for it.
    this.resync = cronSchedule('*/5 * * * *', () => this.enqueueAll(), { noOverlap: true });
    this.workers = this.work();
    this.enqueueAll();
  }

  private informer(
    path: string,
    list: () => Promise<unknown>,
    onChange: (o: Obj) => void,
  ): k8s.Informer<Obj> & k8s.ObjectCache<Obj> {
    const inf = k8s.makeInformer<Obj>(
      this.o.kube.kc,
      path,
      list as () => Promise<k8s.KubernetesListObject<Obj>>,
    );
    for (const verb of ['add', 'update', 'delete'] as const) inf.on(verb, onChange);
    this.supervisors.push(
      new SupervisedInformer(inf, {
        name: path,
        log: this.log,
        // A re-listed cache may have missed anything: look at every schedule again.
        onResynced: () => this.enqueueAll(),
        onSyncChange: (synced) => {
          if (synced && this.ready) this.enqueueAll();
        },
      }),
    );
    return inf;
  }

  private allSchedules(): SnapshotSchedule[] {
    return this.schedules.list() as unknown as SnapshotSchedule[];
  }

  private enqueueAll(): void {
    if (this.stopping || !this.schedules) return;
    for (const s of this.allSchedules()) this.queue.add(scheduleKey(s));
  }
  private enqueueNamespace(namespace: string | undefined): void {
    for (const s of this.schedules.list(namespace) as unknown as SnapshotSchedule[])
      this.queue.add(scheduleKey(s));
  }
  private enqueueOwner(snap: VolumeSnapshot): void {
    const label = snap.metadata.labels?.[LABEL_SCHEDULE];
    if (!label) return;
    // The label holds the schedule's name, or for names past 63 characters a hashed form.
    const direct = this.schedules.get(label, snap.metadata.namespace);
    if (direct) {
      this.queue.add(scheduleKey(direct as SnapshotSchedule));
      return;
    }
    if (label.length === 63) this.enqueueNamespace(snap.metadata.namespace);
  }

  /** Takes keys off the queue and runs up to `concurrency` reconciles at once. */
  private async work(): Promise<void> {
    const limit = this.o.concurrency ?? DEFAULT_CONCURRENCY;
    for (;;) {
      while (this.inFlight.size >= limit) await Promise.race(this.inFlight);
      const key = await this.queue.get();
      if (key === undefined) return;
      const run = this.run(key).finally(() => {
        this.inFlight.delete(run);
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
      this.queue.forget(key);
      if (wakeAt) this.queue.addAfter(key, wakeAt.getTime());
    } catch (err) {
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
        const schedule = this.schedules.get(name, namespace) as SnapshotSchedule | undefined;
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
    const schedule = this.schedules.get(name, namespace) as SnapshotSchedule | undefined;
    if (!schedule) {
      this.lastTaken.delete(key);
      this.queue.cancel(key);
      return undefined;
    }
    if (schedule.metadata?.deletionTimestamp) {
      if (!needsFinalizing(schedule)) return undefined;
      const plan = planDeletion(
        schedule,
        this.snapshots.list(namespace) as unknown as VolumeSnapshot[],
        this.pvcs.list(namespace) as unknown as PersistentVolumeClaim[],
      );
      const result = await this.executor.finalize(schedule, plan);
      return result.released ? undefined : new Date(this.clock.now() + FINALIZE_RETRY_MS);
    }
    if (await this.executor.syncFinalizers(schedule)) return undefined; // the update brings a new event
    const plan = decide({
      schedule,
      pvcs: this.pvcs.list(namespace) as unknown as PersistentVolumeClaim[],
      snapshots: this.snapshots.list(namespace) as unknown as VolumeSnapshot[],
      now: new Date(this.clock.now()),
      lastTakenInMemory: this.lastTaken.get(key),
    });
    const result = await this.executor.execute(schedule, plan, this.queue.failuresOf(key) > 0);
    const failed = [...result.createFailures.map((f) => `create ${f.name}: ${f.error}`), ...result.errors];
    // A run not fully taken is retried with backoff (same names: what was created meets
    // AlreadyExists), not left until the next fire time.
    if (failed.length > 0) throw new PassFailed(failed);
    if (plan.due.kind === 'due') this.lastTaken.set(key, plan.due.scheduledTime);
    return plan.wakeAt;
  }

  /** SIGTERM: stop taking work, let passes in flight finish, hand the lease back, stop watching. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.queue.shutDown();
    await this.resync?.stop();
    await this.workers;
    await Promise.allSettled(this.inFlight);
    await this.elector.release();
    await Promise.allSettled(this.supervisors.map((s) => s.stop()));
  }
}
