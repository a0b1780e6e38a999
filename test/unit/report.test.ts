/**
 * The retention report without a cluster: what it finds (unprotected, invalid, stale, failed,
 * stuck), its fields, its renderings, the controller's /report handler and alert metrics, and
 * the README's promises about it (its JSON example is this fixture's real output).
 */
import { readFileSync } from 'node:fs';
import { setImmediate } from 'node:timers/promises';
import { run } from '../support/cli.ts';
import fc from 'fast-check';
import { Registry } from '../../src/controller/prometheus.ts';
import { describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../../src/api/objects.ts';
import type { LabelSelector, SnapshotSchedule } from '../../src/api/types.generated.ts';
import { readObjects } from '../../src/cli/manifests.ts';
import { matchesSelector } from '../../src/kube/selector.ts';
import { buildGaugeReport, buildReport, fireFacts, type ReportInput } from '../../src/report/build.ts';
import { latestFireTime, nextFireTime, nextFireTimes, parseSchedule } from '../../src/schedule/cron.ts';
import { reportResponse } from '../../src/report/http.ts';
import { ReportMetrics, type CachedObjects } from '../../src/report/metrics.ts';
import { FINDING_KINDS, type Report } from '../../src/report/model.ts';
import { renderReport } from '../../src/report/render.ts';
import { restoringPvc, schedule, snap } from '../support/builders.ts';

const NOW = new Date('2026-06-15T12:00:00Z');
const hoursAgo = (h: number): Date => new Date(NOW.getTime() - h * 3_600_000);

const FIXTURE = [
  '-f',
  'test/fixtures/report/schedules.yaml',
  '--snapshots',
  'test/fixtures/report/snapshots.json',
  '--pvcs',
  'test/fixtures/report/pvcs.json',
  '--now',
  '2026-06-15T12:00:00Z',
];

function pvc(
  name: string,
  labels: Record<string, string> = {},
  o: Partial<{ phase: string; created: string }> = {},
) {
  return {
    metadata: {
      name,
      namespace: 'default',
      labels,
      creationTimestamp: o.created ?? '2026-01-01T00:00:00Z',
    },
    spec: { resources: { requests: { storage: '10Gi' } } },
    status: { phase: o.phase ?? 'Bound' },
  } satisfies PersistentVolumeClaim;
}
const created = (s: SnapshotSchedule, at = '2026-01-01T00:00:00Z'): SnapshotSchedule => ({
  ...s,
  metadata: { ...s.metadata, creationTimestamp: at },
});
const withSize = (s: VolumeSnapshot, size = '10Gi'): VolumeSnapshot => ({
  ...s,
  status: { ...s.status, restoreSize: size },
});
const report = (input: Partial<ReportInput>): Report =>
  buildReport({ schedules: [], pvcs: [], snapshots: [], now: NOW, ...input });
const row = (r: Report, sched: string, name: string) =>
  r.schedules.find((s) => s.name === sched)?.pvcs.find((p) => p.pvc === name);

describe('buildReport', () => {
  const hourly = created(schedule('hourly', { schedule: '0 * * * *', retention: { maxCount: 3 } }));

  it("keeps a row for a PVC that is gone while its schedule's snapshots of it remain, phase null", () => {
    const r = report({
      schedules: [hourly],
      pvcs: [pvc('data-0')],
      snapshots: [
        snap('old-a', { at: '2026-01-01T09:00:00Z', pvc: 'old-0', schedule: 'hourly' }),
        snap('new-a', { at: '2026-01-01T09:00:00Z', pvc: 'data-0', schedule: 'hourly' }),
      ],
    });
    expect(row(r, 'hourly', 'old-0')).toMatchObject({
      pvc: 'old-0',
      phase: null,
      selected: false,
      stale: false,
    });
    expect(row(r, 'hourly', 'old-0')?.counts).toMatchObject({ ready: 1 });
    expect(row(r, 'hourly', 'data-0')).toMatchObject({ phase: 'Bound', selected: true });
  });

  it('lists PVCs no active schedule selects first, saying which idle schedule selects them', () => {
    const r = report({
      schedules: [
        created(schedule('db', { claimSelector: { matchLabels: { app: 'db' } } })),
        created(schedule('web', { suspend: true, claimSelector: { matchLabels: { app: 'web' } } })),
        created(
          schedule('logs', { schedule: '0 0 30 2 *', claimSelector: { matchLabels: { app: 'logs' } } }),
        ),
      ],
      pvcs: [
        pvc('db-0', { app: 'db' }),
        pvc('web-0', { app: 'web' }),
        pvc('logs-0', { app: 'logs' }),
        pvc('tmp-0'),
        { ...pvc('gone-0'), metadata: { ...pvc('gone-0').metadata, deletionTimestamp: NOW.toISOString() } },
      ],
    });
    expect(r.unprotected.map((u) => [u.pvc, u.selectedBy])).toEqual([
      ['logs-0', [{ schedule: 'logs', why: 'invalid' }]],
      ['tmp-0', []],
      ['web-0', [{ schedule: 'web', why: 'suspended' }]],
    ]);
    expect(r.unprotected[1]).toEqual({
      namespace: 'default',
      pvc: 'tmp-0',
      phase: 'Bound',
      storage: '10Gi',
      selectedBy: [],
    });
    expect(r.findings.map((f) => [f.kind, f.pvc ?? f.schedule])).toEqual([
      ['unprotected', 'logs-0'],
      ['unprotected', 'tmp-0'],
      ['unprotected', 'web-0'],
      ['invalid', 'logs'],
      // No copy at all although @daily has fired since January; a suspended schedule's PVCs go stale too.
      ['stale', 'db-0'],
      ['stale', 'web-0'],
    ]);
    expect(r.findings[2]?.message).toMatch(/selected only by suspended schedule web.*resume the schedule/);
    expect(r.findings[3]?.message).toMatch(/^SnapshotSchedule default\/logs is invalid.*spec\.schedule: /);
    expect(r.totals).toMatchObject({ schedules: 3, suspendedSchedules: 1, invalidSchedules: 1, pvcs: 4 });
    expect(r.totals.findings).toEqual({ unprotected: 3, invalid: 1, stale: 2, failed: 0, stuck: 0 });
  });

  it('scopes to one namespace and, with --schedule, to one schedule without the unprotected list', () => {
    const other = { ...pvc('x-0'), metadata: { ...pvc('x-0').metadata, namespace: 'other' } };
    const r = report({ schedules: [hourly], pvcs: [pvc('a-0'), other], namespace: 'default' });
    expect(r.scope).toEqual({ namespace: 'default', schedule: null });
    expect(r.totals.pvcs).toBe(1);
    const one = report({ schedules: [hourly], pvcs: [pvc('a-0'), pvc('b-0')], schedule: 'hourly' });
    expect(one.scope).toEqual({ namespace: null, schedule: 'hourly' });
    expect(one.unprotected).toEqual([]);
    expect(one.schedules.map((s) => s.name)).toEqual(['hourly']);
  });

  it('per PVC: counts, newest ready with age, oldest kept, protections with reasons, restore size', () => {
    const snaps = [
      withSize(snap('s1', { at: hoursAgo(1), pvc: 'a-0', schedule: 'hourly' })),
      withSize(snap('s2', { at: hoursAgo(2), pvc: 'a-0', schedule: 'hourly', hold: true })),
      withSize(snap('s3', { at: hoursAgo(3), pvc: 'a-0', schedule: 'hourly' })),
      withSize(snap('s4', { at: hoursAgo(4), pvc: 'a-0', schedule: 'hourly' })),
      snap('p1', { at: hoursAgo(0.1), pvc: 'a-0', schedule: 'hourly', state: 'pending' }),
      snap('other', { at: hoursAgo(1), pvc: 'a-0', schedule: 'nightly' }),
    ];
    const r = report({ schedules: [hourly], pvcs: [pvc('a-0'), restoringPvc('r', 's4')], snapshots: snaps });
    const a = row(r, 'hourly', 'a-0');
    expect(a).toMatchObject({
      phase: 'Bound',
      selected: true,
      counts: { ready: 4, pending: 1, stuck: 0, failed: 0 },
      newestReady: { name: 's1', time: hoursAgo(1).toISOString().replace('.000', ''), ageSeconds: 3600 },
      oldestKept: { name: 's4' },
      restoreSizeBytes: 4 * 10 * 2 ** 30,
      stale: false,
    });
    expect(a?.protected.map((p) => [p.name, p.reasons])).toEqual([
      ['p1', ['pending']],
      ['s1', ['min-ready']],
      ['s2', ['hold']],
      ['s4', ['in-use']],
    ]);
    expect(a?.snapshots).toBeUndefined();
    // maxCount 3 of four ready: s4 would go, but a restore reads it; the next run pushes s3 out.
    expect(a?.nextDeletion).toEqual({
      at: '2026-06-15T13:00:00Z',
      trigger: 'run',
      name: 's3',
      time: '2026-06-15T09:00:00Z',
      reasons: ['max-count'],
      planned: false,
      count: 1,
    });
    expect(r.schedules[0]?.restoreSizeBytes).toBe(4 * 10 * 2 ** 30);
    expect(r.schedules[0]?.counts).toEqual({ ready: 4, pending: 1, stuck: 0, failed: 0 });
  });

  it('--plan adds every snapshot with the planner verdict, reasons and size', () => {
    const r = report({
      schedules: [created(schedule('hourly', { schedule: '0 * * * *', retention: { maxCount: 1 } }))],
      pvcs: [pvc('a-0')],
      snapshots: [
        withSize(snap('s1', { at: hoursAgo(1), pvc: 'a-0', schedule: 'hourly' })),
        snap('s2', { at: hoursAgo(2), pvc: 'a-0', schedule: 'hourly' }),
      ],
      plan: true,
    });
    expect(row(r, 'hourly', 'a-0')?.snapshots).toEqual([
      {
        name: 's1',
        time: '2026-06-15T11:00:00Z',
        state: 'ready',
        verdict: 'keep',
        reasons: ['min-ready'],
        overridden: [],
        restoreSize: '10Gi',
        error: null,
      },
      {
        name: 's2',
        time: '2026-06-15T10:00:00Z',
        state: 'ready',
        verdict: 'delete',
        reasons: ['max-count'],
        overridden: [],
        restoreSize: null,
        error: null,
      },
    ]);
    expect(row(r, 'hourly', 'a-0')?.nextDeletion).toMatchObject({
      trigger: 'now',
      name: 's2',
      at: '2026-06-15T12:00:00Z',
    });
  });

  describe('stale', () => {
    const sched = (spec = {}) =>
      created(schedule('hourly', { schedule: '0 * * * *', retention: { maxCount: 5 }, ...spec }));
    const stale = (snaps: VolumeSnapshot[], claim = pvc('a-0'), s = sched()) => {
      const r = report({ schedules: [s], pvcs: [claim], snapshots: snaps });
      return { row: row(r, 'hourly', 'a-0'), findings: r.findings.filter((f) => f.kind === 'stale') };
    };
    const at = (h: number) => snap(`s-${h}`, { at: hoursAgo(h), pvc: 'a-0', schedule: 'hourly' });

    it('when the newest ready copy is older than twice the interval', () => {
      expect(stale([at(2)]).row?.stale).toBe(false);
      const { row: r, findings } = stale([at(2.1), { ...at(0.5), status: { readyToUse: false } }]);
      expect(r?.stale).toBe(true);
      expect(findings).toEqual([
        {
          kind: 'stale',
          namespace: 'default',
          schedule: 'hourly',
          pvc: 'a-0',
          snapshots: ['s-2.1'],
          message: expect.stringMatching(
            /^PVC default\/a-0 \(schedule default\/hourly\): the newest ready snapshot s-2\.1 is 2h6m old, more than twice the schedule's interval of 1h: check /,
          ) as string,
        },
      ]);
    });

    it("measures the interval between the two latest fire times (a weekday schedule's Monday gap is 3 days)", () => {
      // Monday 2026-06-15 12:00: the runs before were Monday 02:00 and Friday 02:00.
      const weekdays = sched({ schedule: '0 2 * * 1-5' });
      const r = report({ schedules: [weekdays], pvcs: [pvc('a-0')], snapshots: [at(24 * 3)] });
      expect(r.schedules[0]?.intervalSeconds).toBe(3 * 86_400);
      expect(row(r, 'hourly', 'a-0')?.stale).toBe(false);
      expect(stale([at(24 * 6 + 11)], pvc('a-0'), weekdays).row?.stale).toBe(true);
    });

    it('when none is ready although the schedule has fired since both it and the PVC exist', () => {
      const failed = snap('f', { at: hoursAgo(3), pvc: 'a-0', schedule: 'hourly', state: 'failed' });
      const { row: r, findings } = stale([failed]);
      expect(r?.stale).toBe(true);
      expect(findings[0]?.message).toMatch(
        /no ready snapshot, although the schedule has fired for it \(first at 2026-01-01T01:00:00Z\)/,
      );
      // A PVC created at the last fire time or after: nothing was due for it yet.
      expect(stale([], pvc('a-0', {}, { created: NOW.toISOString() })).row?.stale).toBe(false);
      expect(stale([], pvc('a-0', {}, { created: hoursAgo(1.5).toISOString() })).row?.stale).toBe(true);
    });

    it('not for a PVC that is not Bound, nor one the schedule no longer selects', () => {
      expect(stale([], pvc('a-0', {}, { phase: 'Pending' })).row?.stale).toBe(false);
      const unselected = sched({ claimSelector: { matchLabels: { app: 'x' } } });
      expect(stale([at(30)], pvc('a-0'), unselected).row).toMatchObject({ selected: false, stale: false });
    });

    it('still for a suspended schedule, saying so', () => {
      const { row: r, findings } = stale([at(5)], pvc('a-0'), sched({ suspend: true }));
      expect(r?.stale).toBe(true);
      expect(findings[0]?.message).toMatch(/\(schedule default\/hourly, suspended\).*resume the schedule/);
    });
  });

  it('reports failed and stuck snapshots per PVC, one line each, naming them', () => {
    const policy = { maxCount: 5, failedAfter: '1h', pendingDeadline: '2h' };
    const r = report({
      schedules: [created(schedule('hourly', { schedule: '0 * * * *', retention: policy }))],
      pvcs: [pvc('a-0')],
      snapshots: [
        snap('ok', { at: hoursAgo(0.5), pvc: 'a-0', schedule: 'hourly' }),
        { ...snap('bad', { at: hoursAgo(3), pvc: 'a-0', schedule: 'hourly', state: 'failed' }) },
        // An error younger than failedAfter is a retry in progress, not a failure.
        {
          ...snap('retrying', { at: hoursAgo(0.2), pvc: 'a-0', schedule: 'hourly' }),
          status: { readyToUse: false, error: { message: 'busy', time: hoursAgo(0.2).toISOString() } },
        },
        snap('old-pending', { at: hoursAgo(3), pvc: 'a-0', schedule: 'hourly', state: 'pending' }),
      ],
    });
    expect(r.findings.map((f) => [f.kind, f.snapshots])).toEqual([
      ['failed', ['bad']],
      ['stuck', ['old-pending']],
    ]);
    expect(r.findings[0]?.message).toBe(
      'PVC default/a-0 (schedule default/hourly): 1 snapshot(s) failed (bad: driver said no); retention deletes them at its next pass: check the CSI driver and kubectl describe volumesnapshot bad -n default',
    );
    expect(r.findings[1]?.message).toMatch(/not ready after pendingDeadline 2h \(old-pending\); kept/);
    for (const f of r.findings) expect(f.message).not.toContain('\n');
    expect(row(r, 'hourly', 'a-0')?.counts).toEqual({ ready: 1, pending: 1, stuck: 1, failed: 1 });
    expect(row(r, 'hourly', 'a-0')?.nextDeletion).toMatchObject({
      trigger: 'now',
      name: 'bad',
      reasons: ['failed'],
    });
  });

  it('an invalid schedule deletes nothing: its snapshots are kept, no next deletion', () => {
    const broken = created(schedule('broken', { schedule: '0 0 30 2 *', retention: { maxCount: 1 } }));
    const r = report({
      schedules: [broken],
      pvcs: [pvc('a-0')],
      snapshots: [
        snap('s1', { at: hoursAgo(1), pvc: 'a-0', schedule: 'broken' }),
        snap('s2', { at: hoursAgo(2), pvc: 'a-0', schedule: 'broken', state: 'failed' }),
      ],
      plan: true,
    });
    const s = r.schedules[0];
    expect(s?.errors[0]?.path).toBe('spec.schedule');
    expect(s).toMatchObject({ nextFireTime: null, intervalSeconds: null });
    expect(row(r, 'broken', 'a-0')?.nextDeletion).toBeNull();
    expect(row(r, 'broken', 'a-0')?.snapshots?.map((v) => v.verdict)).toEqual(['keep', 'keep']);
  });

  it('selects PVCs exactly as a label selector does (indexed lookup vs matchesSelector)', () => {
    const label = fc.record(
      { app: fc.constantFrom('a', 'b', 'c'), tier: fc.constantFrom('x', 'y') },
      { requiredKeys: [] },
    );
    const selector: fc.Arbitrary<LabelSelector> = fc.record(
      {
        matchLabels: fc.record({ app: fc.constantFrom('a', 'b') }, { requiredKeys: [] }),
        matchExpressions: fc.array(
          fc.oneof(
            fc.record({
              key: fc.constantFrom('app', 'tier'),
              operator: fc.constant<'In'>('In'),
              values: fc.array(fc.constantFrom('a', 'b', 'x'), { minLength: 1, maxLength: 2 }),
            }),
            fc.record({
              key: fc.constantFrom('app', 'tier'),
              operator: fc.constantFrom<'NotIn'>('NotIn'),
              values: fc.constant(['b']).map((v) => [...v]),
            }),
            fc.record({
              key: fc.constantFrom('app', 'tier'),
              operator: fc.constantFrom<'Exists' | 'DoesNotExist'>('Exists', 'DoesNotExist'),
            }),
          ),
          { maxLength: 2 },
        ),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.array(label, { maxLength: 12 }), selector, (labels, sel) => {
        const pvcs = labels.map((l, i) => pvc(`p-${String(i).padStart(2, '0')}`, l));
        const r = report({ schedules: [created(schedule('s', { claimSelector: sel }))], pvcs });
        const expected = pvcs
          .filter((p) => matchesSelector(p.metadata.labels, sel))
          .map((p) => p.metadata.name);
        expect(r.schedules[0]?.pvcs.map((p) => p.pvc)).toEqual(expected);
        expect(r.unprotected.map((u) => u.pvc)).toEqual(
          pvcs.map((p) => p.metadata.name).filter((n) => !expected.includes(n)),
        );
      }),
    );
  });

  it('looks ahead at most 1,000 runs: past that, no next deletion', () => {
    const hourlyKeeping = (maxCount: number) =>
      report({
        schedules: [created(schedule('hourly', { schedule: '0 * * * *', retention: { maxCount } }))],
        pvcs: [pvc('a-0')],
        snapshots: [snap('s', { at: hoursAgo(0.5), pvc: 'a-0', schedule: 'hourly' })],
      });
    // The 1,000th run is the 1,001st ready snapshot: one past maxCount 1000.
    expect(row(hourlyKeeping(1000), 'hourly', 'a-0')?.nextDeletion).toMatchObject({
      at: new Date(NOW.getTime() + 1000 * 3_600_000).toISOString().replace('.000Z', 'Z'),
      name: 's',
    });
    expect(row(hourlyKeeping(1001), 'hourly', 'a-0')?.nextDeletion).toBeNull();
  });

  it('looks ahead at most 5 years: a weekly schedule deleting in about 4.8 years says when, in 5.2 years null', () => {
    const weeklyKeeping = (maxCount: number) =>
      report({
        schedules: [created(schedule('weekly', { schedule: '0 0 * * 0', retention: { maxCount } }))],
        pvcs: [pvc('a-0')],
        snapshots: [snap('s', { at: hoursAgo(0.5), pvc: 'a-0', schedule: 'weekly' })],
      });
    const soon = row(weeklyKeeping(250), 'weekly', 'a-0')?.nextDeletion;
    expect(soon).toMatchObject({ name: 's', trigger: 'run' });
    const years = (Date.parse(soon?.at ?? '') - NOW.getTime()) / (365.25 * 86_400_000);
    expect(years).toBeGreaterThan(4.7);
    expect(years).toBeLessThan(4.9);
    expect(row(weeklyKeeping(270), 'weekly', 'a-0')?.nextDeletion).toBeNull();
  });

  it('is the same whatever order the objects come in', () => {
    const snaps = Array.from({ length: 6 }, (_, i) =>
      snap(`s${i}`, {
        at: hoursAgo(i + 1),
        pvc: `a-${i % 2}`,
        schedule: 'hourly',
        state: i === 3 ? 'failed' : 'ready',
      }),
    );
    const input = {
      schedules: [hourly, created(schedule('b'))],
      pvcs: [pvc('a-0'), pvc('a-1'), pvc('z')],
      snapshots: snaps,
    };
    const a = report(input);
    const b = report({
      schedules: [...input.schedules].reverse(),
      pvcs: [...input.pvcs].reverse(),
      snapshots: [...snaps].reverse(),
    });
    expect(b).toEqual(a);
  });
});

describe('snapcron report (offline)', () => {
  it('prints the table: unprotected first, a section per schedule, findings, totals; exit 0', async () => {
    const r = await run('report', '-n', 'shop', ...FIXTURE);
    expect(r.code).toBe(0);
    const out = r.out;
    const at = (text: string): number => out.indexOf(text);
    expect(at('Unprotected PVCs: 2')).toBeGreaterThan(0);
    expect(at('Unprotected PVCs')).toBeLessThan(at('Schedule shop/db-hourly'));
    expect(at('Schedule shop/db-hourly')).toBeLessThan(at('Findings: 6'));
    expect(at('Findings: 6')).toBeLessThan(at('Totals'));
    expect(out).toMatch(
      /^ {2}db-1 +Bound +0 +0 +0 +1 +- +- +- +STALE +db-1-db-hourly-0764961930-202606151000 at the next pass \(failed\)$/m,
    );
    expect(out).toMatch(/^ {2}restore-db-0 +Pending .* not Bound +-$/m);
    expect(out).toMatch(/^ {2}logs-0 +Bound .* schedule invalid +-$/m);
    expect(out).toContain('db-0-db-hourly-8b888dec2a-202606151100 at 2026-06-15T15:00:00Z (run: max-count)');
  });

  it('--fail-on: exit 2 when a finding of those kinds exists, each on stderr, one line; else 0', async () => {
    const stale = await run('report', ...FIXTURE, '--fail-on', 'stale,stuck', '-o', 'json');
    expect(stale.code).toBe(2);
    expect(stale.err.trim().split('\n')).toEqual([
      expect.stringMatching(
        /^stale: PVC shop\/db-1 \(schedule shop\/db-hourly\): no ready snapshot/,
      ) as string,
      expect.stringMatching(
        /^stuck: PVC shop\/db-0 \(schedule shop\/db-hourly\): 1 snapshot\(s\) not ready/,
      ) as string,
      'snapcron report: 2 finding(s) of the kinds in --fail-on stale,stuck',
    ]);
    expect((JSON.parse(stale.out) as Report).findings).toHaveLength(6); // the report is printed all the same
    for (const kind of FINDING_KINDS)
      expect((await run('report', ...FIXTURE, '--fail-on', kind)).code).toBe(2);
    const scoped = await run(
      'report',
      ...FIXTURE,
      '--schedule',
      'logs-broken',
      '--fail-on',
      'stale,failed,stuck,unprotected',
    );
    expect(scoped.code).toBe(0);
    expect((await run('report', ...FIXTURE, '--fail-on', 'invalid', '--schedule', 'db-hourly')).code).toBe(0);
  });

  it.each([
    [
      ['--fail-on', 'stale,bogus'],
      /--fail-on: unknown kind "bogus": use unprotected, invalid, stale, failed, stuck/,
    ],
    [['-o', 'yaml'], /-o "yaml": use table, json, markdown, html/],
    [['-n', 'a', '-A'], /-n and -A exclude each other/],
    [['--chunk-size', '0'], /--chunk-size "0" must be a whole number above 0/],
  ])('usage errors exit 2: %j', async (extra, message) => {
    const r = await run('report', ...FIXTURE, ...extra);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });

  it('offline needs all three files', async () => {
    const r = await run('report', '-f', 'test/fixtures/report/schedules.yaml');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/offline, give all of -f, --snapshots and --pvcs/);
  });

  it('Markdown: headings, pipe tables (pipes escaped), findings as a list', async () => {
    const r = await run('report', ...FIXTURE, '-o', 'markdown');
    expect(r.out).toMatch(/^# snapcron retention report, 2026-06-15T12:00:00Z, all namespaces$/m);
    expect(r.out).toMatch(/^## Schedule shop\/db-hourly: `0 \* \* \* \*` UTC, active, every 1h$/m);
    expect(r.out).toMatch(/^\| PVC \| PHASE \| READY \|/m);
    expect(r.out).toMatch(/^\| --- \| --- \|/m);
    expect(r.out).toMatch(/^- \*\*stale\*\* PVC shop\/db-1/m);
    const md = renderReport(
      report({ schedules: [created(schedule('p', { schedule: '0 * * * *' }))], pvcs: [pvc('a|b')] }),
      'markdown',
    );
    expect(md).toContain('| a\\|b |');
  });

  it('the kubectl plugin is the same CLI: package.json installs kubectl-snapcron as snapcron', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin['kubectl-snapcron']).toBe(pkg.bin.snapcron);
  });
});

describe('the HTML page', () => {
  it('is self-contained: no script, no external reference, a CSP that forbids loading anything', () => {
    const html = renderReport(
      buildReport({
        schedules: [created(schedule('hourly', { schedule: '0 * * * *' }))],
        pvcs: [pvc('a-0')],
        snapshots: [
          {
            ...snap('bad', { at: hoursAgo(3), pvc: 'a-0', schedule: 'hourly' }),
            status: { readyToUse: false, error: { message: '<img src=x onerror=alert(1)> "quoted"' } },
          },
        ],
        now: NOW,
        plan: true,
      }),
      'html',
    );
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain(
      `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    );
    expect(html).not.toMatch(/<(script|link|img|iframe|object|embed|video|audio|source)\b/i);
    // No attribute that loads anything (attribute values, where the error text is, set aside).
    expect(html.replace(/"[^"]*"/g, '""')).not.toMatch(/<[^>]*\s(src|href|srcset|action|poster|data)=/i);
    expect(html).not.toMatch(/url\(|@import/i);
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt; &quot;quoted&quot;');
  });
});

describe('/report for the controller', () => {
  const objects = () => ({
    schedules: [created(schedule('hourly', { schedule: '0 * * * *' }))],
    pvcs: [pvc('a-0'), pvc('b-0')],
    snapshots: [snap('s', { at: hoursAgo(1), pvc: 'a-0', schedule: 'hourly' })],
  });

  it('serves the same JSON as buildReport, and the page, markdown and table by ?format', () => {
    const res = reportResponse('/report?now=2026-06-15T12:00:00Z', objects);
    expect(res).toMatchObject({ status: 200, contentType: 'application/json; charset=utf-8' });
    expect(JSON.parse(res.body)).toEqual(buildReport({ ...objects(), now: NOW }));
    expect(reportResponse('/report?format=html', objects).contentType).toBe('text/html; charset=utf-8');
    expect(reportResponse('/report?format=markdown', objects).body).toMatch(/^# snapcron retention report/);
    expect(reportResponse('/report?format=table', objects).contentType).toBe('text/plain; charset=utf-8');
    const scoped = JSON.parse(
      reportResponse('/report?namespace=default&schedule=hourly&plan=true', objects, () => NOW).body,
    ) as Report;
    expect(scoped.scope).toEqual({ namespace: 'default', schedule: 'hourly' });
    expect(scoped.schedules[0]?.pvcs[0]?.snapshots).toHaveLength(1);
  });

  it('answers 400 to a bad format or time', () => {
    expect(reportResponse('/report?format=pdf', objects)).toMatchObject({ status: 400 });
    expect(reportResponse('/report?now=noon', objects).body).toMatch(/now "noon" is not an RFC 3339 time/);
  });
});

describe('alert metrics', () => {
  const seriesOf = async (r: Report): Promise<string[]> => {
    const registry = new Registry();
    new ReportMetrics(registry).update(r);
    return (await registry.metrics()).split('\n').filter((l) => l.startsWith('snapcron_'));
  };
  const retention = fc.oneof(
    fc.record({ maxCount: fc.integer({ min: 1, max: 4 }) }),
    fc.record({ expires: fc.constantFrom('2h', '1d'), minReady: fc.integer({ min: 0, max: 2 }) }),
    fc.record({
      keep: fc.record({ last: fc.integer({ min: 1, max: 2 }), hourly: fc.integer({ min: 1, max: 6 }) }),
      pendingDeadline: fc.constantFrom('30m', '6h'),
    }),
  );
  const clusterArb = fc.record({
    schedules: fc.array(
      fc.record({
        name: fc.constantFrom('a', 'b', 'c'),
        // The last one's interval alternates (8 h, 16 h): the interval gauge moves with the clock.
        cron: fc.constantFrom('@hourly', '*/20 * * * *', '0 3 * * *', '0 9,17 * * *'),
        zone: fc.constantFrom('UTC', 'Europe/Berlin'),
        app: fc.constantFrom('x', 'y'),
        suspend: fc.boolean(),
        retention,
      }),
      { maxLength: 3 },
    ),
    pvcs: fc.array(
      fc.record({
        name: fc.constantFrom('p0', 'p1', 'p2', 'p3'),
        app: fc.constantFrom('x', 'y', 'z'),
        bound: fc.boolean(),
        // Hours since it was created: some are younger than their schedule's first fire.
        age: fc.constantFrom(4000, 2, 0.25),
      }),
      { maxLength: 4 },
    ),
    snapshots: fc.array(
      fc.record({
        schedule: fc.constantFrom('a', 'b', 'c'),
        pvc: fc.constantFrom('p0', 'p1', 'p2', 'p3'),
        hours: fc.integer({ min: 0, max: 72 }),
        state: fc.constantFrom<'ready' | 'pending' | 'failed'>('ready', 'ready', 'pending', 'failed'),
        hold: fc.boolean(),
      }),
      { maxLength: 24 },
    ),
  });
  type Cluster = typeof clusterArb extends fc.Arbitrary<infer C> ? C : never;
  const inputOf = (c: Cluster, now = NOW): ReportInput => ({
    schedules: [...new Map(c.schedules.map((s) => [s.name, s])).values()].map((s) =>
      created(
        schedule(s.name, {
          schedule: s.cron,
          timeZone: s.zone,
          suspend: s.suspend,
          claimSelector: { matchLabels: { app: s.app } },
          retention: s.retention,
        }),
      ),
    ),
    pvcs: [...new Map(c.pvcs.map((p) => [p.name, p])).values()].map((p) =>
      pvc(
        p.name,
        { app: p.app },
        { phase: p.bound ? 'Bound' : 'Pending', created: hoursAgo(p.age).toISOString() },
      ),
    ),
    snapshots: c.snapshots.map((s, i) =>
      snap(`s-${i}`, {
        at: hoursAgo(s.hours + i / 100),
        pvc: s.pvc,
        schedule: s.schedule,
        state: s.state,
        hold: s.hold,
      }),
    ),
    now,
  });

  it('one series per (schedule, selected PVC) for the newest good copy; per schedule and namespace for counts', async () => {
    const registry = new Registry();
    const m = new ReportMetrics(registry);
    m.update(
      buildReport({
        schedules: [
          created(
            schedule('hourly', {
              schedule: '0 * * * *',
              claimSelector: { matchExpressions: [{ key: 'skip', operator: 'DoesNotExist' }] },
            }),
          ),
        ],
        pvcs: [pvc('a-0'), pvc('b-0'), pvc('c-0', { skip: 'me' })],
        snapshots: [
          snap('s', { at: hoursAgo(3), pvc: 'a-0', schedule: 'hourly' }),
          snap('p', { at: hoursAgo(8), pvc: 'b-0', schedule: 'hourly', state: 'pending' }),
        ],
        now: NOW,
      }),
    );
    const text = await registry.metrics();
    const series = text.split('\n').filter((l) => l.startsWith('snapcron_'));
    expect(series.sort()).toEqual(
      [
        `snapcron_pvc_newest_ready_snapshot_timestamp_seconds{namespace="default",schedule="hourly",pvc="a-0"} ${hoursAgo(3).getTime() / 1000}`,
        'snapcron_schedule_interval_seconds{namespace="default",schedule="hourly"} 3600',
        'snapcron_stale_pvcs{namespace="default",schedule="hourly"} 2',
        'snapcron_stuck_pvcs{namespace="default",schedule="hourly"} 1',
        'snapcron_unprotected_pvcs{namespace="default"} 1',
      ].sort(),
    );
    // An update replaces every series: a schedule or PVC gone leaves nothing behind.
    m.update(buildReport({ schedules: [], pvcs: [pvc('z-0')], snapshots: [], now: NOW }));
    const after = (await registry.metrics()).split('\n').filter((l) => l.startsWith('snapcron_'));
    expect(after).toEqual(['snapcron_unprotected_pvcs{namespace="default"} 1']);
  });

  it("reports built one namespace at a time give the whole report's series, written at once", async () => {
    const inNamespace = <T extends { metadata?: object | undefined }>(o: T, namespace: string): T => ({
      ...o,
      metadata: { ...o.metadata, namespace },
    });
    const input = {
      schedules: ['shop', 'blog'].map((ns) =>
        inNamespace(created(schedule('hourly', { schedule: '0 * * * *', claimSelector: {} })), ns),
      ),
      pvcs: [
        inNamespace(pvc('a-0'), 'shop'),
        inNamespace(pvc('b-0'), 'blog'),
        inNamespace(pvc('loose'), 'misc'),
      ],
      snapshots: [
        inNamespace(snap('s', { at: hoursAgo(3), pvc: 'a-0', schedule: 'hourly' }), 'shop'),
        inNamespace(snap('t', { at: hoursAgo(1), pvc: 'b-0', schedule: 'hourly' }), 'blog'),
      ],
      now: NOW,
    };
    const series = async (r: Registry): Promise<string[]> =>
      (await r.metrics())
        .split('\n')
        .filter((l) => l.startsWith('snapcron_'))
        .sort();
    const whole = new Registry();
    new ReportMetrics(whole).update(buildReport(input));

    const parts = new Registry();
    const m = new ReportMetrics(parts);
    m.update(buildReport({ ...input, schedules: [], pvcs: [pvc('old')], snapshots: [] }));
    const before = await series(parts);
    const nsOf = (o: { metadata?: { namespace?: string | undefined } | undefined }) =>
      o.metadata?.namespace ?? 'default';
    const asked: string[] = [];
    const source: CachedObjects = {
      cachedNamespaces: () => ['blog', 'misc', 'shop'],
      cached: (namespace) => {
        asked.push(namespace);
        return {
          schedules: input.schedules.filter((o) => nsOf(o) === namespace),
          pvcs: input.pvcs.filter((o) => nsOf(o) === namespace),
          snapshots: input.snapshots.filter((o) => nsOf(o) === namespace),
        };
      },
    };
    // Scrapes while the refresh runs, one per turn of the event loop.
    let done = false;
    const refreshed = m.refresh(source, NOW).finally(() => (done = true));
    const seenMidway: { asked: number; lines: string[] }[] = [];
    while (!done) {
      await setImmediate();
      if (!done) seenMidway.push({ asked: asked.length, lines: await series(parts) });
    }
    expect(await refreshed).toEqual({ built: 3, kept: 0 });
    expect(await series(parts)).toEqual(await series(whole));
    expect((await series(whole)).length).toBe(9); // 2 schedules × 4 series, 1 namespace unprotected
    // Until the last namespace is in, a scrape sees the previous set, never a mix.
    expect(seenMidway.some((s) => s.asked > 0 && s.asked < 3)).toBe(true);
    for (const s of seenMidway) expect(s.lines).toEqual(before);
  });

  it("a gauges-only report (the refresh builds these) gives the full report's series, without predicting", async () => {
    const input: ReportInput = {
      schedules: readObjects('test/fixtures/report/schedules.yaml') as SnapshotSchedule[],
      pvcs: readObjects('test/fixtures/report/pvcs.json') as PersistentVolumeClaim[],
      snapshots: readObjects('test/fixtures/report/snapshots.json') as VolumeSnapshot[],
      now: NOW,
    };
    const full = buildReport(input);
    const lean = buildReport({ ...input, gaugesOnly: true });
    // The fixture has what every gauge reads: fresh, stale and stuck PVCs, an unprotected one.
    const fullSeries = await seriesOf(full);
    expect(fullSeries.some((l) => /^snapcron_stale_pvcs\{.*\} [1-9]/.test(l))).toBe(true);
    expect(fullSeries.some((l) => /^snapcron_stuck_pvcs\{.*\} [1-9]/.test(l))).toBe(true);
    expect(fullSeries.some((l) => l.startsWith('snapcron_unprotected_pvcs{'))).toBe(true);
    expect(await seriesOf(lean)).toEqual(fullSeries);
    const rows = (r: Report) => r.schedules.flatMap((s) => s.pvcs);
    expect(rows(full).some((p) => p.nextDeletion !== null && p.protected.length > 0)).toBe(true);
    expect(rows(lean).every((p) => p.nextDeletion === null && p.protected.length === 0)).toBe(true);
  });

  it("a gauges-only report gives the full report's series for any cluster (random schedules, PVCs and snapshots)", async () => {
    await fc.assert(
      fc.asyncProperty(clusterArb, async (c) => {
        const input = inputOf(c);
        expect(await seriesOf(buildReport({ ...input, gaugesOnly: true }))).toEqual(
          await seriesOf(buildReport(input)),
        );
      }),
      { numRuns: 150 },
    );
  });

  it("a namespace's gauges hold until buildGaugeReport's `until`, for any cluster and any later time", async () => {
    let lasting = 0;
    await fc.assert(
      fc.asyncProperty(
        clusterArb,
        fc.integer({ min: 0, max: 2 * 3_600_000 }),
        fc.integer({ min: 1, max: 3 * 86_400_000 }),
        async (c, offset, later) => {
          const t1 = new Date(NOW.getTime() + offset);
          const { report: r1, until } = buildGaugeReport(inputOf(c, t1));
          expect(until).toBeGreaterThan(t1.getTime());
          const at = async (t: number) =>
            seriesOf(buildReport({ ...inputOf(c, new Date(t)), gaugesOnly: true }));
          const first = await seriesOf(r1);
          expect(await seriesOf(buildReport({ ...inputOf(c, t1), gaugesOnly: true }))).toEqual(first);
          // The last instant it claims, and a random one before it.
          if (until !== Infinity) expect(await at(until - 1)).toEqual(first);
          const t2 = t1.getTime() + later;
          if (t2 < until) expect(await at(t2)).toEqual(first);
          if (until - t1.getTime() > 60_000) lasting++;
        },
      ),
      { numRuns: 300 },
    );
    // Not vacuous: many clusters keep their gauges past the next minute's refresh.
    expect(lasting).toBeGreaterThan(30);
  });

  it('buildGaugeReport ends its span at the instant a gauge changes: a stale PVC, a stuck snapshot, a fire', async () => {
    const daily = created(
      schedule('daily', {
        schedule: '0 3 * * *',
        claimSelector: {},
        retention: { maxCount: 5, pendingDeadline: '6h' },
      }),
    );
    // Newest ready copy cut at 03:00 a day ago: stale 48 h after it, i.e. tomorrow 03:00:00.001;
    // the next fire (tomorrow 03:00) comes first.
    const ready = snap('r', { at: new Date('2026-06-14T03:00:00Z'), pvc: 'p', schedule: 'daily' });
    const input: ReportInput = { schedules: [daily], pvcs: [pvc('p')], snapshots: [ready], now: NOW };
    expect(buildGaugeReport(input).until).toBe(Date.parse('2026-06-16T03:00:00Z'));
    // A pending copy cut at 10:00 turns stuck 6 h later, before the next fire.
    const pending = snap('q', {
      at: new Date('2026-06-15T10:00:00Z'),
      pvc: 'p',
      schedule: 'daily',
      state: 'pending',
    });
    const withPending = { ...input, snapshots: [ready, pending] };
    const { until } = buildGaugeReport(withPending);
    expect(until).toBeGreaterThan(NOW.getTime());
    expect(until).toBeLessThanOrEqual(Date.parse('2026-06-15T16:00:00.001Z'));
    const stuckAt = async (t: number) =>
      (await seriesOf(buildReport({ ...withPending, now: new Date(t), gaugesOnly: true }))).find((l) =>
        l.startsWith('snapcron_stuck_pvcs'),
      );
    expect(await stuckAt(until - 1)).toMatch(/ 0$/);
    expect(await stuckAt(Date.parse('2026-06-15T16:00:01Z'))).toMatch(/ 1$/);
  });

  /** The report fixture's namespace and a copy of it in another, served as the controller's caches are. */
  function fixtureSource() {
    const both = <T extends { metadata?: object | undefined }>(file: string): T[] =>
      (readObjects(file) as T[]).flatMap((o) => [
        o,
        { ...o, metadata: { ...o.metadata, namespace: 'copy' } },
      ]);
    const schedules = both<SnapshotSchedule>('test/fixtures/report/schedules.yaml');
    const pvcs = both<PersistentVolumeClaim>('test/fixtures/report/pvcs.json');
    const snapshots = both<VolumeSnapshot>('test/fixtures/report/snapshots.json');
    const nsOf = (o: { metadata?: { namespace?: string | undefined } | undefined }) =>
      o.metadata?.namespace ?? 'default';
    const namespaces = [...new Set([...schedules, ...pvcs].map(nsOf))].sort();
    const asked: string[] = [];
    const generations = new Map<string, number>(namespaces.map((ns) => [ns, 1]));
    const source: CachedObjects & { asked: string[]; namespaces: string[]; whole: ReportInput } = {
      asked,
      namespaces,
      whole: { schedules, pvcs, snapshots, now: NOW },
      cachedNamespaces: () => namespaces,
      cached: (namespace) => {
        asked.push(namespace);
        const here = <T extends { metadata?: { namespace?: string | undefined } | undefined }>(l: T[]) =>
          l.filter((o) => nsOf(o) === namespace);
        return { schedules: here(schedules), pvcs: here(pvcs), snapshots: here(snapshots) };
      },
      generation: (namespace) => generations.get(namespace) ?? 0,
    };
    return { source, generations };
  }

  it("the controller's refresh builds each namespace's gauges-only report, giving the full report's series", async () => {
    const { source } = fixtureSource();
    expect(source.namespaces.length).toBeGreaterThan(1);
    const parts = new Registry();
    expect(await new ReportMetrics(parts).refresh(source, NOW)).toEqual({
      built: source.namespaces.length,
      kept: 0,
    });
    expect(source.asked).toEqual(source.namespaces);
    const whole = new Registry();
    new ReportMetrics(whole).update(buildReport(source.whole));
    expect(await parts.metrics()).toEqual(await whole.metrics());
  });

  it('builds again only a namespace whose objects changed, or whose gauges the clock moved', async () => {
    const { source, generations } = fixtureSource();
    const registry = new Registry();
    const m = new ReportMetrics(registry);
    const seriesAt = async (now: Date): Promise<string> => {
      const r = new Registry();
      new ReportMetrics(r).update(buildReport({ ...source.whole, now }));
      return r.metrics();
    };
    await m.refresh(source, NOW);
    const first = await registry.metrics();

    // A minute later, nothing changed: nothing is built, the series stay.
    source.asked.length = 0;
    const later = new Date(NOW.getTime() + 60_000);
    expect(await m.refresh(source, later)).toEqual({ built: 0, kept: source.namespaces.length });
    expect(source.asked).toEqual([]);
    expect(await registry.metrics()).toEqual(first);
    expect(first).toEqual(await seriesAt(later));

    // One namespace's objects changed: it alone is built.
    generations.set('copy', 2);
    expect(await m.refresh(source, later)).toEqual({ built: 1, kept: source.namespaces.length - 1 });
    expect(source.asked).toEqual(['copy']);

    // Past the next fire time (the fixture's schedules fire at least daily), every namespace is.
    source.asked.length = 0;
    const tomorrow = new Date(NOW.getTime() + 86_400_000);
    expect(await m.refresh(source, tomorrow)).toEqual({ built: source.namespaces.length, kept: 0 });
    expect(await registry.metrics()).toEqual(await seriesAt(tomorrow));
    expect(await registry.metrics()).not.toEqual(first);

    // A source that cannot tell what changed has every namespace built each time.
    const blind: CachedObjects = {
      cachedNamespaces: () => source.cachedNamespaces(),
      cached: (namespace) => source.cached(namespace),
    };
    const again = new ReportMetrics(new Registry());
    await again.refresh(blind, NOW);
    expect(await again.refresh(blind, NOW)).toEqual({ built: source.namespaces.length, kept: 0 });
  });
});

describe('README "Retention reports"', () => {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(
    readme.indexOf('## Retention reports'),
    readme.indexOf('\n## ', readme.indexOf('## Retention reports') + 5),
  );
  const block = (lang: string, n = 0): string => {
    const blocks = [...section.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))];
    return blocks[n]?.[1] ?? '';
  };

  it('exists', () => expect(section.length).toBeGreaterThan(1000));

  it("JSON example is the fixture's real output", async () => {
    const r = await run('report', '-n', 'shop', ...FIXTURE, '-o', 'json');
    expect(JSON.parse(block('json'))).toEqual(JSON.parse(r.out));
  });

  it('documents every JSON field', async () => {
    const r = await run('report', '-n', 'shop', ...FIXTURE, '-o', 'json', '--plan');
    const keys = new Set<string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object')
        for (const [k, x] of Object.entries(v)) {
          keys.add(k);
          walk(x);
        }
    };
    walk(JSON.parse(r.out));
    // Retention's own fields are the CRD's (kubectl explain), not the report's.
    for (const k of ['maxCount', 'minReady', 'failedAfter', 'pendingDeadline', 'maxPending']) keys.delete(k);
    for (const k of keys)
      expect(section, `README does not document "${k}"`).toMatch(new RegExp(`\`${k}(\\[\\])?\``));
  });

  it("the table example is the fixture's real output", async () => {
    const r = await run('report', '-n', 'shop', ...FIXTURE);
    expect(block('text')).toBe(r.out);
  });
});

describe("a schedule's interval and next fire time, remembered for the span they hold", () => {
  // DST zones (a skipped and a repeated hour), a half-hour zone, irregular timetables.
  const schedules = [
    ['30 2 * * *', 'America/New_York'],
    ['0 1,2,3 * * *', 'Europe/Berlin'],
    ['*/7 * * * *', 'Asia/Kolkata'],
    ['15 */5 * * 1-5', 'Australia/Lord_Howe'],
    ['0 0 29 2 *', 'UTC'],
    ['* * * * *', 'UTC'],
  ] as const;
  const start = Date.parse('2026-03-01T00:00:00Z');

  it('answers every instant, in any order, as a fresh walk of the calendar does', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            i: fc.integer({ min: 0, max: schedules.length - 1 }),
            minute: fc.integer({ min: 0, max: 400 * 1440 }),
            // Steps of up to 1.5 minutes from there: across the fire times around it.
            steps: fc.array(fc.integer({ min: -30, max: 90 }), { minLength: 1, maxLength: 8 }),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        (asks) => {
          for (const { i, minute, steps } of asks) {
            const [expr, zone] = schedules[i] as (typeof schedules)[number];
            const cron = parseSchedule(expr, zone);
            let t = start + minute * 60_000;
            for (const step of steps) {
              t += step * 1000;
              const now = new Date(t);
              const last = latestFireTime(cron, 0, now);
              const previous = last && latestFireTime(cron, 0, last.getTime() - 1);
              const [a, b] = nextFireTimes(cron, now, 2);
              const expected =
                last && previous
                  ? last.getTime() - previous.getTime()
                  : a && b
                    ? b.getTime() - a.getTime()
                    : undefined;
              const facts = fireFacts(cron, now);
              expect(facts.intervalMs, `${expr} ${zone} at ${now.toISOString()}`).toBe(expected);
              expect(facts.next?.getTime(), `${expr} ${zone} at ${now.toISOString()}`).toBe(
                nextFireTime(cron, now)?.getTime(),
              );
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
