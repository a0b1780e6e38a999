/**
 * "What goes next, and when": the retention planner run forward over the coming fire times.
 *
 * The future is simulated the way the controller would live it, assuming each run succeeds:
 * every fire time the PVC is snapshotted at (not while retention.maxPending not-ready
 * snapshots hold it back, nor while Forbid waits for a pending one) adds a ready snapshot cut
 * at that time, named as that run would name it; snapshots that exist now keep their state,
 * except that time passes for them (an error outlasts failedAfter, a snapshot expires). Holds
 * and restores in progress stay as they are. The answer is the first instant at which
 * {@link planRetention} deletes something, and what it deletes then.
 *
 * The planner's answer only changes at fire times and at the instants an expiry or a
 * failedAfter bound is crossed, and, with nothing deleted in between, a snapshot it would
 * delete at one instant it also deletes at every later one (ranks and keep buckets only fill
 * up, clocks only run). So the planner is asked at those instants only, by exponential then
 * binary search: a few calls per PVC, whatever the horizon.
 */
import type { PersistentVolumeClaim, VolumeSnapshot } from '../api/objects.ts';
import type { RetentionPolicy } from '../api/types.generated.ts';
import { belongsTo, planRetention, shouldHoldBack, type Deletion } from '../retention/plan.ts';
import {
  errorSince,
  scheduledTime,
  snapshotTime,
  sourcePvc,
  stateAt,
  stateTiming,
} from '../retention/snapshot-state.ts';
import { fireTimes, type CronSchedule } from '../schedule/cron.ts';
import { parseDuration } from '../schedule/duration.ts';
import { snapshotMetadata, snapshotName } from '../snapshot/naming.ts';

/** How far ahead the prediction looks: this many runs of the schedule, and at most this long. */
export const PREDICTION_HORIZON = { runs: 1000, ms: 5 * 366 * 86_400_000 } as const;

/** A schedule's fire times after `now`, generated once on demand and shared by all its PVCs. */
export class FireTimeline {
  private readonly times: number[] = [];
  private readonly source: Generator<Date>;
  private readonly untilMs: number;
  private readonly maxRuns: number;
  private done = false;

  constructor(cron: CronSchedule, now: Date, horizon: { runs: number; ms: number } = PREDICTION_HORIZON) {
    this.untilMs = now.getTime() + horizon.ms;
    this.maxRuns = horizon.runs;
    this.source = fireTimes(cron, now, this.untilMs);
  }

  /** The i-th fire time (0: the next one), or undefined past the horizon. */
  at(i: number): number | undefined {
    while (this.times.length <= i && !this.done) {
      const next = this.source.next();
      if (next.done || this.times.length >= this.maxRuns) this.done = true;
      else this.times.push(next.value.getTime());
    }
    return this.times[i];
  }
}

export interface PredictInput {
  scheduleName: string;
  namespace: string;
  pvc: string;
  retention: RetentionPolicy;
  timeZone: string;
  /** Snapshots of the PVC (others, and other schedules', are ignored). */
  snapshots: VolumeSnapshot[];
  /** PVCs of the namespace, for restores in progress (only not-yet-Bound ones matter). */
  pvcs: PersistentVolumeClaim[];
  now: Date;
  /** The fire times at which runs snapshot this PVC; undefined when none will (suspended, not selected, not Bound). */
  fires?: FireTimeline | undefined;
  concurrencyPolicy?: 'Allow' | 'Forbid' | undefined;
  /** The planner's deletions for this PVC at `now`, when the caller already has them. */
  deletionsNow?: Deletion[] | undefined;
  /** Look this far ahead at most (default {@link PREDICTION_HORIZON}'s time; runs are bounded by `fires`). */
  horizonMs?: number;
}

export interface Prediction {
  at: Date;
  /** now: already deleted by the plan at `now`; run: a run at `at` pushes it out; time: a clock bound is crossed at `at`. */
  trigger: 'now' | 'run' | 'time';
  /** Everything the planner deletes at `at`, in its verdict order (newest first). */
  deletions: Deletion[];
  /** Names of snapshots among `deletions` that a future run takes. */
  planned: Set<string>;
}

interface Candidate {
  t: number;
  /** How many simulated runs have been taken by `t`. */
  runs: number;
  run: boolean;
}

/** The first deletion retention makes for one PVC of one schedule, now or later; undefined within the horizon. */
export function predictNextDeletion(input: PredictInput): Prediction | undefined {
  const { retention, now, pvc, scheduleName, namespace } = input;
  const nowMs = now.getTime();
  const own = input.snapshots.filter(
    (s) => belongsTo(s, scheduleName) && (sourcePvc(s) ?? '') === pvc && !s.metadata.deletionTimestamp,
  );
  // Only PVCs still restoring protect anything; the rest would be re-read at every call.
  const restoring = input.pvcs.filter((p) => p.status?.phase !== 'Bound');
  const synthetic: VolumeSnapshot[] = [];
  const fireList: number[] = [];
  const planned = new Set<string>();
  const plan = (at: number, runs: number): Deletion[] => {
    for (let i = synthetic.length; i < runs; i++) {
      const t = fireList[i] as number;
      const taken = new Date(t);
      const iso = taken.toISOString();
      const meta = snapshotMetadata(pvc, scheduleName, taken);
      const name = snapshotName(pvc, scheduleName, taken);
      planned.add(name);
      synthetic.push({
        metadata: { name, namespace, ...meta, creationTimestamp: iso },
        spec: { source: { persistentVolumeClaimName: pvc } },
        status: { readyToUse: true, creationTime: iso },
      });
    }
    return planRetention({
      scheduleName,
      retention,
      timeZone: input.timeZone,
      snapshots: runs > 0 ? [...own, ...synthetic.slice(0, runs)] : own,
      pvcs: restoring,
      now: new Date(at),
    }).deletions;
  };

  const first = input.deletionsNow ?? plan(nowMs, 0);
  if (first.length > 0) return { at: now, trigger: 'now', deletions: first, planned: new Set() };

  const timing = stateTiming(retention);
  const expiresMs = retention.expires ? parseDuration(retention.expires) : undefined;
  const untilMs = nowMs + (input.horizonMs ?? PREDICTION_HORIZON.ms);
  // The planner compares strictly (older than expires, an error lasting longer than
  // failedAfter): its answer changes 1 ms after each bound.
  const crossings: number[] = [];
  for (const s of own) {
    const t = (snapshotTime(s) ?? new Date(0)).getTime();
    if (expiresMs !== undefined) crossings.push(t + expiresMs + 1);
    if (s.status?.readyToUse !== true && s.status?.error) {
      const since = errorSince(s);
      if (since) crossings.push(since.getTime() + timing.failedAfterMs + 1);
    }
  }
  const future = crossings.filter((t) => t > nowMs && t <= untilMs).sort((a, b) => a - b);

  // The first fire time at which a run takes this PVC; every later one does too (see below).
  let fireIndex = 0;
  const fires = input.fires;
  if (fires) {
    while (fires.at(fireIndex) !== undefined && !runTakes(fires.at(fireIndex) as number)) fireIndex++;
  }

  /**
   * Whether a run at `t` snapshots the PVC, before any simulated run has: not while it has
   * maxPending not-ready snapshots (shouldHoldBack, as decide asks it), nor, with Forbid,
   * while its newest snapshot is pending or stuck. Both only ever clear (an error outlasting
   * failedAfter turns a waiting snapshot failed), and once a run is taken its snapshot is
   * the newest and ready, so every later run is taken too.
   */
  function runTakes(t: number): boolean {
    const waiting = own.filter((s) => s.status?.readyToUse !== true);
    if (waiting.length === 0) return true;
    const at = new Date(t);
    const held = shouldHoldBack(
      planRetention({
        scheduleName,
        retention,
        timeZone: input.timeZone,
        snapshots: waiting,
        pvcs: [],
        now: at,
      }),
      pvc,
    );
    if (held) return false;
    if (input.concurrencyPolicy === 'Forbid') {
      const previous = [...own].sort(
        (a, b) => (scheduledTime(b)?.getTime() ?? 0) - (scheduledTime(a)?.getTime() ?? 0),
      )[0];
      const state = previous && stateAt(previous, at, timing);
      if (state === 'pending' || state === 'stuck') return false;
    }
    return true;
  }

  // Candidates in time order: taken runs, clock bounds of existing snapshots, and expiries of simulated ones.
  const candidates: Candidate[] = [];
  let crossingIndex = 0;
  let expiryIndex = 0; // the simulated run whose expiry comes next
  let exhausted = false;
  const nextCandidate = (): Candidate | undefined => {
    if (exhausted) return undefined;
    const run = fires?.at(fireIndex) ?? Infinity;
    const crossing = future[crossingIndex] ?? Infinity;
    const taken = fireList[expiryIndex];
    const expiry = expiresMs !== undefined && taken !== undefined ? taken + expiresMs + 1 : Infinity;
    const t = Math.min(run, crossing, expiry);
    if (t === Infinity || t > untilMs) {
      exhausted = true;
      return undefined;
    }
    if (run === t) {
      fireList.push(t);
      fireIndex++;
    }
    while (future[crossingIndex] === t) crossingIndex++;
    if (expiry === t) expiryIndex++;
    return { t, runs: fireList.length, run: run === t };
  };
  const candidate = (i: number): Candidate | undefined => {
    while (candidates.length <= i) {
      const next = nextCandidate();
      if (!next) return undefined;
      candidates.push(next);
    }
    return candidates[i];
  };
  const results = new Map<number, Deletion[]>();
  const deletesAt = (i: number): Deletion[] => {
    let d = results.get(i);
    if (!d) {
      const c = candidate(i) as Candidate;
      d = plan(c.t, c.runs);
      results.set(i, d);
    }
    return d;
  };

  // Exponential search for a candidate that deletes, then binary search for the first one.
  let lo = -1; // known not to delete
  let hi: number; // known to delete
  for (let step = 1; ; step *= 2) {
    let i = lo + step;
    if (!candidate(i)) {
      i = candidates.length - 1;
      if (i <= lo) return undefined;
      if (deletesAt(i).length === 0) return undefined;
      hi = i;
      break;
    }
    if (deletesAt(i).length > 0) {
      hi = i;
      break;
    }
    lo = i;
  }
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (deletesAt(mid).length > 0) hi = mid;
    else lo = mid;
  }
  const found = candidate(hi) as Candidate;
  const deletions = deletesAt(hi);
  return {
    at: new Date(found.t),
    trigger: found.run ? 'run' : 'time',
    deletions,
    planned: new Set(deletions.filter((d) => planned.has(d.name)).map((d) => d.name)),
  };
}
