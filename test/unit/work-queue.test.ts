import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_TIMER_MS, WorkQueue } from '../../src/controller/work-queue.ts';
import { ManualClock } from '../support/manual-clock.ts';

/** Keys ready right now, in the order a worker would get them. */
async function drain(q: WorkQueue): Promise<string[]> {
  const out: string[] = [];
  while (q.length > 0) {
    const k = (await q.get()) as string;
    out.push(k);
    q.done(k);
  }
  return out;
}

describe('the work queue', () => {
  it('de-duplicates, serves first in first out, and never hands one key to two workers', async () => {
    const q = new WorkQueue(new ManualClock());
    q.add('a');
    q.add('b');
    q.add('a');
    const a = await q.get();
    expect(a).toBe('a');
    q.add('a'); // while a worker has it: marked dirty, not handed out again yet
    expect(await drain(q)).toEqual(['b']);
    q.done('a');
    expect(await drain(q)).toEqual(['a']);
  });

  it('wakes keys at their time, one timer for all, the earliest time per key winning', async () => {
    const clock = new ManualClock();
    const q = new WorkQueue(clock);
    const t0 = clock.now();
    q.addAfter('late', t0 + 5000);
    q.addAfter('soon', t0 + 1000);
    q.addAfter('late', t0 + 9000); // later than pending: ignored
    q.addAfter('moved', t0 + 8000);
    q.addAfter('moved', t0 + 2000); // earlier: wins
    expect(clock.pending).toBe(1);
    clock.advance(999);
    expect(await drain(q)).toEqual([]);
    clock.advance(1);
    expect(await drain(q)).toEqual(['soon']);
    clock.advance(1000);
    expect(await drain(q)).toEqual(['moved']);
    clock.advance(3000);
    expect(await drain(q)).toEqual(['late']);
    clock.advance(10_000);
    expect(await drain(q)).toEqual([]); // nothing fires twice
    expect(q.delayed).toBe(0);
  });

  it('never asks for a timer longer than Node honours: a yearly fire waits in steps, not in a 1 ms spin', async () => {
    const clock = new ManualClock();
    const asked: number[] = [];
    const recording = Object.assign(Object.create(clock) as ManualClock, {
      setTimeout: (fn: () => void, ms: number) => {
        asked.push(ms);
        return clock.setTimeout(fn, ms);
      },
    });
    const q = new WorkQueue(recording);
    const year = 365 * 86_400_000;
    q.addAfter('yearly', clock.now() + year);
    expect(asked).toEqual([MAX_TIMER_MS]);
    clock.advance(MAX_TIMER_MS);
    expect(await drain(q)).toEqual([]); // woke early, handed nothing out, aimed again
    expect(asked).toHaveLength(2);
    clock.advance(year - MAX_TIMER_MS - 1);
    expect(await drain(q)).toEqual([]);
    clock.advance(1);
    expect(await drain(q)).toEqual(['yearly']);
    expect(asked.every((ms) => ms <= MAX_TIMER_MS)).toBe(true);
  });

  it('backs off a failing key exponentially with jitter up to the cap, and forgets on success', () => {
    const clock = new ManualClock();
    const q = new WorkQueue(clock, { baseMs: 1000, capMs: 8000 }, () => 1);
    expect([1, 2, 3, 4, 5].map(() => q.addBackoff('k'))).toEqual([1000, 2000, 4000, 8000, 8000]);
    q.forget('k');
    expect(q.addBackoff('k')).toBe(1000);
    const jittered = new WorkQueue(clock, { baseMs: 1000, capMs: 8000 }, () => 0);
    expect(jittered.addBackoff('k')).toBe(500);
  });

  it('hands out delayed keys in time order, whatever order they were added in (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 10_000 })), {
          minLength: 1,
          maxLength: 200,
        }),
        async (adds) => {
          const clock = new ManualClock();
          const q = new WorkQueue(clock);
          const earliest = new Map<string, number>();
          for (const [k, d] of adds) {
            const key = `k${k}`;
            q.addAfter(key, clock.now() + d);
            earliest.set(key, Math.min(earliest.get(key) ?? Infinity, d));
          }
          const seen: { key: string; at: number }[] = [];
          for (let step = 0; step <= 10_000; step += 50) {
            for (const key of await drain(q)) seen.push({ key, at: step });
            clock.advance(50);
          }
          expect(seen.map((s) => s.key).sort()).toEqual([...earliest.keys()].sort());
          for (const s of seen) {
            const due = earliest.get(s.key) as number;
            expect(s.at).toBeGreaterThanOrEqual(due); // never early
            expect(s.at).toBeLessThan(due + 50); // handed out at the first look after its time
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('shutDown releases waiting workers', async () => {
    const q = new WorkQueue(new ManualClock());
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add('x');
    expect(q.length).toBe(0);
  });
});
