/** Prometheus metrics (prom-client: the maintained Node client; its text format is exact). */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();

  constructor() {
    // process_cpu_seconds_total, process_resident_memory_bytes, nodejs_eventloop_lag_p99_seconds
    // (reset at each scrape), …: what bench:scale and a dashboard read.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
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
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
    registers: [this.registry],
  });
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
