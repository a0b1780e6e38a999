import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { SnapshotSchedule } from '../../src/api/types.generated.ts';
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
});
