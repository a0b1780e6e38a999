/**
 * The report and `snapcron plan` for schedules with spec.group: a row per group with its
 * member PVCs, its recovery points (VolumeGroupSnapshots) with their member VolumeSnapshots,
 * the planner's verdicts exactly as the controller's decide reaches them, group findings and
 * totals; a report without groups is unchanged; the CLI lists VolumeGroupSnapshots only when
 * a schedule has spec.group and goes on without them when the API refuses (404, 403).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Registry } from '../../src/controller/prometheus.ts';
import { describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../../src/api/objects.ts';
import type { SnapshotSchedule } from '../../src/api/types.generated.ts';
import { readCluster } from '../../src/cli/report.ts';
import { decide } from '../../src/controller/decide.ts';
import type { Kube } from '../../src/kube/client.ts';
import { buildReport, type ReportInput } from '../../src/report/build.ts';
import type { GroupReport, Report } from '../../src/report/model.ts';
import { ReportMetrics } from '../../src/report/metrics.ts';
import { renderReport } from '../../src/report/render.ts';
import { snapshotName } from '../../src/snapshot/naming.ts';
import { run } from '../support/cli.ts';
import { groupSnap, member, restoringPvc, schedule, snap } from '../support/builders.ts';

const NOW = new Date('2026-06-15T12:00:00Z');
const hoursAgo = (h: number): Date => new Date(NOW.getTime() - h * 3_600_000);
const INSTANCE = 'app.kubernetes.io/instance';

const pvc = (
  name: string,
  labels: Record<string, string>,
  phase = 'Bound',
  created = '2026-01-01T00:00:00Z',
): PersistentVolumeClaim => ({
  metadata: { name, namespace: 'default', labels, creationTimestamp: created },
  spec: { resources: { requests: { storage: '10Gi' } } },
  status: { phase },
});
const withCreation = (s: SnapshotSchedule): SnapshotSchedule => ({
  ...s,
  metadata: { ...s.metadata, creationTimestamp: '2026-01-01T00:00:00Z', generation: 1 },
});

/** Hourly, by Label: one group per app.kubernetes.io/instance among tier=db PVCs. */
const db = withCreation(
  schedule('db', {
    schedule: '0 * * * *',
    claimSelector: { matchLabels: { tier: 'db' } },
    group: { by: 'Label', labelKey: INSTANCE, volumeGroupSnapshotClassName: 'gsc' },
    retention: { maxCount: 3 },
  }),
);
const pvcs = [
  pvc('data-pg-0', { tier: 'db', [INSTANCE]: 'pg' }),
  pvc('wal-pg-0', { tier: 'db', [INSTANCE]: 'pg' }),
  pvc('data-my-0', { tier: 'db', [INSTANCE]: 'my' }),
  pvc('scratch', { tier: 'db' }),
];

/** A group's recovery point `h` hours ago with one member per PVC, each of `size`. */
function point(
  group: string,
  h: number,
  members: string[],
  o: { state?: 'ready' | 'pending' | 'failed'; size?: string; memberError?: string; hold?: boolean } = {},
): { vgs: VolumeGroupSnapshot; members: VolumeSnapshot[] } {
  const vgs = groupSnap({ at: hoursAgo(h), group, schedule: 'db', state: o.state, hold: o.hold });
  return {
    vgs,
    members: members.map((p, i) =>
      member(vgs, p, {
        size: o.size ?? '10Gi',
        ...(i === 0 && o.memberError ? { error: o.memberError } : {}),
      }),
    ),
  };
}
const flat = (points: { vgs: VolumeGroupSnapshot; members: VolumeSnapshot[] }[]) => ({
  groupSnapshots: points.map((p) => p.vgs),
  snapshots: points.flatMap((p) => p.members),
});
const report = (input: Partial<ReportInput>): Report =>
  buildReport({ schedules: [db], pvcs, snapshots: [], now: NOW, ...input });
const groupRow = (r: Report, key: string): GroupReport | undefined =>
  r.schedules.find((s) => s.name === 'db')?.groups?.find((g) => g.group === key);

// pg: four ready recovery points an hour apart (maxCount 3 deletes the oldest); my: one.
const pg = [1, 2, 3, 4].map((h) => point('pg', h - 0.9, ['data-pg-0', 'wal-pg-0']));
const my = [point('my', 0.1, ['data-my-0'], { size: '5Gi' })];
const objects = flat([...pg, ...my]);

describe('alert metrics with spec.group', () => {
  it("a group's members get its newest ready point; a stale group counts its members as stale PVCs", async () => {
    const registry = new Registry();
    const m = new ReportMetrics(registry);
    // my's only point is 30 h old: stale (twice the hourly interval); pg's newest is 6 min old.
    const old = point('my', 30, ['data-my-0']);
    m.update(report({ ...flat([...pg, old]) }));
    const series = (await registry.metrics()).split('\n').filter((l) => l.startsWith('snapcron_'));
    const newest = (pvcName: string, h: number): string =>
      `snapcron_pvc_newest_ready_snapshot_timestamp_seconds{namespace="default",schedule="db",pvc="${pvcName}"} ${hoursAgo(h).getTime() / 1000}`;
    expect(series).toContain(newest('data-pg-0', 0.1));
    expect(series).toContain(newest('wal-pg-0', 0.1));
    expect(series).toContain(newest('data-my-0', 30));
    expect(series).toContain('snapcron_stale_pvcs{namespace="default",schedule="db"} 1');
  });

  it('a gauges-only report (the refresh builds these) gives the same series as the full one', async () => {
    const seriesOf = async (r: Report): Promise<string[]> => {
      const registry = new Registry();
      new ReportMetrics(registry).update(r);
      return (await registry.metrics()).split('\n').filter((l) => l.startsWith('snapcron_'));
    };
    // pg fresh, my stale and with a recovery point stuck pending.
    const input = flat([
      ...pg,
      point('my', 30, ['data-my-0']),
      point('my', 20, ['data-my-0'], { state: 'pending' }),
    ]);
    const full = await seriesOf(report(input));
    expect(full).toContain('snapcron_stale_pvcs{namespace="default",schedule="db"} 1');
    expect(full).toContain('snapcron_stuck_pvcs{namespace="default",schedule="db"} 1');
    expect(await seriesOf(report({ ...input, gaugesOnly: true }))).toEqual(full);
  });
});

describe('buildReport with spec.group', () => {
  it('has a row per group with its members, and the PVC rows empty', () => {
    const r = report({ ...objects, plan: true });
    const s = r.schedules[0];
    expect(s?.group).toEqual({ by: 'Label', labelKey: INSTANCE, volumeGroupSnapshotClassName: 'gsc' });
    expect(s?.pvcs).toEqual([]);
    expect(s?.groups?.map((g) => [g.group, g.members, g.phase, g.selected])).toEqual([
      ['my', [{ pvc: 'data-my-0', phase: 'Bound' }], 'Bound', true],
      [
        'pg',
        [
          { pvc: 'data-pg-0', phase: 'Bound' },
          { pvc: 'wal-pg-0', phase: 'Bound' },
        ],
        'Bound',
        true,
      ],
    ]);
    // Counts are recovery points, never member snapshots.
    expect(s?.counts).toEqual({ ready: 5, pending: 0, stuck: 0, failed: 0 });
    expect(groupRow(r, 'pg')?.counts).toEqual({ ready: 4, pending: 0, stuck: 0, failed: 0 });
  });

  it('shows each recovery point with its member PVC -> VolumeSnapshot, readiness and size', () => {
    const r = report({ ...objects, plan: true });
    const g = groupRow(r, 'pg') as GroupReport;
    const newest = pg[0]?.vgs as VolumeGroupSnapshot;
    expect(g.newestReady).toEqual({
      name: newest.metadata.name,
      time: '2026-06-15T11:54:00Z',
      ageSeconds: 360,
      members: [
        {
          pvc: 'data-pg-0',
          name: `snapshot-${newest.metadata.name}-data-pg-0`,
          readyToUse: true,
          restoreSize: '10Gi',
          error: null,
        },
        {
          pvc: 'wal-pg-0',
          name: `snapshot-${newest.metadata.name}-wal-pg-0`,
          readyToUse: true,
          restoreSize: '10Gi',
          error: null,
        },
      ],
    });
    // Sizes are the members': 4 points x 2 members x 10Gi.
    expect(g.restoreSizeBytes).toBe(80 * 2 ** 30);
    expect(g.snapshots?.map((v) => [v.name, v.restoreSize, v.members.map((m) => m.pvc)])).toEqual(
      pg.map((p) => [p.vgs.metadata.name, '20Gi', ['data-pg-0', 'wal-pg-0']]),
    );
    expect(r.schedules[0]?.restoreSizeBytes).toBe(85 * 2 ** 30);
  });

  it('judges recovery points as decide does: the oldest group goes whole, and the next run pushes out the next', () => {
    const r = report({ ...objects, plan: true });
    const g = groupRow(r, 'pg') as GroupReport;
    expect(g.snapshots?.map((v) => [v.verdict, v.reasons])).toEqual([
      ['keep', ['min-ready']],
      ['keep', ['within-policy']],
      ['keep', ['within-policy']],
      ['delete', ['max-count']],
    ]);
    expect(g.oldestKept?.name).toBe(pg[2]?.vgs.metadata.name);
    expect(g.nextDeletion).toMatchObject({
      trigger: 'now',
      name: pg[3]?.vgs.metadata.name,
      reasons: ['max-count'],
      planned: false,
      count: 1,
    });
    // my: one point; the third run after now (15:00) makes four, so it pushes out that one.
    expect(groupRow(r, 'my')?.nextDeletion).toMatchObject({
      at: '2026-06-15T15:00:00Z',
      trigger: 'run',
      name: my[0]?.vgs.metadata.name,
      planned: false,
    });
    const plan = decide({ schedule: db, pvcs, ...objects, now: NOW });
    expect(plan.retention?.deletions.map((d) => d.name)).toEqual([pg[3]?.vgs.metadata.name]);
  });

  it('names a future run by the group key, as decide will', () => {
    const r = report({ ...flat([point('pg', 0.5, ['data-pg-0', 'wal-pg-0'])]) });
    const first = new Date('2026-06-15T13:00:00Z');
    // The third run after now brings the fourth point: the existing one goes then.
    expect(groupRow(r, 'pg')?.nextDeletion?.at).toBe('2026-06-15T15:00:00Z');
    // With no point at all, what goes first is a future run's, named as decide names groups.
    const empty = report({ schedules: [{ ...db, spec: { ...db.spec, retention: { maxCount: 1 } } }] });
    expect(groupRow(empty, 'pg')?.nextDeletion).toMatchObject({
      name: snapshotName('pg', 'db', first),
      planned: true,
      trigger: 'run',
      at: '2026-06-15T14:00:00Z',
    });
  });

  it('a restore from any member protects the whole recovery point (in-use), as in the controller', () => {
    const oldest = pg[3] as (typeof pg)[0];
    const restore = restoringPvc('pg-restore', oldest.members[1]?.metadata.name ?? '');
    const r = report({ ...objects, pvcs: [...pvcs, restore], plan: true });
    const v = groupRow(r, 'pg')?.snapshots?.at(-1);
    expect(v).toMatchObject({ verdict: 'keep', reasons: ['in-use'], overridden: ['max-count'] });
    expect(groupRow(r, 'pg')?.protected.map((p) => [p.name, p.reasons])).toEqual([
      [pg[0]?.vgs.metadata.name, ['min-ready']],
      [oldest.vgs.metadata.name, ['in-use']],
    ]);
    const decided = decide({ schedule: db, pvcs: [...pvcs, restore], ...objects, now: NOW });
    expect(decided.retention?.deletions).toEqual([]);
  });

  it('a failed member fails its recovery point: a failed finding for the group, pvc null', () => {
    const broken = point('pg', 0.2, ['data-pg-0', 'wal-pg-0'], { state: 'failed' });
    broken.vgs.status = {
      readyToUse: false,
      error: { message: 'group cut failed', time: hoursAgo(3).toISOString() },
    };
    const r = report({ ...flat([...pg.slice(0, 2), broken]) });
    const f = r.findings.find((x) => x.kind === 'failed');
    expect(f).toMatchObject({
      schedule: 'db',
      pvc: null,
      group: 'pg',
      snapshots: [broken.vgs.metadata.name],
    });
    expect(f?.message).toMatch(
      /^group pg in default \(PVCs data-pg-0, wal-pg-0\) \(schedule default\/db\): 1 recovery point\(s\) failed \(.*: group cut failed\)/,
    );
    expect(f?.message).toContain(`kubectl describe volumegroupsnapshot ${broken.vgs.metadata.name}`);
    // A member's own error fails the point too (asRecoveryPoint), with the member's message.
    const memberBroken = point('pg', 0.2, ['data-pg-0', 'wal-pg-0'], { memberError: 'disk busy' });
    memberBroken.members[0]!.status!.error = { message: 'disk busy', time: hoursAgo(3).toISOString() };
    const r2 = report({ ...flat([memberBroken]), plan: true });
    expect(groupRow(r2, 'pg')?.snapshots?.[0]).toMatchObject({ state: 'failed', error: 'disk busy' });
    expect(groupRow(r2, 'pg')?.snapshots?.[0]?.members[0]).toMatchObject({
      readyToUse: false,
      error: 'disk busy',
    });
  });

  it('a group is stale when its newest ready point is too old, and says a member not Bound keeps it from being taken', () => {
    const old = [point('pg', 5, ['data-pg-0', 'wal-pg-0']), point('my', 0.1, ['data-my-0'])];
    const pending = pvcs.map((p) =>
      p.metadata.name === 'wal-pg-0' ? { ...p, status: { phase: 'Pending' } } : p,
    );
    const r = report({ ...flat(old), pvcs: pending });
    const g = groupRow(r, 'pg') as GroupReport;
    expect(g.phase).toBe('Pending');
    expect(g.stale).toBe(true);
    const stale = r.findings.filter((f) => f.kind === 'stale');
    expect(stale.map((f) => [f.pvc, f.group])).toEqual([[null, 'pg']]);
    expect(stale[0]?.message).toMatch(
      /^group pg in default \(PVCs data-pg-0, wal-pg-0\) \(schedule default\/db\): the newest ready recovery point \S+ is 5h old, more than twice the schedule's interval of 1h; it is not taken while its PVC\(s\) wal-pg-0 are not Bound/,
    );
    expect(renderReport(r, 'table')).toMatch(/^ {2}pg\s+data-pg-0,wal-pg-0\s+1\s+0\s+0\s+0\s.*STALE/m);
    // Not stale while every member is still to come (none Bound): nothing to protect yet.
    const none = pvcs.map((p) => ({ ...p, status: { phase: 'Pending' } }));
    expect(groupRow(report({ ...flat(old), pvcs: none }), 'pg')?.stale).toBe(false);
  });

  it('a selected PVC without the group label is unprotected, and the finding says which label', () => {
    const r = report(objects);
    expect(r.unprotected.map((u) => [u.pvc, u.selectedBy])).toEqual([
      ['scratch', [{ schedule: 'db', why: 'not-in-group', labelKey: INSTANCE }]],
    ]);
    expect(r.findings.find((f) => f.kind === 'unprotected')?.message).toBe(
      `PVC default/scratch is selected only by schedule db (no label ${INSTANCE}), so nothing snapshots it: label the PVC ${INSTANCE}=<group> (the schedule takes one VolumeGroupSnapshot per value) or select the PVC from an active schedule`,
    );
    // by Schedule: every selected PVC is in the one group.
    const one = { ...db, spec: { ...db.spec, group: { by: 'Schedule' as const } } };
    const r2 = report({ schedules: [one] });
    expect(r2.unprotected).toEqual([]);
    expect(r2.schedules[0]?.groups?.map((g) => [g.group, g.members.length])).toEqual([['group', 4]]);
  });

  it('counts groups in the totals; a report without groups has none of the group fields', () => {
    const hourly = withCreation(
      schedule('web', { schedule: '0 * * * *', claimSelector: { matchLabels: { tier: 'web' } } }),
    );
    const web = [pvc('web-0', { tier: 'web' })];
    const snaps = [snap('web-0-a', { at: hoursAgo(0.5), pvc: 'web-0', schedule: 'web' })];
    const mixed = report({
      schedules: [db, hourly],
      pvcs: [...pvcs, ...web],
      snapshots: [...objects.snapshots, ...snaps],
      groupSnapshots: objects.groupSnapshots,
    });
    expect(mixed.totals.groups).toEqual({
      groups: 2,
      staleGroups: 0,
      recoveryPoints: { ready: 5, pending: 0, stuck: 0, failed: 0 },
      memberSnapshots: 9,
    });
    // Recovery points are snapshots of their schedule in the totals, like any other.
    expect(mixed.totals.snapshots).toEqual({ ready: 6, pending: 0, stuck: 0, failed: 0 });
    // Member snapshots are nobody's per-PVC snapshots.
    const webRow = mixed.schedules.find((s) => s.name === 'web');
    expect(webRow?.pvcs.map((p) => p.pvc)).toEqual(['web-0']);
    expect(Object.keys(webRow ?? {})).not.toContain('groups');
    const plain = buildReport({ schedules: [hourly], pvcs: web, snapshots: snaps, now: NOW });
    expect(plain.totals.groups).toBeUndefined();
    expect(JSON.stringify(plain)).not.toMatch(/"groups?"/);
    // Group objects alone change nothing for a schedule without spec.group.
    const groupObjects = flat(pg);
    expect(
      buildReport({
        schedules: [hourly],
        pvcs: web,
        snapshots: [...snaps, ...groupObjects.snapshots],
        groupSnapshots: groupObjects.groupSnapshots,
        now: NOW,
      }),
    ).toEqual(plain);
  });

  it('agrees with decide on every verdict, whatever the points, holds and restores', () => {
    const arbPoint = fc.record({
      group: fc.constantFrom('pg', 'my'),
      minutes: fc.integer({ min: 1, max: 60 * 24 * 10 }),
      state: fc.constantFrom<'ready' | 'pending' | 'failed'>('ready', 'ready', 'pending', 'failed'),
      hold: fc.boolean(),
      restored: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(arbPoint, { selector: (p) => `${p.group}/${p.minutes}`, maxLength: 12 }),
        fc.constantFrom<SnapshotSchedule['spec']['retention']>(
          { maxCount: 2 },
          { maxCount: 3, minReady: 2 },
          { expires: '2d', keep: { daily: 2 } },
          { keep: { hourly: 3, daily: 3 }, failedAfter: '30m' },
        ),
        (specs, retention) => {
          const sched = { ...db, spec: { ...db.spec, retention } };
          const points = specs.map((p) => {
            const pt = point(
              p.group,
              p.minutes / 60,
              p.group === 'pg' ? ['data-pg-0', 'wal-pg-0'] : ['data-my-0'],
              {
                state: p.state,
                hold: p.hold,
              },
            );
            if (p.state === 'failed' && pt.vgs.status?.error)
              pt.vgs.status.error.time = pt.vgs.metadata.creationTimestamp as string;
            return { ...pt, restored: p.restored };
          });
          const restores = points
            .filter((p) => p.restored)
            .map((p, i) => restoringPvc(`restore-${i}`, p.members[0]?.metadata.name ?? ''));
          const input = { pvcs: [...pvcs, ...restores], ...flat(points) };
          const r = report({ schedules: [sched], ...input, plan: true });
          const fromReport = (r.schedules[0]?.groups ?? [])
            .flatMap((g) => g.snapshots ?? [])
            .map((v) => [v.name, v.verdict, v.reasons, v.overridden]);
          const decided = decide({ schedule: sched, ...input, now: NOW }).retention?.verdicts ?? [];
          expect(fromReport.sort()).toEqual(
            decided.map((v) => [v.name, v.verdict, v.reasons, v.overridden]).sort(),
          );
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('rendering groups', () => {
  const r = report({ ...objects, plan: true });

  it('table: the group line, a row per group, the members a restore reads, every point with its members', () => {
    const text = renderReport(r, 'table');
    expect(text).toContain(`group by Label ${INSTANCE}, class gsc; 2 group(s)`);
    expect(text).toContain('recovery points 5 ready, 0 pending, 0 stuck, 0 failed; 85Gi restorable');
    expect(text).toMatch(/^ {2}GROUP\s+MEMBERS\s+READY\s+PENDING\s+STUCK\s+FAILED\s+NEWEST READY \(AGE\)/m);
    const newest = pg[0]?.vgs.metadata.name ?? '';
    expect(text).toContain(
      `  pg: ${newest}: data-pg-0 -> snapshot-${newest}-data-pg-0 (ready, 10Gi), wal-pg-0 -> snapshot-${newest}-wal-pg-0 (ready, 10Gi)`,
    );
    expect(text).toMatch(
      /Group pg, every recovery point:\n\s+NAME\s+TIME\s+STATE\s+VERDICT\s+REASONS\s+MEMBERS/,
    );
    expect(text).toMatch(
      new RegExp(`${pg[3]?.vgs.metadata.name}\\s+\\S+\\s+ready\\s+DELETE\\s+max-count\\s+data-pg-0 -> `),
    );
    expect(text).toContain('2 group(s), 0 stale; recovery points (counted in snapshots above) 5 ready');
    expect(text).toMatch(
      /PVC\s+PHASE\s+SIZE\s+NOTE\n.*scratch\s+Bound\s+10Gi\s+selected only by schedule db \(no label/,
    );
  });

  it('markdown and HTML carry the same rows', () => {
    const md = renderReport(r, 'markdown');
    expect(md).toMatch(/^\| GROUP \| MEMBERS \| READY \|/m);
    expect(md).toMatch(/^\| pg \| data-pg-0,wal-pg-0 \| 4 \| 0 \| 0 \| 0 \|/m);
    const html = renderReport(r, 'html');
    expect(html).toContain('data-group="pg"');
    expect(html).toContain('data-group="my"');
    expect(html).toContain('data-total="groups"');
    expect(html).toContain(`group by Label ${INSTANCE}, class gsc`);
    expect(html).toMatch(
      /restore reads <code>[^<]+<\/code>: <span class="members">data-pg-0 -&gt; snapshot-/,
    );
    expect(html).toMatch(/<th>members<\/th>/);
    // One timeline mark per recovery point.
    const block = html.slice(html.indexOf('data-group="pg"'), html.indexOf('data-group="pg"') + 20_000);
    expect(block.split('</details>')[0]?.match(/class="mark /g)).toHaveLength(4);
  });
});

describe('snapcron report and plan from files, with groups', () => {
  const dir = mkdtempSync(join(tmpdir(), 'snapcron-groups-'));
  const file = (name: string, value: unknown): string => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify(value));
    return path;
  };
  // As `kubectl get volumesnapshots,volumegroupsnapshots -o json` gives them: one List, both kinds.
  const snapshots = file('snaps.json', {
    apiVersion: 'v1',
    kind: 'List',
    items: [...objects.snapshots, ...objects.groupSnapshots],
  });
  const schedules = file('schedules.json', { apiVersion: 'v1', kind: 'List', items: [db] });
  const pvcFile = file('pvcs.json', {
    apiVersion: 'v1',
    kind: 'List',
    items: pvcs.map((p) => ({ kind: 'PersistentVolumeClaim', ...p })),
  });
  const now = ['--now', NOW.toISOString()];

  it('report reads VolumeGroupSnapshots from the --snapshots file', async () => {
    const r = await run(
      'report',
      '-f',
      schedules,
      '--snapshots',
      snapshots,
      '--pvcs',
      pvcFile,
      ...now,
      '-o',
      'json',
      '--plan',
    );
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toEqual(
      JSON.parse(JSON.stringify(report({ ...objects, plan: true, namespace: undefined }))),
    );
  });

  it('plan: a section per group, each recovery point with its verdict and its members under it', async () => {
    const r = await run('plan', '-f', schedules, '--snapshots', snapshots, '--pvcs', pvcFile, ...now);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(
      'SnapshotSchedule default/db at 2026-06-15T12:00:00Z: 4 keep, 1 delete (recovery points: VolumeGroupSnapshots, each kept or deleted whole)',
    );
    expect(r.out).toMatch(/\nGroup my\n\s+NAME\s+TIME\s+STATE\s+VERDICT\s+REASONS\n/);
    const oldest = pg[3]?.vgs.metadata.name ?? '';
    expect(r.out).toMatch(
      new RegExp(
        `\\n {2}${oldest}\\s+2026-06-15 08:54:00 \\+00:00\\s+ready\\s+DELETE\\s+max-count\\n {6}data-pg-0 -> snapshot-${oldest}-data-pg-0 \\(ready, 10Gi\\)\\n {6}wal-pg-0 -> snapshot-${oldest}-wal-pg-0 \\(ready, 10Gi\\)\\n`,
      ),
    );
  });

  it('plan -o json: recovery points name their group and members where snapshots name a PVC', async () => {
    const r = await run('plan', '-f', schedules, '--snapshots', snapshots, ...now, '-o', 'json');
    const rows = JSON.parse(r.out) as Record<string, unknown>[];
    expect(rows.map((x) => [x.group, x.verdict])).toEqual([
      ['my', 'keep'],
      ['pg', 'keep'],
      ['pg', 'keep'],
      ['pg', 'keep'],
      ['pg', 'delete'],
    ]);
    expect(rows[4]).toMatchObject({
      schedule: 'db',
      name: pg[3]?.vgs.metadata.name,
      members: [
        { pvc: 'data-pg-0', readyToUse: true, restoreSize: '10Gi' },
        { pvc: 'wal-pg-0', readyToUse: true, restoreSize: '10Gi' },
      ],
      reasons: ['max-count'],
    });
    expect(rows[4]).not.toHaveProperty('pvc');
    // Its verdicts are decide's.
    const decided = decide({ schedule: db, pvcs: [], ...objects, now: NOW }).retention?.verdicts ?? [];
    expect(rows.map((x) => [x.name, x.verdict])).toEqual(decided.map((v) => [v.name, v.verdict]));
  });
});

describe('readCluster and VolumeGroupSnapshots', () => {
  /** Answers LISTs by plural from `pages`; a plural mapped to a number fails with that status. */
  function stubKube(pages: Record<string, unknown[] | number>): { kube: Kube; listed: string[] } {
    const listed: string[] = [];
    const answer = (plural: string): Promise<unknown> => {
      listed.push(plural);
      const page = pages[plural] ?? [];
      if (typeof page === 'number')
        return Promise.reject(Object.assign(new Error(`HTTP ${page}`), { code: page }));
      return Promise.resolve({ items: page, metadata: {} });
    };
    const kube = {
      schedules: { group: 'snapcron.io', version: 'v1', plural: 'snapshotschedules' },
      snapshots: { group: 'snapshot.storage.k8s.io', version: 'v1', plural: 'volumesnapshots' },
      groupSnapshots: {
        group: 'groupsnapshot.storage.k8s.io',
        version: 'v1',
        plural: 'volumegroupsnapshots',
      },
      read: <T>(f: () => Promise<T>) => f(),
      custom: {
        listNamespacedCustomObject: (o: { plural: string }) => answer(o.plural),
        listClusterCustomObject: (o: { plural: string }) => answer(o.plural),
      },
      core: {
        listNamespacedPersistentVolumeClaim: () => answer('persistentvolumeclaims'),
        listPersistentVolumeClaimForAllNamespaces: () => answer('persistentvolumeclaims'),
      },
    };
    return { kube: kube as unknown as Kube, listed };
  }
  const plain = schedule('web', { claimSelector: { matchLabels: { tier: 'web' } } });

  it('lists them only when a schedule has spec.group', async () => {
    const without = stubKube({ snapshotschedules: [plain] });
    expect(await readCluster(without.kube, 'default', 500)).not.toHaveProperty('groupSnapshots');
    expect(without.listed).not.toContain('volumegroupsnapshots');
    const withGroups = stubKube({
      snapshotschedules: [plain, db],
      volumegroupsnapshots: objects.groupSnapshots,
    });
    expect((await readCluster(withGroups.kube, 'default', 500)).groupSnapshots).toHaveLength(5);
    expect(withGroups.listed).toContain('volumegroupsnapshots');
  });

  it.each([404, 403])('goes on without groups when the LIST answers %i', async (code) => {
    const { kube } = stubKube({ snapshotschedules: [db], volumegroupsnapshots: code });
    expect((await readCluster(kube, undefined, 500)).groupSnapshots).toEqual([]);
  });

  it('fails on any other error', async () => {
    const { kube } = stubKube({ snapshotschedules: [db], volumegroupsnapshots: 500 });
    await expect(readCluster(kube, 'default', 500)).rejects.toThrow('HTTP 500');
  });
});
