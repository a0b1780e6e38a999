import { GROUP_SNAPSHOT_KIND } from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../api/objects.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import { objectRef, validateSchedule } from '../api/validate.ts';
import { asRecoveryPoint, groupOfMember, groupRestores, membersByGroup } from '../group/recovery-points.ts';
import { belongsTo, planRetention, type Verdict } from '../retention/plan.ts';
import { sourcePvc } from '../retention/snapshot-state.ts';
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
      description:
        'VolumeSnapshots, e.g. from kubectl get volumesnapshots -o json; for schedules with spec.group add their VolumeGroupSnapshots (kubectl get volumesnapshots,volumegroupsnapshots -o json)',
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

/** A member VolumeSnapshot of a recovery point, as the plan shows it. */
interface Member {
  pvc: string;
  name: string;
  readyToUse: boolean;
  restoreSize: string | null;
}

interface Result {
  schedule: SnapshotSchedule;
  verdicts: Verdict[];
  /** With spec.group: each recovery point's members, by its name. */
  members?: Map<string, Member[]>;
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
  const groupSnapshots = readObjects(values.snapshots).filter(
    (o) => (o as { kind?: unknown }).kind === GROUP_SNAPSHOT_KIND,
  ) as VolumeGroupSnapshot[];
  const pvcs = values.pvcs ? objectsOfKind<PersistentVolumeClaim>(values.pvcs, 'PersistentVolumeClaim') : [];

  const results: Result[] = [];
  for (const schedule of schedules) {
    const namespace = schedule.metadata?.namespace ?? 'default';
    const name = schedule.metadata?.name ?? '';
    const inNamespace = (o: { metadata: { namespace?: string } }): boolean =>
      (o.metadata.namespace ?? namespace) === namespace;
    const nsSnapshots = snapshots.filter(inNamespace).map((s) => withNamespace(s, namespace));
    const nsPvcs = pvcs.filter(inNamespace).map((p) => withNamespace(p, namespace));
    const input = {
      scheduleName: name,
      retention: schedule.spec.retention,
      timeZone: schedule.spec.timeZone ?? 'UTC',
      snapshots: nsSnapshots,
      pvcs: nsPvcs,
      now: at,
    };
    if (!schedule.spec.group) {
      results.push({ schedule, verdicts: planRetention(input).verdicts });
      continue;
    }
    // Recovery points, judged as the controller judges them (src/group): a group whole.
    const byGroup = membersByGroup(nsSnapshots);
    const members = new Map<string, Member[]>();
    const points = groupSnapshots
      .filter(inNamespace)
      .map((g) => withNamespace(g, namespace))
      .filter((g) => belongsTo(g as unknown as VolumeSnapshot, name) && !g.metadata.deletionTimestamp)
      .map((g) => {
        const own = byGroup.get(g.metadata.name ?? '') ?? [];
        members.set(
          g.metadata.name ?? '',
          own
            .map((m) => ({
              pvc: sourcePvc(m) ?? '',
              name: m.metadata.name ?? '',
              readyToUse: m.status?.readyToUse === true,
              restoreSize: m.status?.restoreSize ?? null,
            }))
            .sort((a, b) => a.pvc.localeCompare(b.pvc) || a.name.localeCompare(b.name)),
        );
        return asRecoveryPoint(g, own);
      });
    const memberOf = new Map(nsSnapshots.map((s) => [s.metadata.name ?? '', groupOfMember(s)]));
    const plan = planRetention({
      ...input,
      snapshots: points,
      pvcs: groupRestores(nsPvcs, (ns, snapshot) => (ns === namespace ? memberOf.get(snapshot) : undefined)),
    });
    results.push({ schedule, verdicts: plan.verdicts, members });
  }

  if (values.output === 'json') {
    const rows = results.flatMap(({ schedule, verdicts, members }) =>
      verdicts.map((v) => ({
        schedule: schedule.metadata?.name,
        namespace: v.namespace,
        name: v.name,
        // A recovery point names its group and member snapshots where a snapshot names its PVC.
        ...(members ? { group: v.pvc, members: members.get(v.name) ?? [] } : { pvc: v.pvc }),
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
  for (const { schedule, verdicts, members } of results) {
    const zone = schedule.spec.timeZone ?? 'UTC';
    const deletions = verdicts.filter((v) => v.verdict === 'delete').length;
    const what = members ? ' (recovery points: VolumeGroupSnapshots, each kept or deleted whole)' : '';
    out(
      `SnapshotSchedule ${objectRef(schedule)} at ${isoUtc(at)}: ${verdicts.length - deletions} keep, ${deletions} delete${what}`,
    );
    const units = [...new Set(verdicts.map((v) => v.pvc))];
    if (units.length === 0)
      out(`  no ${members ? 'VolumeGroupSnapshots' : 'snapshots'} of this schedule in the list`);
    for (const unit of units) {
      out(members ? `\nGroup ${unit || '<unknown>'}` : `\nPVC ${unit || '<unknown>'}`);
      const own = verdicts.filter((v) => v.pvc === unit);
      const rows = own.map((v) => [
        v.name,
        localTime(v.time, zone),
        v.state,
        v.verdict.toUpperCase(),
        v.reasons.join(',') + (v.overridden.length ? ` (overrides ${v.overridden.join(',')})` : ''),
      ]);
      const lines = table(['NAME', 'TIME', 'STATE', 'VERDICT', 'REASONS'], rows).split('\n');
      out(lines[0]?.replace(/^/, '  ') ?? '');
      own.forEach((v, i) => {
        out(`  ${lines[i + 1] ?? ''}`);
        // Under each recovery point, what a restore of the group reads: member PVC -> snapshot.
        for (const m of members?.get(v.name) ?? [])
          out(
            `      ${m.pvc || '<unknown>'} -> ${m.name} (${m.readyToUse ? 'ready' : 'not ready'}${m.restoreSize ? `, ${m.restoreSize}` : ''})`,
          );
      });
    }
  }
  return 0;
}

function withNamespace<T extends { metadata: { namespace?: string } }>(o: T, namespace: string): T {
  return o.metadata.namespace ? o : { ...o, metadata: { ...o.metadata, namespace } };
}
