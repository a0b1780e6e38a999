/** A clock for the work queue whose time moves only when told; timers due by then fire in order. */
import type { Clock } from '../../src/controller/work-queue.ts';

export class ManualClock implements Clock {
  t: number;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private seq = 0;
  constructor(start = 1_000_000) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== handle);
  }
  advanceTo(t: number): void {
    for (;;) {
      const next = this.timers.filter((x) => x.at <= t).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = t;
  }
  advance(ms: number): void {
    this.advanceTo(this.t + ms);
  }
  get pending(): number {
    return this.timers.length;
  }
}
