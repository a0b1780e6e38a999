import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isDns1123Subdomain,
  labelValue,
  snapshotMetadata,
  snapshotName,
  timeStamp,
} from '../../src/snapshot/naming.ts';

/** Trims a generated name to a DNS-1123 subdomain of at most `max` characters. */
const fit = (text: string, max = 253): string => text.slice(0, max).replace(/[-.]+$/, '');

/**
 * Adversarial DNS-1123 subdomain names: pieces from a small vocabulary (so different pairs
 * often join to the same text), `-` and `.` separators, and an optional long run so names
 * reach 253 characters and get cut.
 */
const piece = fc.oneof(
  fc.constantFrom('a', 'b', 'web', 'data', 'nightly', '0', 'x1'),
  fc.stringMatching(/^[a-z0-9]{1,12}$/),
  fc.integer({ min: 40, max: 252 }).map((n) => 'p'.repeat(n)),
);
const dnsName = fc
  .tuple(fc.array(piece, { minLength: 1, maxLength: 6 }), fc.array(fc.constantFrom('-', '.', '-')))
  .map(([pieces, seps]) => fit(pieces.map((p, i) => (i === 0 ? p : `${seps[i] ?? '-'}${p}`)).join('')))
  .filter(isDns1123Subdomain);

/** Every way to split `a-b-c` into a PVC and a schedule name: pairs that join to the same text. */
const splits = (pieces: string[]): { pvc: string; schedule: string }[] =>
  pieces
    .slice(1)
    .map((_, i) => ({ pvc: pieces.slice(0, i + 1).join('-'), schedule: pieces.slice(i + 1).join('-') }))
    .filter((p) => p.pvc.length <= 253 && p.schedule.length <= 253);

/** Whole-second scheduled times, with and without seconds, 1970..2096. */
const scheduledAt = fc
  .tuple(fc.integer({ min: 0, max: 4e9 }), fc.boolean())
  .map(([s, onMinute]) => new Date((onMinute ? s - (s % 60) : s) * 1000));

const HASHED = /^(.*)-([0-9a-f]{10})-(\d{12}|\d{14})$/;

describe('snapshot names', () => {
  it('are <pvc>-<schedule>-<hash>-<yyyymmddhhmm> in UTC', () => {
    const name = snapshotName('disk-ssd-web-0', 'nightly', new Date('2026-03-29T01:00:00Z'));
    expect(name).toMatch(HASHED);
    expect(name).toBe('disk-ssd-web-0-nightly-0d3cb8daaa-202603290100');
  });

  it('carry seconds when the scheduled time has them', () => {
    expect(timeStamp(new Date('2026-03-29T01:00:05Z'))).toBe('20260329010005');
    expect(timeStamp(new Date('2026-03-29T01:00:00Z'))).toBe('202603290100');
    expect(snapshotName('a', 'b', new Date('2026-03-29T01:00:05Z'))).toMatch(/-20260329010005$/);
  });

  it('tell apart pairs that join to the same text (data-web + nightly, data + web-nightly)', () => {
    const at = new Date('2026-06-15T02:00:00Z');
    const a = snapshotName('data-web', 'nightly', at);
    const b = snapshotName('data', 'web-nightly', at);
    expect(a).not.toBe(b);
    expect(a.startsWith('data-web-nightly-')).toBe(true);
    expect(b.startsWith('data-web-nightly-')).toBe(true);
  });

  it('are cut to 253 characters, keeping hash and time, staying unique and valid', () => {
    const pvc = `data-${'a'.repeat(200)}`;
    const at = new Date('2026-01-01T00:00:00Z');
    const a = snapshotName(pvc, 'schedule-one-with-a-long-name-that-pushes-it-over', at);
    const b = snapshotName(pvc, 'schedule-two-with-a-long-name-that-pushes-it-over', at);
    expect(a.length).toBeLessThanOrEqual(253);
    expect(a).not.toBe(b);
    expect(isDns1123Subdomain(a)).toBe(true);
    expect(a.startsWith(`${pvc}-schedule-one-with`)).toBe(true);
    expect(a).toMatch(/-[0-9a-f]{10}-202601010000$/);
  });

  it('differ for names that differ only past the cut', () => {
    const at = new Date('2026-01-01T00:00:00Z');
    const base = 'v'.repeat(250);
    const names = ['1', '2', '3'].map((end) => snapshotName(`${base}-${end}`, 'nightly', at));
    expect(new Set(names).size).toBe(3);
    for (const n of names) expect(isDns1123Subdomain(n)).toBe(true);
  });

  it('are distinct for every split of one text into PVC and schedule, cut or not (property)', () => {
    fc.assert(
      fc.property(fc.array(piece, { minLength: 2, maxLength: 8 }), scheduledAt, (pieces, at) => {
        const names = splits(pieces).map(({ pvc, schedule }) => snapshotName(pvc, schedule, at));
        expect(new Set(names).size).toBe(names.length);
      }),
      { numRuns: 500 },
    );
  });

  it('are distinct for distinct (PVC, schedule, time), valid, deterministic and readable (property)', () => {
    // Every split of a few texts (pairs that join alike) plus independent pairs, long ones cut.
    const pairs = fc
      .tuple(
        fc.array(fc.array(piece, { minLength: 2, maxLength: 6 }), { maxLength: 3 }),
        fc.array(fc.record({ pvc: dnsName, schedule: dnsName }), { maxLength: 12 }),
      )
      .map(([texts, more]) => {
        const all = [...texts.flatMap(splits), ...more];
        return [...new Map(all.map((p) => [`${p.pvc}/${p.schedule}`, p])).values()];
      });
    fc.assert(
      fc.property(
        pairs,
        fc.uniqueArray(scheduledAt, { minLength: 1, maxLength: 3, selector: (t) => t.getTime() }),
        (pairs, times) => {
          const names = new Set<string>();
          for (const { pvc, schedule } of pairs) {
            for (const at of times) {
              const name = snapshotName(pvc, schedule, at);
              expect(snapshotName(pvc, schedule, at)).toBe(name);
              expect(isDns1123Subdomain(name), name).toBe(true);
              expect(name.length).toBeLessThanOrEqual(253);
              const [, head = '', , stamp] = HASHED.exec(name) ?? [];
              expect(stamp).toBe(timeStamp(at));
              const full = `${pvc}-${schedule}`;
              // Readable `<pvc>-<schedule>` whenever the whole name fits, else a cut of it.
              if (full.length + 12 + timeStamp(at).length <= 253) expect(head).toBe(full);
              else expect(full.startsWith(head) && head.length >= 200).toBe(true);
              names.add(name);
            }
          }
          expect(names.size).toBe(pairs.length * times.length);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('labels', () => {
  const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

  it('keep short values as they are', () => {
    expect(labelValue('disk-ssd-web-0')).toBe('disk-ssd-web-0');
  });

  it('hash values over 63 characters, deterministically and distinctly', () => {
    const long1 = `${'x'.repeat(70)}-1`;
    const long2 = `${'x'.repeat(70)}-2`;
    expect(labelValue(long1)).toHaveLength(63);
    expect(labelValue(long1)).toBe(labelValue(long1));
    expect(labelValue(long1)).not.toBe(labelValue(long2));
    expect(labelValue(long1)).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
  });

  it('are distinct for distinct names, valid, <= 63 and the name itself when it fits (property)', () => {
    // Adversarial: a shared prefix around the cut (52 characters kept), separators at the cut,
    // lengths around 63, and tails that differ only past the cut.
    const name = fc
      .tuple(
        fc.constantFrom('', 'a'.repeat(51), 'a'.repeat(52), 'a'.repeat(61), 'a'.repeat(62), 'a'.repeat(63)),
        fc.constantFrom('', '-', '.', '--'),
        dnsName,
      )
      .map(([prefix, sep, tail]) => fit(prefix ? `${prefix}${sep}${tail}` : tail))
      .filter(isDns1123Subdomain);
    fc.assert(
      fc.property(fc.uniqueArray(name, { minLength: 2, maxLength: 40 }), (names) => {
        const values = names.map(labelValue);
        expect(new Set(values).size).toBe(names.length);
        names.forEach((n, i) => {
          const v = values[i] ?? '';
          expect(labelValue(n)).toBe(v);
          expect(v.length).toBeLessThanOrEqual(63);
          expect(v).toMatch(LABEL_VALUE);
          if (n.length <= 63) expect(v).toBe(n);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('tie a snapshot to schedule, PVC and scheduled time (RFC 3339 UTC)', () => {
    expect(snapshotMetadata('disk-ssd-web-0', 'nightly', new Date('2026-03-29T01:00:00Z'))).toEqual({
      labels: { 'snapcron.io/schedule': 'nightly', 'snapcron.io/pvc': 'disk-ssd-web-0' },
      annotations: { 'snapcron.io/scheduled-at': '2026-03-29T01:00:00Z' },
    });
  });
});
