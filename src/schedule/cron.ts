/**
 * When a schedule fires. The one answer to "the next fire times after T", used by
 * the scheduler, `tick` and the CLI alike.
 *
 * parseSchedule reads the cron fields once into a Timetable, and the fields are
 * evaluated over *wall-clock* time (naive local times, encoded as UTC ms); luxon maps
 * each wall-clock time back to real instants in the schedule's zone. Doing the
 * mapping ourselves is what lets DST follow Debian cron (man 8 cron):
 *  - fixed-time schedules (no '*' leading the minute or hour field): a time skipped
 *    by a forward jump fires at the jump; a time repeated by a backward jump fires
 *    once, at its first occurrence;
 *  - wildcard schedules ('*' or '*\/n' in minute or hour): run by the new wall clock,
 *    so skipped times are not run and repeated times run again, which keeps
 *    "every hour" at every real hour.
 * Days follow Debian cron too (man 5 crontab): when the day-of-month or the
 * day-of-week field begins with '*', a day must match both fields; when neither
 * does, a day matches if either field matches.
 *
 * The syntax is Debian cron's (numbers, names, lists, ranges, steps, macros) plus a
 * leading seconds field, `a/n` steps and the day extensions L, nL and n#k, which are
 * deterministic and whole days, so the DST mapping is untouched by them. cron-parser's
 * H is refused: it is a random value drawn anew on every parse, so fire times would
 * differ from one pass to the next. So are `?` and `W`. The CRD's CEL rules check the
 * same things field by field; keep the two in step (test/integration/crd-validation).
 */
import { timeZone as zoneNamed, type TimeZone } from '../tz/time-zone.ts';
import { zoneOffset } from './zone-offset.ts';

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

/** The fields, read once: what the fire-time walk evaluates. */
export interface Timetable {
  /** For seconds, minutes (61 entries) and hours (25): the first allowed value >= i, or -1. */
  readonly nextSecond: Int8Array;
  readonly nextMinute: Int8Array;
  readonly nextHour: Int8Array;
  /** Indexed 1-12. */
  readonly months: Uint8Array;
  /** Indexed 1-31. */
  readonly daysOfMonth: Uint8Array;
  /** `L`: the last day of the month. */
  readonly lastDayOfMonth: boolean;
  /** Indexed 0-6, Sunday first. */
  readonly daysOfWeek: Uint8Array;
  /** `nL`: the last weekday n of the month. */
  readonly lastWeekdays: Uint8Array;
  /** `n#k`: bit k set for the k-th weekday n of the month. */
  readonly nthWeekdays: Uint8Array;
  /** Debian cron: a '*' leads the day-of-month or day-of-week field, so a day must match both. */
  readonly bothDayFields: boolean;
}

export interface CronSchedule {
  /** As the user wrote it. */
  readonly expression: string;
  /** Six fields, seconds first, macros expanded. */
  readonly sixFields: string;
  readonly timeZone: string;
  /** Debian cron's "wildcard" class: '*' leads the minute or hour field. */
  readonly wildcard: boolean;
  readonly zone: TimeZone;
  readonly timetable: Timetable;
}

interface FieldSpec {
  /** As messages name it: "the hour field must be 0-23". */
  readonly name: string;
  readonly min: number;
  readonly max: number;
  /** What the field allows, for messages. */
  readonly allowed: string;
  /** Three-letter names (lower case) of min, min+1, … */
  readonly names?: readonly string[];
  /** For H's message: "write an explicit minute such as 17". */
  readonly unit: string;
  readonly example: string;
}

const MONTH_NAMES = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/** The six fields in order, seconds first. Their names and ranges are the CRD's messages too. */
const FIELDS: readonly FieldSpec[] = [
  { name: 'seconds', min: 0, max: 59, allowed: '0-59', unit: 'second', example: '0' },
  { name: 'minute', min: 0, max: 59, allowed: '0-59', unit: 'minute', example: '17' },
  { name: 'hour', min: 0, max: 23, allowed: '0-23', unit: 'hour', example: '3' },
  {
    name: 'day-of-month',
    min: 1,
    max: 31,
    allowed: '1-31 or L (the last day)',
    unit: 'day',
    example: '1',
  },
  {
    name: 'month',
    min: 1,
    max: 12,
    allowed: '1-12 or JAN-DEC',
    names: MONTH_NAMES,
    unit: 'month',
    example: '1',
  },
  {
    name: 'day-of-week',
    min: 0,
    max: 7,
    allowed: '0-7 or SUN-SAT (0 and 7 are Sunday), nL (the last n of the month) or n#k (the k-th n, k 1-5)',
    names: DAY_NAMES,
    unit: 'day of the week',
    example: '1',
  },
];

/** What one field reads to: allowed values, plus the day extensions. */
interface FieldSet {
  values: Uint8Array;
  last: boolean;
  lastWeekdays: Uint8Array;
  nthWeekdays: Uint8Array;
}

/** RE2's \s, as the CRD's CEL rules split fields. */
const SPACE = /[\t\n\f\r ]+/;
const TRIM = /^[\t\n\f\r ]+|[\t\n\f\r ]+$/g;
/** H not inside THU: cron-parser's hash, random per parse. */
const HASH = /(^|[^Tt])H/;
const VALUE = '([0-9]+|[A-Za-z]{3})';
const PLAIN = new RegExp(`^(?:(\\*)|${VALUE}(?:-${VALUE})?)(?:/([0-9]+))?$`);
const LAST_WEEKDAY = new RegExp(`^${VALUE}L$`);
const NTH_WEEKDAY = new RegExp(`^${VALUE}#([0-9]+)$`);

/** Reads one field; throws a message naming the field (the caller adds the expression). */
function readField(spec: FieldSpec, text: string): FieldSet {
  const must = `the ${spec.name} field must be ${spec.allowed}`;
  if (HASH.test(text)) {
    throw new Error(
      `the ${spec.name} field uses H, a hashed value that cron-parser draws at random each time the ` +
        `schedule is read, so the fire times would change from one pass to the next (non-deterministic): ` +
        `write an explicit ${spec.unit} such as ${spec.example}`,
    );
  }
  if (text.includes('?')) {
    throw new Error(
      `the ${spec.name} field uses ?, which snapcron does not accept: write * (the day rule of Debian cron looks for a leading *)`,
    );
  }
  if (/[0-9L]W/.test(text)) {
    throw new Error(
      `the ${spec.name} field uses W (the nearest weekday), which snapcron does not support: list the days instead`,
    );
  }
  const set: FieldSet = {
    values: new Uint8Array(spec.max + 1),
    last: false,
    lastWeekdays: new Uint8Array(7),
    nthWeekdays: new Uint8Array(7),
  };
  const value = (item: string, token: string): number => {
    const named = spec.names?.indexOf(token.toLowerCase()) ?? -1;
    if (named >= 0) return spec.min + named;
    if (!/^[0-9]+$/.test(token)) throw new Error(`${must}; "${item}" is not one of them`);
    const n = Number(token);
    if (n < spec.min || n > spec.max) throw new Error(`${must}; "${token}" is out of range`);
    return n;
  };
  const weekday = spec.name === 'day-of-week';
  for (const item of text.split(',')) {
    if (item === '') throw new Error(`${must}; "${text}" has an empty list item`);
    if (spec.name === 'day-of-month' && item === 'L') {
      set.last = true;
      continue;
    }
    if (weekday && item === 'L') {
      throw new Error(`${must}; "L" alone is not a day: write 5L for the last Friday of the month`);
    }
    const lastOf = weekday ? LAST_WEEKDAY.exec(item) : null;
    if (lastOf) {
      set.lastWeekdays[value(item, lastOf[1] as string) % 7] = 1;
      continue;
    }
    const nth = weekday ? NTH_WEEKDAY.exec(item) : null;
    if (nth) {
      const k = Number(nth[2]);
      if (k < 1 || k > 5) throw new Error(`${must}; in "${item}" the occurrence after # must be 1-5`);
      const day = value(item, nth[1] as string) % 7;
      set.nthWeekdays[day] = (set.nthWeekdays[day] as number) | (1 << k);
      continue;
    }
    const plain = PLAIN.exec(item);
    if (!plain) throw new Error(`${must}; "${item}" is not a value, a range a-b, * or a step /n`);
    const [, star, from, to, stepText] = plain;
    let lo = spec.min;
    let hi = spec.max;
    if (!star) {
      lo = value(item, from as string);
      hi = to !== undefined ? value(item, to) : stepText !== undefined ? spec.max : lo;
      if (lo > hi) {
        throw new Error(
          `${must}; the range "${item.split('/')[0]}" is reversed: write ${to}-${from}, or a list to wrap around (ranges go from low to high)`,
        );
      }
    }
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1 || step > spec.max) throw new Error(`${must}; the step in "${item}" must be 1-${spec.max}`);
    for (let v = lo; v <= hi; v += step) set.values[v] = 1;
  }
  if (weekday && set.values[7]) set.values[0] = 1;
  return set;
}

/** next[i]: the first allowed value >= i, or -1; one entry past the field. */
function nextTable(values: Uint8Array): Int8Array {
  const next = new Int8Array(values.length + 1).fill(-1);
  for (let i = values.length - 1; i >= 0; i--) next[i] = values[i] ? i : (next[i + 1] as number);
  return next;
}

function timetable(fields: string[]): Timetable {
  const sets = FIELDS.map((spec, i) => readField(spec, fields[i] as string));
  const [second, minute, hour, dom, month, dow] = sets as [
    FieldSet,
    FieldSet,
    FieldSet,
    FieldSet,
    FieldSet,
    FieldSet,
  ];
  return {
    nextSecond: nextTable(second.values),
    nextMinute: nextTable(minute.values),
    nextHour: nextTable(hour.values),
    months: month.values,
    daysOfMonth: dom.values,
    lastDayOfMonth: dom.last,
    daysOfWeek: dow.values.subarray(0, 7),
    lastWeekdays: dow.lastWeekdays,
    nthWeekdays: dow.nthWeekdays,
    bothDayFields: (fields[3] as string).startsWith('*') || (fields[5] as string).startsWith('*'),
  };
}

/**
 * Parsed schedules by time zone and expression: every pass of the controller and every report
 * refresh parses each schedule again (4 % of all the controller allocated in bench:scale at the
 * peer's load). A CronSchedule is immutable, so one serves every caller; a bad expression is
 * parsed (and refused) each time.
 */
const parsed = new Map<string, CronSchedule>();

/** Parses and checks a cron expression and zone; throws ScheduleError naming the field and the fix. */
export function parseSchedule(expression: string, timeZone = 'UTC'): CronSchedule {
  const key = `${timeZone}\0${expression}`;
  let s = parsed.get(key);
  if (!s) {
    if (parsed.size >= 5000) parsed.clear();
    s = parseUncached(expression, timeZone);
    parsed.set(key, s);
  }
  return s;
}

function parseUncached(expression: string, timeZone: string): CronSchedule {
  const zone = zoneNamed(timeZone);
  if (!zone.isValid) {
    throw new ScheduleError(
      'timeZone',
      `unknown time zone "${timeZone}": use an IANA name such as UTC, Asia/Shanghai or Europe/Berlin`,
    );
  }
  const trimmed = expression.replace(TRIM, '');
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
    const fields = trimmed.split(SPACE);
    if (fields.length !== 5 && fields.length !== 6) {
      throw new ScheduleError(
        'schedule',
        `"${expression}" has ${fields.length} fields: use 5 (minute hour day month weekday) or 6 with leading seconds`,
      );
    }
    sixFields = (fields.length === 5 ? ['0', ...fields] : fields).join(' ');
  }
  const fields = sixFields.split(' ');
  let table: Timetable;
  try {
    table = timetable(fields);
  } catch (err) {
    throw new ScheduleError('schedule', `"${expression}" is not a valid cron expression: ${errorText(err)}`);
  }
  if (nextDay(table, 0) < 0) {
    throw new ScheduleError(
      'schedule',
      `"${expression}" never fires: no date has that day of the month in those months (e.g. 30 February)`,
    );
  }
  const [, minute = '', hour = ''] = fields;
  return {
    expression,
    sixFields,
    timeZone,
    wildcard: minute.startsWith('*') || hour.startsWith('*'),
    zone,
    timetable: table,
  };
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Days from 1970-01-01 to 1 January of `year` (proleptic Gregorian). */
const yearStart = (year: number): number => {
  const y = year - 1;
  return 365 * y + Math.floor(y / 4) - Math.floor(y / 100) + Math.floor(y / 400) - 719_162;
};
const isLeap = (year: number): boolean => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
/** Days in a month, January 0. */
const monthDays = (year: number, month: number): number =>
  month === 1 && isLeap(year) ? 29 : (MONTH_DAYS[month] as number);
/** Days of the 400-year Gregorian cycle, after which dates and weekdays repeat. */
const CYCLE = 146_097;
/** The last day a Date can hold. */
const LAST_DAY = 100_000_000 - 1;

/**
 * The first day (days since 1970-01-01, as a wall-clock date) at or after `from` that
 * the month and day fields match, or -1 if none does within a whole Gregorian cycle (never).
 */
function nextDay(t: Timetable, from: number): number {
  let year = 1970 + Math.floor(from / 365.2425);
  while (yearStart(year) > from) year--;
  while (yearStart(year + 1) <= from) year++;
  let day = from;
  let dayOfYear = from - yearStart(year);
  let month = 0;
  while (dayOfYear >= monthDays(year, month)) dayOfYear -= monthDays(year, month++);
  let monthLength = monthDays(year, month);
  let date = dayOfYear + 1;
  const end = from + CYCLE;
  while (day <= end && day <= LAST_DAY) {
    if (t.months[month + 1] && dayMatches(t, day, date, monthLength)) return day;
    // On to the next day, or past a month the month field leaves out.
    const step = t.months[month + 1] ? 1 : monthLength - date + 1;
    day += step;
    date += step;
    if (date > monthLength) {
      date = 1;
      month++;
      if (month === 12) {
        month = 0;
        year++;
      }
      monthLength = monthDays(year, month);
    }
  }
  return -1;
}

/** The day rule of Debian cron over one date of a matching month. */
function dayMatches(t: Timetable, day: number, date: number, monthLength: number): boolean {
  const weekday = (((day + 4) % 7) + 7) % 7; // 1970-01-01 was a Thursday
  const byDate = t.daysOfMonth[date] === 1 || (t.lastDayOfMonth && date === monthLength);
  const byWeekday =
    t.daysOfWeek[weekday] === 1 ||
    (t.lastWeekdays[weekday] === 1 && date + 7 > monthLength) ||
    (((t.nthWeekdays[weekday] as number) >> Math.ceil(date / 7)) & 1) === 1;
  return t.bothDayFields ? byDate && byWeekday : byDate || byWeekday;
}

/** The first second of the day at or after `second` that the time fields match, or -1. */
function nextSecondOfDay(t: Timetable, second: number): number {
  let h = Math.floor(second / 3600);
  let m = Math.floor(second / 60) % 60;
  let s = second % 60;
  for (;;) {
    const hour = t.nextHour[h] ?? -1;
    if (hour < 0) return -1;
    if (hour !== h) return hour * 3600 + (t.nextMinute[0] as number) * 60 + (t.nextSecond[0] as number);
    const minute = t.nextMinute[m] as number;
    if (minute < 0) {
      [h, m, s] = [h + 1, 0, 0];
      continue;
    }
    if (minute !== m) return h * 3600 + minute * 60 + (t.nextSecond[0] as number);
    const sec = t.nextSecond[s] as number;
    if (sec < 0) {
      [m, s] = [m + 1, 0];
      continue;
    }
    return h * 3600 + m * 60 + sec;
  }
}

/** The wall-clock times (naive, as UTC ms) the fields match strictly after `after`, in order. */
function* wallTimes(t: Timetable, after: number): Generator<number> {
  let day = Math.floor(after / DAY);
  let second = Math.floor((after - day * DAY) / 1000) + 1;
  for (;;) {
    const next = nextDay(t, day);
    if (next < 0) return;
    if (next !== day) [day, second] = [next, 0];
    for (let s = nextSecondOfDay(t, second); s >= 0; s = nextSecondOfDay(t, s + 1))
      yield day * DAY + s * 1000;
    [day, second] = [day + 1, 0];
  }
}

/** Offset in ms of the zone at an instant. */
const offsetAt = (zone: TimeZone, instant: number): number => zoneOffset(zone, instant) * MINUTE;

/**
 * The offsets in force within a day either side: enough to cover any one transition.
 * Cached per zone and UTC day (sampled over a wider window, so a superset), because
 * asking Intl for offsets dominated the cost of walking fire times (bench/run.ts).
 */
const offsetCache = new Map<string, number[]>();
function nearbyOffsets(zone: TimeZone, instant: number): number[] {
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
export function instantsOfWallTime(zone: TimeZone, naive: number): number[] {
  const out: number[] = [];
  for (const offset of nearbyOffsets(zone, naive)) {
    const instant = naive - offset;
    if (offsetAt(zone, instant) === offset) out.push(instant);
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

/** The instant a forward jump skips over `naive`: the first instant after the gap. */
function gapEnd(zone: TimeZone, naive: number): number {
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
  const pending: number[] = [];
  let last = afterMs;
  for (const naive of wallTimes(s.timetable, afterMs + minOffset - 1)) {
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
