import { parseArgs } from 'node:util';
import { objectRef, validateSchedule } from '../api/validate.ts';
import { UserError } from './errors.ts';
import { readObjects } from './manifests.ts';

export const validateUsage = 'snapcron validate -f FILE [-f FILE ...]';

/** Prints every error of every SnapshotSchedule in the files, one a line; 0 when all are valid. */
export function runValidate(
  args: string[],
  out: (line: string) => void,
  err: (line: string) => void,
): number {
  const { values } = parseArgs({
    args,
    options: { filename: { type: 'string', short: 'f', multiple: true } },
  });
  const files = values.filename ?? [];
  if (files.length === 0) throw new UserError(`usage: ${validateUsage}`, 2);
  let bad = 0;
  let good = 0;
  for (const file of files) {
    const objects = readObjects(file);
    if (objects.length === 0) throw new UserError(`${file}: no objects found`);
    for (const obj of objects) {
      const ref = `${file}: SnapshotSchedule ${objectRef(obj)}`;
      const { errors } = validateSchedule(obj);
      if (errors.length === 0) good++;
      else bad++;
      for (const e of errors) err(`${ref}: ${e.path || '(object)'}: ${e.message}`);
    }
  }
  out(`${good} valid, ${bad} invalid`);
  return bad === 0 ? 0 : 1;
}
