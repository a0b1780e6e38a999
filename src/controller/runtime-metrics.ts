/**
 * Node's runtime metrics under the names every Node service exports them (prom-client's
 * collectDefaultMetrics: process_cpu_seconds_total, process_resident_memory_bytes,
 * nodejs_eventloop_lag_p99_seconds, nodejs_gc_duration_seconds, …), on snapcron's registry.
 *
 * Why not prom-client's: its event-loop monitor ticks every 10 ms for the life of the process,
 * a hundred wake-ups a second (0.26 s of CPU a minute in a bare Node): most of what the
 * controller spent while nothing was due. Here the monitor ticks only while the loop has work
 * (LoopDelay): bench:scale's quiet minute fell from 0.51-0.65 s of CPU to 0.20-0.21 s. The
 * rest is read at scrape time, as prom-client does.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
import {
  constants as perfConstants,
  monitorEventLoopDelay,
  performance,
  PerformanceObserver,
} from 'node:perf_hooks';
import { Counter, Gauge, Histogram, type Registry } from './prometheus.ts';

/** The fine monitor's tick, as prom-client's default: delays are reported including it. */
export const LOOP_TICK_MS = 10;
/** How often an idle loop is looked at, and how long it must stay idle before the fine monitor stops. */
export const LOOP_CHECK_MS = 1000;
/** The loop's share of busy time (event-loop utilization) over a check above which it counts as working. */
const WORKING_UTILIZATION = 0.01;

const NS_PER_S = 1e9;

/** Event-loop delay figures over a scrape's window, in seconds. */
export interface LoopStats {
  min: number;
  max: number;
  mean: number;
  stddev: number;
  p50: number;
  p90: number;
  p99: number;
}

/** Delays gathered over a scrape's window from several stretches of measuring, in ns. */
interface Gathered {
  count: number;
  min: number;
  max: number;
  sum: number;
  sumOfSquares: number;
  /** Of one stretch: exact; of several, each the largest of theirs (an upper bound). */
  p50: number;
  p90: number;
  p99: number;
}

const nothingGathered = (): Gathered => ({
  count: 0,
  min: Infinity,
  max: 0,
  sum: 0,
  sumOfSquares: 0,
  p50: 0,
  p90: 0,
  p99: 0,
});

/**
 * Event-loop delay while the loop works, and nothing while it idles. A check every
 * LOOP_CHECK_MS starts Node's 10 ms monitor (monitorEventLoopDelay, each tick recording the
 * time since the last, so an on-time tick reads 10 ms) when the loop was busy over the last
 * second, or {@link working} starts it at once (a schedule's pass begins); the check stops it
 * after a second with almost no work. A late check is recorded too: a stall that starts while
 * the monitor is off still shows. With no sample since the last scrape (an idle loop), the
 * figures are what an idle loop measures: the tick itself.
 *
 * Node's monitor, not a JavaScript interval: a tick costs it about half as much CPU.
 */
export class LoopDelay {
  private readonly monitor = monitorEventLoopDelay({ resolution: LOOP_TICK_MS });
  private on = false;
  /** The window's samples from stretches already ended, and the late checks. */
  private gathered = nothingGathered();
  private lastUtilization = performance.eventLoopUtilization();
  private nextCheck = 0;
  private checker: NodeJS.Timeout | undefined;

  constructor() {
    this.scheduleCheck();
  }

  /** Work starts now: measure the loop from this moment. */
  working(): void {
    if (this.on) return;
    this.monitor.enable();
    // Started again, the monitor's first tick would span the whole pause: reset forgets the
    // last tick's time (gather resets too; this covers a stretch too short to record a sample).
    this.monitor.reset();
    this.on = true;
  }

  /** Whether the monitor ticks. */
  get measuring(): boolean {
    return this.on;
  }

  /** Delays since the last call, in seconds; then starts a new window (prom-client resets at each scrape). */
  take(): LoopStats {
    this.gather();
    const g = this.gathered;
    this.gathered = nothingGathered();
    if (g.count === 0) {
      const tick = LOOP_TICK_MS / 1000;
      return { min: tick, max: tick, mean: tick, stddev: 0, p50: tick, p90: tick, p99: tick };
    }
    const mean = g.sum / g.count;
    return {
      min: g.min / NS_PER_S,
      max: g.max / NS_PER_S,
      mean: mean / NS_PER_S,
      stddev: Math.sqrt(Math.max(0, g.sumOfSquares / g.count - mean * mean)) / NS_PER_S,
      p50: g.p50 / NS_PER_S,
      p90: g.p90 / NS_PER_S,
      p99: g.p99 / NS_PER_S,
    };
  }

  stop(): void {
    clearTimeout(this.checker);
    this.pause();
  }

  /** Moves the monitor's samples into the window's. */
  private gather(): void {
    const m = this.monitor;
    if (m.count === 0) return;
    this.fold(m.count, m.min, m.max, m.mean, m.stddev, [
      m.percentile(50),
      m.percentile(90),
      m.percentile(99),
    ]);
    m.reset();
  }

  /** One sample from outside the monitor (a late check), in ms. */
  private record(ms: number): void {
    const ns = ms * 1e6;
    this.fold(1, ns, ns, ns, 0, [ns, ns, ns]);
  }

  /** Adds one stretch's figures (ns) to the window's; percentiles start at 0, so the larger is kept. */
  private fold(
    count: number,
    min: number,
    max: number,
    mean: number,
    stddev: number,
    [p50, p90, p99]: [number, number, number],
  ): void {
    const g = this.gathered;
    g.count += count;
    g.min = Math.min(g.min, min);
    g.max = Math.max(g.max, max);
    g.sum += mean * count;
    g.sumOfSquares += (stddev * stddev + mean * mean) * count;
    g.p50 = Math.max(g.p50, p50);
    g.p90 = Math.max(g.p90, p90);
    g.p99 = Math.max(g.p99, p99);
  }

  private pause(): void {
    if (!this.on) return;
    this.gather();
    this.monitor.disable();
    this.on = false;
  }

  private scheduleCheck(): void {
    this.nextCheck = performance.now() + LOOP_CHECK_MS;
    this.checker = setTimeout(() => this.check(), LOOP_CHECK_MS);
    this.checker.unref();
  }

  private check(): void {
    // A check more than a tick late met a stall the monitor, being off, did not see.
    const late = performance.now() - this.nextCheck;
    if (!this.on && late > LOOP_TICK_MS) this.record(late + LOOP_TICK_MS);
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, this.lastUtilization).utilization;
    this.lastUtilization = now;
    if (busy >= WORKING_UTILIZATION) this.working();
    else this.pause();
    this.scheduleCheck();
  }
}

const GC_KINDS: Record<number, string> = {
  [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

/** `Field:   123 kB` from /proc/self/status, in bytes; undefined off Linux. */
function procStatusBytes(text: string, field: string): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : undefined;
}

function readOr<T>(read: () => T, fallback: T): T {
  try {
    return read();
  } catch {
    return fallback;
  }
}

/** The soft limit on open files, from /proc/self/limits. */
function maxFds(): number | undefined {
  const m = /^Max open files\s+(\d+)/m.exec(readOr(() => readFileSync('/proc/self/limits', 'utf8'), ''));
  return m ? Number(m[1]) : undefined;
}

/** What the runtime metrics keep running: the loop monitor and the GC observer. */
export interface RuntimeMetrics {
  /** Work starts now: measure the event loop from this moment (LoopDelay.working). */
  working: () => void;
  /** Stops the loop monitor and the GC observer (tests; the process's end needs nothing). */
  stop: () => void;
}

/** Registers the runtime families on `registry`. */
export function registerRuntimeMetrics(registry: Registry): RuntimeMetrics {
  const registers = [registry];
  const counter = (name: string, help: string): Counter => new Counter({ name, help, registers });
  const gauge = (name: string, help: string): Gauge => new Gauge({ name, help, registers });
  const loop = new LoopDelay();
  let lastCpu = process.cpuUsage();
  const cpuUser = counter('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.');
  const cpuSystem = counter('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.');
  const cpuTotal = counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.');
  const startTime = gauge(
    'process_start_time_seconds',
    'Start time of the process since unix epoch in seconds.',
  );
  startTime.set(Math.round(performance.timeOrigin / 1000));
  // Everything is read when Prometheus scrapes, in this one collect (a registry collects every
  // family before it renders any).
  const rss = new Gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes.',
    registers,
    collect: () => collect(),
  });
  const vsize = gauge('process_virtual_memory_bytes', 'Virtual memory size in bytes.');
  const heapBytes = gauge('process_heap_bytes', 'Process heap size in bytes.');
  const openFds = gauge('process_open_fds', 'Number of open file descriptors.');
  const limitFds = gauge('process_max_fds', 'Maximum number of open file descriptors.');
  const fdLimit = maxFds();
  if (fdLimit !== undefined) limitFds.set(fdLimit);

  const lag = gauge('nodejs_eventloop_lag_seconds', 'Lag of event loop in seconds.');
  const lagStats = (
    [
      ['min', 'The minimum recorded event loop delay.'],
      ['max', 'The maximum recorded event loop delay.'],
      ['mean', 'The mean of the recorded event loop delays.'],
      ['stddev', 'The standard deviation of the recorded event loop delays.'],
      ['p50', 'The 50th percentile of the recorded event loop delays.'],
      ['p90', 'The 90th percentile of the recorded event loop delays.'],
      ['p99', 'The 99th percentile of the recorded event loop delays.'],
    ] as const
  ).map(([stat, help]) => [stat, gauge(`nodejs_eventloop_lag_${stat}_seconds`, help)] as const);

  const resources = new Gauge<'type'>({
    name: 'nodejs_active_resources',
    help: 'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.',
    labelNames: ['type'],
    registers,
  });
  const resourcesTotal = gauge('nodejs_active_resources_total', 'Total number of active resources.');
  const heapTotal = gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.');
  const heapUsed = gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.');
  const external = gauge('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.');
  const spaces = (['total', 'used', 'available'] as const).map(
    (kind) =>
      [
        kind,
        new Gauge<'space'>({
          name: `nodejs_heap_space_size_${kind}_bytes`,
          help: `Process heap space size ${kind} from Node.js in bytes.`,
          labelNames: ['space'],
          registers,
        }),
      ] as const,
  );
  const [major, minor, patch] = process.versions.node.split('.');
  new Gauge<'version' | 'major' | 'minor' | 'patch'>({
    name: 'nodejs_version_info',
    help: 'Node.js version info.',
    labelNames: ['version', 'major', 'minor', 'patch'],
    registers,
  }).set({ version: process.version, major: major ?? '', minor: minor ?? '', patch: patch ?? '' }, 1);
  const gc = new Histogram<'kind'>({
    name: 'nodejs_gc_duration_seconds',
    help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    labelNames: ['kind'],
    buckets: [0.001, 0.01, 0.1, 1, 2, 5],
    registers,
  });
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = GC_KINDS[(e as { detail?: { kind?: number } }).detail?.kind ?? -1];
      if (kind) gc.observe({ kind }, e.duration / 1000);
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });

  function collect(): void {
    const cpu = process.cpuUsage();
    const user = (cpu.user - lastCpu.user) / 1e6;
    const system = (cpu.system - lastCpu.system) / 1e6;
    lastCpu = cpu;
    cpuUser.inc(user);
    cpuSystem.inc(system);
    cpuTotal.inc(user + system);
    const status = readOr(() => readFileSync('/proc/self/status', 'utf8'), '');
    rss.set(procStatusBytes(status, 'VmRSS') ?? process.memoryUsage.rss());
    const vm = procStatusBytes(status, 'VmSize');
    if (vm !== undefined) vsize.set(vm);
    const data = procStatusBytes(status, 'VmData');
    if (data !== undefined) heapBytes.set(data);
    const fds = readOr(() => readdirSync('/proc/self/fd').length - 1, undefined);
    if (fds !== undefined) openFds.set(fds);
    // prom-client's lag: how long a setImmediate scheduled at the scrape waits (shown next scrape).
    const start = process.hrtime.bigint();
    setImmediate(() => lag.set(Number(process.hrtime.bigint() - start) / NS_PER_S));
    const stats = loop.take();
    for (const [stat, gauge] of lagStats) gauge.set(stats[stat]);
    resources.reset();
    const counts = new Map<string, number>();
    const active = process.getActiveResourcesInfo();
    for (const type of active) counts.set(type, (counts.get(type) ?? 0) + 1);
    for (const [type, n] of counts) resources.set({ type }, n);
    resourcesTotal.set(active.length);
    const mem = process.memoryUsage();
    heapTotal.set(mem.heapTotal);
    heapUsed.set(mem.heapUsed);
    external.set(mem.external);
    for (const s of getHeapSpaceStatistics()) {
      const space = s.space_name.replace(/_space$/, '');
      for (const [kind, gauge] of spaces)
        gauge.set(
          { space },
          kind === 'total' ? s.space_size : kind === 'used' ? s.space_used_size : s.space_available_size,
        );
    }
  }
  return {
    working: () => loop.working(),
    stop: () => {
      loop.stop();
      gcObserver.disconnect();
    },
  };
}
