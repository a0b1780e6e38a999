import { nextFireTimes, parseSchedule, ScheduleError } from '../schedule/cron.ts';
import { UserError } from './errors.ts';
import { isoUtc, localTime } from './format.ts';
import { parseTimeFlag } from './manifests.ts';
import { defineCommand, parseCommand, usageError } from './options.ts';

export const nextCommand = defineCommand({
  name: 'next',
  summary: 'Prints the next fire times of a cron schedule, in UTC and in its time zone.',
  positionals: '"<cron>"',
  options: {
    tz: { type: 'string', default: 'UTC', value: 'ZONE', description: 'IANA time zone the schedule runs in' },
    from: {
      type: 'string',
      value: 'RFC3339',
      shownDefault: 'now',
      description: 'list fire times strictly after this instant',
    },
    count: { type: 'string', default: '5', value: 'N', description: 'how many fire times, 1 to 10000' },
    output: { type: 'string', short: 'o', default: 'text', value: 'FORMAT', description: 'text or json' },
  },
});

export function runNext(args: string[], now: Date, out: (line: string) => void): number {
  const { values, positionals } = parseCommand(nextCommand, args);
  if (positionals.length !== 1)
    throw usageError(
      nextCommand,
      positionals.length === 0 ? 'missing the cron expression' : 'one cron expression only (quote it)',
    );
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
