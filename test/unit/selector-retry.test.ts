import { describe, expect, it } from 'vitest';
import { matchesSelector, selectorString } from '../../src/kube/selector.ts';
import { FairLimiter } from '../../src/kube/fair-limiter.ts';
import { isTransient, withRetry } from '../../src/kube/retry.ts';

describe('label selectors', () => {
  const labels = { app: 'web', tier: 'db' };
  it.each([
    [undefined, true],
    [{}, true],
    [{ matchLabels: { app: 'web' } }, true],
    [{ matchLabels: { app: 'api' } }, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'In' as const, values: ['db', 'cache'] }] }, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn' as const, values: ['db'] }] }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'NotIn' as const, values: ['a'] }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'Exists' as const }] }, true],
    [{ matchExpressions: [{ key: 'app', operator: 'DoesNotExist' as const }] }, false],
    [
      { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'zone', operator: 'Exists' as const }] },
      false,
    ],
  ])('%j matches %s', (selector, expected) => {
    expect(matchesSelector(labels, selector)).toBe(expected);
  });

  it('renders the API server query form', () => {
    expect(
      selectorString({
        matchLabels: { app: 'web' },
        matchExpressions: [
          { key: 'tier', operator: 'In', values: ['db', 'cache'] },
          { key: 'x', operator: 'DoesNotExist' },
        ],
      }),
    ).toBe('app=web,tier in (db,cache),!x');
  });
});

describe('client-side rate limit and retry', () => {
  /** Takes `n` tokens per key in order and records the order in which they are granted. */
  async function grantOrder(
    limiter: FairLimiter,
    asks: [string, 'create' | 'delete' | 'other'][],
  ): Promise<string[]> {
    const order: string[] = [];
    await Promise.all(
      asks.map(([key, lane], i) => limiter.take(key, lane).then(() => order.push(`${lane}:${key}:${i}`))),
    );
    return order;
  }

  it('lets a burst through, then spaces writes at the QPS', async () => {
    const limiter = new FairLimiter(50, 3);
    const start = performance.now();
    const granted: number[] = [];
    await Promise.all(
      [0, 1, 2, 3, 4, 5, 6, 7].map(() => limiter.take().then(() => granted.push(performance.now() - start))),
    );
    // The burst of 3 goes at once (one turn later); the other 5 are spaced at 50/s (20 ms apart).
    const [b0 = 0, , b2 = 0, r0 = 0, ...rest] = granted;
    expect(b2 - b0).toBeLessThan(r0 - b0);
    expect((rest[rest.length - 1] ?? 0) - b0).toBeGreaterThanOrEqual(5 * 20 - 5);
  });

  it('serves keys in turn and lanes by priority: creates, then deletes, then the rest', async () => {
    const limiter = new FairLimiter(1000, 1);
    // All asked in one turn of the event loop: even the one burst token goes round in turn.
    const order = await grantOrder(limiter, [
      ['a', 'create'],
      ['a', 'create'],
      ['a', 'create'],
      ['b', 'other'],
      ['b', 'create'],
      ['c', 'delete'],
      ['c', 'create'],
    ]);
    expect(order).toEqual([
      'create:a:0',
      'create:b:4',
      'create:c:6',
      'create:a:1',
      'create:a:2',
      'delete:c:5',
      'other:b:3',
    ]);
  });

  it("a promoted key's waiting and later writes go before every lane until released", async () => {
    const limiter = new FairLimiter(1000, 1);
    const order: string[] = [];
    const ask = (key: string, lane: 'create' | 'delete' | 'other', tag: string): Promise<number> =>
      limiter.take(key, lane).then(() => order.push(tag));
    const asked = [
      ask('a', 'create', 'a-create-1'),
      ask('a', 'create', 'a-create-2'),
      ask('b', 'other', 'b-status'),
      ask('b', 'delete', 'b-delete'),
      ask('c', 'create', 'c-create'),
    ];
    // b's next fire came due while its pass waits: its writes jump the queue, the ones to come too.
    limiter.promote('b');
    asked.push(ask('b', 'other', 'b-event'));
    await Promise.all(asked);
    expect(order).toEqual(['b-delete', 'b-status', 'b-event', 'a-create-1', 'c-create', 'a-create-2']);
    expect(limiter.requested.urgent).toBe(1);
    // Released: back to its lanes.
    limiter.release('b');
    order.length = 0;
    await Promise.all([ask('a', 'create', 'a-create-3'), ask('b', 'other', 'b-status-2')]);
    expect(order).toEqual(['a-create-3', 'b-status-2']);
  });

  it('counts the writes waiting by lane, promotion included, and tells how long each waited', async () => {
    // One token per 100 ms, and each grant moves the injected clock 100 ms on.
    let clock = 0;
    const limiter = new FairLimiter(10, 1, () => clock);
    const grants: [string, number][] = [];
    limiter.onGrant = (lane, waited) => {
      grants.push([lane, waited]);
      clock += 100;
    };
    const asked = [
      limiter.take('a', 'create'),
      limiter.take('a', 'create'),
      limiter.take('b', 'delete'),
      limiter.take('b', 'other'),
    ];
    expect(limiter.queued).toEqual({ urgent: 0, create: 2, delete: 1, other: 1 });
    limiter.promote('b');
    expect(limiter.queued).toEqual({ urgent: 2, create: 2, delete: 0, other: 0 });
    await asked[3];
    expect(limiter.queued).toEqual({ urgent: 0, create: 2, delete: 0, other: 0 });
    await Promise.all(asked);
    expect(limiter.queued).toEqual({ urgent: 0, create: 0, delete: 0, other: 0 });
    expect(grants).toEqual([
      ['urgent', 0],
      ['urgent', 100],
      ['create', 200],
      ['create', 300],
    ]);
  });

  it('retries 429, 5xx and lost connections, not answers like 409 or 422', async () => {
    expect([429, 500, 503].map((code) => isTransient({ code }))).toEqual([true, true, true]);
    expect([404, 409, 422, 403].map((code) => isTransient({ code }))).toEqual([false, false, false, false]);
    expect(isTransient(new Error('connect ECONNREFUSED'))).toBe(true);
    let calls = 0;
    const value = await withRetry(
      async () => {
        calls++;
        if (calls < 3) throw Object.assign(new Error('busy'), { code: 429 });
        return 'ok';
      },
      { baseMs: 1 },
    );
    expect([value, calls]).toEqual(['ok', 3]);
    await expect(
      withRetry(async () => Promise.reject(Object.assign(new Error('x'), { code: 409 })), { baseMs: 1 }),
    ).rejects.toThrow('x');
  });
});
