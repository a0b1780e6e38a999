/**
 * Alerting metrics from a report, for the controller's /metrics. Cardinality is bounded by
 * what exists, never by history or free text: one series per (schedule, selected PVC) for
 * the newest good copy's time, one per schedule for its interval and its stale and stuck
 * PVC counts, one per namespace for unprotected PVCs. No snapshot names, reasons or
 * messages are labels. Each update replaces every series, so a deleted schedule or PVC
 * leaves no series behind. The members of a consistency group (spec.group) count as PVCs,
 * with their group's newest ready recovery point.
 */
import { setImmediate } from 'node:timers/promises';
import { Gauge, type PreparedSeries, type Registry } from '../controller/prometheus.ts';
import { buildGaugeReport, type ReportInput } from './build.ts';
import type { Report } from './model.ts';

/** Where the refresh reads the cluster from: the controller's informer caches. */
export interface CachedObjects {
  /** The namespaces holding a schedule or a PVC. */
  cachedNamespaces(): Iterable<string>;
  cached(namespace: string): Omit<ReportInput, 'now' | 'namespace'>;
  /**
   * A number that changes whenever the namespace's cached objects do. Without it, every
   * namespace is built again at every refresh.
   */
  generation?(namespace: string): number;
}

/** One report's gauge series, prepared (labels rendered) before any gauge is written. */
interface Samples {
  newestReady: PreparedSeries[];
  interval: PreparedSeries[];
  stale: PreparedSeries[];
  stuck: PreparedSeries[];
  unprotected: PreparedSeries[];
}

/** A namespace's samples, and what they hold for: its objects' generation, and a time. */
interface BuiltNamespace extends Samples {
  generation: number | undefined;
  until: number;
}

export class ReportMetrics {
  readonly newestReady: Gauge<'namespace' | 'schedule' | 'pvc'>;
  readonly interval: Gauge<'namespace' | 'schedule'>;
  readonly stale: Gauge<'namespace' | 'schedule'>;
  readonly stuck: Gauge<'namespace' | 'schedule'>;
  readonly unprotected: Gauge<'namespace'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.newestReady = new Gauge({
      name: 'snapcron_pvc_newest_ready_snapshot_timestamp_seconds',
      help: 'Unix time the newest ready snapshot of a PVC, by schedule, was cut; absent while it has none. Alert when time() minus this exceeds 2 * snapcron_schedule_interval_seconds.',
      labelNames: ['namespace', 'schedule', 'pvc'],
      registers,
    });
    this.interval = new Gauge({
      name: 'snapcron_schedule_interval_seconds',
      help: 'The gap between the two most recent fire times of a schedule: what stale is measured against.',
      labelNames: ['namespace', 'schedule'],
      registers,
    });
    this.stale = new Gauge({
      name: 'snapcron_stale_pvcs',
      help: 'PVCs a schedule selects whose newest ready snapshot is older than twice its interval, or that have none although it fired for them.',
      labelNames: ['namespace', 'schedule'],
      registers,
    });
    this.stuck = new Gauge({
      name: 'snapcron_stuck_pvcs',
      help: 'PVCs with a snapshot of the schedule not ready after retention.pendingDeadline.',
      labelNames: ['namespace', 'schedule'],
      registers,
    });
    this.unprotected = new Gauge({
      name: 'snapcron_unprotected_pvcs',
      help: 'PVCs no active (valid, not suspended) SnapshotSchedule selects, by namespace.',
      labelNames: ['namespace'],
      registers,
    });
  }

  /** Replaces every series with the report's (build it for every namespace, without --schedule). */
  update(report: Report): void {
    this.commit([this.samplesOf(report)]);
  }

  private built = new Map<string, BuiltNamespace>();

  /**
   * Replaces every series with the cluster's, from the controller's caches: one namespace at a
   * time, with a turn of the event loop before each build, and only what the gauges read (a
   * whole-cluster full build at 100,000 snapshots held the loop for 0.4 s and raised RSS by
   * 70-90 MiB until the next GC). A namespace whose objects did not change since its last build
   * (`generation`), and whose gauges cannot have changed by the clock alone (buildGaugeReport's
   * `until`), keeps its samples: in a quiet minute most namespaces are not built at all.
   * Every series is written at the end, so a scrape never sees a half-updated set.
   */
  async refresh(source: CachedObjects, now: Date): Promise<{ built: number; kept: number }> {
    const next = new Map<string, BuiltNamespace>();
    let built = 0;
    for (const namespace of source.cachedNamespaces()) {
      const last = this.built.get(namespace);
      if (
        last?.generation !== undefined &&
        last.generation === source.generation?.(namespace) &&
        now.getTime() < last.until
      ) {
        next.set(namespace, last);
        continue;
      }
      await setImmediate();
      // Read with the objects, after the turn: what changed during it is in this build.
      const generation = source.generation?.(namespace);
      const { report, until } = buildGaugeReport({ ...source.cached(namespace), now, namespace });
      next.set(namespace, { generation, until, ...this.samplesOf(report) });
      built++;
    }
    this.built = next;
    this.commit(next.values());
    return { built, kept: next.size - built };
  }

  private samplesOf(report: Report): Samples {
    const out: Samples = { newestReady: [], interval: [], stale: [], stuck: [], unprotected: [] };
    for (const s of report.schedules) {
      const labels = { namespace: s.namespace, schedule: s.name };
      if (s.intervalSeconds !== null) out.interval.push(this.interval.prepare(labels, s.intervalSeconds));
      const newest = (pvc: string, time: string): void => {
        out.newestReady.push(this.newestReady.prepare({ ...labels, pvc }, Date.parse(time) / 1000));
      };
      let stale = 0;
      let stuck = 0;
      for (const p of s.pvcs) {
        if (p.stale) stale++;
        if (p.counts.stuck > 0) stuck++;
        if (p.selected && p.newestReady) newest(p.pvc, p.newestReady.time);
      }
      // spec.group: a group's members share its recovery points, its staleness and its stuck ones.
      for (const g of s.groups ?? []) {
        const members = g.members.length;
        if (g.stale) stale += members;
        if (g.counts.stuck > 0) stuck += members;
        if (g.selected && g.newestReady)
          for (const member of g.members) newest(member.pvc, g.newestReady.time);
      }
      out.stale.push(this.stale.prepare(labels, stale));
      out.stuck.push(this.stuck.prepare(labels, stuck));
    }
    const unprotected = new Map<string, number>();
    for (const u of report.unprotected) unprotected.set(u.namespace, (unprotected.get(u.namespace) ?? 0) + 1);
    for (const [namespace, n] of unprotected)
      out.unprotected.push(this.unprotected.prepare({ namespace }, n));
    return out;
  }

  /** Every series replaced at once, from series prepared first. */
  private commit(parts: Iterable<Samples>): void {
    const all = [...parts];
    for (const k of ['newestReady', 'interval', 'stale', 'stuck', 'unprotected'] as const)
      this[k].replaceAll(all.flatMap((p) => p[k]));
  }
}
