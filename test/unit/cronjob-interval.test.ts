/**
 * README "Install": the cronjob overlay and the chart's cronjob mode run `snapcron tick
 * --interval=…` on a CronJob whose schedule must fire exactly that often (the tick warns about
 * startingDeadlineSeconds shorter than the interval, and plans for it).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { nextFireTimes, parseSchedule } from '../../src/schedule/cron.ts';
import { parseDuration } from '../../src/schedule/duration.ts';

/** The gaps between the next 300 fire times (a day of 5-minute fires), in ms. */
const gaps = (cron: string): Set<number> => {
  const times = nextFireTimes(parseSchedule(cron), new Date('2026-03-01T00:00:00Z'), 300).map((d) =>
    d.getTime(),
  );
  return new Set(times.slice(1).map((t, i) => t - (times[i] as number)));
};

describe("the tick CronJob's schedule and its --interval", () => {
  it('deploy/overlays/cronjob: the schedule fires every --interval, no more, no less', () => {
    const job = parseAllDocuments(readFileSync('deploy/overlays/cronjob/cronjob.yaml', 'utf8'))
      .map((d) => d.toJS() as { kind?: string; spec?: Record<string, unknown> })
      .find((d) => d.kind === 'CronJob');
    const schedule = String(job?.spec?.schedule);
    const args = JSON.stringify(job).match(/"--interval=([^"]+)"/)?.[1] ?? '';
    expect(args).not.toBe('');
    expect([...gaps(schedule)]).toEqual([parseDuration(args)]);
  });

  it("the chart's defaults: cronjob.schedule fires every cronjob.interval", () => {
    const values = parse(readFileSync('deploy/helm/snapcron/values.yaml', 'utf8')) as {
      cronjob: { schedule: string; interval: string };
    };
    expect([...gaps(values.cronjob.schedule)]).toEqual([parseDuration(values.cronjob.interval)]);
    expect(readFileSync('deploy/helm/snapcron/templates/cronjob.yaml', 'utf8')).toMatch(
      /args: \[tick, --interval=\{\{ \.Values\.cronjob\.interval \}\}\]/,
    );
  });
});
