/**
 * Validation of a SnapshotSchedule without a cluster: the CRD's own OpenAPI schema
 * (ajv's code for it, generated ahead of time) plus the rules the CRD states in CEL and those only code can
 * check (a cron that parses, a zone the tz database or ICU knows). The controller reports the same
 * errors as an InvalidSpec condition; `snapcron validate` prints them.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { parseSchedule, ScheduleError } from '../schedule/cron.ts';
import { DurationError, parseDuration } from '../schedule/duration.ts';
import { GROUP, SCHEDULE_KIND, VERSION } from './constants.ts';
import { validate as generatedValidator } from './schedule-validator.generated.ts';
import type { SnapshotSchedule } from './types.generated.ts';

export interface FieldError {
  /** Dotted path from the object root, e.g. `spec.retention.maxCount`. */
  path: string;
  message: string;
}

/** The CRD's schema, compiled by ajv when the CRD changes (`npm run gen`), not at run time. */
const schemaValidator = generatedValidator as unknown as ValidateFunction;

const dotted = (instancePath: string): string =>
  instancePath
    .split('/')
    .filter(Boolean)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : p))
    .join('.')
    .replace(/\.\[/g, '[');

function schemaErrorText(e: ErrorObject): FieldError {
  const path = dotted(e.instancePath);
  const at = (child: string): string => (path ? `${path}.${child}` : child);
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = String((e.params as { additionalProperty: string }).additionalProperty);
      return {
        path: at(field),
        message: `unknown field "${field}": remove it or fix its spelling (kubectl explain snapshotschedule.${path || 'spec'})`,
      };
    }
    case 'required': {
      const field = String((e.params as { missingProperty: string }).missingProperty);
      return { path: at(field), message: 'required field is missing' };
    }
    case 'enum': {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String).join(', ');
      return { path, message: `must be one of: ${allowed}` };
    }
    default:
      return { path, message: e.message ?? 'is invalid' };
  }
}

/** Rules the CRD expresses in CEL, and checks only code can make. */
function semanticErrors(s: SnapshotSchedule): FieldError[] {
  const errors: FieldError[] = [];
  const spec = s.spec as Partial<SnapshotSchedule['spec']> | undefined;
  if (!spec || typeof spec !== 'object') return errors;
  if (typeof spec.schedule === 'string' && typeof (spec.timeZone ?? 'UTC') === 'string') {
    try {
      parseSchedule(spec.schedule, spec.timeZone ?? 'UTC');
    } catch (err) {
      if (!(err instanceof ScheduleError)) throw err;
      errors.push({ path: `spec.${err.field}`, message: err.message });
    }
  }
  const retention = spec.retention;
  if (!retention || typeof retention !== 'object') return errors;
  if (retention.maxCount === undefined && retention.expires === undefined && retention.keep === undefined) {
    errors.push({
      path: 'spec.retention',
      message: 'retention needs at least one of maxCount, expires, keep (e.g. maxCount: 7)',
    });
  }
  const durations = { expires: '7d', failedAfter: '1h', pendingDeadline: '6h' } as const;
  for (const [field, example] of Object.entries(durations) as [keyof typeof durations, string][]) {
    const text = retention[field];
    if (typeof text !== 'string') continue;
    try {
      parseDuration(text);
    } catch (err) {
      if (!(err instanceof DurationError)) throw err;
      const zero = field !== 'expires' && /^(0+[smhdw])+$/.test(text);
      errors.push({
        path: `spec.retention.${field}`,
        message: zero ? `"${text}" is zero: ${field} must be longer than zero, e.g. ${example}` : err.message,
      });
    }
  }
  if (
    retention.keep &&
    typeof retention.keep === 'object' &&
    Object.values(retention.keep).every((v) => v === undefined)
  ) {
    errors.push({
      path: 'spec.retention.keep',
      message: 'keep needs at least one of last, hourly, daily, weekly, monthly, yearly',
    });
  }
  const expressions = spec.claimSelector?.matchExpressions;
  (Array.isArray(expressions) ? expressions : []).forEach((req, i) => {
    const needsValues = req.operator === 'In' || req.operator === 'NotIn';
    const has = (req.values?.length ?? 0) > 0;
    if (needsValues !== has) {
      errors.push({
        path: `spec.claimSelector.matchExpressions[${i}].values`,
        message: needsValues
          ? `operator ${req.operator} needs at least one value`
          : `operator ${req.operator} takes no values: remove them`,
      });
    }
  });
  // The CRD's CEL rules on spec.group (a schedule stored before they existed still gets them).
  const group = spec.group;
  if (group && typeof group === 'object') {
    if (group.by === 'Label' && !group.labelKey)
      errors.push({
        path: 'spec.group.labelKey',
        message: 'group.by Label needs labelKey, e.g. app.kubernetes.io/instance',
      });
    if (group.by !== 'Label' && group.labelKey)
      errors.push({ path: 'spec.group.labelKey', message: 'labelKey is only for group.by Label: remove it' });
    if (spec.snapshotClassName)
      errors.push({
        path: 'spec.snapshotClassName',
        message: 'with group set, name the class in spec.group.volumeGroupSnapshotClassName instead',
      });
    const sel = spec.claimSelector;
    if (
      !sel ||
      (Object.keys(sel.matchLabels ?? {}).length === 0 && (sel.matchExpressions ?? []).length === 0)
    )
      errors.push({
        path: 'spec.claimSelector',
        message:
          'group needs a non-empty claimSelector: the VolumeGroupSnapshot selects its members by labels',
      });
  }
  // The CRD's CEL rules on spec.hooks, for snapcron validate.
  for (const which of ['pre', 'post'] as const) {
    const hook = spec.hooks?.[which];
    if (!hook || typeof hook !== 'object') continue;
    const reqs = hook.podSelector?.matchExpressions;
    (Array.isArray(reqs) ? reqs : []).forEach((req, i) => {
      const needsValues = req.operator === 'In' || req.operator === 'NotIn';
      if (needsValues !== (req.values?.length ?? 0) > 0)
        errors.push({
          path: `spec.hooks.${which}.podSelector.matchExpressions[${i}].values`,
          message: needsValues
            ? `operator ${req.operator} needs at least one value`
            : `operator ${req.operator} takes no values: remove them`,
        });
    });
    if (Array.isArray(hook.command) && hook.command[0] === '')
      errors.push({
        path: `spec.hooks.${which}.command`,
        message: 'the first item, the program to run, must not be empty',
      });
  }
  for (const part of ['labels', 'annotations'] as const) {
    const map = spec.snapshotTemplate?.[part];
    for (const key of map && typeof map === 'object' ? Object.keys(map) : []) {
      if (key.startsWith('snapcron.io/')) {
        errors.push({
          path: `spec.snapshotTemplate.${part}`,
          message: `key "${key}" is reserved for snapcron: use another prefix`,
        });
      }
    }
  }
  return errors;
}

/**
 * Validates one object (already parsed from YAML/JSON). Applies the CRD's defaults
 * to a copy and returns it with the errors, so callers see what the API server would store.
 */
export function validateSchedule(obj: unknown): { errors: FieldError[]; schedule?: SnapshotSchedule } {
  if (obj === null || typeof obj !== 'object') return { errors: [{ path: '', message: 'not an object' }] };
  const copy = structuredClone(obj) as Record<string, unknown>;
  const expected = `${GROUP}/${VERSION}`;
  if (copy.apiVersion !== expected || copy.kind !== SCHEDULE_KIND) {
    return {
      errors: [
        {
          path: 'kind',
          message: `expected apiVersion ${expected}, kind ${SCHEDULE_KIND}; got ${String(copy.apiVersion)}, ${String(copy.kind)}`,
        },
      ],
    };
  }
  const schemaOk = schemaValidator(copy);
  const schedule = copy as unknown as SnapshotSchedule;
  // Semantic rules give the friendlier message where both catch the same field.
  const semantic = semanticErrors(schedule);
  const semanticPaths = new Set(semantic.map((e) => e.path));
  const seen = new Set<string>();
  const errors = [
    ...(schemaOk ? [] : (schemaValidator.errors ?? []).map(schemaErrorText)).filter(
      (e) => !(e.message.startsWith('must match pattern') && semanticPaths.has(e.path)),
    ),
    ...semantic,
  ].filter((e) => {
    const key = `${e.path}\0${e.message}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
  return errors.length === 0 ? { errors, schedule } : { errors };
}

/** `namespace/name` of an object for messages. */
export function objectRef(obj: unknown): string {
  const meta = (obj as { metadata?: { name?: string; namespace?: string } } | null)?.metadata;
  return `${meta?.namespace ?? 'default'}/${meta?.name ?? '<no name>'}`;
}

/**
 * validateStoredSpec's answers by the spec object they were computed from. Cached objects are
 * replaced on every change, never edited in place, so an unchanged spec is the same object:
 * every pass and report refresh of an unchanged schedule skips the copy and the schema walk.
 */
const storedSpecResults = new WeakMap<
  object,
  { version: string; result: ReturnType<typeof validateSchedule> }
>();

/** Validates a schedule's spec as stored (the object's metadata and status are not the user's to fix here). */
export function validateStoredSpec(s: SnapshotSchedule): ReturnType<typeof validateSchedule> {
  const spec: unknown = s.spec;
  if (!spec || typeof spec !== 'object') return validateStoredSpecUncached(s);
  const version = `${s.apiVersion}\0${s.kind}`;
  const hit = storedSpecResults.get(spec);
  if (hit?.version === version) return hit.result;
  const result = validateStoredSpecUncached(s);
  storedSpecResults.set(spec, { version, result });
  return result;
}

function validateStoredSpecUncached(s: SnapshotSchedule): ReturnType<typeof validateSchedule> {
  return validateSchedule({
    ...s,
    apiVersion: s.apiVersion ?? 'snapcron.io/v1',
    kind: s.kind ?? 'SnapshotSchedule',
    metadata: undefined,
    status: undefined,
  });
}
