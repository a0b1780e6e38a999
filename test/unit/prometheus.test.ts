/**
 * snapcron's metric families (src/controller/prometheus.ts) against prom-client, the reference
 * Node client: the same writes give the same series, line for line. The controller's real
 * /metrics also passes `promtool check metrics` (test/integration/monitoring.test.ts).
 */
import fc from 'fast-check';
import * as prom from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Counter, Gauge, Histogram, Registry } from '../../src/controller/prometheus.ts';

const BUCKETS = [0.05, 0.5, 1, 10];
const LABELS = ['namespace', 'schedule'] as const;

type Op =
  | { kind: 'inc'; labels: Record<string, string> | undefined; value: number }
  | { kind: 'set'; labels: Record<string, string> | undefined; value: number }
  | { kind: 'observe'; labels: Record<string, string> | undefined; value: number }
  | { kind: 'reset' };

/** A scrape's sample lines, sorted, each with its labels in name order (their order has no meaning). */
const samples = (text: string): string[] =>
  text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const m = /^(\w+)\{(.*)\} (\S+)$/.exec(l);
      if (!m) return l;
      const pairs = [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((p) => p[0]).sort();
      return `${m[1]}{${pairs.join(',')}} ${m[3]}`;
    })
    .sort();

const labelValue = fc.constantFrom('a', 'b', 'with "quotes"', 'back\\slash', 'new\nline', 'ünï');
const labels = fc.option(fc.record({ namespace: labelValue, schedule: labelValue }), { nil: undefined });
const value = fc.oneof(fc.double({ min: 0, max: 1e6, noNaN: true }), fc.constantFrom(0, 0.05, 1, 10, 11));
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('inc' as const), labels, value }),
  fc.record({ kind: fc.constant('set' as const), labels, value: fc.oneof(value, fc.constant(-3)) }),
  fc.record({ kind: fc.constant('observe' as const), labels, value: fc.oneof(value, fc.constant(-1)) }),
  fc.constant({ kind: 'reset' as const }),
);

describe('snapcron metric families', () => {
  it('render the series prom-client renders for the same writes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        const ours = new Registry();
        const ref = new prom.Registry();
        const mine = {
          c: new Counter({ name: 'c_total', help: 'c', labelNames: LABELS, registers: [ours] }),
          g: new Gauge({ name: 'g', help: 'g', labelNames: LABELS, registers: [ours] }),
          h: new Histogram({ name: 'h', help: 'h', labelNames: LABELS, buckets: BUCKETS, registers: [ours] }),
          u: new Histogram({ name: 'u', help: 'u', buckets: BUCKETS, registers: [ours] }),
          z: new Gauge({ name: 'z', help: 'z', registers: [ours] }),
        };
        const theirs = {
          c: new prom.Counter({ name: 'c_total', help: 'c', labelNames: LABELS, registers: [ref] }),
          g: new prom.Gauge({ name: 'g', help: 'g', labelNames: LABELS, registers: [ref] }),
          h: new prom.Histogram({
            name: 'h',
            help: 'h',
            labelNames: LABELS,
            buckets: BUCKETS,
            registers: [ref],
          }),
          u: new prom.Histogram({ name: 'u', help: 'u', buckets: BUCKETS, registers: [ref] }),
          z: new prom.Gauge({ name: 'z', help: 'z', registers: [ref] }),
        };
        for (const o of ops) {
          if (o.kind === 'reset') {
            for (const f of Object.values(mine)) f.reset();
            for (const f of Object.values(theirs)) f.reset();
          } else if (o.kind === 'inc' && o.labels) {
            mine.c.inc(o.labels, o.value);
            theirs.c.inc(o.labels, o.value);
          } else if (o.kind === 'inc') {
            mine.c.inc(o.value);
            theirs.c.inc(o.value);
          } else if (o.kind === 'set' && o.labels) {
            mine.g.set(o.labels, o.value);
            theirs.g.set(o.labels, o.value);
          } else if (o.kind === 'set') {
            mine.z.set(o.value);
            theirs.z.set(o.value);
          } else if (o.labels) {
            mine.h.observe(o.labels, o.value);
            theirs.h.observe(o.labels, o.value);
          } else {
            mine.u.observe(o.value);
            theirs.u.observe(o.value);
          }
        }
        expect(samples(await ours.metrics())).toEqual(samples(await ref.metrics()));
      }),
      { numRuns: 300 },
    );
  });

  it('write HELP and TYPE once per family, escaped, and end every line', async () => {
    const r = new Registry();
    const g = new Gauge({ name: 'snapcron_x', help: 'one\\two\nthree', labelNames: ['pvc'], registers: [r] });
    g.set({ pvc: 'data-"0"' }, 1.5);
    g.set({ pvc: 'data-"0"' }, 2);
    new Counter({ name: 'snapcron_y_total', help: 'y', registers: [r] });
    expect(await r.metrics()).toBe(
      [
        '# HELP snapcron_x one\\\\two\\nthree',
        '# TYPE snapcron_x gauge',
        'snapcron_x{pvc="data-\\"0\\""} 2',
        '# HELP snapcron_y_total y',
        '# TYPE snapcron_y_total counter',
        'snapcron_y_total 0',
        '',
      ].join('\n'),
    );
  });

  it('run every collect callback before a scrape renders any family', async () => {
    const r = new Registry();
    let queued = 0;
    const g = new Gauge({ name: 'q', help: 'q', labelNames: ['lane'], registers: [r] });
    // A later family's collect sets an earlier one's value (runtime-metrics.ts reads the whole
    // process in one collect): the earlier one must show it in the same scrape.
    new Gauge({
      name: 'reader',
      help: 'reader',
      registers: [r],
      collect: () => {
        g.set({ lane: 'create' }, queued);
      },
    });
    queued = 3;
    expect(samples(await r.metrics())).toEqual(['q{lane="create"} 3', 'reader 0']);
  });

  it('refuse a label the family does not have, a counter going down and a name registered twice', () => {
    const r = new Registry();
    const c = new Counter({ name: 'c_total', help: 'c', labelNames: ['schedule'], registers: [r] });
    expect(() => c.inc({ pvc: 'x' } as never)).toThrow(/c_total: label "pvc" is not one of schedule/);
    expect(() => c.inc({ schedule: 'x' }, -1)).toThrow(/only goes up/);
    expect(() => new Counter({ name: 'c_total', help: 'again', registers: [r] })).toThrow(/registered twice/);
  });

  it('a gauge publishes prepared series all at once, as set would have written them', async () => {
    const byPrepare = new Registry();
    const bySet = new Registry();
    const g = new Gauge({ name: 'g', help: 'h', labelNames: LABELS, registers: [byPrepare] });
    const h = new Gauge({ name: 'g', help: 'h', labelNames: LABELS, registers: [bySet] });
    g.set({ namespace: 'old', schedule: 'gone' }, 1);
    const kept = [g.prepare({ namespace: 'a', schedule: 'with "quotes"' }, 2)];
    const fresh = [
      g.prepare({ namespace: 'b', schedule: 'x' }, 3),
      g.prepare({ namespace: 'a', schedule: 'with "quotes"' }, 4),
    ];
    // Prepared, not shown.
    expect(samples(await byPrepare.metrics())).toEqual(['g{namespace="old",schedule="gone"} 1']);
    g.replaceAll([...kept, ...fresh]);
    h.set({ namespace: 'a', schedule: 'with "quotes"' }, 2);
    h.set({ namespace: 'b', schedule: 'x' }, 3);
    h.set({ namespace: 'a', schedule: 'with "quotes"' }, 4);
    expect(await byPrepare.metrics()).toBe(await bySet.metrics());
    // A later write to the gauge leaves the prepared series as they were, to publish again.
    g.set({ namespace: 'b', schedule: 'x' }, 9);
    g.replaceAll(kept);
    expect(samples(await byPrepare.metrics())).toEqual(['g{namespace="a",schedule="with \\"quotes\\""} 2']);
  });
});
