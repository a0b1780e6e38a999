/**
 * `snapcron controller`: watches schedules, PVCs and our snapshots through
 * informers, and runs a level-triggered pass per schedule whenever something it
 * depends on changes, or when the one process-wide timer reaches the earliest
 * next fire time. Only the lease holder acts, and only while every cache is synced:
 * each write is fenced by the lease at the moment it goes out.
 */
import * as k8s from '@kubernetes/client-node';
import { schedule as cronSchedule, type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { LABEL_SCHEDULE } from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../api/objects.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import type { Kube } from '../kube/client.ts';
import { EventRecorder } from '../kube/events.ts';
import { errorMessage, NotLeaderError } from '../kube/retry.ts';
import { SupervisedInformer } from '../kube/supervised-informer.ts';
import { nextFireTime, parseSchedule, type CronSchedule } from '../schedule/cron.ts';
import { labelValue } from '../snapshot/naming.ts';
import { decide, scheduleKey } from './decide.ts';
import { needsFinalizing, planDeletion } from './deletion.ts';
import { Executor } from './executor.ts';
import { LeaderElector } from './leader.ts';
import type { Metrics } from './metrics.ts';

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
  now?: () => Date;
}

type Obj = k8s.KubernetesObject;
const MAX_TIMER_MS = 60 * 60 * 1000;

export class Controller {
  private readonly o: ControllerOptions;
  private readonly clock: () => Date;
  private readonly log: Logger;
  private readonly executor: Executor;
  private readonly elector: LeaderElector;
  private readonly supervisors: SupervisedInformer[] = [];
  private schedules!: k8s.Informer<Obj> & k8s.ObjectCache<Obj>;
  private pvcs!: k8s.Informer<Obj> & k8s.ObjectCache<Obj>;
  private snapshots!: k8s.Informer<Obj> & k8s.ObjectCache<Obj>;
  private readonly queue = new Set<string>();
  private working: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private resync: ScheduledTask | undefined;
  private stopping = false;
  private readonly lastTaken = new Map<string, Date>();
  private readonly parsed = new Map<string, CronSchedule | null>();

  constructor(o: ControllerOptions) {
    this.o = o;
    this.clock = o.now ?? (() => new Date());
    this.log = o.log;
    // Every write of a pass (snapshots, status, events, finalizers) is fenced by the lease.
    const acting = o.kube.fenced(() => this.elector.holdsLease());
    this.executor = new Executor(
      acting,
      new EventRecorder(acting, o.log, this.clock),
      o.log,
      o.metrics,
      this.clock,
    );
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

  /** Every cache synced and its watch up: /readyz. */
  get ready(): boolean {
    return this.supervisors.length === 3 && this.supervisors.every((s) => s.synced);
  }
  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  /** The cached VolumeSnapshots of a namespace (for the restore webhook). */
  snapshotsIn(namespace: string): VolumeSnapshot[] {
    return this.ready ? (this.snapshots.list(namespace) as unknown as VolumeSnapshot[]) : [];
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
      undefined,
      (o) => this.enqueue(scheduleKey(o as SnapshotSchedule)),
    );
    this.pvcs = this.informer(
      `/api/v1${nsPath}/persistentvolumeclaims`,
      () =>
        ns
          ? kube.core.listNamespacedPersistentVolumeClaim({ namespace: ns })
          : kube.core.listPersistentVolumeClaimForAllNamespaces({}),
      undefined,
      (o) => this.enqueueNamespace(o.metadata?.namespace),
    );
    this.snapshots = this.informer(
      `/apis/${kube.snapshots.group}/${kube.snapshots.version}${nsPath}/${kube.snapshots.plural}`,
      () =>
        ns
          ? kube.custom.listNamespacedCustomObject({ ...kube.snapshots, namespace: ns })
          : kube.custom.listClusterCustomObject({ ...kube.snapshots }),
      // Every snapshot, not only ours: the restore webhook may restore from a manual one too.
      undefined,
      (o) => this.enqueueOwner(o as unknown as VolumeSnapshot),
    );
    await Promise.all(this.supervisors.map((s) => s.start()));
    if (this.stopping) return;
    this.log.info({ namespace: ns ?? '(all)' }, 'caches synced');
    this.elector.start();
    // Housekeeping resync: a missed watch event can delay a prune, never a snapshot (the timer fires those).
    this.resync = cronSchedule('*/5 * * * *', () => this.enqueueAll(), { noOverlap: true });
    this.enqueueAll();
  }

  private informer(
    path: string,
    list: () => Promise<unknown>,
    labelSelector: string | undefined,
    onChange: (o: Obj) => void,
  ): k8s.Informer<Obj> & k8s.ObjectCache<Obj> {
    const inf = k8s.makeInformer<Obj>(
      this.o.kube.kc,
      path,
      list as () => Promise<k8s.KubernetesListObject<Obj>>,
      labelSelector,
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

  private enqueue(key: string): void {
    if (this.stopping) return;
    this.queue.add(key);
    this.working ??= this.work().finally(() => {
      this.working = undefined;
      if (this.queue.size > 0) this.enqueue([...this.queue][0] as string);
    });
  }
  private enqueueAll(): void {
    for (const s of this.allSchedules()) this.enqueue(scheduleKey(s));
    this.aimTimer();
  }
  private enqueueNamespace(namespace: string | undefined): void {
    for (const s of this.allSchedules())
      if (s.metadata?.namespace === namespace) this.enqueue(scheduleKey(s));
  }
  private enqueueOwner(snap: VolumeSnapshot): void {
    const label = snap.metadata.labels?.[LABEL_SCHEDULE];
    if (!label) return;
    for (const s of this.allSchedules()) {
      if (s.metadata?.namespace === snap.metadata.namespace && labelValue(s.metadata?.name ?? '') === label)
        this.enqueue(scheduleKey(s));
    }
  }

  private async work(): Promise<void> {
    while (this.queue.size > 0 && !this.stopping) {
      const key = [...this.queue][0] as string;
      this.queue.delete(key);
      // Not leading, or a cache is not to be trusted: act on nothing. Becoming leader and
      // re-syncing both enqueue every schedule again.
      if (!this.elector.isLeader || !this.ready) continue;
      try {
        await this.process(key);
      } catch (err) {
        if (err instanceof NotLeaderError) {
          this.log.warn({ schedule: key }, 'lease lost during a pass; writes stopped');
          continue;
        }
        this.log.error({ schedule: key, err: errorMessage(err) }, 'pass failed; retrying shortly');
        setTimeout(() => this.enqueue(key), 2000).unref();
      }
    }
    this.aimTimer();
  }

  private async process(key: string): Promise<void> {
    const [namespace = '', name = ''] = key.split('/');
    const schedule = this.schedules.get(name, namespace) as SnapshotSchedule | undefined;
    if (!schedule) {
      this.lastTaken.delete(key);
      return;
    }
    if (schedule.metadata?.deletionTimestamp) {
      if (needsFinalizing(schedule)) await this.finalize(schedule);
      return;
    }
    if (await this.executor.syncFinalizers(schedule)) return; // the update brings a new event
    const plan = decide({
      schedule,
      pvcs: this.pvcs.list(namespace) as unknown as PersistentVolumeClaim[],
      snapshots: this.snapshots.list(namespace) as unknown as VolumeSnapshot[],
      now: this.clock(),
      lastTakenInMemory: this.lastTaken.get(key),
    });
    await this.executor.execute(schedule, plan);
    if (plan.due.kind === 'due') this.lastTaken.set(key, plan.due.scheduledTime);
  }

  /** deletionPolicy Delete: the shared deletion decision (see deletion.ts), acted on like pruning. */
  private async finalize(schedule: SnapshotSchedule): Promise<void> {
    const namespace = schedule.metadata?.namespace ?? 'default';
    const plan = planDeletion(
      schedule,
      this.snapshots.list(namespace) as unknown as VolumeSnapshot[],
      this.pvcs.list(namespace) as unknown as PersistentVolumeClaim[],
    );
    const result = await this.executor.finalize(schedule, plan);
    if (!result.released) setTimeout(() => this.enqueue(scheduleKey(schedule)), 5000).unref();
  }

  /** One timer for the whole process, aimed at the earliest next fire time of any schedule. */
  private aimTimer(): void {
    if (this.stopping) return;
    const now = this.clock();
    let earliest: Date | undefined;
    const due: string[] = [];
    for (const s of this.allSchedules()) {
      if (s.spec?.suspend || s.metadata?.deletionTimestamp) continue;
      const cronSchedule = this.parse(s);
      if (!cronSchedule) continue;
      const next = nextFireTime(cronSchedule, now);
      if (!next) continue;
      if (!earliest || next < earliest) {
        earliest = next;
        due.length = 0;
      }
      if (next.getTime() === earliest.getTime()) due.push(scheduleKey(s));
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!earliest) return;
    const delay = Math.min(MAX_TIMER_MS, earliest.getTime() - now.getTime() + 5);
    const fireAt = earliest;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.clock() >= fireAt) for (const key of due) this.enqueue(key);
      this.aimTimer();
    }, delay);
  }

  private parse(s: SnapshotSchedule): CronSchedule | undefined {
    const id = `${s.spec?.schedule}\0${s.spec?.timeZone ?? 'UTC'}`;
    if (!this.parsed.has(id)) {
      try {
        this.parsed.set(id, parseSchedule(s.spec.schedule, s.spec.timeZone ?? 'UTC'));
      } catch {
        this.parsed.set(id, null);
      }
    }
    return this.parsed.get(id) ?? undefined;
  }

  /** SIGTERM: stop firing, let the in-flight pass finish, hand the lease back, stop watching. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    await this.resync?.stop();
    await this.working;
    await this.elector.release();
    await Promise.allSettled(this.supervisors.map((s) => s.stop()));
  }
}
