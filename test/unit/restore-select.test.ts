import { describe, expect, it } from 'vitest';
import type { VolumeSnapshot } from '../../src/api/objects.ts';
import { admitRestore } from '../../src/restore/admission.ts';
import { chooseSnapshot, parseRestoreAnnotations, sizeProblem } from '../../src/restore/select.ts';
import { parseQuantity } from '../../src/restore/quantity.ts';
import { snap } from '../support/builders.ts';

const from = (v: string, extra: Record<string, string> = {}) => ({ 'snapcron.io/restore-from': v, ...extra });

describe('restore annotations', () => {
  it('replace {ordinal} with the trailing ordinal of the new PVC (StatefulSet replicas)', () => {
    const r = parseRestoreAnnotations('disk-ssd-web-restore-2', from('disk-ssd-web-{ordinal}'));
    expect(r).toMatchObject({ ok: true, value: { sourcePvc: 'disk-ssd-web-2', policy: 'Required' } });
  });

  it.each([
    ['no source', 'x-0', {}, /restore-from is required/],
    ['{ordinal} without one', 'restore', from('web-{ordinal}'), /does not end in -<number>/],
    ['a bad policy', 'x-0', from('a', { 'snapcron.io/restore-policy': 'Maybe' }), /Required or IfAvailable/],
    ['a bad time', 'x-0', from('a', { 'snapcron.io/restore-at': 'yesterday' }), /not an RFC 3339 time/],
  ])('reject %s with a message', (_n, name, ann, message) => {
    const r = parseRestoreAnnotations(name, ann);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(message);
  });
});

describe('choosing the snapshot', () => {
  const snaps = [
    snap('pending-newest', { at: '2026-06-15T10:00:00Z', pvc: 'web-0', state: 'pending' }),
    snap('failed-newer', { at: '2026-06-15T09:30:00Z', pvc: 'web-0', state: 'failed' }),
    snap('ready-0900', { at: '2026-06-15T09:00:00Z', pvc: 'web-0' }),
    snap('ready-0800-weekly', { at: '2026-06-15T08:00:00Z', pvc: 'web-0', schedule: 'weekly' }),
    snap('ready-0700', { at: '2026-06-15T07:00:00Z', pvc: 'web-0' }),
    snap('other-pvc', { at: '2026-06-15T09:59:00Z', pvc: 'web-1' }),
    snap('other-ns', { at: '2026-06-15T09:59:00Z', pvc: 'web-0', namespace: 'prod' }),
  ];
  const req = { sourcePvc: 'web-0', policy: 'Required' as const };

  it('the newest ready one wins over newer pending or failed ones', () => {
    expect(chooseSnapshot(req, 'default', snaps)).toMatchObject({ kind: 'snapshot', name: 'ready-0900' });
  });

  it('restore-at picks the newest taken at or before that time', () => {
    expect(chooseSnapshot({ ...req, at: new Date('2026-06-15T08:30:00Z') }, 'default', snaps)).toMatchObject({
      name: 'ready-0800-weekly',
    });
    expect(chooseSnapshot({ ...req, at: new Date('2026-06-15T07:00:00Z') }, 'default', snaps)).toMatchObject({
      name: 'ready-0700',
    });
  });

  it('restore-schedule limits the choice to that schedule', () => {
    expect(chooseSnapshot({ ...req, schedule: 'weekly' }, 'default', snaps)).toMatchObject({
      name: 'ready-0800-weekly',
    });
  });

  it('never crosses namespaces, and says what it looked for when nothing fits', () => {
    const r = chooseSnapshot({ ...req, at: new Date('2026-06-01T00:00:00Z') }, 'default', snaps);
    expect(r).toEqual({
      kind: 'none',
      message: 'no ready VolumeSnapshot of PVC default/web-0, taken at or before 2026-06-01T00:00:00.000Z',
    });
    expect(chooseSnapshot(req, 'staging', snaps).kind).toBe('none');
  });

  it('refuses a request smaller than the restore size', () => {
    const s = snap('s', { at: '2026-06-15T09:00:00Z' });
    s.status = { readyToUse: true, restoreSize: '20Gi' };
    expect(sizeProblem(s, '10Gi')).toMatch(/smaller than .*restoreSize 20Gi/);
    expect(sizeProblem(s, '20Gi')).toBeUndefined();
    expect(parseQuantity('1.5Gi')).toBe(1.5 * 2 ** 30);
    expect(parseQuantity('500M')).toBe(5e8);
  });
});

describe('restore-at and restored-snapshot-time use the time the data was cut, not the scheduled time', () => {
  const yesterday = snap('web-0-nightly-0614', { at: '2026-06-14T02:00:00Z', pvc: 'web-0' });
  // After an outage, the run due at 02:00 was taken at 14:00: it holds 14:00's data.
  const due = snap('web-0-nightly-0615', { at: '2026-06-15T02:00:00Z', pvc: 'web-0' });
  const catchUp: VolumeSnapshot = {
    ...due,
    metadata: { ...due.metadata, creationTimestamp: '2026-06-15T14:00:00Z' },
    status: { readyToUse: true, creationTime: '2026-06-15T14:00:05Z', restoreSize: '1Gi' },
  };
  const req = { sourcePvc: 'web-0', policy: 'Required' as const };

  it('a catch-up taken after restore-at is not chosen because its run was due before', () => {
    const r = chooseSnapshot({ ...req, at: new Date('2026-06-15T09:00:00+00:00') }, 'default', [
      catchUp,
      yesterday,
    ]);
    expect(r).toMatchObject({
      kind: 'snapshot',
      name: 'web-0-nightly-0614',
      time: new Date('2026-06-14T02:00:00Z'),
    });
  });

  it('once restore-at is past the cut, the catch-up is chosen and its time is the cut', () => {
    const r = chooseSnapshot({ ...req, at: new Date('2026-06-15T15:00:00Z') }, 'default', [
      yesterday,
      catchUp,
    ]);
    expect(r).toMatchObject({
      kind: 'snapshot',
      name: 'web-0-nightly-0615',
      time: new Date('2026-06-15T14:00:05Z'),
    });
  });

  it('the webhook records the cut time in snapcron.io/restored-snapshot-time', () => {
    const outcome = admitRestore(
      {
        uid: 'u',
        operation: 'CREATE',
        namespace: 'default',
        object: {
          metadata: {
            name: 'web-restore-0',
            namespace: 'default',
            labels: { 'snapcron.io/restore': 'true' },
            annotations: { 'snapcron.io/restore-from': 'web-0' },
          },
          spec: { resources: { requests: { storage: '1Gi' } } },
        },
      },
      [yesterday, catchUp],
    );
    const ops = JSON.parse(Buffer.from(outcome.response.patch ?? '', 'base64').toString()) as {
      path: string;
      value: unknown;
    }[];
    expect(
      ops.find((o) => o.path === '/metadata/annotations/snapcron.io~1restored-snapshot-time')?.value,
    ).toBe('2026-06-15T14:00:05Z');
    expect(outcome.summary).toMatchObject({ result: 'restored', snapshot: 'web-0-nightly-0615' });
  });
});
