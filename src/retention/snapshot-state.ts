/**
 * How retention sees one VolumeSnapshot: when its data was cut, when it was due, and its state.
 *
 * A snapshot's time is when its data was cut (`status.creationTime`, set by the snapshot
 * controller), else when the object was created. The `snapcron.io/scheduled-at` annotation
 * only names and de-duplicates runs: a catch-up for 02:00 taken at 14:00 holds 14:00's data,
 * so point-in-time restore, expiry, keep buckets and ordering all use the cut time.
 */
import { ANNOTATION_SCHEDULED_AT } from '../api/constants.ts';
import type { VolumeSnapshot } from '../api/objects.ts';
import { parseDuration } from '../schedule/duration.ts';

/**
 * - `ready`: `status.readyToUse` is true: a copy to restore from.
 * - `pending`: not ready, and either no error or an error younger than `failedAfter`
 *   (the snapshot controller keeps retrying and clears the error on success).
 * - `stuck`: pending for longer than `pendingDeadline` since the object was created.
 * - `failed`: not ready, with an error that has lasted longer than `failedAfter`.
 */
export type SnapshotState = 'ready' | 'pending' | 'stuck' | 'failed';
/** What the API alone says, without a clock: ready, an error is set, or neither. */
export type ObservedState = 'ready' | 'pending' | 'failed';

export const DEFAULT_FAILED_AFTER = '1h';
export const DEFAULT_PENDING_DEADLINE = '6h';

/** The retention fields the state depends on; a RetentionPolicy is one. */
export interface StatePolicy {
  failedAfter?: string | undefined;
  pendingDeadline?: string | undefined;
}

/** A StatePolicy with its durations parsed, in milliseconds. */
export interface StateTiming {
  failedAfterMs: number;
  pendingDeadlineMs: number;
}

/** Parses the policy's durations, applying the defaults. Throws DurationError on a malformed one. */
export function stateTiming(policy: StatePolicy = {}): StateTiming {
  return {
    failedAfterMs: parseDuration(policy.failedAfter ?? DEFAULT_FAILED_AFTER),
    pendingDeadlineMs: parseDuration(policy.pendingDeadline ?? DEFAULT_PENDING_DEADLINE),
  };
}

/** The decimal number in text[from, from + n), or -1 if any of it is not a digit. */
function digits(text: string, from: number, n: number): number {
  let value = 0;
  for (let i = from; i < from + n; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/**
 * `YYYY-MM-DDTHH:MM:SSZ` (how the API server writes times) and `YYYY-MM-DDTHH:MM:SS.sssZ`
 * (toISOString), with fields in the ranges where `new Date(text)` and Date.UTC agree, read
 * without Date's general parser: parsing was a tenth of the cost of a large plan. Undefined for
 * anything else, which `new Date` reads as before.
 */
function parseUtcTimestamp(text: string): number | undefined {
  const n = text.length;
  if (n !== 20 && n !== 24) return undefined;
  if (text[4] !== '-' || text[7] !== '-' || text[10] !== 'T' || text[13] !== ':' || text[16] !== ':')
    return undefined;
  if (text[n - 1] !== 'Z' || (n === 24 && text[19] !== '.')) return undefined;
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 2);
  const day = digits(text, 8, 2);
  const hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2);
  const second = digits(text, 17, 2);
  const ms = n === 24 ? digits(text, 20, 3) : 0;
  // Date.UTC reads years 0-99 as 19xx; new Date refuses day 0, 24:00 is special: leave those to it.
  if (year < 100 || month < 1 || month > 12 || day < 1 || day > 31) return undefined;
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 || ms < 0)
    return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, second, ms);
}

const parseTime = (raw: string | Date | undefined): Date | undefined => {
  if (raw === undefined || raw === '') return undefined;
  const fast = typeof raw === 'string' ? parseUtcTimestamp(raw) : undefined;
  if (fast !== undefined) return new Date(fast);
  const t = new Date(raw);
  return Number.isNaN(t.getTime()) ? undefined : t;
};

/**
 * When the snapshot's data was cut: `status.creationTime`, else `metadata.creationTimestamp`;
 * undefined if neither parses. Used for restore-at, expires, keep buckets and ordering.
 */
export function snapshotTime(s: VolumeSnapshot): Date | undefined {
  return parseTime(s.status?.creationTime) ?? parseTime(s.metadata.creationTimestamp);
}

/**
 * The run the snapshot was taken for (`snapcron.io/scheduled-at`); undefined when the annotation
 * is missing or does not parse. Only for naming and de-duplicating runs, never as the data's time.
 */
export function scheduledTime(s: VolumeSnapshot): Date | undefined {
  return parseTime(s.metadata.annotations?.[ANNOTATION_SCHEDULED_AT]);
}

/** Since when the snapshot's current error has lasted: `status.error.time`, else the snapshot's time. */
export function errorSince(s: VolumeSnapshot): Date | undefined {
  return parseTime(s.status?.error?.time) ?? snapshotTime(s);
}

/** Since when the snapshot has been waiting to become ready: when the object was created. */
export function pendingSince(s: VolumeSnapshot): Date | undefined {
  return parseTime(s.metadata.creationTimestamp) ?? snapshotTime(s);
}

/**
 * The snapshot's state. With `now` and the policy (`failedAfter`, `pendingDeadline`; a
 * RetentionPolicy will do) this is retention's state: an error is only `failed` once it has
 * lasted longer than `failedAfter`, a pending snapshot is `stuck` past `pendingDeadline`. A time
 * that cannot be read counts as not yet past either bound (kept pending).
 *
 * Without them it is the raw API condition (`failed` = an error is set, however new): kept
 * for callers that only count; retention, restore and pruning decisions pass `now` and the policy.
 */
export function snapshotState(s: VolumeSnapshot): ObservedState;
export function snapshotState(s: VolumeSnapshot, now: Date, policy: StatePolicy): SnapshotState;
export function snapshotState(
  s: VolumeSnapshot,
  now?: Date,
  policy?: StatePolicy,
): SnapshotState | ObservedState {
  if (now === undefined) return observedState(s);
  return stateAt(s, now, stateTiming(policy));
}

function observedState(s: VolumeSnapshot): ObservedState {
  if (s.status?.readyToUse === true) return 'ready';
  if (s.status?.error) return 'failed';
  return 'pending';
}

const lastedLongerThan = (since: Date | undefined, now: Date, ms: number): boolean =>
  since !== undefined && now.getTime() - since.getTime() > ms;

/** {@link snapshotState} with the timing already parsed (planning many snapshots parses once). */
export function stateAt(s: VolumeSnapshot, now: Date, timing: StateTiming): SnapshotState {
  if (s.status?.readyToUse === true) return 'ready';
  if (s.status?.error && lastedLongerThan(errorSince(s), now, timing.failedAfterMs)) return 'failed';
  if (lastedLongerThan(pendingSince(s), now, timing.pendingDeadlineMs)) return 'stuck';
  return 'pending';
}

/**
 * When a snapshot waiting since `since` (epoch ms; see pendingSince) turns stuck: a millisecond
 * past pendingDeadline, as the bound is strict.
 */
export const turnsStuckAt = (since: number, timing: Pick<StateTiming, 'pendingDeadlineMs'>): number =>
  since + timing.pendingDeadlineMs + 1;

/**
 * The first instant after `now` at which {@link stateAt} answers otherwise by the clock alone: a
 * pending snapshot turning stuck, an error turning the snapshot failed. Undefined when no such
 * instant comes (ready, failed, or a time that cannot be read): only an event changes it then.
 * `state` is its state at `now`, when the caller has it.
 */
export function nextStateChange(
  s: VolumeSnapshot,
  now: Date,
  timing: StateTiming,
  state: SnapshotState = stateAt(s, now, timing),
): number | undefined {
  if (state === 'ready' || state === 'failed') return undefined;
  const erringSince = s.status?.error ? errorSince(s)?.getTime() : undefined;
  const waitingSince = state === 'pending' ? pendingSince(s)?.getTime() : undefined;
  // lastedLongerThan is strict: the state changes a millisecond after the bound.
  const fails = erringSince === undefined ? Infinity : erringSince + timing.failedAfterMs + 1;
  const stuck = waitingSince === undefined ? Infinity : turnsStuckAt(waitingSince, timing);
  const at = Math.min(fails, stuck);
  return at === Infinity ? undefined : at;
}

export const sourcePvc = (s: VolumeSnapshot): string | undefined => s.spec.source.persistentVolumeClaimName;
