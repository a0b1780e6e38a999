import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
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
    ['an out-of-range minute', '61 * * * *', 'schedule', /not a valid cron/],
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
