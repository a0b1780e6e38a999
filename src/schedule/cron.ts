/**
 * When a schedule fires. The one answer to "the next fire times after T", used by
 * the scheduler, `tick` and the CLI alike.
 *
 * cron-parser evaluates the fields over *wall-clock* time (we run it in UTC on
 * naive local times), and luxon maps each wall-clock time back to real instants in
 * the schedule's zone. Doing the mapping ourselves is what lets DST follow Debian
 * cron (man 8 cron):
 *  - fixed-time schedules (no '*' leading the minute or hour field): a time skipped
 *    by a forward jump fires at the jump; a time repeated by a backward jump fires
 *    once, at its first occurrence;
 *  - wildcard schedules ('*' or '*\/n' in minute or hour): run by the new wall clock,
 *    so skipped times are not run and repeated times run again, which keeps
 *    "every hour" at every real hour.
 */
import { CronExpressionParser, type CronExpression } from 'cron-parser';
import { IANAZone } from 'luxon';

const MACROS: Record<string, string> = {
  '@yearly': '0 0 0 1 1 *',
  '@annually': '0 0 0 1 1 *',
  '@monthly': '0 0 0 1 * *',
  '@weekly': '0 0 0 * * 0',
  '@daily': '0 0 0 * * *',
  '@midnight': '0 0 0 * * *',
  '@hourly': '0 0 * * * *',
};

const MINUTE = 60_000;
const DAY = 86_400_000;

export class ScheduleError extends Error {
  readonly field: 'schedule' | 'timeZone';
  constructor(field: 'schedule' | 'timeZone', message: string) {
    super(message);
    this.field = field;
  }
}

export interface CronSchedule {
  /** As the user wrote it. */
  readonly expression: string;
  /** Six fields, seconds first, macros expanded. */
  readonly sixFields: string;
  readonly timeZone: string;
  /** Debian cron's "wildcard" class: '*' leads the minute or hour field. */
  readonly wildcard: boolean;
  readonly zone: IANAZone;
}

/** Parses and checks a cron expression and zone; throws ScheduleError naming the field and the fix. */
export function parseSchedule(expression: string, timeZone = 'UTC'): CronSchedule {
  const zone = IANAZone.create(timeZone);
  if (!zone.isValid) {
    throw new ScheduleError(
      'timeZone',
      `unknown time zone "${timeZone}": use an IANA name such as UTC, Asia/Shanghai or Europe/Berlin`,
    );
  }
  const trimmed = expression.trim();
  let sixFields: string;
  if (trimmed.startsWith('@')) {
    const macro = MACROS[trimmed];
    if (!macro) {
      throw new ScheduleError(
        'schedule',
        `unknown macro "${trimmed}": use @hourly, @daily, @weekly, @monthly or @yearly`,
      );
    }
    sixFields = macro;
  } else {
    const fields = trimmed.split(/\s+/);
    if (fields.length !== 5 && fields.length !== 6) {
      throw new ScheduleError(
        'schedule',
        `"${expression}" has ${fields.length} fields: use 5 (minute hour day month weekday) or 6 with leading seconds`,
      );
    }
    sixFields = (fields.length === 5 ? ['0', ...fields] : fields).join(' ');
  }
  const [, minute = '', hour = ''] = sixFields.split(' ');
  const schedule: CronSchedule = {
    expression,
    sixFields,
    timeZone,
    wildcard: minute.startsWith('*') || hour.startsWith('*'),
    zone,
  };
  let expr: CronExpression;
  try {
    expr = CronExpressionParser.parse(sixFields, { tz: 'UTC', currentDate: new Date(0) });
  } catch (err) {
    throw new ScheduleError('schedule', `"${expression}" is not a valid cron expression: ${errorText(err)}`);
  }
  try {
    expr.next();
  } catch (err) {
    throw new ScheduleError('schedule', `"${expression}" never fires: ${errorText(err)}`);
  }
  return schedule;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Offset in ms of the zone at an instant. */
const offsetAt = (zone: IANAZone, instant: number): number => zone.offset(instant) * MINUTE;

/**
 * The offsets in force within a day either side: enough to cover any one transition.
 * Cached per zone and UTC day (sampled over a wider window, so a superset), because
 * asking Intl for offsets dominated the cost of walking fire times (bench/run.ts).
 */
const offsetCache = new Map<string, number[]>();
function nearbyOffsets(zone: IANAZone, instant: number): number[] {
  const day = Math.floor(instant / DAY);
  const key = `${zone.name}\0${day}`;
  let offsets = offsetCache.get(key);
  if (!offsets) {
    if (offsetCache.size > 50_000) offsetCache.clear();
    const start = day * DAY;
    offsets = [...new Set([-DAY, 0, DAY, 2 * DAY].map((d) => offsetAt(zone, start + d)))];
    offsetCache.set(key, offsets);
  }
  return offsets;
}

/** The real instants at which a zone's wall clock shows `naive` (a wall time encoded as UTC ms): 0, 1 or 2. */
export function instantsOfWallTime(zone: IANAZone, naive: number): number[] {
  const out: number[] = [];
  for (const offset of nearbyOffsets(zone, naive)) {
    const instant = naive - offset;
    if (offsetAt(zone, instant) === offset) out.push(instant);
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

/** The instant a forward jump skips over `naive`: the first instant after the gap. */
function gapEnd(zone: IANAZone, naive: number): number {
  const before = offsetAt(zone, naive - DAY);
  let hi = naive - before; // already past the jump
  let lo = hi - DAY; // still before it
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (offsetAt(zone, mid) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Fire instants for one wall-clock match, by Debian cron's DST rules. */
function instantsForMatch(s: CronSchedule, naive: number): number[] {
  const instants = instantsOfWallTime(s.zone, naive);
  if (s.wildcard) return instants;
  if (instants.length === 0) return [gapEnd(s.zone, naive)];
  return instants.slice(0, 1);
}

/**
 * Fire times strictly after `after`, in order, lazily. Stops after `until` (inclusive) when given.
 * Times that coincide (several skipped fixed times firing at one jump) come out once.
 */
export function* fireTimes(s: CronSchedule, after: Date | number, until?: Date | number): Generator<Date> {
  const afterMs = +after;
  const untilMs = until === undefined ? Infinity : +until;
  // A wall time before after+minOffset cannot map to an instant after `after`.
  const minOffset = Math.min(...nearbyOffsets(s.zone, afterMs));
  const expr = CronExpressionParser.parse(s.sixFields, {
    tz: 'UTC',
    currentDate: new Date(afterMs + minOffset - 1),
  });
  const pending: number[] = [];
  let last = afterMs;
  for (;;) {
    let naive: number;
    try {
      naive = expr.next().getTime();
    } catch {
      break; // cron-parser gives up on times it cannot reach; nothing more fires
    }
    for (const t of instantsForMatch(s, naive)) if (t > last && !pending.includes(t)) pending.push(t);
    pending.sort((a, b) => a - b);
    // Later wall times map to instants after naive - maxOffset, so earlier ones are final.
    const safe = naive - Math.max(...nearbyOffsets(s.zone, naive));
    while (pending.length > 0 && (pending[0] as number) < safe) {
      const t = pending.shift() as number;
      if (t > untilMs) return;
      last = t;
      yield new Date(t);
    }
    if (safe > untilMs + DAY) return;
  }
  for (const t of pending) {
    if (t > untilMs) return;
    yield new Date(t);
  }
}

/** The next `count` fire times strictly after `after`. */
export function nextFireTimes(s: CronSchedule, after: Date | number, count: number): Date[] {
  const out: Date[] = [];
  if (count <= 0) return out;
  for (const t of fireTimes(s, after)) {
    out.push(t);
    if (out.length >= count) break;
  }
  return out;
}

/** The first fire time strictly after `after`, or undefined if it never fires again. */
export function nextFireTime(s: CronSchedule, after: Date | number): Date | undefined {
  return nextFireTimes(s, after, 1)[0];
}

/** Widening look-back windows so a frequent schedule is answered in a few steps, a rare one still found. */
const LOOK_BACK = [MINUTE, 60 * MINUTE, DAY, 32 * DAY, 367 * DAY, 3000 * DAY];

/** The most recent fire time in (since, atOrBefore], or undefined. */
export function latestFireTime(
  s: CronSchedule,
  since: Date | number,
  atOrBefore: Date | number,
): Date | undefined {
  const sinceMs = +since;
  const end = +atOrBefore;
  for (const window of LOOK_BACK) {
    const from = Math.max(sinceMs, end - window);
    let latest: Date | undefined;
    for (const t of fireTimes(s, from, end)) latest = t;
    if (latest || from === sinceMs) return latest;
  }
  let latest: Date | undefined;
  for (const t of fireTimes(s, sinceMs, end)) latest = t;
  return latest;
}

export type DueRun =
  /** Nothing to take now. */
  | { kind: 'idle' }
  /** Take a snapshot for `scheduledTime`; `skippedEarlier` tells that older missed times were dropped. */
  | { kind: 'due'; scheduledTime: Date; skippedEarlier: boolean; lateMs: number }
  /** The most recent missed time is beyond startingDeadlineSeconds: skip it. */
  | { kind: 'too-late'; scheduledTime: Date; lateMs: number };

export interface DueInput {
  schedule: CronSchedule;
  /** status.lastScheduleTime; unset for a new schedule. */
  lastScheduleTime?: Date | undefined;
  /** metadata.creationTimestamp: a new schedule does not fire for times before it existed. */
  createdAt: Date;
  now: Date;
  startingDeadlineSeconds?: number | undefined;
}

/**
 * Which run is due now. At most one: the most recent fire time since the last run,
 * so an outage is caught up with one snapshot, never a burst.
 */
export function dueRun({
  schedule,
  lastScheduleTime,
  createdAt,
  now,
  startingDeadlineSeconds,
}: DueInput): DueRun {
  const since = lastScheduleTime ?? createdAt;
  const latest = latestFireTime(schedule, since, now);
  if (!latest) return { kind: 'idle' };
  const lateMs = now.getTime() - latest.getTime();
  if (startingDeadlineSeconds !== undefined && lateMs > startingDeadlineSeconds * 1000) {
    return { kind: 'too-late', scheduledTime: latest, lateMs };
  }
  const first = nextFireTime(schedule, since);
  return {
    kind: 'due',
    scheduledTime: latest,
    skippedEarlier: first !== undefined && first < latest,
    lateMs,
  };
}
