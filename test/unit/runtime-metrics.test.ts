/**
 * Node's runtime metrics (src/controller/runtime-metrics.ts): every family prom-client's
 * collectDefaultMetrics exports, under its name and type, but for the two read from Node's
 * private handle lists; and an event-loop monitor that measures while the loop works and
 * stops ticking while it idles.
 */
import * as prom from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from '../../src/controller/prometheus.ts';
import {
  LOOP_CHECK_MS,
  LOOP_TICK_MS,
  LoopDelay,
  registerRuntimeMetrics,
} from '../../src/controller/runtime-metrics.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Holds the event loop, as a long synchronous computation would. */
const block = (ms: number): void => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};
/** `name type` for every family of a scrape. */
const families = (text: string): Map<string, string> =>
  new Map([...text.matchAll(/^# TYPE (\w+) (\w+)$/gm)].map((m) => [m[1] as string, m[2] as string]));

const stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

describe('runtime metrics', () => {
  it("exports prom-client's default families by name and type, without Node's private handle lists", async () => {
    const reference = new prom.Registry();
    prom.collectDefaultMetrics({ register: reference });
    const registry = new Registry();
    stops.push(registerRuntimeMetrics(registry).stop);
    const ours = families(await registry.metrics());
    const theirs = families(await reference.metrics());
    // process._getActiveHandles and _getActiveRequests are undocumented; nodejs_active_resources covers both.
    const left = [
      'nodejs_active_handles',
      'nodejs_active_handles_total',
      'nodejs_active_requests',
      'nodejs_active_requests_total',
    ];
    for (const [name, type] of theirs) if (!left.includes(name)) expect(ours.get(name), name).toBe(type);
    expect(ours.size).toBe(theirs.size - left.length);
  });

  it('reads the process as it is at the scrape', async () => {
    const registry = new Registry();
    stops.push(registerRuntimeMetrics(registry).stop);
    const value = (text: string, series: string): number =>
      Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    const first = await registry.metrics();
    // 60 ms of CPU, not of wall time: on a busy machine a wall-clock spin gets less of it.
    const start = process.cpuUsage();
    const spent = (): number => {
      const { user, system } = process.cpuUsage(start);
      return user + system;
    };
    while (spent() < 60_000) block(5);
    const second = await registry.metrics();
    expect(
      value(second, 'process_cpu_seconds_total') - value(first, 'process_cpu_seconds_total'),
    ).toBeGreaterThanOrEqual(0.05);
    expect(value(second, 'process_resident_memory_bytes')).toBeGreaterThan(10 * 2 ** 20);
    expect(value(second, 'nodejs_heap_space_size_used_bytes{space="old"}')).toBeGreaterThan(0);
    expect(value(second, 'process_start_time_seconds')).toBeCloseTo(
      Math.round(performance.timeOrigin / 1000),
      -1,
    );
    expect(
      value(
        second,
        'nodejs_version_info{version="' +
          process.version +
          '",major="' +
          process.versions.node.split('.')[0] +
          '",minor="' +
          process.versions.node.split('.')[1] +
          '",patch="' +
          process.versions.node.split('.')[2] +
          '"}',
      ),
    ).toBe(1);
  });
});

describe('LoopDelay', () => {
  const loop = (): LoopDelay => {
    const l = new LoopDelay();
    stops.push(() => l.stop());
    return l;
  };

  it(
    'does not tick while nothing works, and reports an idle loop as on time',
    { timeout: 30_000 },
    async () => {
      // On a busy machine a timer can come late with no work in this process, and a late check is
      // then rightly recorded as a stall: judge a window only if a probe timer of ours was on time.
      let l = loop();
      for (let attempt = 1; ; attempt++) {
        let worst = 0;
        let expected = performance.now() + 50;
        const probe = setInterval(() => {
          worst = Math.max(worst, performance.now() - expected);
          expected = performance.now() + 50;
        }, 50);
        await sleep(LOOP_CHECK_MS * 2.5);
        clearInterval(probe);
        if (worst < LOOP_TICK_MS / 2 || attempt === 5) break;
        l.stop();
        l = loop();
      }
      expect(l.measuring).toBe(false);
      const tick = LOOP_TICK_MS / 1000;
      const s = l.take();
      // No sample at all reads as exactly on time; the test runner's own work can make the first
      // check see a busy loop, and the second of ticks that follows must then be on time too.
      if (s.stddev === 0)
        expect(s).toEqual({ min: tick, max: tick, mean: tick, stddev: 0, p50: tick, p90: tick, p99: tick });
      expect(s.p50).toBeGreaterThan(tick * 0.8);
      expect(s.p99).toBeLessThan(tick * 1.5);
    },
  );

  it('measures from the moment work starts, and sees a stall', async () => {
    const l = loop();
    l.working();
    expect(l.measuring).toBe(true);
    await sleep(LOOP_TICK_MS * 5);
    block(120);
    await sleep(LOOP_TICK_MS * 3);
    const s = l.take();
    expect(s.max).toBeGreaterThanOrEqual(0.12);
    expect(s.min).toBeGreaterThanOrEqual((LOOP_TICK_MS - 2) / 1000);
    expect(s.p50).toBeLessThan(0.1);
    // The window starts again: the stall is not reported twice.
    await sleep(LOOP_TICK_MS * 5);
    expect(l.take().max).toBeLessThan(0.1);
  });

  it('stops ticking a second after the work ends', async () => {
    const l = loop();
    l.working();
    await sleep(LOOP_CHECK_MS * 2.5);
    expect(l.measuring).toBe(false);
  });

  it("keeps a stretch's samples across a pause, and does not count the pause as delay", async () => {
    const l = loop();
    l.working();
    await sleep(LOOP_TICK_MS * 5);
    block(120);
    await sleep(LOOP_TICK_MS * 3);
    await sleep(LOOP_CHECK_MS * 2.5);
    expect(l.measuring).toBe(false);
    l.working();
    await sleep(LOOP_TICK_MS * 5);
    const s = l.take();
    expect(s.max).toBeGreaterThanOrEqual(0.12);
    // The pause lasted over a second: a monitor started again without forgetting its last tick would report it.
    expect(s.max).toBeLessThan(0.5);
    expect(s.p50).toBeLessThan(0.05);
  });

  it('starts ticking on its own when the loop gets busy, and records a stall met while off', async () => {
    const l = loop();
    // Idle for a whole check (the test runner's own work may count as the loop's first second).
    await sleep(LOOP_CHECK_MS * 1.2);
    for (let i = 0; i < 10 && l.measuring; i++) await sleep(LOOP_CHECK_MS / 2);
    expect(l.measuring).toBe(false);
    // Busy past the next check: the check is late and sees the loop at work.
    block(LOOP_CHECK_MS);
    await sleep(LOOP_TICK_MS * 3);
    expect(l.measuring).toBe(true);
    expect(l.take().max).toBeGreaterThan(0.2);
  });
});
