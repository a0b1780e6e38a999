/**
 * The client-side write budget (QPS and burst, a token bucket like client-go's flags),
 * handed out fairly. Waiting writes sit in lanes by priority — snapshot creates first,
 * then deletions, then everything else (status, events, finalizers) — and within a lane
 * each key (a schedule) gets one token in turn. So when a thousand schedules fire at
 * once, every schedule's first snapshot goes out in the first round instead of the last
 * schedule's after all others' last, and status writes never hold up a snapshot.
 *
 * One exception ranks above them all: a schedule whose next fire came due while its pass still
 * waits for writes (a status write behind thousands of others after a burst) is `promote`d, and
 * its writes go first until `release`, so the pass ends and the fire starts on time.
 */

export const LANES = ['urgent', 'create', 'delete', 'other'] as const;
export type Lane = (typeof LANES)[number];

interface Waiter {
  resolve: () => void;
  /** When the write asked (the limiter's clock), for the wait-time metric. */
  at: number;
}

/** Round-robin over keys, each with a FIFO of waiters. */
class FairLane {
  private readonly byKey = new Map<string, Waiter[]>();
  /** Keys with waiters, in turn order; a Map keeps insertion order and O(1) delete. */
  private readonly ring = new Map<string, true>();
  /** Waiters in this lane. */
  size = 0;

  push(key: string, w: Waiter): void {
    let q = this.byKey.get(key);
    if (!q) {
      q = [];
      this.byKey.set(key, q);
    }
    q.push(w);
    this.ring.set(key, true);
    this.size++;
  }

  /** Takes every waiter of `key` out of this lane. */
  remove(key: string): Waiter[] {
    const q = this.byKey.get(key) ?? [];
    this.byKey.delete(key);
    this.ring.delete(key);
    this.size -= q.length;
    return q;
  }

  /** The next waiter in turn, moving its key to the back of the ring. */
  shift(): Waiter | undefined {
    const first = this.ring.keys().next();
    if (first.done) return undefined;
    const key = first.value;
    const q = this.byKey.get(key) as Waiter[];
    const w = q.shift();
    this.size--;
    this.ring.delete(key);
    if (q.length > 0) this.ring.set(key, true);
    else this.byKey.delete(key);
    return w;
  }

  get empty(): boolean {
    return this.ring.size === 0;
  }
}

export class FairLimiter {
  private readonly qps: number;
  private readonly burst: number;
  private readonly now: () => number;
  private tokens: number;
  private last: number;
  private readonly lanes = new Map<Lane, FairLane>(LANES.map((l) => [l, new FairLane()]));
  private timer: NodeJS.Timeout | undefined;
  private pumpSoon: NodeJS.Immediate | undefined;
  /** Writes asked for so far, by lane (for metrics and benchmarks). */
  readonly requested: Record<Lane, number> = { urgent: 0, create: 0, delete: 0, other: 0 };
  /** Told of every token handed out: its lane and how long the write waited, in ms. */
  onGrant: ((lane: Lane, waitedMs: number) => void) | undefined;
  /** Keys whose writes go in the urgent lane (see promote). */
  private readonly promoted = new Set<string>();

  constructor(qps: number, burst: number, now: () => number = () => performance.now()) {
    this.qps = qps;
    this.burst = Math.max(1, burst);
    this.tokens = this.burst;
    this.now = now;
    this.last = now();
  }

  /**
   * Resolves when this write may go out. Tokens are handed out on the next turn of the event
   * loop, not at once: every pass that fired in this turn has queued its writes by then, so
   * even the burst tokens go round the schedules in turn instead of to the first pass's writes.
   */
  take(key = '', lane: Lane = 'other'): Promise<void> {
    const l = this.promoted.has(key) ? 'urgent' : lane;
    return new Promise((resolve) => {
      (this.lanes.get(l) as FairLane).push(key, { resolve, at: this.now() });
      this.requested[l]++;
      this.pumpSoon ??= setImmediate(() => {
        this.pumpSoon = undefined;
        this.pump();
      });
    });
  }

  /** From now until release, `key`'s writes (waiting or to come) go before every other lane. */
  promote(key: string): void {
    if (key === '' || this.promoted.has(key)) return;
    this.promoted.add(key);
    const urgent = this.lanes.get('urgent') as FairLane;
    for (const lane of LANES)
      if (lane !== 'urgent')
        for (const w of (this.lanes.get(lane) as FairLane).remove(key)) urgent.push(key, w);
  }

  release(key: string): void {
    this.promoted.delete(key);
  }

  /** Writes waiting for a token now, by lane: a budget too small for the load shows here first. */
  get queued(): Record<Lane, number> {
    const size = (l: Lane): number => (this.lanes.get(l) as FairLane).size;
    return { urgent: size('urgent'), create: size('create'), delete: size('delete'), other: size('other') };
  }

  /** Writes waiting for a token. */
  get waiting(): boolean {
    return LANES.some((l) => !(this.lanes.get(l) as FairLane).empty);
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.qps);
    this.last = t;
  }

  private next(): Waiter | undefined {
    for (const lane of LANES) {
      const w = (this.lanes.get(lane) as FairLane).shift();
      if (w) {
        this.onGrant?.(lane, this.now() - w.at);
        return w;
      }
    }
    return undefined;
  }

  private pump(): void {
    if (this.timer) return; // a refill is already scheduled
    this.refill();
    while (this.tokens >= 1) {
      const w = this.next();
      if (!w) return;
      this.tokens -= 1;
      w.resolve();
    }
    if (!this.waiting) return;
    const wait = Math.max(1, Math.ceil(((1 - this.tokens) / this.qps) * 1000));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, wait);
  }
}
