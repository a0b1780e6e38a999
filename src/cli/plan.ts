import type { PersistentVolumeClaim, VolumeSnapshot } from '../api/objects.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import { objectRef, validateSchedule } from '../api/validate.ts';
import { planRetention, type Verdict } from '../retention/plan.ts';
import { UserError } from './errors.ts';
import { isoUtc, localTime, table } from './format.ts';
import { parseTimeFlag, readObjects } from './manifests.ts';
import { defineCommand, parseCommand } from './options.ts';

export const planCommand = defineCommand({
  name: 'plan',
  summary: 'Shows what retention would keep and delete, with reasons, from files: no cluster needed.',
  options: {
    filename: {
      type: 'string',
      short: 'f',
      required: true,
      value: 'FILE',
      description: 'the SnapshotSchedule(s), YAML or JSON',
    },
    snapshots: {
      type: 'string',
      required: true,
      value: 'FILE',
      description: 'VolumeSnapshots, e.g. from kubectl get volumesnapshots -o json',
    },
    pvcs: {
      type: 'string',
      value: 'FILE',
      description: 'PVCs, e.g. from kubectl get pvc -o json; without them restore sources in use are unknown',
    },
    now: { type: 'string', value: 'RFC3339', shownDefault: 'now', description: 'plan as of this time' },
    output: { type: 'string', short: 'o', default: 'table', value: 'FORMAT', description: 'table or json' },
  },
});

function objectsOfKind<T>(file: string, kind: string): T[] {
  return readObjects(file).filter((o) => {
    const k = (o as { kind?: unknown }).kind;
    // `kubectl get -o json` items carry their kind; hand-written lists may not.
    return k === undefined || k === kind;
  }) as T[];
}

/** What a retention policy would keep and delete, from files: no cluster needed. */
export function runPlan(args: string[], now: Date, out: (line: string) => void): number {
  const { values } = parseCommand(planCommand, args);
  if (values.output !== 'table' && values.output !== 'json') {
    throw new UserError(`-o "${values.output}": use table or json`, 2);
  }
  const at = parseTimeFlag('now', values.now, now);
  const schedules: SnapshotSchedule[] = [];
  for (const obj of readObjects(values.filename)) {
    const { errors, schedule } = validateSchedule(obj);
    const first = errors[0];
    if (first || !schedule) {
      throw new UserError(
        `${values.filename}: SnapshotSchedule ${objectRef(obj)}: ${first?.path ?? ''}: ${first?.message ?? 'invalid'} (run snapcron validate -f ${values.filename} for every error)`,
      );
    }
    schedules.push(schedule);
  }
  if (schedules.length === 0) throw new UserError(`${values.filename}: no SnapshotSchedule found`);
  const snapshots = objectsOfKind<VolumeSnapshot>(values.snapshots, 'VolumeSnapshot');
  const pvcs = values.pvcs ? objectsOfKind<PersistentVolumeClaim>(values.pvcs, 'PersistentVolumeClaim') : [];

  const results: { schedule: SnapshotSchedule; verdicts: Verdict[] }[] = [];
  for (const schedule of schedules) {
    const namespace = schedule.metadata?.namespace ?? 'default';
    const inNamespace = (o: { metadata: { namespace?: string } }): boolean =>
      (o.metadata.namespace ?? namespace) === namespace;
    const plan = planRetention({
      scheduleName: schedule.metadata?.name ?? '',
      retention: schedule.spec.retention,
      timeZone: schedule.spec.timeZone ?? 'UTC',
      snapshots: snapshots.filter(inNamespace).map((s) => withNamespace(s, namespace)),
      pvcs: pvcs.filter(inNamespace).map((p) => withNamespace(p, namespace)),
      now: at,
    });
    results.push({ schedule, verdicts: plan.verdicts });
  }

  if (values.output === 'json') {
    const rows = results.flatMap(({ schedule, verdicts }) =>
      verdicts.map((v) => ({
        schedule: schedule.metadata?.name,
        namespace: v.namespace,
        name: v.name,
        pvc: v.pvc,
        time: isoUtc(v.time),
        state: v.state,
        verdict: v.verdict,
        reasons: v.reasons,
        ...(v.overridden.length > 0 ? { overridden: v.overridden } : {}),
      })),
    );
    out(JSON.stringify(rows, null, 2));
    return 0;
  }
  for (const { schedule, verdicts } of results) {
    const zone = schedule.spec.timeZone ?? 'UTC';
    const deletions = verdicts.filter((v) => v.verdict === 'delete').length;
    out(
      `SnapshotSchedule ${objectRef(schedule)} at ${isoUtc(at)}: ${verdicts.length - deletions} keep, ${deletions} delete`,
    );
    const pvcNames = [...new Set(verdicts.map((v) => v.pvc))];
    if (pvcNames.length === 0) out('  no snapshots of this schedule in the list');
    for (const pvc of pvcNames) {
      out(`\nPVC ${pvc || '<unknown>'}`);
      const rows = verdicts
        .filter((v) => v.pvc === pvc)
        .map((v) => [
          v.name,
          localTime(v.time, zone),
          v.state,
          v.verdict.toUpperCase(),
          v.reasons.join(',') + (v.overridden.length ? ` (overrides ${v.overridden.join(',')})` : ''),
        ]);
      out(table(['NAME', 'TIME', 'STATE', 'VERDICT', 'REASONS'], rows).replace(/^/gm, '  '));
    }
  }
  return 0;
}

function withNamespace<T extends { metadata: { namespace?: string } }>(o: T, namespace: string): T {
  return o.metadata.namespace ? o : { ...o, metadata: { ...o.metadata, namespace } };
}
