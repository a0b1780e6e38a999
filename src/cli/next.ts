import { parseArgs } from 'node:util';
import { nextFireTimes, parseSchedule, ScheduleError } from '../schedule/cron.ts';
import { UserError } from './errors.ts';
import { isoUtc, localTime } from './format.ts';
import { parseTimeFlag } from './manifests.ts';

export const nextUsage = 'snapcron next "<cron>" [--tz ZONE] [--from RFC3339] [--count N] [-o text|json]';

export function runNext(args: string[], now: Date, out: (line: string) => void): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      tz: { type: 'string', default: 'UTC' },
      from: { type: 'string' },
      count: { type: 'string', default: '5' },
      output: { type: 'string', short: 'o', default: 'text' },
    },
  });
  if (positionals.length !== 1) throw new UserError(`usage: ${nextUsage}`, 2);
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1 || count > 10_000) {
    throw new UserError(`--count "${values.count}" must be a whole number from 1 to 10000`, 2);
  }
  if (values.output !== 'text' && values.output !== 'json') {
    throw new UserError(`-o "${values.output}": use text or json`, 2);
  }
  let schedule;
  try {
    schedule = parseSchedule(positionals[0] as string, values.tz);
  } catch (err) {
    if (err instanceof ScheduleError)
      throw new UserError(`${err.field === 'timeZone' ? '--tz' : 'cron'}: ${err.message}`, 1);
    throw err;
  }
  const times = nextFireTimes(schedule, parseTimeFlag('from', values.from, now), count);
  if (values.output === 'json') {
    out(JSON.stringify(times.map(isoUtc)));
  } else {
    for (const t of times) out(`${isoUtc(t)}  ${localTime(t, schedule.timeZone)}`);
  }
  return 0;
}
