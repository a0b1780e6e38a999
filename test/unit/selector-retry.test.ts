import { describe, expect, it } from 'vitest';
import { matchesSelector, selectorString } from '../../src/kube/selector.ts';
import { isTransient, TokenBucket, withRetry } from '../../src/kube/retry.ts';

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
  it('lets a burst through, then spaces calls at the QPS', () => {
    let t = 0;
    const bucket = new TokenBucket(10, 3, () => t);
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 0]);
    expect(bucket.reserve()).toBe(100);
    t = 1000;
    expect(bucket.reserve()).toBe(0);
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
