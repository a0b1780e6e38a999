/**
 * Advice about a valid schedule that will still not behave as the user likely expects.
 * Warnings, not errors: `snapcron validate` prints them and `snapcron tick` logs them.
 */
import type { SnapshotScheduleSpec } from './types.generated.ts';

/** How often deploy/cronjob.yaml runs `snapcron tick`. */
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
