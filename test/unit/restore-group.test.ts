/** Restoring from consistency groups: members judged by their VolumeGroupSnapshot, sets pinned to one group. */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../../src/api/objects.ts';
import { admitRestore, type AdmissionRequest } from '../../src/restore/admission.ts';
import {
  chooseSnapshot,
  parseRestoreAnnotations,
  planGroupRestore,
  restoreName,
  siblingGroups,
  type RestoreRequest,
} from '../../src/restore/select.ts';
import { restoreAdmitter } from '../../src/restore/webhook.ts';
import { snap } from '../support/builders.ts';

const NS = 'default';

/** A VolumeGroupSnapshot as snapcron takes it: schedule label, scheduled-at, cut at `at`. */
function vgs(
  name: string,
  o: {
    at: string;
    schedule?: string;
    scheduledAt?: string;
    ready?: boolean;
    error?: string;
    deleting?: boolean;
    namespace?: string;
  },
): VolumeGroupSnapshot {
  return {
    apiVersion: 'groupsnapshot.storage.k8s.io/v1',
    kind: 'VolumeGroupSnapshot',
    metadata: {
      name,
      namespace: o.namespace ?? NS,
      labels: { 'snapcron.io/schedule': o.schedule ?? 'nightly', 'snapcron.io/group': 'group' },
      annotations: { 'snapcron.io/scheduled-at': o.scheduledAt ?? o.at },
      creationTimestamp: o.at,
      ...(o.deleting ? { deletionTimestamp: o.at } : {}),
    },
    spec: { source: { selector: { matchLabels: { app: 'db' } } } },
    status: {
      readyToUse: o.ready ?? true,
      creationTime: o.at,
      ...(o.error ? { error: { message: o.error } } : {}),
    },
  };
}

/**
 * A member VolumeSnapshot as the snapshot-controller makes it: no labels, the group in status
 * (or, before status is written, only in the owner reference), cut a moment after the group.
 */
function member(
  group: string,
  pvc: string,
  o: { at?: string; ready?: boolean; ownerOnly?: boolean; namespace?: string } = {},
): VolumeSnapshot {
  const at = o.at ?? '2026-06-15T00:00:00Z';
  return {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshot',
    metadata: {
      name: `snapshot-${group}-${pvc}`,
      namespace: o.namespace ?? NS,
      creationTimestamp: at,
      ownerReferences: [
        {
          apiVersion: 'groupsnapshot.storage.k8s.io/v1',
          kind: 'VolumeGroupSnapshot',
          name: group,
          uid: `uid-${group}`,
        },
      ],
    } as VolumeSnapshot['metadata'],
    spec: { source: { persistentVolumeClaimName: pvc } },
    status: {
      readyToUse: o.ready ?? true,
      creationTime: at,
      restoreSize: '1Gi',
      ...(o.ownerOnly ? {} : { volumeGroupSnapshotName: group }),
    },
  };
}

/** A group `name` cut at `at` with a member for each of `pvcs`, members cut 3 s after the group. */
function groupWith(
  name: string,
  at: string,
  pvcs: string[],
  o: { ready?: boolean; schedule?: string; scheduledAt?: string } = {},
): { group: VolumeGroupSnapshot; members: VolumeSnapshot[] } {
  const memberAt = new Date(new Date(at).getTime() + 3000).toISOString();
  return {
    group: vgs(name, { at, ...o }),
    members: pvcs.map((p) => member(name, p, { at: memberAt })),
  };
}

const req = (sourcePvc: string, extra: Partial<RestoreRequest> = {}): RestoreRequest => ({
  sourcePvc,
  policy: 'Required',
  ...extra,
});

/** A restore PVC of a StatefulSet set, already admitted from `group`. */
function restored(name: string, from: string, group?: string, deleting = false): PersistentVolumeClaim {
  return {
    metadata: {
      name,
      namespace: NS,
      annotations: {
        'snapcron.io/restore-from': from,
        ...(group ? { 'snapcron.io/restored-from-group': group } : {}),
      },
      ...(deleting ? { deletionTimestamp: '2026-06-15T12:00:00Z' } : {}),
    },
  };
}

const setRequest = (pvcName: string, from = 'data-db-{ordinal}', extra: Record<string, string> = {}) => {
  const parsed = parseRestoreAnnotations(pvcName, { 'snapcron.io/restore-from': from, ...extra });
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.value;
};

describe('group members as restore candidates', () => {
  const a = groupWith('vgs-0800', '2026-06-15T08:00:00Z', ['data-db-0', 'data-db-1']);
  const b = groupWith('vgs-0900', '2026-06-15T09:00:00Z', ['data-db-0', 'data-db-1']);
  const groups = [a.group, b.group];
  const members = [...a.members, ...b.members];

  it('a ready member of a ready group counts for its source PVC, with the group and its time', () => {
    const r = chooseSnapshot(req('data-db-1'), NS, members, { groups });
    expect(r).toMatchObject({
      kind: 'snapshot',
      name: 'snapshot-vgs-0900-data-db-1',
      group: 'vgs-0900',
      time: new Date('2026-06-15T09:00:00Z'),
    });
  });

  it('a member of a group that is not ready, failed or being deleted is skipped', () => {
    for (const bad of [
      vgs('vgs-0900', { at: '2026-06-15T09:00:00Z', ready: false }),
      vgs('vgs-0900', { at: '2026-06-15T09:00:00Z', error: 'driver said no' }),
      vgs('vgs-0900', { at: '2026-06-15T09:00:00Z', deleting: true }),
    ]) {
      const r = chooseSnapshot(req('data-db-0'), NS, members, { groups: [a.group, bad] });
      expect(r).toMatchObject({ kind: 'snapshot', group: 'vgs-0800' });
    }
  });

  it('a member that is not ready is skipped although its group is ready', () => {
    const notReady = member('vgs-0900', 'data-db-0', { ready: false });
    const r = chooseSnapshot(req('data-db-0'), NS, [...a.members, notReady], { groups });
    expect(r).toMatchObject({ group: 'vgs-0800' });
  });

  it('a member counts only through its group: without the groups it is not restored', () => {
    expect(chooseSnapshot(req('data-db-0'), NS, members)).toMatchObject({
      kind: 'none',
      message: 'no ready VolumeSnapshot of PVC default/data-db-0',
    });
    // ...while plain snapshots are chosen as before.
    const plain = snap('plain', { at: '2026-06-15T07:00:00Z', pvc: 'data-db-0' });
    expect(chooseSnapshot(req('data-db-0'), NS, [...members, plain])).toMatchObject({ name: 'plain' });
  });

  it('a member known only by its owner reference (status not yet written) counts', () => {
    const m = member('vgs-0900', 'data-db-0', { ownerOnly: true });
    expect(chooseSnapshot(req('data-db-0'), NS, [m], { groups })).toMatchObject({ group: 'vgs-0900' });
  });

  it('the newest wins across per-PVC snapshots and group members', () => {
    const newer = snap('plain-1000', { at: '2026-06-15T10:00:00Z', pvc: 'data-db-0' });
    const older = snap('plain-0700', { at: '2026-06-15T07:00:00Z', pvc: 'data-db-0' });
    expect(chooseSnapshot(req('data-db-0'), NS, [...members, newer], { groups })).toMatchObject({
      name: 'plain-1000',
    });
    const r = chooseSnapshot(req('data-db-0'), NS, [...members, older], { groups });
    expect(r).toMatchObject({ group: 'vgs-0900' });
  });

  it("restore-schedule goes by the group's schedule label (members have no labels)", () => {
    const weekly = groupWith('vgs-weekly', '2026-06-15T06:00:00Z', ['data-db-0'], { schedule: 'weekly' });
    const r = chooseSnapshot(req('data-db-0', { schedule: 'weekly' }), NS, [...members, ...weekly.members], {
      groups: [...groups, weekly.group],
    });
    expect(r).toMatchObject({ group: 'vgs-weekly' });
    expect(chooseSnapshot(req('data-db-0', { schedule: 'hourly' }), NS, members, { groups })).toMatchObject({
      kind: 'none',
    });
  });

  it("restore-at goes by the group's cut, not its members' own times", () => {
    // Group vgs-0800's members were cut at 08:00:03: restore-at 08:00:01 still takes that group.
    const r = chooseSnapshot(req('data-db-0', { at: new Date('2026-06-15T08:00:01Z') }), NS, members, {
      groups,
    });
    expect(r).toMatchObject({ group: 'vgs-0800', time: new Date('2026-06-15T08:00:00Z') });
  });

  it('restore-at: a catch-up group scheduled for 02:00 but cut at 14:00 is not a 09:00 copy', () => {
    const catchUp = groupWith('vgs-catchup', '2026-06-15T14:00:00Z', ['data-db-0'], {
      scheduledAt: '2026-06-15T02:00:00Z',
    });
    const opts = { groups: [...groups, catchUp.group] };
    const all = [...members, ...catchUp.members];
    expect(
      chooseSnapshot(req('data-db-0', { at: new Date('2026-06-15T09:30:00Z') }), NS, all, opts),
    ).toMatchObject({ group: 'vgs-0900' });
    expect(
      chooseSnapshot(req('data-db-0', { at: new Date('2026-06-15T15:00:00Z') }), NS, all, opts),
    ).toMatchObject({ group: 'vgs-catchup', time: new Date('2026-06-15T14:00:00Z') });
  });

  it('never takes a group or member of another namespace', () => {
    const elsewhere = vgs('vgs-1000', { at: '2026-06-15T10:00:00Z', namespace: 'prod' });
    const m = member('vgs-1000', 'data-db-0', { namespace: 'prod' });
    const mHere = member('vgs-1000', 'data-db-0');
    expect(
      chooseSnapshot(req('data-db-0'), NS, [...members, m, mHere], { groups: [...groups, elsewhere] }),
    ).toMatchObject({ group: 'vgs-0900' });
  });
});

describe('a named group (snapcron.io/restore-group)', () => {
  const a = groupWith('vgs-0800', '2026-06-15T08:00:00Z', ['data-db-0', 'data-db-1']);
  const b = groupWith('vgs-0900', '2026-06-15T09:00:00Z', ['data-db-0']);
  const groups = [a.group, b.group];
  const members = [...a.members, ...b.members];

  it('picks that group although a newer one is ready', () => {
    const parsed = setRequest('data-dbnew-0', 'data-db-{ordinal}', {
      'snapcron.io/restore-group': 'vgs-0800',
    });
    expect(parsed.group).toBe('vgs-0800');
    expect(chooseSnapshot(parsed, NS, members, { groups })).toMatchObject({
      name: 'snapshot-vgs-0800-data-db-0',
      group: 'vgs-0800',
    });
  });

  it.each([
    ['missing', 'vgs-nope', req('data-db-0'), /^VolumeGroupSnapshot default\/vgs-nope does not exist$/],
    [
      'without a member of the source',
      'vgs-0900',
      req('data-db-1'),
      /^VolumeGroupSnapshot default\/vgs-0900 has no member VolumeSnapshot of PVC default\/data-db-1$/,
    ],
    [
      'taken after restore-at',
      'vgs-0900',
      req('data-db-0', { at: new Date('2026-06-15T08:30:00Z') }),
      /was taken at 2026-06-15T09:00:00.000Z, after the requested 2026-06-15T08:30:00.000Z/,
    ],
    [
      'of another schedule',
      'vgs-0900',
      req('data-db-0', { schedule: 'weekly' }),
      /was not taken by schedule weekly/,
    ],
  ])('a group %s: nothing, naming the group and the fix', (_n, group, request, message) => {
    const r = chooseSnapshot({ ...request, group }, NS, members, { groups });
    expect(r.kind).toBe('none');
    if (r.kind !== 'none') return;
    expect(r.message).toMatch(message);
    expect(r.fix).toMatch(/kubectl get volumegroupsnapshots -n default.*remove snapcron.io\/restore-group/);
  });

  it('a group that is not ready says so, with its error', () => {
    const failed = vgs('vgs-0900', { at: '2026-06-15T09:00:00Z', ready: false, error: 'quota exceeded' });
    const r = chooseSnapshot(req('data-db-0', { group: 'vgs-0900' }), NS, members, {
      groups: [a.group, failed],
    });
    expect(r).toMatchObject({
      kind: 'none',
      message: 'VolumeGroupSnapshot default/vgs-0900 is not ready (quota exceeded)',
    });
  });

  it('an empty annotation is malformed', () => {
    const r = parseRestoreAnnotations('x-0', {
      'snapcron.io/restore-from': 'a',
      'snapcron.io/restore-group': ' ',
    });
    expect(r).toMatchObject({
      ok: false,
      message: expect.stringMatching(/restore-group is empty/) as string,
    });
  });
});

describe('a restore set is pinned to the group its siblings restored from', () => {
  const a = groupWith('vgs-0800', '2026-06-15T08:00:00Z', ['data-db-0', 'data-db-1', 'data-db-2']);
  const b = groupWith('vgs-0900', '2026-06-15T09:00:00Z', ['data-db-0', 'data-db-1', 'data-db-2']);
  const groups = [a.group, b.group];
  const members = [...a.members, ...b.members];

  it('{ordinal} makes a set: the raw restore-from and the name without its ordinal', () => {
    expect(setRequest('data-dbnew-12').set).toEqual({
      from: 'data-db-{ordinal}',
      stem: 'data-dbnew',
      pvc: 'data-dbnew-12',
    });
    expect(parseRestoreAnnotations('x-1', { 'snapcron.io/restore-from': 'web-0' })).toMatchObject({
      ok: true,
      value: { sourcePvc: 'web-0' },
    });
    const plain = parseRestoreAnnotations('x-1', { 'snapcron.io/restore-from': 'web-0' });
    expect(plain.ok && plain.value.set).toBeUndefined();
  });

  it("a sibling's group wins over a newer ready one", () => {
    const siblings = [restored('data-dbnew-0', 'data-db-{ordinal}', 'vgs-0800')];
    const r = chooseSnapshot(setRequest('data-dbnew-1'), NS, members, { groups, siblings });
    expect(r).toMatchObject({
      group: 'vgs-0800',
      name: 'snapshot-vgs-0800-data-db-1',
      pinnedBy: ['data-dbnew-0'],
    });
  });

  it.each([
    ['another restore-from', restored('data-dbnew-0', 'data-{ordinal}', 'vgs-0800')],
    ['another set name', restored('data-other-0', 'data-db-{ordinal}', 'vgs-0800')],
    ['no restored group', restored('data-dbnew-0', 'data-db-{ordinal}')],
    ['being deleted', restored('data-dbnew-0', 'data-db-{ordinal}', 'vgs-0800', true)],
    ["the PVC's own name (a predecessor)", restored('data-dbnew-1', 'data-db-{ordinal}', 'vgs-0800')],
  ])('a PVC with %s does not pin', (_n, pvc) => {
    const request = setRequest('data-dbnew-1');
    expect(siblingGroups(request, NS, [pvc])).toEqual([]);
    expect(chooseSnapshot(request, NS, members, { groups, siblings: [pvc] })).toMatchObject({
      group: 'vgs-0900',
    });
  });

  it('a PVC without {ordinal} is in no set and is never pinned', () => {
    const parsed = parseRestoreAnnotations('data-dbnew-1', { 'snapcron.io/restore-from': 'data-db-1' });
    if (!parsed.ok) throw new Error(parsed.message);
    const siblings = [restored('data-dbnew-0', 'data-db-1', 'vgs-0800')];
    expect(chooseSnapshot(parsed.value, NS, members, { groups, siblings })).toMatchObject({
      group: 'vgs-0900',
    });
  });

  it('the group most siblings took wins when they disagree', () => {
    const siblings = [
      restored('data-dbnew-0', 'data-db-{ordinal}', 'vgs-0900'),
      restored('data-dbnew-2', 'data-db-{ordinal}', 'vgs-0800'),
      restored('data-dbnew-3', 'data-db-{ordinal}', 'vgs-0800'),
    ];
    expect(chooseSnapshot(setRequest('data-dbnew-1'), NS, members, { groups, siblings })).toMatchObject({
      group: 'vgs-0800',
      pinnedBy: ['data-dbnew-2', 'data-dbnew-3'],
    });
  });

  it('a pinned group that can no longer serve: the newest, with a warning naming it', () => {
    const siblings = [restored('data-dbnew-0', 'data-db-{ordinal}', 'vgs-gone')];
    const r = chooseSnapshot(setRequest('data-dbnew-1'), NS, members, { groups, siblings });
    expect(r).toMatchObject({ kind: 'snapshot', group: 'vgs-0900' });
    expect(r.kind === 'snapshot' && r.warning).toBe(
      'PVCs data-dbnew-0 of the same set restored from VolumeGroupSnapshot vgs-gone, which cannot serve this one: VolumeGroupSnapshot default/vgs-gone does not exist; restoring the newest copy instead',
    );
  });

  it('the pin beats a newer per-PVC snapshot too: the set stays at one instant', () => {
    const plain = snap('plain-1000', { at: '2026-06-15T10:00:00Z', pvc: 'data-db-1' });
    const siblings = [restored('data-dbnew-0', 'data-db-{ordinal}', 'vgs-0800')];
    expect(
      chooseSnapshot(setRequest('data-dbnew-1'), NS, [...members, plain], { groups, siblings }),
    ).toMatchObject({ group: 'vgs-0800' });
  });

  it('an explicit restore-group beats the pin', () => {
    const siblings = [restored('data-dbnew-0', 'data-db-{ordinal}', 'vgs-0800')];
    const request = setRequest('data-dbnew-1', 'data-db-{ordinal}', {
      'snapcron.io/restore-group': 'vgs-0900',
    });
    expect(chooseSnapshot(request, NS, members, { groups, siblings })).toMatchObject({ group: 'vgs-0900' });
  });
});

/** A routed CREATE of restore PVC `name`. */
const admission = (name: string, annotations: Record<string, string>, dryRun = false): AdmissionRequest => ({
  uid: `uid-${name}`,
  operation: 'CREATE',
  namespace: NS,
  ...(dryRun ? { dryRun } : {}),
  object: {
    metadata: { name, namespace: NS, labels: { 'snapcron.io/restore': 'true' }, annotations },
    spec: { resources: { requests: { storage: '1Gi' } } },
  },
});

/** The PVC as the API server stores it after the webhook's patch. */
function applied(req: AdmissionRequest, patch: string | undefined): PersistentVolumeClaim {
  const pvc = structuredClone(req.object) as PersistentVolumeClaim;
  const ops = JSON.parse(Buffer.from(patch ?? 'W10=', 'base64').toString()) as {
    path: string;
    value: unknown;
  }[];
  for (const op of ops) {
    const key = /^\/metadata\/annotations\/(.+)$/.exec(op.path)?.[1];
    if (key) {
      pvc.metadata.annotations = {
        ...pvc.metadata.annotations,
        [key.replace(/~1/g, '/').replace(/~0/g, '~')]: String(op.value),
      };
    }
  }
  return pvc;
}

describe('the webhook decision with groups', () => {
  const a = groupWith('vgs-0800', '2026-06-15T08:00:00Z', ['data-db-0', 'data-db-1', 'data-db-2']);
  const b = groupWith('vgs-0900', '2026-06-15T09:00:00Z', ['data-db-0', 'data-db-1', 'data-db-2']);
  const members = [...a.members, ...b.members];
  const bySource = (ns: string, pvc: string): VolumeSnapshot[] =>
    members.filter((m) => m.metadata.namespace === ns && m.spec.source.persistentVolumeClaimName === pvc);

  it('records restored-from-group beside the snapshot and the group time', () => {
    const r = admission('data-dbnew-0', { 'snapcron.io/restore-from': 'data-db-{ordinal}' });
    const outcome = admitRestore(r, bySource, { groups: () => [a.group, b.group], siblings: () => [] });
    expect(outcome.summary).toMatchObject({
      result: 'restored',
      snapshot: 'snapshot-vgs-0900-data-db-0',
      group: 'vgs-0900',
      message:
        'restoring from VolumeSnapshot snapshot-vgs-0900-data-db-0 of VolumeGroupSnapshot vgs-0900 taken 2026-06-15T09:00:00.000Z',
    });
    expect(applied(r, outcome.response.patch).metadata.annotations).toMatchObject({
      'snapcron.io/restored-from-snapshot': 'snapshot-vgs-0900-data-db-0',
      'snapcron.io/restored-snapshot-time': '2026-06-15T09:00:00Z',
      'snapcron.io/restored-from-group': 'vgs-0900',
    });
  });

  it('denies a PVC that already names a different data source, and admits one that names the same', () => {
    const plain = [snap('plain', { at: '2026-06-15T07:00:00Z', pvc: 'web-0' })];
    const none = { groups: () => [], siblings: () => [] };
    const withSource = (name: string, via: 'dataSource' | 'dataSourceRef'): AdmissionRequest => {
      const r = admission('web-restore-0', { 'snapcron.io/restore-from': 'web-0' });
      const pvc = r.object as PersistentVolumeClaim;
      pvc.spec = {
        ...pvc.spec,
        [via]: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name },
      };
      return r;
    };
    for (const via of ['dataSource', 'dataSourceRef'] as const) {
      const other = admitRestore(withSource('older', via), plain, none);
      expect(other.response.allowed, via).toBe(false);
      expect(other.response.status?.code).toBe(400);
      expect(other.response.status?.message).toMatch(
        /already has data source VolumeSnapshot\/older, but the newest fitting snapshot is plain: remove the data source or the restore annotations/,
      );
      const same = admitRestore(withSource('plain', via), plain, none);
      expect(same.response.allowed, via).toBe(true);
      expect(same.summary).toMatchObject({ result: 'restored', snapshot: 'plain' });
    }
  });

  it('asks for groups and siblings only when a member is among the snapshots', () => {
    const groups = vi.fn(() => [a.group, b.group]);
    const siblings = vi.fn((): PersistentVolumeClaim[] => []);
    const plain = [snap('plain', { at: '2026-06-15T07:00:00Z', pvc: 'web-0' })];
    const r = admission('web-restore-0', { 'snapcron.io/restore-from': 'web-{ordinal}' });
    const outcome = admitRestore(r, plain, { groups, siblings });
    expect(outcome.summary).toMatchObject({ result: 'restored', snapshot: 'plain' });
    expect(applied(r, outcome.response.patch).metadata.annotations).not.toHaveProperty(
      'snapcron.io/restored-from-group',
    );
    expect(groups).not.toHaveBeenCalled();
    expect(siblings).not.toHaveBeenCalled();
    admitRestore(admission('data-dbnew-0', { 'snapcron.io/restore-from': 'data-db-{ordinal}' }), bySource, {
      groups,
      siblings,
    });
    expect(groups).toHaveBeenCalledWith(NS);
    expect(siblings).toHaveBeenCalledWith(NS);
  });

  it('denies a named group that cannot serve, with the fix', () => {
    const outcome = admitRestore(
      admission('data-dbnew-0', {
        'snapcron.io/restore-from': 'data-db-{ordinal}',
        'snapcron.io/restore-group': 'vgs-0700',
      }),
      bySource,
      { groups: [a.group, b.group] },
    );
    expect(outcome.response.allowed).toBe(false);
    expect(outcome.response.status?.message).toBe(
      'snapcron restore of PVC default/data-dbnew-0: VolumeGroupSnapshot default/vgs-0700 does not exist; name a ready VolumeGroupSnapshot with a member of PVC data-db-0 (kubectl get volumegroupsnapshots -n default), or remove snapcron.io/restore-group to restore the newest copy',
    );
  });

  it('a broken pin restores the newest and warns the user', () => {
    const outcome = admitRestore(
      admission('data-dbnew-1', { 'snapcron.io/restore-from': 'data-db-{ordinal}' }),
      bySource,
      { groups: [b.group], siblings: [restored('data-dbnew-0', 'data-db-{ordinal}', 'vgs-0800')] },
    );
    expect(outcome.summary).toMatchObject({ result: 'restored', group: 'vgs-0900' });
    expect(outcome.response.warnings).toEqual([
      expect.stringMatching(/^PVCs data-dbnew-0 of the same set restored from VolumeGroupSnapshot vgs-0800/),
    ]);
  });

  it('the admitter remembers its own group restores while the cache lags, for a minute', () => {
    const from = { 'snapcron.io/restore-from': 'data-db-{ordinal}' };
    let now = 0;
    const ready = [a.group];
    // The cache never shows the restored PVCs: only the admitter's memory can pin.
    const admitter = () =>
      restoreAdmitter(
        { snapshotsOf: bySource, groupSnapshotsOf: () => ready, restorePvcsOf: () => [] },
        () => now,
      );

    const dry = admitter();
    expect(dry(admission('data-dbnew-0', from, true)).summary.group).toBe('vgs-0800');
    ready.push(b.group);
    expect(dry(admission('data-dbnew-1', from)).summary.group).toBe('vgs-0900'); // a dry run does not pin

    ready.splice(1);
    const admit = admitter();
    expect(admit(admission('data-dbnew-0', from)).summary.group).toBe('vgs-0800');
    ready.push(b.group);
    now += 1000;
    expect(admit(admission('data-dbnew-1', from)).summary).toMatchObject({
      group: 'vgs-0800',
      message: expect.stringMatching(/, as its set's data-dbnew-0$/) as string,
    });
    now += 60_000;
    expect(admit(admission('data-dbnew-2', from)).summary.group).toBe('vgs-0900');
  });
});

describe('snapcron restore --group: every member of one group', () => {
  const a = groupWith('vgs-0800', '2026-06-15T08:00:00Z', ['data-db-1', 'data-db-0', 'logs']);

  it('plans one PVC per member, by source PVC, named by the template', () => {
    const plan = planGroupRestore(NS, 'vgs-0800', '{pvc}-restore', a.members, [a.group]);
    expect(plan.ok).toBe(true);
    if (!plan.ok) return;
    expect(plan.value.time).toEqual(new Date('2026-06-15T08:00:00Z'));
    expect(plan.value.restores.map((r) => [r.sourcePvc, r.name, r.snapshot.metadata.name])).toEqual([
      ['data-db-0', 'data-db-0-restore', 'snapshot-vgs-0800-data-db-0'],
      ['data-db-1', 'data-db-1-restore', 'snapshot-vgs-0800-data-db-1'],
      ['logs', 'logs-restore', 'snapshot-vgs-0800-logs'],
    ]);
  });

  it.each([
    [
      '{ordinal} of a PVC without one',
      'data-new-{ordinal}',
      /PVC logs does not end in -<number>: use \{pvc\}/,
    ],
    ['a name clash', 'restored', /gives PVCs data-db-0 and data-db-1 the same name restored/],
    ['an invalid name', 'Restored-{pvc}', /gives "Restored-data-db-0" .* not a valid PVC name/],
  ])('refuses %s', (_n, template, message) => {
    const plan = planGroupRestore(NS, 'vgs-0800', template, a.members, [a.group]);
    expect(plan).toMatchObject({ ok: false, message: expect.stringMatching(message) as string });
  });

  it("{ordinal} names a new StatefulSet's claims", () => {
    expect(restoreName('data-dbnew-{ordinal}', 'data-db-2')).toEqual({ ok: true, value: 'data-dbnew-2' });
  });

  it.each([
    [
      'a missing group',
      'vgs-nope',
      [a.group],
      a.members,
      /default\/vgs-nope not found: list them with kubectl get volumegroupsnapshots -n default/,
    ],
    [
      'a group not ready',
      'vgs-0800',
      [vgs('vgs-0800', { at: '2026-06-15T08:00:00Z', ready: false })],
      a.members,
      /vgs-0800 is not ready: wait for it, or pick a ready one/,
    ],
    ['a group without members yet', 'vgs-0800', [a.group], [], /has no member VolumeSnapshots/],
    [
      'a member not ready',
      'vgs-0800',
      [a.group],
      [...a.members.slice(1), member('vgs-0800', 'data-db-0', { ready: false })],
      /member VolumeSnapshot snapshot-vgs-0800-data-db-0 of PVC data-db-0 is not ready/,
    ],
  ])('refuses %s, naming it', (_n, name, groups, members, message) => {
    expect(planGroupRestore(NS, name, '{pvc}-restore', members, groups)).toMatchObject({
      ok: false,
      message: expect.stringMatching(message) as string,
    });
  });
});

describe('property: every replica of a set restores from one group', () => {
  /**
   * Replicas data-dbnew-<i> restore from data-db-<i>; groups, each with a member of every
   * source, become ready between admissions; replicas are admitted in any order. Every
   * admitted replica must name the same group: the newest ready when the first was admitted.
   */
  const scenario = fc
    .record({
      replicas: fc.integer({ min: 1, max: 5 }),
      // Per group: its cut (minutes, any order) and after how many admissions it becomes ready.
      groups: fc.array(fc.record({ minute: fc.integer({ min: 0, max: 600 }), readyAfter: fc.nat(6) }), {
        minLength: 1,
        maxLength: 5,
      }),
    })
    .chain((s) =>
      fc.record({
        s: fc.constant(s),
        order: fc.shuffledSubarray(
          Array.from({ length: s.replicas }, (_, i) => i),
          { minLength: s.replicas, maxLength: s.replicas },
        ),
        cacheSees: fc.boolean(),
      }),
    );

  it('whatever order they are admitted in and whatever groups become ready in between', () => {
    fc.assert(
      fc.property(scenario, ({ s, order, cacheSees }) => {
        const sources = Array.from({ length: s.replicas }, (_, i) => `data-db-${i}`);
        const all = s.groups.map((g, i) =>
          groupWith(`vgs-${i}`, new Date(Date.UTC(2026, 5, 15, 0, g.minute)).toISOString(), sources),
        );
        const members = all.flatMap((g) => g.members);
        const stored: PersistentVolumeClaim[] = [];
        let admitted = 0;
        const ready = (): VolumeGroupSnapshot[] =>
          all.filter((_, i) => (s.groups[i]?.readyAfter ?? 0) <= admitted).map((g) => g.group);
        // cacheSees: the cache has every PVC admitted so far; else it lags and only the memory pins.
        const admit = restoreAdmitter({
          snapshotsOf: (_ns, pvc) => members.filter((m) => m.spec.source.persistentVolumeClaimName === pvc),
          groupSnapshotsOf: () => ready(),
          restorePvcsOf: () => (cacheSees ? stored : []),
        });
        const chosen: string[] = [];
        let first: { newest: string } | undefined;
        for (const i of order) {
          const r = admission(`data-dbnew-${i}`, { 'snapcron.io/restore-from': 'data-db-{ordinal}' });
          const newestReady = [...ready()].sort(
            (x, y) =>
              String(y.status?.creationTime).localeCompare(String(x.status?.creationTime)) ||
              String(y.metadata.name).localeCompare(String(x.metadata.name)),
          )[0];
          const outcome = admit(r);
          if (outcome.response.allowed) {
            stored.push(applied(r, outcome.response.patch));
            chosen.push(outcome.summary.group ?? 'none');
            first ??= { newest: newestReady?.metadata.name ?? 'none' };
          } else {
            expect(newestReady).toBeUndefined(); // denied only when no group was ready
          }
          admitted++;
        }
        expect(new Set(chosen).size).toBeLessThanOrEqual(1);
        if (first) expect(chosen[0]).toBe(first.newest);
      }),
      { numRuns: 300 },
    );
  });
});
