/** A time zone's UTC offset at an instant, cached: retention (each snapshot's buckets) and cron (each fire time) ask it. */
import type { TimeZone } from '../tz/time-zone.ts';

const DAY_MS = 86_400_000;

/**
 * A zone's offset over one UTC day, in minutes as luxon gives it: `before` until the instant
 * `changeAt` (ms), `after` from then on; `changeAt` is Infinity when the day has no change.
 */
interface DayOffsets {
  before: number;
  after: number;
  changeAt: number;
}
/** Per zone name, per UTC day (days since the epoch). Cleared past MAX_CACHED_DAYS. */
const offsetCache = new Map<string, Map<number, DayOffsets>>();
let cachedDays = 0;
const MAX_CACHED_DAYS = 100_000;

function offsetsOfDay(zone: TimeZone, day: number): DayOffsets {
  const start = day * DAY_MS;
  const end = start + DAY_MS - 1;
  const before = zone.offset(start);
  const after = zone.offset(end);
  if (before === after) return { before, after, changeAt: Infinity };
  // The change, to the millisecond: offset(lo) is `before`, offset(hi) is not.
  let lo = start;
  let hi = end;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (zone.offset(mid) === before) lo = mid;
    else hi = mid;
  }
  return { before, after, changeAt: hi };
}

/**
 * `zone.offset(t)` (minutes), from a cache per zone and UTC day: asking Intl for each
 * snapshot's offset was most of the cost of planning (bench/run.ts), and for each fire time
 * 4 % of all the controller allocated in bench:scale at the peer's load (cron.ts). Two lookups per day at
 * its ends, and where they differ a bisection finds the change once. This relies on a zone's
 * offset changing at most once within a UTC day: no zone of Node 24's time-zone data changes
 * twice within 48 hours from 1970 to 2040 (checked at 6-hour samples; test/unit/retention.test.ts
 * checks DST-edge zones hour by hour).
 */
export function zoneOffset(zone: TimeZone, t: number): number {
  if (!zone.isValid || !Number.isFinite(t)) return zone.offset(t);
  const day = Math.floor(t / DAY_MS);
  let days = offsetCache.get(zone.name);
  let o = days?.get(day);
  if (o === undefined) {
    if (cachedDays >= MAX_CACHED_DAYS) {
      offsetCache.clear();
      cachedDays = 0;
      days = undefined;
    }
    if (days === undefined) offsetCache.set(zone.name, (days = new Map<number, DayOffsets>()));
    o = offsetsOfDay(zone, day);
    days.set(day, o);
    cachedDays++;
  }
  return t < o.changeAt ? o.before : o.after;
}
