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
    await Promise.all([1, 2, 3].map(() => limiter.take()));
    expect(performance.now() - start).toBeLessThan(15);
    await Promise.all([1, 2, 3, 4, 5].map(() => limiter.take()));
    expect(performance.now() - start).toBeGreaterThanOrEqual(90); // 5 more at 50/s
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
