/**
 * What to keep and what to delete, per PVC, among one schedule's snapshots.
 * Pure: takes the observed snapshots and PVCs and `now`, returns verdicts with
 * reasons. The act layer deletes exactly `plan.deletions` and nothing else,
 * re-checking each with {@link protectionOf} on a fresh read first.
 */
import { IANAZone } from 'luxon';
import { LABEL_HOLD, LABEL_SCHEDULE, SNAPSHOT_GROUP, SNAPSHOT_KIND } from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../api/objects.ts';
import type { KeepRules, RetentionPolicy } from '../api/types.generated.ts';
import { parseDuration } from '../schedule/duration.ts';
import { labelValue } from '../snapshot/naming.ts';
import {
  DEFAULT_PENDING_DEADLINE,
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
  /** For keep: the protections and keep rules that hold it. For delete: every rule that deletes it. */
  reasons: Reason[];
  /** Rules that would delete a kept snapshot but were overridden by a protection. */
  overridden: DeleteReason[];
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
  /** Snapshots by state (those being deleted are not counted). */
  counts: Record<SnapshotState, number>;
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

/** True when the snapshot belongs to the schedule (the label holds the possibly hashed name). */
export const belongsTo = (s: VolumeSnapshot, scheduleName: string): boolean =>
  s.metadata.labels?.[LABEL_SCHEDULE] === labelValue(scheduleName);

/**
 * The wall-clock buckets of an instant in a zone. One zone-offset lookup per snapshot,
 * then plain UTC arithmetic on the shifted time: formatting through luxon per rule
 * made planning 2,000 snapshots ~10x slower (bench/run.ts).
 */
export function buckets(t: Date, zone: IANAZone): Record<BucketRule, string> {
  const local = new Date(t.getTime() + zone.offset(t.getTime()) * 60_000);
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

interface Entry {
  snapshot: VolumeSnapshot;
  name: string;
  time: Date;
  state: SnapshotState;
}

type KeepMark = `keep-${KeepRule}` | `keep-${BucketRule}-oldest`;

/**
 * restic `forget` (0.16+): which ready snapshots each keep rule selects, input newest first.
 * `last` keeps the N newest. A bucket rule walks newest to oldest and keeps a snapshot whose
 * bucket differs from the last one it kept, while it has slots left; if it still has a slot
 * when it reaches the oldest snapshot, it keeps that one too (`keep-<rule>-oldest` when a
 * newer snapshot already holds the oldest's bucket). Each keep uses one slot.
 */
function keepSelections(ready: Entry[], keep: KeepRules, zoneName: string): Map<Entry, KeepMark[]> {
  const selected = new Map<Entry, KeepMark[]>();
  const mark = (e: Entry, reason: KeepMark): void => {
    const reasons = selected.get(e);
    if (reasons) reasons.push(reason);
    else selected.set(e, [reason]);
  };
  if (keep.last) for (const e of ready.slice(0, keep.last)) mark(e, 'keep-last');
  const rules = BUCKET_RULES.filter((rule) => (keep[rule] ?? 0) > 0);
  if (rules.length === 0) return selected;
  const zone = IANAZone.create(zoneName);
  const keys = ready.map((e) => buckets(e.time, zone));
  const oldest = ready.length - 1;
  for (const rule of rules) {
    const slots = keep[rule] ?? 0;
    let lastBucket: string | undefined;
    let used = 0;
    for (let i = 0; i <= oldest && used < slots; i++) {
      const bucket = keys[i]?.[rule];
      const e = ready[i];
      if (e === undefined || bucket === undefined) continue;
      if (bucket !== lastBucket) {
        lastBucket = bucket;
        used++;
        mark(e, `keep-${rule}`);
      } else if (i === oldest) {
        used++;
        mark(e, `keep-${rule}-oldest`);
      }
    }
  }
  return selected;
}

/** Newest first by cut time; ties by name, descending. The one order for ranks and verdicts. */
const newestFirst = (a: { time: Date; name: string }, b: { time: Date; name: string }): number =>
  b.time.getTime() - a.time.getTime() || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0);

/** The protections of one snapshot, given its facts; shared by the plan and protectionOf. */
function protections(
  held: boolean,
  inUse: boolean,
  state: SnapshotState,
  readyRank: number | undefined,
  minReady: number,
): ProtectReason[] {
  const out: ProtectReason[] = [];
  if (held) out.push('hold');
  if (inUse) out.push('in-use');
  if (state === 'pending') out.push('pending');
  if (state === 'stuck') out.push('stuck');
  if (readyRank !== undefined && readyRank <= minReady) out.push('min-ready');
  return out;
}

const isHeld = (s: VolumeSnapshot): boolean => s.metadata.labels?.[LABEL_HOLD] === 'true';
const minReadyOf = (retention: RetentionPolicy): number => retention.minReady ?? 1;

/** Plans retention for one schedule. Throws only on an invalid policy (validated earlier in practice). */
export function planRetention(input: RetentionInput): RetentionPlan {
  const { retention, now } = input;
  const expiresMs = retention.expires ? parseDuration(retention.expires) : undefined;
  const timing: StateTiming = stateTiming(retention);
  const minReady = minReadyOf(retention);
  const inUse = snapshotsInUse(input.pvcs);

  const byPvc = new Map<string, Entry[]>();
  for (const snapshot of input.snapshots) {
    // Already being deleted: not a copy anyone can count on, and not ours to decide again.
    if (!belongsTo(snapshot, input.scheduleName) || snapshot.metadata.deletionTimestamp) continue;
    const name = snapshot.metadata.name ?? '';
    const time = snapshotTime(snapshot) ?? new Date(0);
    const pvc = sourcePvc(snapshot) ?? '';
    const entries = byPvc.get(pvc);
    const entry: Entry = { snapshot, name, time, state: stateAt(snapshot, now, timing) };
    if (entries) entries.push(entry);
    else byPvc.set(pvc, [entry]);
  }

  const verdicts: Verdict[] = [];
  const pendingByPvc: PvcPending[] = [];
  const counts: Record<SnapshotState, number> = { ready: 0, pending: 0, stuck: 0, failed: 0 };
  for (const pvc of [...byPvc.keys()].sort()) {
    const entries = (byPvc.get(pvc) ?? []).sort(newestFirst);
    const ready = entries.filter((e) => e.state === 'ready');
    const readyRank = new Map(ready.map((e, i) => [e, i + 1]));
    const kept = retention.keep
      ? keepSelections(ready, retention.keep, input.timeZone)
      : new Map<Entry, KeepMark[]>();
    const waiting: PvcPending = { pvc, pending: [], stuck: [] };

    for (const e of entries) {
      counts[e.state]++;
      if (e.state === 'pending') waiting.pending.push(e.name);
      if (e.state === 'stuck') waiting.stuck.push(e.name);
      const namespace = e.snapshot.metadata.namespace ?? '';
      const rank = readyRank.get(e);
      const protect = protections(
        isHeld(e.snapshot),
        inUse.has(`${namespace}/${e.name}`),
        e.state,
        rank,
        minReady,
      );

      const deletes: DeleteReason[] = [];
      if (e.state === 'failed') deletes.push('failed');
      if (expiresMs !== undefined && now.getTime() - e.time.getTime() > expiresMs) deletes.push('expired');
      if (retention.maxCount !== undefined && rank !== undefined && rank > retention.maxCount)
        deletes.push('max-count');
      const keepReasons: KeepMark[] = kept.get(e) ?? [];
      if (retention.keep && e.state === 'ready' && keepReasons.length === 0) deletes.push('not-kept');

      const error = e.snapshot.status?.error?.message;
      const base = {
        name: e.name,
        namespace,
        pvc,
        time: e.time,
        state: e.state,
        ...(error ? { error } : {}),
      };
      if (protect.length > 0) {
        verdicts.push({
          ...base,
          verdict: 'keep',
          reasons: [...protect, ...keepReasons],
          overridden: deletes,
        });
      } else if (deletes.length > 0) {
        verdicts.push({ ...base, verdict: 'delete', reasons: deletes, overridden: [] });
      } else {
        const reasons: KeepReason[] = keepReasons.length > 0 ? keepReasons : ['within-policy'];
        verdicts.push({ ...base, verdict: 'keep', reasons, overridden: [] });
      }
    }
    if (waiting.pending.length + waiting.stuck.length > 0) pendingByPvc.push(waiting);
  }
  return {
    verdicts,
    deletions: verdicts.filter((v): v is Deletion => v.verdict === 'delete'),
    stuck: verdicts.filter((v) => v.state === 'stuck'),
    pendingByPvc,
    maxPending: retention.maxPending ?? DEFAULT_MAX_PENDING,
    pendingDeadline: retention.pendingDeadline ?? DEFAULT_PENDING_DEADLINE,
    counts,
  };
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
  const p = plan.pendingByPvc.find((x) => x.pvc === pvc);
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
export function protectionOf(snapshot: VolumeSnapshot, ctx: ProtectionContext): ProtectReason[] {
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
  return protections(
    isHeld(snapshot),
    snapshotsInUse(ctx.pvcs).has(`${namespace}/${name}`),
    state,
    rank,
    minReadyOf(ctx.retention),
  );
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
