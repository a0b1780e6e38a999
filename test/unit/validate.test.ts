import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { SnapshotSchedule } from '../../src/api/types.generated.ts';
import { validateSchedule, validateStoredSpec } from '../../src/api/validate.ts';
import { keepSpec } from '../../src/kube/caches.ts';

const good = {
  apiVersion: 'snapcron.io/v1',
  kind: 'SnapshotSchedule',
  metadata: { name: 'nightly', namespace: 'default' },
  spec: { schedule: '0 2 * * *', retention: { maxCount: 7 } },
};
type Spec = Record<string, unknown>;
const withSpec = (patch: (spec: Spec) => void): unknown => {
  const copy = structuredClone(good) as unknown as { spec: Spec };
  patch(copy.spec);
  return copy;
};

describe('validateSchedule against the CRD schema and its rules', () => {
  it('accepts the README examples and applies the CRD defaults', () => {
    const docs = parseAllDocuments(readFileSync('deploy/examples/snapshotschedules.yaml', 'utf8')).map(
      (d) => d.toJS() as unknown,
    );
    expect(docs.length).toBeGreaterThanOrEqual(3);
    for (const doc of docs) expect(validateSchedule(doc).errors).toEqual([]);
    // and the one in README.md's "The CRD by example", every field set.
    const readme = readFileSync('README.md', 'utf8');
    const byExample = readme.match(/## The CRD by example\s+```yaml\n([\s\S]*?)```/)?.[1];
    const example = parseAllDocuments(byExample ?? '')[0]?.toJS() as { spec?: Record<string, unknown> };
    expect(example?.spec?.retention).toBeTruthy();
    expect(validateSchedule(example).errors).toEqual([]);
    const { schedule } = validateSchedule(good);
    expect(schedule?.spec).toMatchObject({
      timeZone: 'UTC',
      suspend: false,
      concurrencyPolicy: 'Allow',
      deletionPolicy: 'Retain',
      retention: { maxCount: 7, minReady: 1 },
    });
  });

  it.each<[string, (s: Spec) => void, string, RegExp]>([
    ['a cron with too few fields', (s) => (s.schedule = '* * *'), 'spec.schedule', /5 .*or 6/],
    ['a cron of words', (s) => (s.schedule = 'every day'), 'spec.schedule', /fields/],
    ['an unknown macro', (s) => (s.schedule = '@often'), 'spec.schedule', /@hourly/],
    ['an out-of-range cron field', (s) => (s.schedule = '61 * * * *'), 'spec.schedule', /not a valid cron/],
    [
      'a random H in the cron',
      (s) => (s.schedule = 'H 2 * * *'),
      'spec.schedule',
      /minute field uses H.*random.*non-deterministic.*explicit minute/,
    ],
    ['an hour of 25', (s) => (s.schedule = '0 25 * * *'), 'spec.schedule', /the hour field must be 0-23/],
    [
      'a reversed range',
      (s) => (s.schedule = '0 5-1 * * *'),
      'spec.schedule',
      /the hour field must be 0-23; the range "5-1" is reversed/,
    ],
    ['a day that never comes', (s) => (s.schedule = '0 0 31 4 *'), 'spec.schedule', /never fires/],
    ['an unknown zone', (s) => (s.timeZone = 'Mars/Olympus'), 'spec.timeZone', /unknown time zone/],
    ['a zone that is not a name', (s) => (s.timeZone = 'not a zone'), 'spec.timeZone', /./],
    ['maxCount 0', (s) => (s.retention = { maxCount: 0 }), 'spec.retention.maxCount', />= 1/],
    ['maxCount -1', (s) => (s.retention = { maxCount: -1 }), 'spec.retention.maxCount', />= 1/],
    ['keep.daily 0', (s) => (s.retention = { keep: { daily: 0 } }), 'spec.retention.keep.daily', />= 1/],
    ['minReady -1', (s) => (s.retention = { maxCount: 3, minReady: -1 }), 'spec.retention.minReady', />= 0/],
    [
      'no retention rule',
      (s) => (s.retention = {}),
      'spec.retention',
      /at least one of maxCount, expires, keep/,
    ],
    ['an empty keep', (s) => (s.retention = { keep: {} }), 'spec.retention.keep', /at least one of last/],
    [
      'a duration with words',
      (s) => (s.retention = { expires: '7 days' }),
      'spec.retention.expires',
      /e\.g\. 90m/,
    ],
    [
      'a zero duration',
      (s) => (s.retention = { expires: '0d' }),
      'spec.retention.expires',
      /longer than zero/,
    ],
    ['an unknown field', (s) => (s.colour = 'blue'), 'spec.colour', /unknown field/],
    ['a number for the schedule', (s) => (s.schedule = 5), 'spec.schedule', /must be string/],
    ['a string for suspend', (s) => (s.suspend = 'yes'), 'spec.suspend', /must be boolean/],
    [
      'an unknown selector operator',
      (s) => (s.claimSelector = { matchExpressions: [{ key: 'app', operator: 'Like', values: ['x'] }] }),
      'spec.claimSelector.matchExpressions[0].operator',
      /In, NotIn, Exists, DoesNotExist/,
    ],
    [
      'In without values',
      (s) => (s.claimSelector = { matchExpressions: [{ key: 'app', operator: 'In' }] }),
      'spec.claimSelector.matchExpressions[0].values',
      /at least one value/,
    ],
    [
      'Exists with values',
      (s) => (s.claimSelector = { matchExpressions: [{ key: 'app', operator: 'Exists', values: ['x'] }] }),
      'spec.claimSelector.matchExpressions[0].values',
      /takes no values/,
    ],
    [
      'an unknown concurrencyPolicy',
      (s) => (s.concurrencyPolicy = 'Sometimes'),
      'spec.concurrencyPolicy',
      /Allow, Forbid/,
    ],
    [
      'an unknown deletionPolicy',
      (s) => (s.deletionPolicy = 'Archive'),
      'spec.deletionPolicy',
      /Retain, Delete/,
    ],
    [
      'a reserved template label',
      (s) => (s.snapshotTemplate = { labels: { 'snapcron.io/schedule': 'x' } }),
      'spec.snapshotTemplate.labels',
      /reserved/,
    ],
    [
      'startingDeadlineSeconds 0',
      (s) => (s.startingDeadlineSeconds = 0),
      'spec.startingDeadlineSeconds',
      />= 1/,
    ],
    ['a missing schedule', (s) => delete s.schedule, 'spec.schedule', /required/],
    [
      'a bad snapshot class name',
      (s) => (s.snapshotClassName = 'Not_A_Name'),
      'spec.snapshotClassName',
      /pattern/,
    ],
  ])('rejects %s, naming the field', (_name, patch, path, message) => {
    const { errors, schedule } = validateSchedule(withSpec(patch));
    expect(schedule).toBeUndefined();
    const hit = errors.find((e) => e.path === path);
    expect(hit, JSON.stringify(errors)).toBeDefined();
    expect(hit?.message).toMatch(message);
  });

  it('refuses each bad schedule of test/fixtures/bad-schedules.yaml as the CRD does, naming the field', () => {
    const docs = parseAllDocuments(readFileSync('test/fixtures/bad-schedules.yaml', 'utf8'))
      .map((d) => d.toJS() as { metadata: { name: string; annotations?: Record<string, string> } })
      .filter((d) => d.metadata.annotations?.['test.snapcron.io/expect']);
    expect(docs.length).toBeGreaterThanOrEqual(10);
    for (const doc of docs) {
      const { errors } = validateSchedule(doc);
      expect(errors, doc.metadata.name).toEqual([
        {
          path: 'spec.schedule',
          message: expect.stringContaining(
            doc.metadata.annotations?.['test.snapcron.io/expect'] ?? '?',
          ) as string,
        },
      ]);
    }
  });

  it('gives the messages of the CRD rules for H, ? and W word for word', () => {
    const crd = readFileSync('crds/snapcron.io_snapshotschedules.yaml', 'utf8').replace(/\s+/g, ' ');
    for (const cron of [
      'H * * * * *',
      'H 2 * * *',
      '0 H * * *',
      '0 0 H * *',
      '0 0 * H *',
      '0 0 * * H',
      '0 0 ? * *',
      '0 0 * * 5W',
    ]) {
      const [error] = validateSchedule(withSpec((s) => (s.schedule = cron))).errors;
      const message = error?.message.replace(/^".*" is not a valid cron expression: /, '') ?? '';
      expect(message).toMatch(/^the [a-z-]+ field uses/);
      expect(crd).toContain(`'${message}'`);
    }
  });

  it('rejects another kind', () => {
    expect(validateSchedule({ ...good, kind: 'CronJob' }).errors[0]?.message).toMatch(
      /expected apiVersion snapcron.io\/v1/,
    );
  });
});

describe('validateStoredSpec', () => {
  it('answers an unchanged spec object from its cache, and a replaced spec afresh', () => {
    const stored = structuredClone(good) as unknown as SnapshotSchedule;
    const first = validateStoredSpec(stored);
    expect(first.errors).toEqual([]);
    // The same cached object (a pass and a report refresh of an unchanged schedule): no new work.
    expect(validateStoredSpec({ ...stored, status: {} })).toBe(first);
    // An edit arrives as a new object with a new spec: validated again, its error found.
    const edited = { ...stored, spec: { ...stored.spec, schedule: '61 * * * *' } };
    const again = validateStoredSpec(edited);
    expect(again).not.toBe(first);
    expect(again.errors.map((e) => e.path)).toEqual(['spec.schedule']);
    // Another kind on the same spec object is not answered from the cache.
    expect(validateStoredSpec({ ...stored, kind: 'Other' }).errors[0]?.path).toBe('kind');
  });
});

describe('keepSpec: the schedule cache keeps an unchanged spec object across updates', () => {
  it('a status write’s echo (a new copy, the same spec) is answered from the cache; a changed spec is not', () => {
    const cached = structuredClone(good) as unknown as SnapshotSchedule;
    const first = validateStoredSpec(cached);
    // What the watch brings after a status write: a new object parsed from JSON, equal spec.
    const echo = keepSpec(
      {
        ...structuredClone(cached),
        status: { lastScheduleTime: '2026-11-27T00:00:00Z' },
      },
      cached,
    );
    expect(echo.spec).toBe(cached.spec);
    expect(echo.status).toEqual({ lastScheduleTime: '2026-11-27T00:00:00Z' });
    expect(validateStoredSpec(echo)).toBe(first);
    // An edit (or a CRD default that appeared): the new spec, validated afresh.
    const edited = structuredClone(cached);
    edited.spec = { ...edited.spec, schedule: '61 * * * *' };
    const kept = keepSpec(edited, cached);
    expect(kept.spec).toBe(edited.spec);
    expect(validateStoredSpec(kept).errors.map((e) => e.path)).toEqual(['spec.schedule']);
    // Nothing cached yet: the new copy as it is.
    expect(keepSpec(edited, undefined)).toBe(edited);
  });
});
