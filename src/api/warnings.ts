/**
 * Advice about a valid schedule that will still not behave as the user likely expects.
 * Warnings, not errors: `snapcron validate` prints them and `snapcron tick` logs them.
 */
import { nextFireTimes, parseSchedule, type CronSchedule } from '../schedule/cron.ts';
import { formatDuration, parseDuration } from '../schedule/duration.ts';
import type { SnapshotScheduleSpec } from './types.generated.ts';

/** How often deploy/overlays/cronjob/cronjob.yaml runs `snapcron tick`. */
export const DEFAULT_TICK_INTERVAL_SECONDS = 300;

export interface Warning {
  path: string;
  message: string;
}

/**
 * In CronJob mode a run is taken by the first tick after its time, up to one tick interval
 * late. A startingDeadlineSeconds shorter than that skips most runs as too late.
 */
export function tickModeWarnings(
  spec: Pick<SnapshotScheduleSpec, 'startingDeadlineSeconds'>,
  tickIntervalSeconds = DEFAULT_TICK_INTERVAL_SECONDS,
): Warning[] {
  const deadline = spec.startingDeadlineSeconds;
  if (deadline === undefined || deadline >= tickIntervalSeconds) return [];
  return [
    {
      path: 'spec.startingDeadlineSeconds',
      message: `${deadline}s is shorter than the tick interval (${tickIntervalSeconds}s): in CronJob mode (snapcron tick) a run is taken up to one interval late, so most runs would be skipped as missed. Use at least ${tickIntervalSeconds}, unset it, or run snapcron controller`,
    },
  ];
}

/** The ACK disk CSI driver: its snapshots are ECS snapshots, with ECS's limits. */
export const ACK_DISK_DRIVER = 'diskplugin.csi.alibabacloud.com';
/** ECS keeps at most this many manual snapshots per disk. */
export const ECS_MAX_SNAPSHOTS_PER_DISK = 256;
/** Faster than this, a disk's runs overlap: ECS takes one snapshot of a disk at a time. */
export const ECS_MIN_INTERVAL_SECONDS = 60;
export const DEFAULT_CLASS_ANNOTATION = 'snapshot.storage.kubernetes.io/is-default-class';

/** The parts of a VolumeSnapshotClass the ACK warnings read. */
export interface SnapshotClassLike {
  metadata?: { name?: string | undefined; annotations?: Record<string, string> | undefined } | undefined;
  driver?: string | undefined;
  parameters?: Record<string, string> | undefined;
}

/**
 * The class a schedule's snapshots get: `spec.snapshotClassName`, else the one class marked
 * default (none, or several, is undefined: the cluster decides).
 */
export function snapshotClassOf<C extends SnapshotClassLike>(
  spec: Pick<SnapshotScheduleSpec, 'snapshotClassName'>,
  classes: C[],
): C | undefined {
  if (spec.snapshotClassName) return classes.find((c) => c.metadata?.name === spec.snapshotClassName);
  const defaults = classes.filter((c) => c.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true');
  return defaults.length === 1 ? defaults[0] : undefined;
}

const DAY = 86_400_000;
const KEEP_SPAN: Record<string, number> = {
  hourly: 3_600_000,
  daily: DAY,
  weekly: 7 * DAY,
  monthly: 31 * DAY,
  yearly: 366 * DAY,
};

/**
 * ACK advice (pure): warnings for a valid schedule whose snapshots are made by the ACK disk
 * CSI driver (`snapshotClass.driver`); none for another driver or an unknown class.
 *
 * - the retention keeps snapshots longer than the class's `retentionDays`, after which ECS
 *   deletes them itself (leaving VolumeSnapshots that point at nothing);
 * - `maxCount`/`keep`/`expires` let a PVC keep more than ECS's 256 manual snapshots per disk;
 * - the schedule fires more often than once a minute, while ECS takes one snapshot of a disk
 *   at a time.
 *
 * `now` only picks which fire times to measure intervals on.
 */
export function ackWarnings(
  spec: SnapshotScheduleSpec,
  snapshotClass: SnapshotClassLike | undefined,
  now: Date = new Date(),
): Warning[] {
  if (snapshotClass?.driver !== ACK_DISK_DRIVER) return [];
  let cron: CronSchedule;
  try {
    cron = parseSchedule(spec.schedule, spec.timeZone ?? 'UTC');
  } catch {
    return [];
  }
  const out: Warning[] = [];
  const className = snapshotClass.metadata?.name ?? '(default)';
  const r = spec.retention;
  const limit = ECS_MAX_SNAPSHOTS_PER_DISK;
  // Enough fire times to measure maxCount/keep.last spans and count runs within `expires`.
  const fires = nextFireTimes(cron, now, limit + 2).map((d) => d.getTime());
  const first = fires[0];
  const span = (runs: number): number =>
    first === undefined ? 0 : (fires[Math.min(runs, fires.length - 1)] ?? first) - first;
  let expiresMs: number | undefined;
  try {
    expiresMs = r.expires === undefined ? undefined : parseDuration(r.expires);
  } catch {
    expiresMs = undefined;
  }

  // How long a snapshot can stay: the first rule to delete it decides (min over the rules).
  const bounds: number[] = [];
  if (r.maxCount !== undefined) bounds.push(fires.length > r.maxCount ? span(r.maxCount) : Infinity);
  if (expiresMs !== undefined) bounds.push(expiresMs);
  if (r.keep) {
    const spans = Object.entries(r.keep)
      .filter(([, n]) => typeof n === 'number' && n > 0)
      .map(([rule, n]) =>
        rule === 'last'
          ? fires.length > (n as number)
            ? span(n as number)
            : Infinity
          : (KEEP_SPAN[rule] ?? 0) * (n as number),
      );
    if (spans.length > 0) bounds.push(Math.max(...spans));
  }
  const horizon = bounds.length > 0 ? Math.min(...bounds) : Infinity;
  const days = Number(snapshotClass.parameters?.retentionDays);
  if (Number.isFinite(days) && days > 0 && horizon > days * DAY) {
    out.push({
      path: 'spec.retention',
      message: `retention keeps a snapshot for up to ${Number.isFinite(horizon) ? `about ${formatDuration(horizon)}` : 'ever'}, but VolumeSnapshotClass ${className} sets retentionDays ${days}: ECS deletes each snapshot ${days}d after it is taken, leaving a VolumeSnapshot that points at nothing (a restore from it fails). Keep snapshots ${days}d or less (e.g. expires: ${days}d), or remove retentionDays from the class`,
    });
  }

  // How many ready snapshots of a PVC retention can keep at once (min over the rules).
  const counts: { path: string; n: number }[] = [];
  if (r.maxCount !== undefined) counts.push({ path: 'spec.retention.maxCount', n: r.maxCount });
  if (r.keep) {
    const n = Object.values(r.keep).reduce<number>((sum, v) => sum + (typeof v === 'number' ? v : 0), 0);
    counts.push({ path: 'spec.retention.keep', n });
  }
  if (expiresMs !== undefined && first !== undefined) {
    counts.push({ path: 'spec.retention.expires', n: fires.filter((t) => t - first <= expiresMs).length });
  }
  const tightest = counts.sort((a, b) => a.n - b.n)[0];
  const pending = r.maxPending ?? 3;
  if (pending >= limit) {
    out.push({
      path: 'spec.retention.maxPending',
      message: `up to ${pending} snapshots of a PVC may be in progress at once (maxPending), but ECS allows ${limit} manual snapshots per disk in all: past that ECS refuses new snapshots of the disk. Lower maxPending (the default is 3)`,
    });
  } else if (tightest && tightest.n + pending > limit) {
    out.push({
      path: tightest.path,
      message: `retention can keep ${tightest.path.endsWith('expires') && tightest.n >= fires.length ? `more than ${limit}` : tightest.n} ready snapshots of a PVC, plus up to ${pending} in progress (maxPending), more than the ${limit} manual snapshots ECS allows per disk: past that ECS refuses new snapshots of the disk. Keep at most ${limit - pending} (fewer if other schedules or manual snapshots share the disk)`,
    });
  }

  const fields = spec.schedule.trim().split(/\s+/).length;
  let gap = Infinity;
  for (let i = 1; i < Math.min(fires.length, 61); i++)
    gap = Math.min(gap, (fires[i] ?? 0) - (fires[i - 1] ?? 0));
  if (fields === 6 && gap < ECS_MIN_INTERVAL_SECONDS * 1000) {
    out.push({
      path: 'spec.schedule',
      message: `fires every ${formatDuration(gap)}, but ECS takes one snapshot of a disk at a time and a disk snapshot takes longer than that: runs would find the previous snapshot still in progress and be skipped (PreviousNotReady, TooManyPending). Fire at most once a minute (5 fields)`,
    });
  }
  return out;
}

/**
 * The ACK warnings as a status condition for the controller's pass (type `AckWarnings`):
 * `True` with every warning in the message when there are some, else `False`.
 * Shaped like src/controller/conditions.ts' ConditionInput.
 */
export function ackCondition(warnings: Warning[]): {
  type: 'AckWarnings';
  status: 'True' | 'False';
  reason: 'ExceedsEcsLimits' | 'WithinEcsLimits';
  message: string;
} {
  return warnings.length > 0
    ? {
        type: 'AckWarnings',
        status: 'True',
        reason: 'ExceedsEcsLimits',
        message: warnings.map((w) => `${w.path}: ${w.message}`).join('; '),
      }
    : {
        type: 'AckWarnings',
        status: 'False',
        reason: 'WithinEcsLimits',
        message: "no ACK warning: the schedule fits the snapshot class's retentionDays and ECS's limits",
      };
}
