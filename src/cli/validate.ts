import { objectRef, validateSchedule } from '../api/validate.ts';
import {
  ackWarnings,
  DEFAULT_TICK_INTERVAL_SECONDS,
  snapshotClassOf,
  tickModeWarnings,
  type SnapshotClassLike,
} from '../api/warnings.ts';
import { UserError } from './errors.ts';
import { readObjects } from './manifests.ts';
import { defineCommand, parseCommand } from './options.ts';

export const validateCommand = defineCommand({
  name: 'validate',
  summary:
    'Checks SnapshotSchedule manifests offline, every error on its own line naming object and field; exits 1 when any is invalid.',
  options: {
    filename: {
      type: 'string',
      short: 'f',
      multiple: true,
      required: true,
      value: 'FILE',
      description: 'YAML or JSON file of SnapshotSchedules, - for stdin',
    },
    'snapshot-classes': {
      type: 'string',
      value: 'FILE',
      description:
        'VolumeSnapshotClasses (e.g. kubectl get volumesnapshotclass -o yaml): warn about ECS limits for schedules whose class is the ACK disk driver',
    },
  },
});

/** Prints every error of every SnapshotSchedule in the files, one a line; 0 when all are valid. */
export function runValidate(
  args: string[],
  out: (line: string) => void,
  err: (line: string) => void,
): number {
  const { values } = parseCommand(validateCommand, args);
  const files = values.filename;
  const classes =
    values['snapshot-classes'] === undefined
      ? []
      : (readObjects(values['snapshot-classes']).filter(
          (o) => (o as { kind?: unknown }).kind === 'VolumeSnapshotClass',
        ) as SnapshotClassLike[]);
  let bad = 0;
  let good = 0;
  for (const file of files) {
    const objects = readObjects(file);
    if (objects.length === 0) throw new UserError(`${file}: no objects found`);
    for (const obj of objects) {
      const ref = `${file}: SnapshotSchedule ${objectRef(obj)}`;
      const { errors, schedule } = validateSchedule(obj);
      if (errors.length === 0) good++;
      else bad++;
      for (const e of errors) err(`${ref}: ${e.path || '(object)'}: ${e.message}`);
      // Valid, but in CronJob mode (deploy/overlays/cronjob/cronjob.yaml ticks every 5 min) most runs would be missed.
      for (const w of schedule ? tickModeWarnings(schedule.spec, DEFAULT_TICK_INTERVAL_SECONDS) : [])
        err(`${ref}: warning: ${w.path}: ${w.message}`);
      // ACK: ECS's limits, for schedules whose class is the ACK disk driver's.
      for (const w of schedule ? ackWarnings(schedule.spec, snapshotClassOf(schedule.spec, classes)) : [])
        err(`${ref}: warning: ${w.path}: ${w.message}`);
    }
  }
  out(`${good} valid, ${bad} invalid`);
  return bad === 0 ? 0 : 1;
}
