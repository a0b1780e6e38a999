import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { SnapshotSchedule } from '../../src/api/types.generated.ts';
import { parseSchedule } from '../../src/schedule/cron.ts';
import { apiGet, boundPvc, createSchedule, kube, useNamespace } from '../env/kube.ts';
import { runTick } from '../env/processes.ts';

type Spec = Record<string, unknown>;
const good = { schedule: '0 2 * * *', retention: { maxCount: 7 } };

async function create(namespace: string, spec: unknown, strict = false): Promise<SnapshotSchedule> {
  const k = kube();
  return (await k.custom.createNamespacedCustomObject({
    ...k.schedules,
    namespace,
    body: { apiVersion: 'snapcron.io/v1', kind: 'SnapshotSchedule', metadata: { generateName: 's-' }, spec },
    ...(strict ? { fieldValidation: 'Strict' } : {}),
  })) as SnapshotSchedule;
}

async function rejection(
  namespace: string,
  spec: unknown,
  strict = false,
): Promise<{ code: number; message: string }> {
  try {
    await create(namespace, spec, strict);
  } catch (err) {
    const e = err as { code?: number; body?: unknown };
    const body =
      typeof e.body === 'string'
        ? (JSON.parse(e.body) as { message: string })
        : (e.body as { message: string });
    return { code: e.code ?? 0, message: body.message };
  }
  throw new Error('the API server accepted it');
}

/** The API server's verdict on a schedule (a dry-run create): undefined when accepted, else its message. */
async function scheduleVerdict(namespace: string, schedule: string): Promise<string | undefined> {
  try {
    await kube().custom.createNamespacedCustomObject({
      ...kube().schedules,
      namespace,
      body: {
        apiVersion: 'snapcron.io/v1',
        kind: 'SnapshotSchedule',
        metadata: { generateName: 's-' },
        spec: { ...good, schedule },
      },
      dryRun: 'All',
    });
    return undefined;
  } catch (err) {
    const e = err as { code?: number; body?: unknown };
    const body = typeof e.body === 'string' ? (JSON.parse(e.body) as { message: string }) : e.body;
    if (e.code !== 422) throw err;
    return (body as { message: string }).message;
  }
}

/** parseSchedule's verdict: undefined when accepted, else its message. */
function codeVerdict(schedule: string): string | undefined {
  try {
    parseSchedule(schedule, 'UTC');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

interface Table {
  columnDefinitions: { name: string }[];
  rows: { cells: unknown[] }[];
}

/** What `kubectl get` prints comes from the server as a meta.k8s.io Table: ask for one. */
async function getTable(path: string): Promise<Table> {
  return JSON.parse(await apiGet(path, 'application/json;as=Table;v=v1;g=meta.k8s.io')) as Table;
}

describe('the SnapshotSchedule CRD on a real API server', () => {
  const ns = useNamespace('crd');

  it('accepts the README examples and stores the defaults', async () => {
    const docs = parseAllDocuments(readFileSync('deploy/examples/snapshotschedules.yaml', 'utf8')).map(
      (d) => d.toJS() as { spec: Spec },
    );
    for (const doc of docs) expect((await create(ns(), doc.spec)).metadata?.name).toBeTruthy();
    const stored = await create(ns(), good);
    expect(stored.spec).toMatchObject({
      timeZone: 'UTC',
      suspend: false,
      concurrencyPolicy: 'Allow',
      deletionPolicy: 'Retain',
      retention: { maxCount: 7, minReady: 1 },
    });
  });

  it.each<[string, Spec, string, boolean?]>([
    ['a cron with too few fields', { ...good, schedule: '* * *' }, 'spec.schedule'],
    ['a cron of words', { ...good, schedule: 'every day' }, 'spec.schedule'],
    ['an unknown macro', { ...good, schedule: '@often' }, 'spec.schedule'],
    ['an unknown zone', { ...good, timeZone: 'Mars/Olympus' }, 'spec.timeZone'],
    ['a zone that is not a name', { ...good, timeZone: 'not a zone' }, 'spec.timeZone'],
    ['maxCount 0', { ...good, retention: { maxCount: 0 } }, 'spec.retention.maxCount'],
    ['maxCount -1', { ...good, retention: { maxCount: -1 } }, 'spec.retention.maxCount'],
    ['keep.daily 0', { ...good, retention: { keep: { daily: 0 } } }, 'spec.retention.keep.daily'],
    ['minReady -1', { ...good, retention: { maxCount: 3, minReady: -1 } }, 'spec.retention.minReady'],
    ['no retention rule', { ...good, retention: {} }, 'spec.retention'],
    ['an empty keep', { ...good, retention: { keep: {} } }, 'spec.retention.keep'],
    ['a duration with words', { ...good, retention: { expires: '7 days' } }, 'spec.retention.expires'],
    ['a zero duration', { ...good, retention: { expires: '0d' } }, 'spec.retention.expires'],
    ['an unknown field', { ...good, colour: 'blue' }, 'colour', true],
    ['a number for the schedule', { ...good, schedule: 5 }, 'spec.schedule'],
    ['a string for suspend', { ...good, suspend: 'yes' }, 'spec.suspend'],
    [
      'an unknown selector operator',
      { ...good, claimSelector: { matchExpressions: [{ key: 'a', operator: 'Like', values: ['x'] }] } },
      'spec.claimSelector.matchExpressions[0].operator',
    ],
    [
      'In without values',
      { ...good, claimSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } },
      'spec.claimSelector.matchExpressions[0]',
    ],
    [
      'Exists with values',
      { ...good, claimSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } },
      'spec.claimSelector.matchExpressions[0]',
    ],
    ['an unknown concurrencyPolicy', { ...good, concurrencyPolicy: 'Sometimes' }, 'spec.concurrencyPolicy'],
    ['an unknown deletionPolicy', { ...good, deletionPolicy: 'Archive' }, 'spec.deletionPolicy'],
    [
      'a reserved template label',
      { ...good, snapshotTemplate: { labels: { 'snapcron.io/x': 'y' } } },
      'spec.snapshotTemplate.labels',
    ],
    ['startingDeadlineSeconds 0', { ...good, startingDeadlineSeconds: 0 }, 'spec.startingDeadlineSeconds'],
    ['a missing schedule', { retention: { maxCount: 1 } }, 'spec.schedule'],
  ])('rejects %s at create time, naming the field', async (_name, spec, field, strict) => {
    const { code, message } = await rejection(ns(), spec, strict);
    expect(code).toBe(strict ? 400 : 422); // strict field validation answers 400 BadRequest
    expect(message).toContain(field);
  });

  const badSchedules = parseAllDocuments(readFileSync('test/fixtures/bad-schedules.yaml', 'utf8'))
    .map((d) => d.toJS() as { metadata: { name: string; annotations?: Record<string, string> }; spec: Spec })
    .flatMap((d) => {
      const expected = d.metadata.annotations?.['test.snapcron.io/expect'];
      return expected ? [[d.metadata.name, String(d.spec.schedule), expected] as const] : [];
    });

  it.each(badSchedules)(
    'refuses the cron of %s ("%s") at create time, naming the field as parseSchedule does',
    async (_name, schedule, expected) => {
      const { code, message } = await rejection(ns(), { ...good, schedule });
      expect(code).toBe(422);
      expect(message).toContain('spec.schedule');
      expect(message).toContain(expected);
      expect(codeVerdict(schedule)).toContain(expected);
    },
  );

  it('accepts the cron syntax parseSchedule accepts', async () => {
    const accepted = [
      '*/10 * * * * *',
      '@annually',
      '@midnight',
      '0 0 L * *',
      '0 0 1,15,L * *',
      '0 0 * * 5L',
      '0 0 * * FRIL',
      '0 0 * * MON#2',
      '0 0 * * 1#1,1#3',
      '0 0 1-30/10 * *',
      '0 0 5/10 * *',
      '0 9-17/2 * * MON-FRI',
      '0 0 * jan-Jun/2 sun',
      '0 0 * * 7',
      '0 0 * * 5-7',
      '00 02 01 01 *',
      '0 0 *,5 * *',
      '0 0 */2 * 1',
      '0 0 * * THU',
      ' 30  2 * * * ',
      ' @daily ',
      '0 0 29 2 *',
    ];
    for (const schedule of accepted) {
      expect(codeVerdict(schedule), schedule).toBeUndefined();
      expect(await scheduleVerdict(ns(), schedule), schedule).toBeUndefined();
    }
  });

  it('holds the schedule rules within the CEL cost budget, even for 256 characters of lists', async () => {
    const crd = JSON.parse(
      await apiGet('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/snapshotschedules.snapcron.io'),
    ) as { spec: { versions: { schema: { openAPIV3Schema: unknown } }[] } };
    const schedule = (
      crd.spec.versions[0]?.schema.openAPIV3Schema as {
        properties: { spec: { properties: { schedule: { 'x-kubernetes-validations': unknown[] } } } };
      }
    ).properties.spec.properties.schedule;
    expect(schedule['x-kubernetes-validations'].length).toBe(7); // the shape, then one rule per field
    const list = (item: string, length: number): string =>
      Array.from({ length: Math.floor((length + 1) / (item.length + 1)) }, () => item).join(',');
    for (const schedule of [
      `${list('1-2', 246)} * * * *`,
      `0 0 * * ${list('MON-FRI/2', 246)}`,
      `0 0 * ${list('JAN-FEB', 246)} *`,
      Array.from({ length: 6 }, () => list('1-2/3', 38)).join(' '),
    ]) {
      expect(schedule.length).toBeLessThanOrEqual(256);
      expect(await scheduleVerdict(ns(), schedule), schedule).toBeUndefined();
    }
    expect(await scheduleVerdict(ns(), `0 0 * * ${list('MON-FRI/9', 246)}`)).toContain(
      'the day-of-week field must be',
    );
  });

  it('agrees with parseSchedule on random crons: same verdict, same field named', async () => {
    // Field items, good and bad, drawn from what people write and what cron-parser would take.
    const item = fc.oneof(
      fc.integer({ min: 0, max: 70 }).map(String),
      fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 })).map(([a, b]) => `${a}-${b}`),
      fc.integer({ min: 0, max: 70 }).map((n) => `*/${n}`),
      fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 30 })).map(([a, n]) => `${a}/${n}`),
      fc.constantFrom('*', 'L', '5L', 'FRIL', 'MON#2', '1#6', 'H', 'H/5', '?', '15W', 'LW', 'JAN', 'mar-may'),
      fc.constantFrom('SUN-SAT', 'FRI-MON', 'THU', 'foo', '', '1-', '-1', '**', '1,'),
    );
    const field = fc.array(item, { minLength: 1, maxLength: 3 }).map((items) => items.join(','));
    const cron = fc.oneof(
      fc.array(field, { minLength: 5, maxLength: 5 }),
      fc.array(field, { minLength: 6, maxLength: 6 }),
    );
    const namespace = ns();
    await fc.assert(
      fc.asyncProperty(cron, async (fields) => {
        const schedule = fields.join(' ');
        const code = codeVerdict(schedule);
        const server = await scheduleVerdict(namespace, schedule);
        if (code === undefined || code.includes('never fires')) {
          expect(server, schedule).toBeUndefined();
        } else if (/has \d+ fields/.test(code)) {
          expect(server, schedule).toContain('must be a cron expression of 5 fields');
        } else {
          const field = /the ([a-z-]+) field/.exec(code)?.[0];
          expect(field, code).toBeDefined();
          expect(server, `${schedule}: ${code}`).toContain(field);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('gives `kubectl get snapsched` the columns the README shows, filled from status', async () => {
    await boundPvc(ns(), 'web-0');
    await createSchedule(ns(), 'web-nightly', {
      schedule: '0 2 * * *',
      timeZone: 'Asia/Shanghai',
      retention: { maxCount: 7 },
    });
    expect((await runTick(ns())).code).toBe(0); // writes status
    const table = await getTable(`/apis/snapcron.io/v1/namespaces/${ns()}/snapshotschedules`);
    expect(table.columnDefinitions.map((c) => c.name)).toEqual([
      'Name',
      'Schedule',
      'TimeZone',
      'Suspend',
      'Last',
      'Next',
      'Ready',
      'Age',
    ]);
    const [name, schedule, zone, suspend, last, next] = table.rows[0]?.cells ?? [];
    expect([name, schedule, zone, suspend]).toEqual(['web-nightly', '0 2 * * *', 'Asia/Shanghai', false]);
    // A new schedule takes no catch-up for times before it existed: Last stays empty until 02:00
    // Shanghai time, which is 18:00 UTC the day before.
    expect(last).toBeNull();
    expect(next).toMatch(/T18:00:00Z$/);
    expect(Date.parse(String(next)) - Date.now()).toBeLessThanOrEqual(86_400_000);
    expect(table.rows[0]?.cells[6]).toBe(0);
  });

  it('checks spec.group at apply time: labelKey with Label only, a non-empty selector, no snapshotClassName', async () => {
    const ns = 'default';
    const sel = { claimSelector: { matchLabels: { app: 'pg' } } };
    const ok = await create(ns, {
      ...good,
      ...sel,
      group: { by: 'Label', labelKey: 'app.kubernetes.io/instance' },
    });
    expect(ok.spec.group).toEqual({ by: 'Label', labelKey: 'app.kubernetes.io/instance' });
    await kube().custom.deleteNamespacedCustomObject({
      ...kube().schedules,
      namespace: ns,
      name: ok.metadata?.name ?? '',
    });
    const cases: [Spec, RegExp][] = [
      [{ ...sel, group: { by: 'Label' } }, /group\.labelKey is required with group\.by Label/],
      [{ ...sel, group: { by: 'Schedule', labelKey: 'app' } }, /not allowed with group\.by Schedule/],
      [{ group: { by: 'Schedule' } }, /group needs a non-empty claimSelector/],
      [{ claimSelector: {}, group: { by: 'Schedule' } }, /group needs a non-empty claimSelector/],
      [{ ...sel, snapshotClassName: 'x', group: { by: 'Schedule' } }, /group\.volumeGroupSnapshotClassName/],
      [{ ...sel, group: { by: 'Volume' } }, /Unsupported value: "Volume"/],
      [{ ...sel, group: { by: 'Label', labelKey: 'bad key!' } }, /spec\.group\.labelKey/],
    ];
    for (const [spec, message] of cases) {
      const r = await rejection(ns, { ...good, ...spec });
      expect(r.code, JSON.stringify(spec)).toBe(422);
      expect(r.message, JSON.stringify(spec)).toMatch(message);
    }
  });
});
