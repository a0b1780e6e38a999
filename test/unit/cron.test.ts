import { CronExpressionParser } from 'cron-parser';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runNext } from '../../src/cli/next.ts';
import {
  dueRun,
  fireTimes,
  latestFireTime,
  nextFireTimes,
  parseSchedule,
  ScheduleError,
} from '../../src/schedule/cron.ts';

const iso = (dates: Date[]): string[] => dates.map((d) => d.toISOString().replace('.000Z', 'Z'));
const next = (cron: string, zone: string, from: string, count: number): string[] =>
  iso(nextFireTimes(parseSchedule(cron, zone), new Date(from), count));

describe('parseSchedule', () => {
  it('parses an expression and zone once: the same (immutable) schedule serves every caller', () => {
    const a = parseSchedule('*/5 * * * *', 'Europe/Berlin');
    expect(parseSchedule('*/5 * * * *', 'Europe/Berlin')).toBe(a);
    expect(parseSchedule('*/5 * * * *', 'Asia/Shanghai')).not.toBe(a);
    expect(parseSchedule('*/5 * * * *', 'Asia/Shanghai').timeZone).toBe('Asia/Shanghai');
    // A refused expression is refused every time, not remembered as something else.
    for (let i = 0; i < 2; i++) expect(() => parseSchedule('61 * * * *', 'UTC')).toThrow(ScheduleError);
  });

  it.each([
    ['5 fields', '30 2 * * *', '0 30 2 * * *', false],
    ['6 fields with seconds', '*/10 * * * * *', '*/10 * * * * *', true],
    ['@hourly is a wildcard schedule', '@hourly', '0 0 * * * *', true],
    ['@daily is a fixed-time schedule', '@daily', '0 0 0 * * *', false],
    ['@weekly', '@weekly', '0 0 0 * * 0', false],
    ['@monthly', '@monthly', '0 0 0 1 * *', false],
    ['@yearly', '@yearly', '0 0 0 1 1 *', false],
    ['a step in the hour is a wildcard', '0 */2 * * *', '0 0 */2 * * *', true],
    ['a range is fixed', '0 1-3 * * *', '0 0 1-3 * * *', false],
  ])('accepts %s', (_name, cron, six, wildcard) => {
    const s = parseSchedule(cron, 'UTC');
    expect(s.sixFields).toBe(six);
    expect(s.wildcard).toBe(wildcard);
  });

  it.each([
    ['too few fields', '* * *', 'schedule', /3 fields/],
    ['too many fields', '0 0 0 * * * *', 'schedule', /7 fields/],
    ['an out-of-range minute', '61 * * * *', 'schedule', /not a valid cron.*the minute field must be 0-59/],
    ['an unknown macro', '@often', 'schedule', /unknown macro/],
    ['words', 'every day', 'schedule', /2 fields/],
    ['a date that never comes', '0 0 30 2 *', 'schedule', /never fires|not a valid/],
  ])('rejects %s, naming the field', (_name, cron, field, message) => {
    expect(() => parseSchedule(cron, 'UTC')).toThrow(message);
    try {
      parseSchedule(cron, 'UTC');
    } catch (err) {
      expect(err).toBeInstanceOf(ScheduleError);
      expect((err as ScheduleError).field).toBe(field);
    }
  });

  it('rejects an unknown zone with an example of a good one', () => {
    expect(() => parseSchedule('@daily', 'Europe/Berln')).toThrow(
      /unknown time zone "Europe\/Berln".*Europe\/Berlin/,
    );
  });
});

/** Throws unless parseSchedule refuses `cron` as a ScheduleError of the schedule field; returns the message. */
function refusal(cron: string): string {
  try {
    parseSchedule(cron, 'UTC');
  } catch (err) {
    expect(err).toBeInstanceOf(ScheduleError);
    expect((err as ScheduleError).field).toBe('schedule');
    return (err as Error).message;
  }
  throw new Error(`parseSchedule accepted "${cron}"`);
}

describe('cron syntax: only what is deterministic, each field checked', () => {
  it.each([
    ['H in the minute', 'H 2 * * *', /minute field uses H/],
    ['H with a step', 'H/15 * * * *', /minute field uses H/],
    ['H with a range', '0 H(0-3) * * *', /hour field uses H/],
    ['H as a range bound', '0 0 1-H * *', /day-of-month field uses H/],
    ['H in the seconds', 'H * * * * *', /seconds field uses H/],
    ['H in the day of week', '0 0 * * H', /day-of-week field uses H/],
  ])('refuses %s: cron-parser draws it at random on every parse', (_name, cron, field) => {
    const message = refusal(cron);
    expect(message).toMatch(field);
    expect(message).toMatch(/random/);
    expect(message).toMatch(/non-deterministic/);
    expect(message).toMatch(/write an explicit/);
  });

  it('refuses H in `snapcron next` too, with the reason', () => {
    expect(() => runNext(['H 2 * * *'], new Date('2026-01-01T00:00:00Z'), () => undefined)).toThrow(
      /cron: .*minute field uses H.*random.*write an explicit minute/,
    );
  });

  it('gives the same fire times however often a schedule is parsed (no random fields)', () => {
    const runs = Array.from({ length: 5 }, () => next('30 2 * * *', 'UTC', '2026-01-01T00:00:00Z', 3));
    for (const r of runs) expect(r).toEqual(runs[0]);
  });

  it.each([
    ['an out-of-range second', '60 * * * * *', /the seconds field must be 0-59; "60" is out of range/],
    ['an out-of-range minute', '61 * * * *', /the minute field must be 0-59; "61" is out of range/],
    ['an out-of-range hour', '0 25 * * *', /the hour field must be 0-23; "25" is out of range/],
    ['an hour of 24', '0 24 * * *', /the hour field must be 0-23/],
    ['day-of-month 32', '0 0 32 * *', /the day-of-month field must be 1-31 or L.*"32" is out of range/],
    ['day-of-month 0', '0 0 0 * *', /the day-of-month field must be 1-31/],
    ['month 13', '0 0 * 13 *', /the month field must be 1-12 or JAN-DEC; "13" is out of range/],
    ['month 0', '0 0 * 0 *', /the month field must be 1-12/],
    ['day-of-week 8', '0 0 * * 8', /the day-of-week field must be 0-7 or SUN-SAT.*"8" is out of range/],
    ['an out-of-range list item', '0 1,2,99 * * *', /the hour field must be 0-23; "99" is out of range/],
    ['a range past the end', '0 20-24 * * *', /the hour field must be 0-23; "24" is out of range/],
    [
      'a reversed range',
      '5-1 * * * *',
      /the minute field must be 0-59; the range "5-1" is reversed: write 1-5/,
    ],
    ['a reversed range of names', '0 0 * * FRI-SUN', /the day-of-week field .*range "FRI-SUN" is reversed/],
    ['a step of 0', '*/0 * * * *', /the minute field must be 0-59; the step in "\*\/0" must be 1-59/],
    ['a step of 0 on a range', '0 1-10/0 * * *', /the hour field .*step in "1-10\/0" must be 1-23/],
    ['a step past the field', '0 */24 * * *', /the hour field .*step in "\*\/24" must be 1-23/],
    ['an unknown month name', '0 0 * FOO *', /the month field must be 1-12 or JAN-DEC; "FOO"/],
    ['a day name in the month field', '0 0 * MON *', /the month field .*"MON"/],
    ['a month name in the day-of-week field', '0 0 * * JAN', /the day-of-week field .*"JAN"/],
    ['a name in the hour field', '0 MON * * *', /the hour field must be 0-23; "MON"/],
    ['an empty list item', '0 1,,2 * * *', /the hour field .*empty/],
    ['a double step', '*/2/3 * * * *', /the minute field must be 0-59; "\*\/2\/3"/],
    ['a negative number', '0 -1 * * *', /the hour field must be 0-23; "-1"/],
    ['? (Quartz "no value")', '0 0 ? * 1', /the day-of-month field uses \?.*write \*/],
    ['W (nearest weekday)', '0 0 15W * *', /the day-of-month field uses W.*not support/],
    ['LW', '0 0 LW * *', /the day-of-month field uses W/],
    ['L outside the day fields', '0 L * * *', /the hour field must be 0-23; "L"/],
    ['L alone in the day of week', '0 0 * * L', /the day-of-week field .*"L".*5L/],
    ['a range to L', '0 0 L-2 * *', /the day-of-month field .*"L-2"/],
    ['# past the fifth', '0 0 * * 5#6', /the day-of-week field .*"5#6".*1-5/],
    ['# zero', '0 0 * * 5#0', /the day-of-week field .*"5#0".*1-5/],
    ['# on a range', '0 0 * * 1-5#2', /the day-of-week field .*"1-5#2"/],
    ['L# in the wrong field', '0 0 5#2 * *', /the day-of-month field .*"5#2"/],
    ['lowercase l', '0 0 l * *', /the day-of-month field .*"l"/],
  ])('refuses %s, naming the field and the allowed values', (_name, cron, message) => {
    const text = refusal(cron);
    expect(text).toMatch(/is not a valid cron expression: /);
    expect(text).toMatch(message);
  });

  it.each([
    // [name, cron, from, expected fire times (UTC)]
    [
      'L: the last day of the month',
      '0 0 L * *',
      '2026-01-15T00:00:00Z',
      ['2026-01-31', '2026-02-28', '2026-03-31'],
    ],
    ['L in a leap year', '0 0 L 2 *', '2027-06-01T00:00:00Z', ['2028-02-29', '2029-02-28']],
    ['L in a list', '0 0 1,L * *', '2026-01-15T00:00:00Z', ['2026-01-31', '2026-02-01', '2026-02-28']],
    ['nL: the last Friday', '0 0 * * 5L', '2026-01-01T00:00:00Z', ['2026-01-30', '2026-02-27', '2026-03-27']],
    ['a named nL', '0 0 * * FRIL', '2026-01-01T00:00:00Z', ['2026-01-30', '2026-02-27', '2026-03-27']],
    [
      'n#k: the third Friday',
      '0 0 * * 5#3',
      '2026-01-01T00:00:00Z',
      ['2026-01-16', '2026-02-20', '2026-03-20'],
    ],
    ['n#k in a list', '0 0 * * 1#1,1#3', '2026-01-01T00:00:00Z', ['2026-01-05', '2026-01-19', '2026-02-02']],
    ['the fifth Sunday', '0 0 * * 0#5', '2026-01-01T00:00:00Z', ['2026-03-29', '2026-05-31', '2026-08-30']],
    [
      'a range with a step',
      '0 0 1-30/10 * *',
      '2026-01-01T00:00:00Z',
      ['2026-01-11', '2026-01-21', '2026-02-01'],
    ],
    [
      'a start with a step',
      '0 0 5/10 * *',
      '2026-01-01T00:00:00Z',
      ['2026-01-05', '2026-01-15', '2026-01-25'],
    ],
    [
      'month and day names',
      '0 0 * JAN MON',
      '2026-01-01T00:00:00Z',
      ['2026-01-05', '2026-01-12', '2026-01-19'],
    ],
    [
      'names in any case',
      '0 0 * jan-Feb mon',
      '2026-01-25T00:00:00Z',
      ['2026-01-26', '2026-02-02', '2026-02-09'],
    ],
    [
      'a weekday range of names',
      '0 0 * * MON-FRI',
      '2026-01-02T00:00:00Z',
      ['2026-01-05', '2026-01-06', '2026-01-07'],
    ],
    ['7 is Sunday', '0 0 * * 7', '2026-01-01T00:00:00Z', ['2026-01-04', '2026-01-11', '2026-01-18']],
    ['a range to 7', '0 0 * * 6-7', '2026-01-01T00:00:00Z', ['2026-01-03', '2026-01-04', '2026-01-10']],
    ['leading zeros', '00 02 01 01 *', '2026-01-01T00:00:00Z', ['2026-01-01T02:00', '2027-01-01T02:00']],
    ['a list with *', '0 0 *,5 * *', '2026-01-01T00:00:00Z', ['2026-01-02', '2026-01-03', '2026-01-04']],
  ])('accepts %s', (_name, cron, from, expected) => {
    const want = expected.map((d) => (d.length === 10 ? `${d}T00:00:00Z` : `${d}:00Z`));
    expect(next(cron, 'UTC', from, want.length)).toEqual(want);
  });

  it('refuses a day that never comes, in code (the CRD cannot tell)', () => {
    expect(refusal('0 0 30 2 *')).toMatch(/never fires/);
    expect(refusal('0 0 31 4,6,9,11 *')).toMatch(/never fires/);
    expect(refusal('0 0 */30 2 5#5')).toMatch(/never fires/); // 1 February is never a fifth Friday
    expect(next('0 0 29 2 *', 'UTC', '2026-01-01T00:00:00Z', 1)).toEqual(['2028-02-29T00:00:00Z']);
    // A fifth Friday in February needs 29 February on a Friday: every 28 years or so, but it fires.
    expect(next('0 0 */2 2 5#5', 'UTC', '2026-01-01T00:00:00Z', 1)).toEqual(['2036-02-29T00:00:00Z']);
  });
});

/**
 * Debian (Vixie) cron's day rule, written independently of src/schedule/cron.ts: a day
 * matches when the month matches and, if the day-of-month or the day-of-week field begins
 * with '*', both match; otherwise either. Items are tested by arithmetic, not expanded.
 */
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
function refValue(text: string, names: string[], base: number): number {
  const i = names.indexOf(text.toLowerCase());
  return i >= 0 ? i + base : Number(text);
}
function refItemHas(
  item: string,
  v: number,
  min: number,
  max: number,
  names: string[],
  base: number,
): boolean {
  const [range = '', stepText] = item.split('/');
  const step = stepText === undefined ? 1 : Number(stepText);
  let lo: number;
  let hi: number;
  if (range === '*') [lo, hi] = [min, max];
  else if (range.includes('-'))
    [lo, hi] = range.split('-').map((x) => refValue(x, names, base)) as [number, number];
  else [lo, hi] = [refValue(range, names, base), stepText === undefined ? refValue(range, names, base) : max];
  return v >= lo && v <= hi && (v - lo) % step === 0;
}
function refDayMatches(date: Date, dom: string, month: string, dow: string): boolean {
  const d = date.getUTCDate();
  const wd = date.getUTCDay();
  const last = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 0)).getUTCDate();
  const monthOk = month.split(',').some((i) => refItemHas(i, date.getUTCMonth() + 1, 1, 12, MONTHS, 1));
  const domOk = dom.split(',').some((i) => (i === 'L' ? d === last : refItemHas(i, d, 1, 31, [], 0)));
  const dowOk = dow.split(',').some((i) => {
    const lastOf = /^(\w+)L$/.exec(i);
    if (lastOf) return refValue(lastOf[1] as string, DAYS, 0) % 7 === wd && d + 7 > last;
    const nth = /^(\w+)#(\d)$/.exec(i);
    if (nth) return refValue(nth[1] as string, DAYS, 0) % 7 === wd && Math.ceil(d / 7) === Number(nth[2]);
    return refItemHas(i, wd, 0, 7, DAYS, 0) || (wd === 0 && refItemHas(i, 7, 0, 7, DAYS, 0));
  });
  const both = dom.startsWith('*') || dow.startsWith('*');
  return monthOk && (both ? domOk && dowOk : domOk || dowOk);
}

describe('day-of-month with day-of-week: Debian cron (man 5 crontab)', () => {
  it.each([
    [
      'a * leading the day of month: both must match (odd days that are Mondays)',
      '0 0 */2 * 1',
      ['2026-01-05', '2026-01-19', '2026-02-09', '2026-02-23', '2026-03-09', '2026-03-23'],
    ],
    [
      'a * leading the day of week: both must match (the 1st on Sun/Tue/Thu/Sat)',
      '0 0 1 * */2',
      ['2026-01-01', '2026-02-01', '2026-03-01', '2026-08-01', '2026-09-01'],
    ],
    [
      'neither restricted by a leading *: either matches (1st, 15th and Mondays)',
      '0 0 1,15 * 1',
      [
        '2026-01-01',
        '2026-01-05',
        '2026-01-12',
        '2026-01-15',
        '2026-01-19',
        '2026-01-26',
        '2026-02-01',
        '2026-02-02',
      ],
    ],
    ['a plain * day of month: the weekdays alone', '0 0 * * 1', ['2026-01-05', '2026-01-12', '2026-01-19']],
    [
      'a plain * day of week: the days of month alone',
      '0 0 13 * *',
      ['2026-01-13', '2026-02-13', '2026-03-13'],
    ],
    [
      '"the second Monday" written as 8-14 + MON is either (use MON#2 for both)',
      '0 0 8-14 * MON',
      ['2026-01-05', '2026-01-08', '2026-01-09', '2026-01-10', '2026-01-11', '2026-01-12'],
    ],
    ['MON#2 is the second Monday', '0 0 * * MON#2', ['2026-01-12', '2026-02-09', '2026-03-09']],
    [
      'a list beginning with * counts as * (Debian looks at the first character)',
      '0 0 *,1 * 5',
      ['2026-01-02', '2026-01-09', '2026-01-16'],
    ],
    [
      'L and a weekday restricted: either (the last day, or Sundays)',
      '0 0 L 1 0',
      ['2026-01-04', '2026-01-11', '2026-01-18', '2026-01-25', '2026-01-31', '2027-01-03'],
    ],
    [
      '* and nL: both (the last Friday, when it is an odd day)',
      '0 0 */2 * 5L',
      ['2026-02-27', '2026-03-27', '2026-05-29', '2026-07-31'],
    ],
  ])('%s', (_name, cron, expected) => {
    const times = next(cron, 'UTC', '2025-12-31T00:00:00Z', expected.length);
    expect(times).toEqual(expected.map((d) => `${d}T00:00:00Z`));
  });
});

describe('properties of the day rule and the time of day', () => {
  const DAY_MS = 86_400_000;
  const between = (lo: number, hi: number): fc.Arbitrary<[number, number]> =>
    fc
      .tuple(fc.integer({ min: lo, max: hi }), fc.integer({ min: lo, max: hi }))
      .map(([a, b]) => (a <= b ? [a, b] : [b, a]));
  /** Items of a numeric field: values, ranges, '*', and each with a step. */
  const numericItem = (lo: number, hi: number, names: string[] = []): fc.Arbitrary<string> => {
    const value = names.length
      ? fc.oneof(
          fc.integer({ min: lo, max: hi }).map(String),
          fc.integer({ min: 0, max: names.length - 1 }).map((i) => (names[i] as string).toUpperCase()),
        )
      : fc.integer({ min: lo, max: hi }).map(String);
    const range = between(lo, hi).map(([a, b]) => `${a}-${b}`);
    const step = fc.integer({ min: 1, max: hi });
    return fc.oneof(
      fc.constant('*'),
      value,
      range,
      fc.tuple(fc.oneof(fc.constant('*'), range), step).map(([r, n]) => `${r}/${n}`),
      fc.tuple(fc.integer({ min: lo, max: hi }), step).map(([a, n]) => `${a}/${n}`),
    );
  };
  const list = (item: fc.Arbitrary<string>): fc.Arbitrary<string> =>
    fc.array(item, { minLength: 1, maxLength: 3 }).map((items) => items.join(','));
  const domField = list(fc.oneof(numericItem(1, 31), fc.constant('L')));
  const dowField = list(
    fc.oneof(
      numericItem(0, 7, DAYS),
      fc.integer({ min: 0, max: 7 }).map((d) => `${d}L`),
      fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 1, max: 5 })).map(([d, k]) => `${d}#${k}`),
      fc.constantFrom('FRIL', 'MON#2', 'sun#1'),
    ),
  );
  const monthField = fc.oneof(fc.constant('*'), list(numericItem(1, 12, MONTHS)));
  const start = fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2030, 0, 1) });

  it("days match the independent reference of Debian cron's rule, with L, nL, n#k, names and steps", () => {
    fc.assert(
      fc.property(domField, monthField, dowField, start, (dom, month, dow, from) => {
        const cron = `0 0 ${dom} ${month} ${dow}`;
        const until = from + 400 * DAY_MS;
        const expected: number[] = [];
        for (let t = Math.ceil(from / DAY_MS) * DAY_MS; t <= until; t += DAY_MS) {
          if (t > from && refDayMatches(new Date(t), dom, month, dow)) expected.push(t);
        }
        let schedule;
        try {
          schedule = parseSchedule(cron, 'UTC');
        } catch (err) {
          expect((err as Error).message).toMatch(/never fires/);
          expect(expected).toEqual([]);
          return;
        }
        expect([...fireTimes(schedule, from, until)].map((d) => d.getTime())).toEqual(expected);
      }),
      { numRuns: 400 },
    );
  });

  it("the time of day and the month agree with cron-parser where its day rule is Debian's (a * day field)", () => {
    // cron-parser refuses lists whose values overlap, so lists here are of distinct values.
    const field = (lo: number, hi: number, names: string[] = []): fc.Arbitrary<string> =>
      fc.oneof(
        numericItem(lo, hi, names),
        fc
          .uniqueArray(fc.integer({ min: lo, max: hi }), { minLength: 2, maxLength: 4 })
          .map((v) => v.join(',')),
      );
    fc.assert(
      fc.property(
        field(0, 59),
        field(0, 59),
        field(0, 23),
        fc.oneof(fc.constant('*'), field(1, 12, MONTHS)),
        fc.constantFrom('* *', '* *', '* 1-5', '1 *', '*/2 *'),
        start,
        (second, minute, hour, month, days, from) => {
          const [dom, dow] = days.split(' ') as [string, string];
          const six = `${second} ${minute} ${hour} ${dom} ${month} ${dow}`;
          const theirs = CronExpressionParser.parse(six, { tz: 'UTC', currentDate: new Date(from) })
            .take(25)
            .map((d) => d.getTime());
          const ours = nextFireTimes(parseSchedule(six, 'UTC'), from, 25).map((d) => d.getTime());
          expect(ours).toEqual(theirs);
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('next fire times across DST (Debian cron semantics)', () => {
  it.each([
    // Europe/Berlin springs forward 2026-03-29 02:00 -> 03:00 (CET -> CEST).
    [
      'Berlin: a fixed time skipped by the jump fires right after it',
      '30 2 * * *',
      'Europe/Berlin',
      '2026-03-28T00:00:00Z',
      ['2026-03-28T01:30:00Z', '2026-03-29T01:00:00Z', '2026-03-30T00:30:00Z'],
    ],
    [
      'Berlin: several skipped fixed times fire once at the jump',
      '0,30 2 * * *',
      'Europe/Berlin',
      '2026-03-29T00:00:00Z',
      ['2026-03-29T01:00:00Z', '2026-03-30T00:00:00Z'],
    ],
    // Berlin falls back 2026-10-25 03:00 CEST -> 02:00 CET.
    [
      'Berlin: a fixed time repeated by the fall-back fires once, at its first occurrence',
      '30 2 * * *',
      'Europe/Berlin',
      '2026-10-24T12:00:00Z',
      ['2026-10-25T00:30:00Z', '2026-10-26T01:30:00Z'],
    ],
    [
      'Berlin: hourly stays every real hour through the fall-back',
      '0 * * * *',
      'Europe/Berlin',
      '2026-10-24T23:30:00Z',
      ['2026-10-25T00:00:00Z', '2026-10-25T01:00:00Z', '2026-10-25T02:00:00Z', '2026-10-25T03:00:00Z'],
    ],
    [
      'Berlin: hourly stays every real hour through the spring jump',
      '@hourly',
      'Europe/Berlin',
      '2026-03-28T23:30:00Z',
      ['2026-03-29T00:00:00Z', '2026-03-29T01:00:00Z', '2026-03-29T02:00:00Z'],
    ],
    // New York springs forward 2026-03-08 02:00 -> 03:00, falls back 2026-11-01 02:00 -> 01:00.
    [
      'New York: 02:30 on the spring-forward day fires at 03:00 EDT',
      '30 2 * * *',
      'America/New_York',
      '2026-03-07T12:00:00Z',
      ['2026-03-08T07:00:00Z', '2026-03-09T06:30:00Z'],
    ],
    [
      'New York: 01:30 on the fall-back day fires once, in EDT',
      '30 1 * * *',
      'America/New_York',
      '2026-10-31T12:00:00Z',
      ['2026-11-01T05:30:00Z', '2026-11-02T06:30:00Z'],
    ],
    [
      'New York: every 30 minutes runs through the repeated hour twice',
      '*/30 1 * * *',
      'America/New_York',
      '2026-11-01T04:00:00Z',
      ['2026-11-01T05:00:00Z', '2026-11-01T05:30:00Z', '2026-11-01T06:00:00Z', '2026-11-01T06:30:00Z'],
    ],
    [
      'New York: a wildcard schedule skips the hour that does not exist',
      '*/30 2 * * *',
      'America/New_York',
      '2026-03-08T00:00:00Z',
      ['2026-03-09T06:00:00Z', '2026-03-09T06:30:00Z'],
    ],
    // Lord Howe shifts by 30 minutes: back 2026-04-05 02:00 -> 01:30, forward 2026-10-04 02:00 -> 02:30.
    [
      'Lord Howe: a fixed time in the half-hour repeat fires once',
      '45 1 * * *',
      'Australia/Lord_Howe',
      '2026-04-04T00:00:00Z',
      ['2026-04-04T14:45:00Z', '2026-04-05T15:15:00Z'],
    ],
    [
      'Lord Howe: a fixed time in the half-hour gap fires at 02:30',
      '15 2 * * *',
      'Australia/Lord_Howe',
      '2026-10-02T12:00:00Z',
      ['2026-10-02T15:45:00Z', '2026-10-03T15:30:00Z', '2026-10-04T15:15:00Z'],
    ],
    [
      'Lord Howe: every 15 minutes repeats the doubled half hour',
      '*/15 1 * * *',
      'Australia/Lord_Howe',
      '2026-04-04T14:20:00Z',
      ['2026-04-04T14:30:00Z', '2026-04-04T14:45:00Z', '2026-04-04T15:00:00Z', '2026-04-04T15:15:00Z'],
    ],
    // Shanghai has no DST: a daily time is always 8 hours ahead of UTC.
    [
      'Shanghai: a daily 02:00 is 18:00 UTC the day before, every day',
      '0 2 * * *',
      'Asia/Shanghai',
      '2026-03-27T00:00:00Z',
      ['2026-03-27T18:00:00Z', '2026-03-28T18:00:00Z', '2026-03-29T18:00:00Z'],
    ],
    [
      'seconds: a 6-field schedule fires on seconds',
      '*/20 * * * * *',
      'UTC',
      '2026-01-01T00:00:05Z',
      ['2026-01-01T00:00:20Z', '2026-01-01T00:00:40Z', '2026-01-01T00:01:00Z'],
    ],
  ])('%s', (_name, cron, zone, from, expected) => {
    expect(next(cron, zone, from, expected.length)).toEqual(expected);
  });

  it('treats the start time as exclusive', () => {
    expect(next('0 * * * *', 'UTC', '2026-01-01T05:00:00Z', 1)).toEqual(['2026-01-01T06:00:00Z']);
  });

  it('stops a bounded walk at the end time', () => {
    const s = parseSchedule('0 * * * *', 'UTC');
    const times = [...fireTimes(s, new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T03:00:00Z'))];
    expect(iso(times)).toEqual(['2026-01-01T01:00:00Z', '2026-01-01T02:00:00Z', '2026-01-01T03:00:00Z']);
  });
});

describe('properties of fire times', () => {
  const zones = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Shanghai'];
  const crons = ['30 2 * * *', '0 * * * *', '*/15 1-3 * * *', '0 0 * * 0', '15 1,2 * * *', '0 */6 * * *'];
  const start = fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2030, 0, 1) });

  it('are strictly increasing and after the start', () => {
    fc.assert(
      fc.property(fc.constantFrom(...zones), fc.constantFrom(...crons), start, (zone, cron, from) => {
        const times = nextFireTimes(parseSchedule(cron, zone), from, 12).map((d) => d.getTime());
        expect(times.length).toBe(12);
        expect(times[0]).toBeGreaterThan(from);
        for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThan(times[i - 1] as number);
      }),
      { numRuns: 150 },
    );
  });

  it('resume from any fire time without skipping or repeating (restart safety)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...zones),
        fc.constantFrom(...crons),
        start,
        fc.nat(8),
        (zone, cron, from, k) => {
          const s = parseSchedule(cron, zone);
          const all = nextFireTimes(s, from, 12).map((d) => d.getTime());
          const resumed = nextFireTimes(s, all[k] as number, 12 - k - 1).map((d) => d.getTime());
          expect(resumed).toEqual(all.slice(k + 1));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('a fixed-time daily schedule fires exactly once per local day', () => {
    fc.assert(
      fc.property(fc.constantFrom(...zones), start, fc.integer({ min: 0, max: 23 }), (zone, from, hour) => {
        const times = nextFireTimes(parseSchedule(`30 ${hour} * * *`, zone), from, 30);
        const days = times.map((t) => new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(t));
        expect(new Set(days).size).toBe(days.length);
      }),
      { numRuns: 100 },
    );
  });

  it('an hourly wildcard schedule is always one real hour apart', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('Europe/Berlin', 'America/New_York', 'Asia/Shanghai'),
        start,
        (zone, from) => {
          const times = nextFireTimes(parseSchedule('0 * * * *', zone), from, 48).map((d) => d.getTime());
          for (let i = 1; i < times.length; i++)
            expect((times[i] as number) - (times[i - 1] as number)).toBe(3_600_000);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('latestFireTime', () => {
  it('finds the most recent time in a window, exclusive start and inclusive end', () => {
    const s = parseSchedule('0 * * * *', 'UTC');
    expect(latestFireTime(s, new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T05:00:00Z'))).toEqual(
      new Date('2026-01-01T05:00:00Z'),
    );
    expect(
      latestFireTime(s, new Date('2026-01-01T05:00:00Z'), new Date('2026-01-01T05:59:59Z')),
    ).toBeUndefined();
  });

  it('finds a yearly time years back and a per-second time without walking the whole gap', () => {
    const yearly = parseSchedule('@yearly', 'UTC');
    expect(
      latestFireTime(yearly, new Date('2020-06-01T00:00:00Z'), new Date('2026-06-01T00:00:00Z')),
    ).toEqual(new Date('2026-01-01T00:00:00Z'));
    const everySecond = parseSchedule('* * * * * *', 'UTC');
    expect(
      latestFireTime(everySecond, new Date('2020-01-01T00:00:00Z'), new Date('2026-06-01T00:00:00.500Z')),
    ).toEqual(new Date('2026-06-01T00:00:00Z'));
  });
});

describe('dueRun: missed runs', () => {
  const hourly = parseSchedule('0 * * * *', 'UTC');
  const created = new Date('2026-01-01T00:10:00Z');

  it('is idle before the first fire time after creation', () => {
    expect(dueRun({ schedule: hourly, createdAt: created, now: new Date('2026-01-01T00:59:00Z') })).toEqual({
      kind: 'idle',
    });
  });

  it('does not fire for a time before the schedule existed', () => {
    const r = dueRun({ schedule: hourly, createdAt: created, now: new Date('2026-01-01T00:10:30Z') });
    expect(r.kind).toBe('idle');
  });

  it('takes the on-time run', () => {
    const r = dueRun({ schedule: hourly, createdAt: created, now: new Date('2026-01-01T01:00:02Z') });
    expect(r).toMatchObject({
      kind: 'due',
      scheduledTime: new Date('2026-01-01T01:00:00Z'),
      skippedEarlier: false,
    });
  });

  it('after an outage takes one catch-up run for the most recent missed time, never a burst', () => {
    const r = dueRun({
      schedule: hourly,
      createdAt: created,
      lastScheduleTime: new Date('2026-01-01T01:00:00Z'),
      now: new Date('2026-01-01T06:20:00Z'),
    });
    expect(r).toMatchObject({
      kind: 'due',
      scheduledTime: new Date('2026-01-01T06:00:00Z'),
      skippedEarlier: true,
    });
  });

  it('skips a missed time older than startingDeadlineSeconds', () => {
    const r = dueRun({
      schedule: hourly,
      createdAt: created,
      lastScheduleTime: new Date('2026-01-01T01:00:00Z'),
      now: new Date('2026-01-01T06:20:00Z'),
      startingDeadlineSeconds: 600,
    });
    expect(r).toMatchObject({ kind: 'too-late', scheduledTime: new Date('2026-01-01T06:00:00Z') });
  });

  it('takes a late run within startingDeadlineSeconds', () => {
    const r = dueRun({
      schedule: hourly,
      createdAt: created,
      lastScheduleTime: new Date('2026-01-01T05:00:00Z'),
      now: new Date('2026-01-01T06:05:00Z'),
      startingDeadlineSeconds: 600,
    });
    expect(r).toMatchObject({ kind: 'due', lateMs: 300_000 });
  });

  it('is idle once the due time was taken (restart after the run)', () => {
    const r = dueRun({
      schedule: hourly,
      createdAt: created,
      lastScheduleTime: new Date('2026-01-01T06:00:00Z'),
      now: new Date('2026-01-01T06:20:00Z'),
    });
    expect(r.kind).toBe('idle');
  });

  it('never yields more than one run, whatever the outage (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 400 * 86_400 }),
        fc.integer({ min: 0, max: 86_400 }),
        (down, offset) => {
          const last = new Date(Date.UTC(2026, 0, 1) + offset * 1000);
          const now = new Date(last.getTime() + down * 1000);
          const r = dueRun({ schedule: hourly, createdAt: new Date(0), lastScheduleTime: last, now });
          if (r.kind === 'idle') {
            expect(latestFireTime(hourly, last, now)).toBeUndefined();
          } else {
            expect(r.scheduledTime.getTime()).toBeLessThanOrEqual(now.getTime());
            expect(r.scheduledTime.getTime()).toBeGreaterThan(last.getTime());
            expect(now.getTime() - r.scheduledTime.getTime()).toBeLessThan(3_600_000);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
