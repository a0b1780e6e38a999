/**
 * Numbers the README gives for how the controller behaves, held to the code's constants: each
 * case names the value and the README's words for it, so changing either alone fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_QUEUE_BACKOFF } from '../../src/controller/work-queue.ts';
import { DEFAULT_BACKOFF } from '../../src/kube/backoff.ts';
import { MAX_CONNECTIONS } from '../../src/kube/rest.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8').replace(/\s+/g, ' ');

describe('the README’s numbers are the code’s', () => {
  const cases: [string, unknown, unknown, string][] = [
    [
      'a failed pass backs off from 1 s to 5 min',
      DEFAULT_QUEUE_BACKOFF,
      { baseMs: 1000, capMs: 300_000 },
      '(1 s doubling to 5 min, jittered)',
    ],
    [
      'a failed watch backs off from 0.5 s to 30 s',
      { baseMs: DEFAULT_BACKOFF.baseMs, capMs: DEFAULT_BACKOFF.capMs },
      { baseMs: 500, capMs: 30_000 },
      '(0.5 s doubling to 30 s)',
    ],
    [
      'at most 32 kept-alive connections per identity',
      MAX_CONNECTIONS,
      32,
      'at most 32 kept-alive connections per identity',
    ],
  ];
  for (const [what, actual, expected, sentence] of cases)
    it(what, () => {
      expect(actual).toEqual(expected);
      expect(readme).toContain(sentence);
    });
});
