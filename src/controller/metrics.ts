/** The controller's Prometheus metrics: snapcron's own families (prometheus.ts), then Node's runtime ones. */
import { Counter, Gauge, Histogram, Registry } from './prometheus.ts';
import { LANES, type FairLimiter } from '../kube/fair-limiter.ts';
import { registerRuntimeMetrics, type RuntimeMetrics } from './runtime-metrics.ts';

const LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600];

export class Metrics {
  readonly registry = new Registry();

  /**
   * process_cpu_seconds_total, process_resident_memory_bytes, nodejs_eventloop_lag_p99_seconds
   * (reset at each scrape), …: what bench:scale and a dashboard read, named as every Node service
   * names them (runtime-metrics.ts). Registered after snapcron's own families.
   */
  private readonly runtime: RuntimeMetrics;

  constructor() {
    this.runtime = registerRuntimeMetrics(this.registry);
  }

  /** A pass starts: the event-loop delay is measured from now, not from the next second's check. */
  working(): void {
    this.runtime.working();
  }

  /** Stops the runtime metrics' timers and observers. */
  stop(): void {
    this.runtime.stop();
  }

  readonly created = new Counter({
    name: 'snapcron_snapshots_created_total',
    help: 'VolumeSnapshots created, by schedule.',
    labelNames: ['namespace', 'schedule'],
    registers: [this.registry],
  });
  readonly pruned = new Counter({
    name: 'snapcron_snapshots_pruned_total',
    help: 'VolumeSnapshots deleted by retention, by schedule and first reason.',
    labelNames: ['namespace', 'schedule', 'reason'],
    registers: [this.registry],
  });
  readonly failed = new Counter({
    name: 'snapcron_snapshots_failed_total',
    help: 'Snapshot creations that failed, and snapshots the driver reported failed, by schedule.',
    labelNames: ['namespace', 'schedule'],
    registers: [this.registry],
  });
  readonly skipped = new Counter({
    name: 'snapcron_pvcs_skipped_total',
    help: 'PVCs left out of a run, by schedule and reason (NotBound, PreviousNotReady, TooManyPending, DeadlinePassed).',
    labelNames: ['namespace', 'schedule', 'reason'],
    registers: [this.registry],
  });
  readonly runs = new Counter({
    name: 'snapcron_runs_total',
    help: 'Runs taken, by schedule and trigger: Schedule (a fire time), RunNow (the snapcron.io/run-now annotation or snapcron run), RunOnCreate (spec.runOnCreate).',
    labelNames: ['namespace', 'schedule', 'trigger'],
    registers: [this.registry],
  });
  readonly passes = new Counter({
    name: 'snapcron_passes_total',
    help: 'Passes over a schedule (each reads the caches, decides and writes what changed), by result (success, error). Most follow a fire time or an event about the schedule, its PVCs or its snapshots.',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly hookRuns = new Counter({
    name: 'snapcron_hook_runs_total',
    help: 'Hook commands run (one per pod), by schedule, hook (pre, post) and result (success, failure, timeout).',
    labelNames: ['namespace', 'schedule', 'hook', 'result'],
    registers: [this.registry],
  });
  readonly fireLag = new Histogram({
    name: 'snapcron_fire_lag_seconds',
    help: 'Delay between a scheduled time and the pass that took it.',
    labelNames: ['namespace', 'schedule'],
    buckets: LAG_BUCKETS,
    registers: [this.registry],
  });
  /** Unlabelled: per schedule, fire lag says when the pass started; this says what the budget added. */
  readonly createLag = new Histogram({
    name: 'snapcron_snapshot_create_lag_seconds',
    help: 'Delay between a scheduled time and the API server answering the create of its VolumeSnapshot: the fire lag plus the wait for the write budget (--qps/--burst).',
    buckets: LAG_BUCKETS,
    registers: [this.registry],
  });
  readonly writeWait = new Histogram({
    name: 'snapcron_write_wait_seconds',
    help: 'Time a write waited for the client write budget (--qps/--burst), by lane (urgent, create, delete, other).',
    labelNames: ['lane'],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  private writes: FairLimiter | undefined;
  readonly writeQueue = new Gauge({
    name: 'snapcron_writes_waiting',
    help: 'Writes waiting for the client write budget now, by lane; a queue that stays long means --qps is too low for the load.',
    labelNames: ['lane'],
    registers: [this.registry],
    collect: () => {
      for (const lane of LANES) this.writeQueue.set({ lane }, this.writes?.queued[lane] ?? 0);
    },
  });
  /** Reports `limiter`'s queue and wait times as snapcron_writes_waiting and snapcron_write_wait_seconds. */
  observeWrites(limiter: FairLimiter): void {
    this.writes = limiter;
    limiter.onGrant = (lane, waitedMs) => this.writeWait.observe({ lane }, waitedMs / 1000);
  }
  readonly nextFire = new Gauge({
    name: 'snapcron_next_fire_timestamp_seconds',
    help: 'Unix time of the next scheduled fire, by schedule.',
    labelNames: ['namespace', 'schedule'],
    registers: [this.registry],
  });
  readonly snapshots = new Gauge({
    name: 'snapcron_snapshots',
    help: "The schedule's VolumeSnapshots by state (ready, pending, stuck, failed) at its last pass.",
    labelNames: ['namespace', 'schedule', 'state'],
    registers: [this.registry],
  });
  readonly admission = new Histogram({
    name: 'snapcron_webhook_admission_duration_seconds',
    help: 'Time the restore webhook takes to decide one admission, from the request read to the answer written, by result.',
    labelNames: ['result'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'snapcron_leader',
    help: '1 while this process holds the leader lease.',
    registers: [this.registry],
  });
}
