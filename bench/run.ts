// Benchmarks: each case times a baseline and snapcron's code in the same run and
// prints the ratio, so the figures compare across machines. Not a test: it asserts nothing.
// Usage: npm run bench
import { CronExpressionParser } from 'cron-parser';
import { planRetention } from '../src/retention/plan.ts';
import { fireTimes, latestFireTime, nextFireTimes, parseSchedule } from '../src/schedule/cron.ts';
import { snapshotMetadata } from '../src/snapshot/naming.ts';
import type { VolumeSnapshot } from '../src/api/objects.ts';

function time(fn: () => void, minMs = 300): number {
  fn(); // warm-up
  let runs = 0;
  const start = performance.now();
  while (performance.now() - start < minMs) {
    fn();
    runs++;
  }
  return (performance.now() - start) / runs;
}

const rows: string[][] = [];
function bench(name: string, baselineName: string, baseline: () => void, ours: () => void): void {
  process.stderr.write(`bench: ${name}…\n`);
  const b = time(baseline);
  const o = time(ours);
  rows.push([
    name,
    baselineName,
    `${(b * 1000).toFixed(1)}µs`,
    `${(o * 1000).toFixed(1)}µs`,
    o / b >= 0.01 ? `${(o / b).toFixed(2)}x` : `${(o / b).toExponential(1)}x (${Math.round(b / o)}x faster)`,
  ]);
}

// 1. Next 100 fire times: cron-parser alone in UTC vs snapcron with zone + DST mapping.
const berlin = parseSchedule('*/15 * * * *', 'Europe/Berlin');
bench(
  'next 100 fire times, */15 Europe/Berlin',
  'cron-parser UTC, no DST mapping',
  () => {
    const e = CronExpressionParser.parse('0 */15 * * * *', {
      tz: 'UTC',
      currentDate: new Date('2026-10-24T00:00:00Z'),
    });
    for (let i = 0; i < 100; i++) e.next();
  },
  () => void nextFireTimes(berlin, new Date('2026-10-24T00:00:00Z'), 100),
);

// 2. Catch-up after a 30-day outage of an every-minute schedule: walking every missed time vs latestFireTime.
const everyMinute = parseSchedule('* * * * *', 'UTC');
const since = new Date('2026-01-01T00:00:00Z');
const now = new Date('2026-01-31T00:00:30Z');
bench(
  'find the due run after a 30-day outage, every minute',
  'walk all missed times',
  () => {
    let last: Date | undefined;
    for (const t of fireTimes(everyMinute, since, now)) last = t;
    if (!last) throw new Error('no time');
  },
  () => void latestFireTime(everyMinute, since, now),
);

// 3. Retention over 2,000 snapshots (20 PVCs × 100): sorting them vs the full plan with keep rules.
const snapshots: VolumeSnapshot[] = [];
for (let p = 0; p < 20; p++) {
  for (let i = 0; i < 100; i++) {
    const at = new Date(Date.UTC(2026, 5, 15) - i * 3_600_000);
    const meta = snapshotMetadata(`data-${p}`, 'hourly', at);
    snapshots.push({
      metadata: { name: `data-${p}-${i}`, namespace: 'default', creationTimestamp: at.toISOString(), ...meta },
      spec: { source: { persistentVolumeClaimName: `data-${p}` } },
      status: { readyToUse: true },
    });
  }
}
bench(
  'retention plan, 2,000 snapshots, keep hourly/daily/weekly + maxCount',
  'sort newest first',
  () =>
    void [...snapshots].sort((a, b) =>
      String(b.metadata.annotations?.['snapcron.io/scheduled-at']).localeCompare(
        String(a.metadata.annotations?.['snapcron.io/scheduled-at']),
      ),
    ),
  () =>
    void planRetention({
      scheduleName: 'hourly',
      retention: { maxCount: 60, keep: { hourly: 24, daily: 7, weekly: 4 } },
      timeZone: 'Asia/Shanghai',
      snapshots,
      pvcs: [],
      now: new Date(Date.UTC(2026, 5, 15, 1)),
    }),
);

const header = ['case', 'baseline', 'baseline', 'snapcron', 'ratio'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
for (const r of [header, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  '));
