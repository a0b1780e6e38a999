/**
 * A keyed work queue in the shape of client-go's rate-limited delaying queue:
 * - `add(key)`: work now. A key is never handed to two workers at once; a key added while
 *   it is being worked on is marked dirty and handed out again when `done(key)` is called.
 * - `addAfter(key, at)`: work no earlier than `at` (a fire time). A binary heap orders the
 *   delays, so each is O(log n), not a scan of every schedule; a key keeps only its earliest.
 * - `addBackoff(key)`: after a failure, per-key exponential backoff with jitter up to a cap;
 *   `forget(key)` resets it after a success.
 * Ready keys are served first in, first out, so a burst is worked through in arrival order.
 * The clock and timers are injected, so tests drive time by hand.
 */

/** The longest delay Node's setTimeout honours (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

export const DEFAULT_QUEUE_BACKOFF: BackoffPolicy = { baseMs: 1000, capMs: 5 * 60_000 };

/** A min-heap of (at, key), with lazy deletion: an entry is live only if it matches `due.get(key)`. */
class DelayHeap {
  private readonly heap: { at: number; key: string }[] = [];

  push(at: number, key: string): void {
    const h = this.heap;
    h.push({ at, key });
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((h[parent] as { at: number }).at <= at) break;
      [h[i], h[parent]] = [h[parent] as { at: number; key: string }, h[i] as { at: number; key: string }];
      i = parent;
    }
  }

  peek(): { at: number; key: string } | undefined {
    return this.heap[0];
  }

  pop(): { at: number; key: string } | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && (h[l] as { at: number }).at < (h[m] as { at: number }).at) m = l;
        if (r < h.length && (h[r] as { at: number }).at < (h[m] as { at: number }).at) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as { at: number; key: string }, h[i] as { at: number; key: string }];
        i = m;
      }
    }
    return top;
  }

  get size(): number {
    return this.heap.length;
  }
}

export class WorkQueue {
  private readonly clock: Clock;
  private readonly backoff: BackoffPolicy;
  private readonly random: () => number;
  /** Ready keys in order, and the set of them for de-duplication. */
  private ready: string[] = [];
  private readyHead = 0;
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  /** Earliest pending delay per key; heap entries that disagree are stale. */
  private readonly due = new Map<string, number>();
  private readonly heap = new DelayHeap();
  private readonly failures = new Map<string, number>();
  private timer: unknown;
  private timerAt = Infinity;
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shut = false;

  constructor(clock: Clock = realClock, backoff = DEFAULT_QUEUE_BACKOFF, random: () => number = Math.random) {
    this.clock = clock;
    this.backoff = backoff;
    this.random = random;
  }

  /** Ready keys waiting for a worker. */
  get length(): number {
    return this.ready.length - this.readyHead;
  }
  /** Keys waiting for a time. */
  get delayed(): number {
    return this.due.size;
  }

  add(key: string): void {
    if (this.shut) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    const waiter = this.waiters.shift();
    if (waiter) {
      this.queued.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.ready.push(key);
  }

  /** Work on `key` at `at` (ms since epoch) or later; an earlier pending time wins. */
  addAfter(key: string, at: number): void {
    if (this.shut) return;
    if (at <= this.clock.now()) {
      this.add(key);
      return;
    }
    const current = this.due.get(key);
    if (current !== undefined && current <= at) return;
    this.due.set(key, at);
    this.heap.push(at, key);
    this.arm();
  }

  /** Re-queues after a failure, `base·2^(n-1)` capped, jittered to 50-100%. Returns the delay. */
  addBackoff(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const raw = Math.min(this.backoff.capMs, this.backoff.baseMs * 2 ** (n - 1));
    const delay = Math.round(raw * (0.5 + this.random() / 2));
    this.addAfter(key, this.clock.now() + delay);
    return delay;
  }

  /** Failures in a row for `key`. */
  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Drops a pending delay (the object is gone). */
  cancel(key: string): void {
    this.due.delete(key);
    this.failures.delete(key);
  }

  /** The next ready key, waiting for one; undefined once shut down. */
  get(): Promise<string | undefined> {
    if (this.length > 0) {
      const key = this.ready[this.readyHead++] as string;
      if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) {
        this.ready = this.ready.slice(this.readyHead);
        this.readyHead = 0;
      }
      this.queued.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shut) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** A worker holds `key` now. */
  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }

  /** The worker finished `key`; a key added meanwhile is handed out again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  shutDown(): void {
    this.shut = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    for (const w of this.waiters.splice(0)) w(undefined);
  }

  /** One timer, aimed at the earliest live delay. */
  private arm(): void {
    let top = this.heap.peek();
    while (top && this.due.get(top.key) !== top.at) {
      this.heap.pop();
      top = this.heap.peek();
    }
    if (!top || top.at >= this.timerAt) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timerAt = top.at;
    // Node runs a timer of more than 2^31-1 ms after 1 ms instead (a yearly schedule would spin):
    // aim at most that far, and fire() re-arms for the rest.
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, top.at - this.clock.now()));
    this.timer = this.clock.setTimeout(() => this.fire(), wait);
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.clock.now();
    for (let top = this.heap.peek(); top && top.at <= now; top = this.heap.peek()) {
      this.heap.pop();
      if (this.due.get(top.key) !== top.at) continue; // superseded by an earlier time, or cancelled
      this.due.delete(top.key);
      this.add(top.key);
    }
    this.arm();
  }
}
