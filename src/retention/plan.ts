/**
 * What to keep and what to delete, per PVC, among one schedule's snapshots.
 * Pure: takes the observed snapshots and PVCs and `now`, returns verdicts with
 * reasons. The act layer deletes exactly `plan.deletions` and nothing else,
 * re-checking each with {@link protectionOf} on a fresh read first.
 */
import { LABEL_HOLD, LABEL_SCHEDULE, SNAPSHOT_GROUP, SNAPSHOT_KIND } from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../api/objects.ts';
import type { KeepRules, RetentionPolicy } from '../api/types.generated.ts';
import { parseDuration } from '../schedule/duration.ts';
import { timeZone, type TimeZone } from '../tz/time-zone.ts';
import { zoneOffset } from '../schedule/zone-offset.ts';
import { labelValue } from '../snapshot/naming.ts';
import {
  DEFAULT_PENDING_DEADLINE,
  nextStateChange,
  stateAt,
  stateTiming,
  snapshotTime,
  sourcePvc,
  type SnapshotState,
  type StateTiming,
} from './snapshot-state.ts';

/** Why a snapshot is kept even if a rule would delete it. */
export const PROTECT_REASONS = ['hold', 'in-use', 'pending', 'stuck', 'min-ready'] as const;
export type ProtectReason = (typeof PROTECT_REASONS)[number];
export const KEEP_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type KeepRule = (typeof KEEP_RULES)[number];
type BucketRule = Exclude<KeepRule, 'last'>;
const BUCKET_RULES: readonly BucketRule[] = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'];
/**
 * `keep-<rule>`: the newest snapshot of one of the rule's N most recent buckets.
 * `keep-<bucket>-oldest`: restic's "oldest" keep: the rule still had slots left after every
 * bucket, so it keeps the oldest ready snapshot too, although a newer one holds its bucket.
 */
export type KeepReason = ProtectReason | `keep-${KeepRule}` | `keep-${BucketRule}-oldest` | 'within-policy';
export type DeleteReason = 'failed' | 'expired' | 'max-count' | 'not-kept';
export type Reason = KeepReason | DeleteReason;

/** The default of `retention.maxPending`. */
export const DEFAULT_MAX_PENDING = 3;

export interface Verdict {
  name: string;
  namespace: string;
  pvc: string;
  /** When the data was cut (see snapshotTime). */
  time: Date;
  state: SnapshotState;
  verdict: 'keep' | 'delete';
  /**
   * For keep: the protections and keep rules that hold it. For delete: every rule that deletes it.
   * Read-only and shared between verdicts with the same reasons (frozen).
   */
  reasons: readonly Reason[];
  /** Rules that would delete a kept snapshot but were overridden by a protection (read-only, shared). */
  overridden: readonly DeleteReason[];
  /** The driver's error (status.error.message), for a failed snapshot or a pending one still retrying. */
  error?: string;
}

/** A delete verdict: never a pending or stuck snapshot (those are always protected). */
export type Deletion = Verdict & { verdict: 'delete'; state: 'ready' | 'failed' };

/** The not-ready snapshots of one PVC, for reporting and for holding back new creates. */
export interface PvcPending {
  pvc: string;
  /** Not ready, within pendingDeadline (including a driver error younger than failedAfter), newest first. */
  pending: string[];
  /** Not ready for longer than pendingDeadline, newest first. */
  stuck: string[];
}

export interface RetentionPlan {
  /** Every snapshot of the schedule, grouped by PVC (PVC name ascending), newest first within a PVC. */
  verdicts: Verdict[];
  deletions: Deletion[];
  /** The stuck snapshots (kept, with reason `stuck`), in verdict order: report them. */
  stuck: Verdict[];
  /** Per PVC with at least one pending or stuck snapshot, PVC name ascending. */
  pendingByPvc: PvcPending[];
  /** The effective retention.maxPending; see shouldHoldBack. */
  maxPending: number;
  /** The effective retention.pendingDeadline, for messages. */
  pendingDeadline: string;
  /** The same, in milliseconds. */
  pendingDeadlineMs: number;
  /** Snapshots by state (those being deleted are not counted). */
  counts: Record<SnapshotState, number>;
  /**
   * When this plan next changes by the clock alone (epoch ms): a snapshot turning stuck or
   * failed, a ready one expiring. Undefined when only an event can change it. A pass asks to
   * run again then, so no periodic rescan is needed to notice.
   */
  changesAt: number | undefined;
}

export interface RetentionInput {
  scheduleName: string;
  retention: RetentionPolicy;
  timeZone: string;
  /** Any snapshots; only those labelled as this schedule's are planned. */
  snapshots: VolumeSnapshot[];
  /** PVCs of the namespace, for in-use protection of restore sources. */
  pvcs: PersistentVolumeClaim[];
  now: Date;
  /**
   * Only the states: every verdict `keep` with no reasons (no deletions), in the full plan's
   * order, with its counts and pending lists. For the metrics refresh, which reads nothing else
   * and asked for every schedule's keep rules every minute.
   */
  statesOnly?: boolean | undefined;
}

/** Snapshots in use as a restore source: named by a not-yet-Bound PVC. Keys are `namespace/name`. */
export function snapshotsInUse(pvcs: PersistentVolumeClaim[]): Set<string> {
  const inUse = new Set<string>();
  for (const pvc of pvcs) {
    if (pvc.status?.phase === 'Bound') continue;
    const ns = pvc.metadata.namespace ?? '';
    for (const ref of [pvc.spec?.dataSource, pvc.spec?.dataSourceRef]) {
      if (ref?.kind === SNAPSHOT_KIND && (ref.apiGroup ?? '') === SNAPSHOT_GROUP) {
        inUse.add(`${ref.namespace ?? ns}/${ref.name}`);
      }
    }
  }
  return inUse;
}

/** labelValue of the last schedule name asked: callers filter a whole list for one schedule. */
let lastLabel = { name: '', value: labelValue('') };
const scheduleLabelOf = (scheduleName: string): string => {
  if (lastLabel.name !== scheduleName) lastLabel = { name: scheduleName, value: labelValue(scheduleName) };
  return lastLabel.value;
};

/** True when the snapshot belongs to the schedule (the label holds the possibly hashed name). */
export const belongsTo = (s: VolumeSnapshot, scheduleName: string): boolean =>
  s.metadata.labels?.[LABEL_SCHEDULE] === scheduleLabelOf(scheduleName);

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/**
 * The wall-clock buckets of an instant in a zone: one (cached) zone-offset lookup, then
 * plain UTC arithmetic on the shifted time. The plan compares {@link bucketNumbers}, which
 * are equal exactly when these are.
 */
export function buckets(t: Date, zone: TimeZone): Record<BucketRule, string> {
  const local = new Date(t.getTime() + zoneOffset(zone, t.getTime()) * MINUTE_MS);
  const y = local.getUTCFullYear();
  const m = local.getUTCMonth() + 1;
  const d = local.getUTCDate();
  // ISO week: the week (Mon-Sun) holding this date's Thursday, numbered within that Thursday's year.
  const dayOfWeek = local.getUTCDay() || 7;
  const thursday = Date.UTC(y, m - 1, d + 4 - dayOfWeek);
  const weekYear = new Date(thursday).getUTCFullYear();
  const week = Math.floor((thursday - Date.UTC(weekYear, 0, 1)) / 86_400_000 / 7) + 1;
  const day = `${y}-${m}-${d}`;
  return {
    hourly: `${day} ${local.getUTCHours()}`,
    daily: day,
    weekly: `${weekYear}-W${week}`,
    monthly: `${y}-${m}`,
    yearly: `${y}`,
  };
}

/** Instants whose wall clock {@link bucketNumbers} handles (a Date's range, less a margin for offsets). */
const inBucketRange = (t: number): boolean => Math.abs(t) < 8.6e15;

/** The wall-clock time of an instant in a zone, as the UTC ms of a Date (whole ms, as Date keeps them). */
const wallClock = (t: number, zone: TimeZone): number => Math.trunc(t + zoneOffset(zone, t) * MINUTE_MS);

/**
 * The month of a day (days since 1970-01-01, proleptic Gregorian) as year × 12 + month - 1
 * (month 1-12), without a Date: H. Hinnant's civil_from_days.
 */
function monthOfDay(day: number): number {
  const z = day + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153); // months since March
  const month = mp < 10 ? mp + 3 : mp - 9;
  return (yoe + era * 400 + (month <= 2 ? 1 : 0)) * 12 + month - 1;
}

/** A rule's bucket of a wall-clock time (see wallClock) as a number: equal exactly when the bucket strings are. */
function bucketNumber(rule: BucketRule, wall: number): number {
  const day = Math.floor(wall / DAY_MS);
  switch (rule) {
    case 'hourly':
      return Math.floor(wall / HOUR_MS);
    case 'daily':
      return day;
    case 'weekly':
      return Math.floor((day + 3) / 7); // ISO weeks start on Monday; 1970-01-01 was a Thursday
    case 'monthly':
      return monthOfDay(day);
    case 'yearly':
      return Math.floor(monthOfDay(day) / 12);
  }
}

/**
 * The buckets of an instant as numbers, equal for two instants exactly when {@link buckets}
 * are: the local hour and day since the epoch, the ISO week (Monday) since the epoch, year × 12
 * + month - 1, and the year. Within a Date's range less a day (±8.6e15 ms).
 */
export function bucketNumbers(t: number, zone: TimeZone): Record<BucketRule, number> {
  const wall = wallClock(t, zone);
  return {
    hourly: bucketNumber('hourly', wall),
    daily: bucketNumber('daily', wall),
    weekly: bucketNumber('weekly', wall),
    monthly: bucketNumber('monthly', wall),
    yearly: bucketNumber('yearly', wall),
  };
}

/**
 * What the plan reads of the schedule's snapshots, read in one pass over the objects and kept as
 * columns indexed alike, so that a snapshot costs no object besides its verdict: planning
 * 100,000 snapshots spent most of its time collecting garbage (bench/run.ts).
 */
interface Columns {
  names: string[];
  namespaces: string[];
  /** 1 when held (snapcron.io/hold). */
  held: Uint8Array;
  /** status.error.message */
  errors: (string | undefined)[];
  /** When the data was cut (see snapshotTime). */
  times: Date[];
  /** times[i].getTime() */
  ms: Float64Array;
  states: SnapshotState[];
}

/** One PVC's snapshots, as column indexes. */
interface Group {
  pvc: string;
  indexes: number[];
}

type KeepMark = `keep-${KeepRule}` | `keep-${BucketRule}-oldest`;

/**
 * keepSelections' marks of a snapshot as bits: bit j stands for KEEP_MARKS[j], in the order the
 * snapshot's reasons list them (keep-last, then each bucket rule's keep or oldest keep), so
 * that marking costs no array until a verdict needs one.
 */
const KEEP_MARKS: readonly KeepMark[] = [
  'keep-last',
  ...BUCKET_RULES.flatMap((rule): KeepMark[] => [`keep-${rule}`, `keep-${rule}-oldest`]),
];
const KEEP_LAST_BIT = 1;
/** The bits of rule BUCKET_RULES[r]'s keep, and of its oldest keep. */
const keepBit = (r: number): number => 2 << (2 * r);
const oldestBit = (r: number): number => 4 << (2 * r);

/**
 * Reason lists are shared between verdicts (frozen), one per combination of reasons: a plan of
 * 100,000 snapshots built 100,000 copies of a few lists, and V8's young-generation collections
 * spent about half of the plan's time moving them (bench/run.ts with `--trace-gc`).
 */
class ReasonLists<T> {
  private readonly lists = new Map<number, readonly T[]>();
  private readonly names: readonly T[];
  /** `names[j]` stands for bit j. */
  constructor(names: readonly T[]) {
    this.names = names;
  }

  /** The names of the bits set, in `names`' order. */
  of(bits: number): readonly T[] {
    let list = this.lists.get(bits);
    if (list === undefined) {
      const out: T[] = [];
      for (let j = 0; j < this.names.length; j++) if (bits & (2 ** j)) out.push(this.names[j] as T);
      this.lists.set(bits, (list = Object.freeze(out)));
    }
    return list;
  }
}
const NO_REASONS: readonly never[] = Object.freeze([]);
const WITHIN_POLICY: readonly KeepReason[] = Object.freeze(['within-policy'] as const);
/** A kept snapshot's reasons: protections (bits 0-4, see protectionBits), then keep marks (KEEP_MARKS from bit 5). */
const KEEP_REASON_LISTS = new ReasonLists<KeepReason>([...PROTECT_REASONS, ...KEEP_MARKS]);
const MARKS_SHIFT = PROTECT_REASONS.length;
const DELETE_REASON_LISTS = new ReasonLists<DeleteReason>(['failed', 'expired', 'max-count', 'not-kept']);

/** keepSelections' scratch, reused from one PVC to the next (it never runs twice at once). */
let wallScratch = new Float64Array(1024);
let markScratch = new Uint16Array(1024);

/**
 * restic `forget` (0.16+): the keep rules that select each ready snapshot of a PVC, given as
 * column indexes newest first: `marks[i]` holds the bits (see KEEP_MARKS) of `ready[i]`, until
 * the next call. `rules`: the indexes in BUCKET_RULES of the bucket rules with slots.
 * `last` keeps the N newest. A bucket rule walks newest to oldest and keeps a snapshot whose
 * bucket differs from the last one it kept, while it has slots left; if it still has a slot
 * when it reaches the oldest snapshot, it keeps that one too (`keep-<rule>-oldest` when a
 * newer snapshot already holds the oldest's bucket). Each keep uses one slot.
 */
function keepSelections(
  ready: number[],
  c: Columns,
  keep: KeepRules,
  rules: readonly number[],
  zone: TimeZone,
): Uint16Array {
  if (markScratch.length < ready.length) markScratch = new Uint16Array(2 * ready.length);
  const marks = markScratch.fill(0, 0, ready.length);
  if (keep.last) {
    const newest = ready.slice(0, keep.last).length;
    for (let i = 0; i < newest; i++) marks[i] = KEEP_LAST_BIT;
  }
  if (rules.length === 0) return marks;
  // Bucket numbers from each snapshot's wall clock, worked out when a rule first reaches it;
  // the strings of buckets() where the numbers do not apply (an invalid zone, absurd times).
  let numeric = zone.isValid;
  for (let i = 0; numeric && i < ready.length; i++)
    numeric = inBucketRange(c.ms[ready[i] as number] as number);
  if (wallScratch.length < ready.length) wallScratch = new Float64Array(2 * ready.length);
  const walls = wallScratch.fill(NaN, 0, ready.length);
  const strings: Record<BucketRule, string>[] = [];
  const oldest = ready.length - 1;
  for (const r of rules) {
    const rule = BUCKET_RULES[r] as BucketRule;
    const slots = keep[rule] ?? 0;
    let lastBucket: number | string | undefined;
    let used = 0;
    for (let i = 0; i <= oldest && used < slots; i++) {
      let bucket: number | string;
      if (numeric) {
        let wall = walls[i] as number;
        if (Number.isNaN(wall)) walls[i] = wall = wallClock(c.ms[ready[i] as number] as number, zone);
        bucket = bucketNumber(rule, wall);
      } else bucket = (strings[i] ??= buckets(c.times[ready[i] as number] as Date, zone))[rule];
      if (bucket !== lastBucket) {
        lastBucket = bucket;
        used++;
        marks[i] = (marks[i] as number) | keepBit(r);
      } else if (i === oldest) {
        used++;
        marks[i] = (marks[i] as number) | oldestBit(r);
      }
    }
  }
  return marks;
}

/** Newest first by cut time; ties by name, descending. The one order for ranks and verdicts. */
const newestFirst = (a: { time: Date; name: string }, b: { time: Date; name: string }): number =>
  b.time.getTime() - a.time.getTime() || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0);

/** The protections of one snapshot, given its facts, as bits in PROTECT_REASONS' order; shared by the plan and protectionOf. */
function protectionBits(
  held: boolean,
  inUse: boolean,
  state: SnapshotState,
  readyRank: number | undefined,
  minReady: number,
): number {
  const minReadyApplies = readyRank !== undefined && readyRank <= minReady;
  return (
    +held |
    (+inUse << 1) |
    (+(state === 'pending') << 2) |
    (+(state === 'stuck') << 3) |
    (+minReadyApplies << 4)
  );
}

const isHeld = (s: VolumeSnapshot): boolean => s.metadata.labels?.[LABEL_HOLD] === 'true';
const minReadyOf = (retention: RetentionPolicy): number => retention.minReady ?? 1;

/** Plans retention for one schedule. Throws only on an invalid policy (validated earlier in practice). */
export function planRetention(input: RetentionInput): RetentionPlan {
  const { retention, now } = input;
  const nowMs = now.getTime();
  const expiresMs = retention.expires ? parseDuration(retention.expires) : undefined;
  const timing: StateTiming = stateTiming(retention);
  const minReady = minReadyOf(retention);
  const inUse = snapshotsInUse(input.pvcs);
  // What may follow a '/' in those keys: a cheap first check that saves building a key per snapshot.
  const inUseNames = new Set<string>();
  for (const key of inUse)
    for (let i = key.indexOf('/'); i >= 0; i = key.indexOf('/', i + 1)) inUseNames.add(key.slice(i + 1));
  const scheduleLabel = scheduleLabelOf(input.scheduleName);
  const keep = input.statesOnly ? undefined : retention.keep;
  const zone = keep ? timeZone(input.timeZone) : undefined;
  const rules: number[] = [];
  BUCKET_RULES.forEach((rule, r) => {
    if ((keep?.[rule] ?? 0) > 0) rules.push(r);
  });

  let changesAt: number | undefined;
  const most = input.snapshots.length;
  const c: Columns = {
    names: [],
    namespaces: [],
    held: new Uint8Array(most),
    errors: [],
    times: [],
    ms: new Float64Array(most),
    states: [],
  };
  // Per PVC, its snapshots' column indexes; lists arrive grouped by PVC, so the last group is checked first.
  const byPvc = new Map<string, Group>();
  const groups: Group[] = [];
  let group: Group | undefined;
  // Indexed loops here: for-of allocated an iterator result per snapshot (bench/run.ts).
  const snapshots = input.snapshots;
  for (let i = 0; i < snapshots.length; i++) {
    const snapshot = snapshots[i] as VolumeSnapshot;
    // Already being deleted: not a copy anyone can count on, and not ours to decide again.
    if (snapshot.metadata.labels?.[LABEL_SCHEDULE] !== scheduleLabel || snapshot.metadata.deletionTimestamp)
      continue;
    const time = snapshotTime(snapshot) ?? new Date(0);
    const k = c.names.push(snapshot.metadata.name ?? '') - 1;
    c.namespaces.push(snapshot.metadata.namespace ?? '');
    c.held[k] = isHeld(snapshot) ? 1 : 0;
    c.errors.push(snapshot.status?.error?.message);
    c.times.push(time);
    c.ms[k] = time.getTime();
    const state = stateAt(snapshot, now, timing);
    c.states.push(state);
    // Expired: older than `expires`, strictly (a protected one shows it as overridden).
    const expires = expiresMs === undefined ? undefined : time.getTime() + expiresMs + 1;
    if (expires !== undefined && expires > nowMs && (changesAt === undefined || expires < changesAt))
      changesAt = expires;
    const turns = state === 'ready' ? undefined : nextStateChange(snapshot, now, timing, state);
    if (turns !== undefined && (changesAt === undefined || turns < changesAt)) changesAt = turns;
    const pvc = sourcePvc(snapshot) ?? '';
    if (group?.pvc !== pvc) {
      group = byPvc.get(pvc);
      if (!group) {
        group = { pvc, indexes: [] };
        byPvc.set(pvc, group);
        groups.push(group);
      }
    }
    group.indexes.push(k);
  }
  const { names, ms, states } = c;
  // newestFirst, on the columns.
  const newestFirstK = (a: number, b: number): number => {
    const nameA = names[a] as string;
    const nameB = names[b] as string;
    return (ms[b] as number) - (ms[a] as number) || (nameA < nameB ? 1 : nameA > nameB ? -1 : 0);
  };

  /** Snapshot k's verdict: one literal per shape, keys in the order callers print them. */
  const verdictOf = (
    k: number,
    pvc: string,
    verdict: Verdict['verdict'],
    reasons: readonly Reason[],
    overridden: readonly DeleteReason[],
  ): Verdict => {
    const name = names[k] as string;
    const namespace = c.namespaces[k] as string;
    const time = c.times[k] as Date;
    const state = states[k] as SnapshotState;
    const error = c.errors[k];
    return error
      ? { name, namespace, pvc, time, state, error, verdict, reasons, overridden }
      : { name, namespace, pvc, time, state, verdict, reasons, overridden };
  };

  const verdicts: Verdict[] = [];
  const pendingByPvc: PvcPending[] = [];
  const counts: Record<SnapshotState, number> = { ready: 0, pending: 0, stuck: 0, failed: 0 };
  // By PVC name as [...names].sort() orders strings (in input order already, usually: one pass).
  groups.sort((a, b) => (a.pvc < b.pvc ? -1 : a.pvc > b.pvc ? 1 : 0));
  for (const { pvc, indexes: unsorted } of groups) {
    const indexes = sortFew(unsorted, newestFirstK);
    const marks =
      keep && zone
        ? keepSelections(
            indexes.filter((k) => states[k] === 'ready'),
            c,
            keep,
            rules,
            zone,
          )
        : undefined;
    let waiting: PvcPending | undefined;
    let readyCount = 0;

    for (let j = 0; j < indexes.length; j++) {
      const k = indexes[j] as number;
      const name = names[k] as string;
      const namespace = c.namespaces[k] as string;
      const held = c.held[k] === 1;
      const state = states[k] as SnapshotState;
      const rank = state === 'ready' ? ++readyCount : undefined;
      const keepBits = rank !== undefined && marks ? (marks[rank - 1] as number) : 0;
      counts[state]++;
      if (state === 'pending') (waiting ??= { pvc, pending: [], stuck: [] }).pending.push(name);
      if (state === 'stuck') (waiting ??= { pvc, pending: [], stuck: [] }).stuck.push(name);
      if (input.statesOnly) {
        verdicts.push(verdictOf(k, pvc, 'keep', NO_REASONS, NO_REASONS));
        continue;
      }
      const used = inUse.size > 0 && inUseNames.has(name) && inUse.has(`${namespace}/${name}`);
      const protect = protectionBits(held, used, state, rank, minReady);
      const failed = state === 'failed';
      const expired = expiresMs !== undefined && nowMs - (ms[k] as number) > expiresMs;
      const pastMax = retention.maxCount !== undefined && rank !== undefined && rank > retention.maxCount;
      const notKept = !!keep && state === 'ready' && keepBits === 0;
      const deletes = deleteReasons(failed, expired, pastMax, notKept);

      let verdict: Verdict['verdict'] = 'keep';
      let reasons: readonly Reason[];
      let overridden: readonly DeleteReason[];
      if (protect !== 0) {
        reasons = KEEP_REASON_LISTS.of(protect | (keepBits << MARKS_SHIFT));
        overridden = deletes;
      } else if (deletes.length > 0) {
        verdict = 'delete';
        reasons = deletes;
        overridden = NO_REASONS;
      } else {
        reasons = keepBits !== 0 ? KEEP_REASON_LISTS.of(keepBits << MARKS_SHIFT) : WITHIN_POLICY;
        overridden = NO_REASONS;
      }
      verdicts.push(verdictOf(k, pvc, verdict, reasons, overridden));
    }
    if (waiting) pendingByPvc.push(waiting);
  }
  return {
    verdicts,
    deletions: verdicts.filter((v): v is Deletion => v.verdict === 'delete'),
    stuck: verdicts.filter((v) => v.state === 'stuck'),
    pendingByPvc,
    maxPending: retention.maxPending ?? DEFAULT_MAX_PENDING,
    pendingDeadline: retention.pendingDeadline ?? DEFAULT_PENDING_DEADLINE,
    pendingDeadlineMs: timing.pendingDeadlineMs,
    counts,
    changesAt,
  };
}

/**
 * Sorts in place, stably like Array.prototype.sort: by insertion for the few snapshots most PVCs
 * have, where setting up Array.sort cost more than sorting (one call per PVC).
 */
function sortFew(list: number[], compare: (a: number, b: number) => number): number[] {
  if (list.length > 16) return list.sort(compare);
  for (let i = 1; i < list.length; i++) {
    const item = list[i] as number;
    let j = i - 1;
    for (; j >= 0 && compare(list[j] as number, item) > 0; j--) list[j + 1] = list[j] as number;
    list[j + 1] = item;
  }
  return list;
}

/** The delete rules that apply, in their order, as an array of just that length. */
function deleteReasons(
  failed: boolean,
  expired: boolean,
  pastMax: boolean,
  notKept: boolean,
): readonly DeleteReason[] {
  return DELETE_REASON_LISTS.of(+failed | (+expired << 1) | (+pastMax << 2) | (+notKept << 3));
}

/** pendingByPvc indexed by PVC, built on first use: decide() asks once per selected PVC. */
const pendingIndex = new WeakMap<PvcPending[], Map<string, PvcPending>>();
function pendingOf(list: PvcPending[], pvc: string): PvcPending | undefined {
  if (list.length < 16) return list.find((x) => x.pvc === pvc);
  let index = pendingIndex.get(list);
  if (index?.size !== list.length) {
    // First use, or the list grew: (re)build, the first entry of a PVC winning as find() would.
    index = new Map();
    for (const x of list) if (!index.has(x.pvc)) index.set(x.pvc, x);
    pendingIndex.set(list, index);
  }
  const p = index.get(pvc);
  return p === undefined || p.pvc === pvc ? p : list.find((x) => x.pvc === pvc);
}

/** Why no new snapshot of a PVC should be created now. */
export interface HoldBack {
  pvc: string;
  reason: 'TooManyPending';
  /** Not-ready snapshots of the PVC: pending and stuck, newest first. */
  pending: string[];
  stuck: string[];
  maxPending: number;
  message: string;
}

/**
 * Whether to hold back a new snapshot of `pvc` (its name, as in spec.source.persistentVolumeClaimName):
 * yes while the PVC already has `maxPending` or more not-ready (pending or stuck) snapshots of
 * this schedule. Not-ready snapshots are never deleted, so this is what bounds them: at most
 * maxPending per PVC, plus the snapshots of one pass. Undefined: go ahead.
 */
export function shouldHoldBack(plan: RetentionPlan, pvc: string): HoldBack | undefined {
  const p = pendingOf(plan.pendingByPvc, pvc);
  if (!p) return undefined;
  const waiting = p.pending.length + p.stuck.length;
  if (waiting < plan.maxPending) return undefined;
  const stuck =
    p.stuck.length > 0
      ? `, ${p.stuck.length} of them stuck for more than pendingDeadline ${plan.pendingDeadline} (${p.stuck.join(', ')})`
      : '';
  return {
    pvc,
    reason: 'TooManyPending',
    pending: p.pending,
    stuck: p.stuck,
    maxPending: plan.maxPending,
    message: `PVC ${pvc} has ${waiting} snapshot(s) not ready yet${stuck}, at the retention.maxPending limit of ${plan.maxPending}: no new snapshot until one becomes ready or fails; check the snapshot controller and the CSI driver`,
  };
}

/** What {@link protectionOf} needs besides the snapshot itself. */
export interface ProtectionContext {
  scheduleName: string;
  /** The schedule's retention: minReady, failedAfter, pendingDeadline. */
  retention: RetentionPolicy;
  /**
   * Fresh VolumeSnapshots that include the schedule's snapshots of the same PVC (others are
   * ignored). An entry with the snapshot's own namespace/name is replaced by the snapshot given.
   */
  snapshots: VolumeSnapshot[];
  /** PVCs of the snapshot's namespace, fresh, for in-use protection. */
  pvcs: PersistentVolumeClaim[];
  now: Date;
}

/**
 * The protections of one snapshot now, computed exactly as the plan computes them: `hold`,
 * `in-use`, `pending`, `stuck`, and `min-ready` (among the newest minReady ready snapshots of
 * the same schedule and PVC that are not being deleted). Empty: not protected, deletable.
 * For the executor's re-check on a fresh read just before it deletes.
 */
export function protectionOf(snapshot: VolumeSnapshot, ctx: ProtectionContext): readonly ProtectReason[] {
  const namespace = snapshot.metadata.namespace ?? '';
  const name = snapshot.metadata.name ?? '';
  const timing = stateTiming(ctx.retention);
  const state = stateAt(snapshot, ctx.now, timing);
  let rank: number | undefined;
  if (state === 'ready' && !snapshot.metadata.deletionTimestamp) {
    const pvc = sourcePvc(snapshot) ?? '';
    const self = { time: snapshotTime(snapshot) ?? new Date(0), name };
    rank = 1;
    for (const s of ctx.snapshots) {
      if (
        (s.metadata.namespace ?? '') !== namespace ||
        s.metadata.name === name ||
        s.metadata.deletionTimestamp ||
        !belongsTo(s, ctx.scheduleName) ||
        (sourcePvc(s) ?? '') !== pvc ||
        s.status?.readyToUse !== true
      )
        continue;
      const other = { time: snapshotTime(s) ?? new Date(0), name: s.metadata.name ?? '' };
      if (newestFirst(other, self) < 0) rank++;
    }
  }
  const bits = protectionBits(
    isHeld(snapshot),
    snapshotsInUse(ctx.pvcs).has(`${namespace}/${name}`),
    state,
    rank,
    minReadyOf(ctx.retention),
  );
  return KEEP_REASON_LISTS.of(bits) as readonly ProtectReason[];
}

/**
 * The executor's pre-delete re-check of one planned deletion, on a fresh read of the snapshot (and
 * fresh siblings and PVCs in `ctx`): the first protection it has now (see protectionOf), or
 * `'changed'` when it is no longer in the state the plan deleted it in (a failed snapshot whose
 * retries succeeded, or whose error cleared); undefined when it may be deleted.
 */
export function whyNotPrune(
  planned: Pick<Verdict, 'state'>,
  fresh: VolumeSnapshot,
  ctx: ProtectionContext,
): ProtectReason | 'changed' | undefined {
  const [protection] = protectionOf(fresh, ctx);
  if (protection) return protection;
  if (stateAt(fresh, ctx.now, stateTiming(ctx.retention)) !== planned.state) return 'changed';
  return undefined;
}
