import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isDns1123Subdomain,
  labelValue,
  snapshotMetadata,
  snapshotName,
  timeStamp,
} from '../../src/snapshot/naming.ts';

describe('snapshot names', () => {
  it('are <pvc>-<schedule>-<yyyymmddhhmm> in UTC', () => {
    expect(snapshotName('disk-ssd-web-0', 'nightly', new Date('2026-03-29T01:00:00Z'))).toBe(
      'disk-ssd-web-0-nightly-202603290100',
    );
  });

  it('carry seconds when the scheduled time has them', () => {
    expect(timeStamp(new Date('2026-03-29T01:00:05Z'))).toBe('20260329010005');
    expect(timeStamp(new Date('2026-03-29T01:00:00Z'))).toBe('202603290100');
  });

  it('are shortened with a hash to fit 253 characters, staying unique and valid', () => {
    const pvc = `data-${'a'.repeat(200)}`;
    const at = new Date('2026-01-01T00:00:00Z');
    const a = snapshotName(pvc, 'schedule-one-with-a-long-name-that-pushes-it-over', at);
    const b = snapshotName(pvc, 'schedule-two-with-a-long-name-that-pushes-it-over', at);
    expect(a.length).toBeLessThanOrEqual(253);
    expect(a).not.toBe(b);
    expect(isDns1123Subdomain(a)).toBe(true);
    expect(a.endsWith('-202601010000')).toBe(true);
  });

  it('are deterministic, valid DNS-1123 and distinct per time (property)', () => {
    const dnsLabel = fc
      .stringMatching(/^[a-z0-9]([-a-z0-9.]{0,250}[a-z0-9])?$/)
      .filter((s) => !/\.\.|-\.|\.-/.test(s));
    fc.assert(
      fc.property(
        dnsLabel,
        dnsLabel,
        fc.integer({ min: 0, max: 4e12 }),
        fc.integer({ min: 1, max: 1e9 }),
        (pvc, sched, t, dt) => {
          const at = new Date(Math.floor(t / 1000) * 1000);
          const later = new Date(at.getTime() + dt * 1000);
          const name = snapshotName(pvc, sched, at);
          expect(name).toBe(snapshotName(pvc, sched, at));
          expect(isDns1123Subdomain(name)).toBe(true);
          expect(snapshotName(pvc, sched, later)).not.toBe(name);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('labels', () => {
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

  it('tie a snapshot to schedule, PVC and scheduled time (RFC 3339 UTC)', () => {
    expect(snapshotMetadata('disk-ssd-web-0', 'nightly', new Date('2026-03-29T01:00:00Z'))).toEqual({
      labels: { 'snapcron.io/schedule': 'nightly', 'snapcron.io/pvc': 'disk-ssd-web-0' },
      annotations: { 'snapcron.io/scheduled-at': '2026-03-29T01:00:00Z' },
    });
  });
});
