/** The executor writes a schedule's status only when it changed (sameStatus). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sameStatus } from '../../src/controller/executor.ts';

/** `v` with the entries of each of its objects passed through `edit`, at every depth. */
const rebuild = (v: unknown, edit: (entries: [string, unknown][]) => [string, unknown][]): unknown =>
  Array.isArray(v)
    ? v.map((x) => rebuild(x, edit))
    : v && typeof v === 'object'
      ? Object.fromEntries(edit(Object.entries(v)).map(([k, x]) => [k, rebuild(x, edit)]))
      : v;

/** What sameStatus replaced: JSON texts of copies with sorted keys and no undefined fields. */
function reference(a: unknown, b: unknown): boolean {
  const normalize = (v: unknown): unknown =>
    rebuild(v, (entries) =>
      entries.filter(([, x]) => x !== undefined).sort(([k], [l]) => k.localeCompare(l)),
    );
  return JSON.stringify(normalize(a)) === JSON.stringify(normalize(b));
}

const key = fc.constantFrom(
  'lastScheduleTime',
  'conditions',
  'type',
  'status',
  'reason',
  'snapshots',
  'ready',
);
const leaf = fc.oneof(
  fc.constantFrom('True', 'False', '2026-11-26T20:00:00Z', ''),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
);
const { tree } = fc.letrec((t) => ({
  tree: fc.oneof({ depthSize: 'small' }, leaf, t('object'), t('array')),
  object: fc.dictionary(key, fc.option(t('tree'), { nil: undefined, freq: 4 }), { maxKeys: 4 }),
  array: fc.array(t('tree'), { maxLength: 3 }),
}));
/** The same value with its keys in another order (and so a different JSON text). */
const reorder = (v: unknown): unknown => rebuild(v, (entries) => entries.reverse());

describe('sameStatus', () => {
  it('agrees with comparing sorted JSON texts, on any two statuses', () => {
    fc.assert(
      fc.property(tree, tree, (a, b) => {
        expect(sameStatus(a, b)).toBe(reference(a, b));
      }),
      { numRuns: 2000 },
    );
  });

  it('ignores key order and undefined fields, and sees any changed value', () => {
    fc.assert(
      fc.property(tree, (a) => {
        expect(sameStatus(a, reorder(a))).toBe(true);
        expect(sameStatus({ s: a, gone: undefined }, { s: a })).toBe(true);
        expect(sameStatus({ s: a }, { s: a, extra: 1 })).toBe(false);
        expect(sameStatus([a], [a, a])).toBe(false);
      }),
    );
    expect(
      sameStatus(
        { conditions: [{ type: 'Ready', status: 'True' }] },
        { conditions: [{ type: 'Ready', status: 'False' }] },
      ),
    ).toBe(false);
  });
});
