/**
 * `snapcron run SCHEDULE`: one extra run now, like `kubectl create job --from=cronjob/x`.
 *
 * It first records the request on the schedule (annotation snapcron.io/run-now = a new value),
 * then takes the run itself in one pass over that schedule, as `snapcron tick` would. The
 * request is durable before anything is created, so a run cut short is finished by the next
 * pass of whoever looks (the controller, a tick, another `run`): none is lost. Every one of them
 * names the run's snapshots from (PVC, schedule, value) alone, so when a running controller
 * answers the same request at the same moment both create the same objects and one meets
 * AlreadyExists: never a duplicate. Acting directly, rather than waiting for a controller, keeps
 * `run` the same whether a controller is up, leading, or watching this namespace at all.
 */
import { LABEL_GROUP, LABEL_SCHEDULE } from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../api/objects.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import { decide } from '../controller/decide.ts';
import { Executor } from '../controller/executor.ts';
import { onDemandSummary, readGroups } from '../controller/tick.ts';
import { Kube } from '../kube/client.ts';
import { EventRecorder } from '../kube/events.ts';
import { errorMessage, statusOf } from '../kube/retry.ts';
import { makeLogger } from '../log.ts';
import { formatDuration, parseDuration } from '../schedule/duration.ts';
import {
  ANNOTATION_RUN_NOW,
  ANNOTATION_RUN_NOW_HOLD,
  LABEL_TRIGGER,
  labelValue,
  TRIGGER_RUN_NOW,
} from '../snapshot/naming.ts';
import { UserError } from './errors.ts';
import { defineCommand, parseCommand, usageError } from './options.ts';

export const runCommand = defineCommand({
  name: 'run',
  summary:
    'Takes one extra run of a schedule now (a snapshot of each selected PVC) without moving its timetable: sets the snapcron.io/run-now annotation, then takes the run in one pass like tick; a controller answering the same request meets the same snapshot names, never a duplicate.',
  positionals: 'SCHEDULE',
  options: {
    namespace: {
      type: 'string',
      short: 'n',
      value: 'NS',
      shownDefault: "the kubeconfig context's",
      description: "the schedule's namespace",
    },
    wait: {
      type: 'boolean',
      default: false,
      description:
        'wait until every snapshot of the run is ready to use, printing each change (a driver error too: the driver may retry); exit 1 if one is deleted first or --timeout passes',
    },
    hold: {
      type: 'boolean',
      default: false,
      description:
        'label the snapshots snapcron.io/hold=true: retention and deletionPolicy Delete keep them until the label is removed',
    },
    timeout: {
      type: 'string',
      default: '10m',
      value: 'DURATION',
      description: 'with --wait: how long to wait, e.g. 90s, 10m',
    },
    'log-level': {
      type: 'string',
      value: 'LEVEL',
      shownDefault: '$SNAPCRON_LOG_LEVEL, else warn',
      description: 'trace, debug, info, warn or error',
    },
  },
});

/** The request value `run` writes: the UTC time to the millisecond, `yyyymmddhhmmssSSS` (a name's `r<value>`). */
export const requestValue = (at: Date): string => at.toISOString().replace(/[-T:.Z]/g, '');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface RunDeps {
  now?: () => Date;
  /** How often --wait looks at the snapshots. */
  pollMs?: number;
}

export async function runRun(
  args: string[],
  out: (line: string) => void,
  deps: RunDeps = {},
): Promise<number> {
  const { values, positionals } = parseCommand(runCommand, args);
  const [name] = positionals;
  if (!name || positionals.length !== 1)
    throw usageError(runCommand, name ? 'one schedule name only' : 'missing the schedule name');
  let timeoutMs: number;
  try {
    timeoutMs = parseDuration(values.timeout);
  } catch (err) {
    throw new UserError(`--timeout: ${errorMessage(err)}`, 2);
  }
  const clock = deps.now ?? (() => new Date());
  let kube: Kube;
  try {
    kube = Kube.fromDefault();
  } catch (err) {
    throw new UserError(`cannot load a kubeconfig (set KUBECONFIG or run in a pod): ${errorMessage(err)}`);
  }
  const namespace = values.namespace ?? kube.defaultNamespace();
  const what = `SnapshotSchedule ${namespace}/${name}`;
  const log = makeLogger(values['log-level'] ?? process.env.SNAPCRON_LOG_LEVEL ?? 'warn');

  // 1. The request, durable before anything is created.
  const value = requestValue(clock());
  let schedule: SnapshotSchedule;
  try {
    schedule = (await kube.write(() =>
      kube.custom.patchNamespacedCustomObject({
        ...kube.schedules,
        namespace,
        name,
        body: {
          metadata: {
            annotations: {
              [ANNOTATION_RUN_NOW]: value,
              [ANNOTATION_RUN_NOW_HOLD]: values.hold ? value : null,
            },
          },
        },
      }),
    )) as SnapshotSchedule;
  } catch (err) {
    if (statusOf(err) === 404)
      throw new UserError(`${what} not found: list them with kubectl get snapshotschedules -n ${namespace}`);
    if (statusOf(err) === 403)
      throw new UserError(
        `not allowed to annotate ${what}: ${errorMessage(err)}; snapcron run needs patch on snapshotschedules.snapcron.io, and to take the run itself create on volumesnapshots.snapshot.storage.k8s.io and update on snapshotschedules/status`,
      );
    throw new UserError(`could not annotate ${what}: ${errorMessage(err)}`);
  }
  out(`requested a run of ${what}: annotation ${ANNOTATION_RUN_NOW}=${value}${values.hold ? ' (held)' : ''}`);
  if (schedule.metadata?.deletionTimestamp)
    throw new UserError(`${what} is being deleted: it takes no more runs`);

  // 2. One pass over this schedule, as tick takes it.
  const events = new EventRecorder(kube, log, clock);
  const executor = new Executor({ kube, events, log, now: clock });
  const pvcs = (await kube.read(() => kube.core.listNamespacedPersistentVolumeClaim({ namespace })))
    .items as unknown as PersistentVolumeClaim[];
  const labelled = (
    (await kube.read(() =>
      kube.custom.listNamespacedCustomObject({ ...kube.snapshots, namespace, labelSelector: LABEL_SCHEDULE }),
    )) as { items: VolumeSnapshot[] }
  ).items;
  // spec.group: the run is one VolumeGroupSnapshot per group.
  const grouped = !!schedule.spec?.group;
  const groups = grouped ? await readGroups(kube, namespace, log) : undefined;
  const plan = decide({
    schedule,
    pvcs,
    snapshots: groups ? [...labelled, ...groups.members] : labelled,
    groupSnapshots: groups?.groupSnapshots,
    now: clock(),
  });
  if (plan.errors.length > 0) {
    await executor.execute(schedule, plan);
    await events.flush();
    throw new UserError(
      `${what} is invalid (${plan.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}): fix its spec (snapcron validate -f FILE checks it); the requested run is taken once it is valid`,
    );
  }
  const r = await executor.execute(schedule, plan);
  await events.flush();
  if (grouped && groups?.groupSnapshots === undefined)
    throw new UserError(
      `${what} has spec.group, and VolumeGroupSnapshots are not served here or this user may not list them (groupsnapshot.storage.k8s.io/v1): ${plan.status.conditions?.find((c) => c.type === 'Ready')?.message ?? ''}`,
    );
  if (plan.onDemand) out(`took the run${onDemandSummary(plan, r).replace(/^; run-now "[^"]*"/, '')}`);
  else out('a controller or another pass answered this request first');
  if (plan.due.kind === 'due')
    out(`also took the timed run of ${plan.due.scheduledTime.toISOString()}, which was due`);
  for (const k of r.skips.filter((s) => s.trigger === 'RunNow')) out(`  skipped PVC ${k.pvc}: ${k.message}`);
  for (const f of r.createFailures) out(`  failed ${f.name}: ${f.error}`);
  for (const e of r.errors) out(`  error: ${e}`);

  // 3. The run's snapshots, whoever created them.
  const selector = `${LABEL_SCHEDULE}=${labelValue(name)},${LABEL_TRIGGER}=${TRIGGER_RUN_NOW}`;
  const resource = grouped ? kube.groupSnapshots : kube.snapshots;
  const kind = grouped ? 'VolumeGroupSnapshot' : 'VolumeSnapshot';
  const ofRun = async (): Promise<(VolumeSnapshot | VolumeGroupSnapshot)[]> =>
    (
      (await kube.read(() =>
        kube.custom.listNamespacedCustomObject({ ...resource, namespace, labelSelector: selector }),
      )) as { items: (VolumeSnapshot | VolumeGroupSnapshot)[] }
    ).items
      .filter((s) => s.metadata.annotations?.[ANNOTATION_RUN_NOW] === value)
      .sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
  const taken = await ofRun();
  for (const s of taken)
    out(
      grouped
        ? `  VolumeGroupSnapshot ${s.metadata.name} of group ${s.metadata.labels?.[LABEL_GROUP] ?? '?'}`
        : `  VolumeSnapshot ${s.metadata.name} of PVC ${(s as VolumeSnapshot).spec.source.persistentVolumeClaimName ?? '?'}`,
    );
  if (r.createFailures.length > 0 || r.errors.length > 0) return 1;
  if (taken.length === 0) {
    out(`the run took no snapshot: no selected PVC could be snapshotted (see the skips above)`);
    return 1;
  }
  if (!values.wait) return 0;

  // 4. --wait: until each is ready to use, one line per change.
  const started = clock().getTime();
  const names = taken.map((s) => s.metadata.name ?? '');
  const said = new Map<string, string>();
  out(`waiting up to ${formatDuration(timeoutMs)} for ${names.length} snapshot(s) to be ready`);
  for (;;) {
    const now = await ofRun();
    const byName = new Map(now.map((s) => [s.metadata.name ?? '', s]));
    let ready = 0;
    let failed = 0;
    for (const n of names) {
      const s = byName.get(n);
      const state = !s
        ? 'gone (deleted)'
        : s.status?.readyToUse === true
          ? `ready${'restoreSize' in s.status && s.status.restoreSize ? ` (restoreSize ${s.status.restoreSize})` : ''}`
          : s.status?.error?.message
            ? `error: ${s.status.error.message}`
            : 'pending';
      if (state.startsWith('ready')) ready++;
      else if (!s) failed++;
      if (said.get(n) !== state) {
        said.set(n, state);
        out(`  ${n}: ${state}`);
      }
    }
    const elapsed = clock().getTime() - started;
    if (ready === names.length) {
      out(`all ${names.length} snapshot(s) ready after ${formatDuration(Math.max(1000, elapsed))}`);
      return 0;
    }
    if (failed > 0) {
      out(`${failed} snapshot(s) of the run were deleted before they were ready`);
      return 1;
    }
    if (elapsed >= timeoutMs) {
      const late = names.filter((n) => !said.get(n)?.startsWith('ready'));
      out(
        `timed out after ${formatDuration(timeoutMs)}: ${late.length} not ready (${late.join(', ')}); check the snapshot controller and the CSI driver: kubectl describe ${kind.toLowerCase()} -n ${namespace} ${late[0] ?? ''}`,
      );
      return 1;
    }
    await sleep(deps.pollMs ?? 1000);
  }
}
