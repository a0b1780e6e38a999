import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = (s: string) => ((out += s), true);
  process.stderr.write = (s: string) => ((err += s), true);
  try {
    return { code: await main(argv), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

describe('snapcron next', () => {
  it('prints the next fire times as a JSON array of ISO-8601 strings', async () => {
    const r = await run(
      'next',
      '30 2 * * *',
      '--tz',
      'Europe/Berlin',
      '--from',
      '2026-03-28T00:00:00Z',
      '--count',
      '2',
      '-o',
      'json',
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual(['2026-03-28T01:30:00Z', '2026-03-29T01:00:00Z']);
  });

  it('prints UTC and the local time as text', async () => {
    const r = await run(
      'next',
      '@daily',
      '--tz',
      'Asia/Shanghai',
      '--from',
      '2026-01-01T00:00:00Z',
      '--count',
      '1',
    );
    expect(r.out.trim()).toBe('2026-01-01T16:00:00Z  2026-01-02 00:00:00 +08:00');
  });

  it.each([
    [['next', '61 * * * *'], /cron: "61 \* \* \* \*" is not a valid cron/],
    [['next', '@daily', '--tz', 'Mars/Olympus'], /--tz: unknown time zone "Mars\/Olympus"/],
    [['next', '@daily', '--from', 'yesterday'], /--from "yesterday" is not an RFC 3339 time/],
    [['next', '@daily', '--count', '0'], /--count "0" must be a whole number/],
    [['next', '@daily', '--frm', 'x'], /Unknown option '--frm'/],
  ])('fails on bad input with one clear line and no stack: %j', async (argv, message) => {
    const r = await run(...argv);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).not.toMatch(/\n\s+at /);
  });
});

describe('snapcron validate', () => {
  it('passes valid files', async () => {
    const r = await run('validate', '-f', 'deploy/examples/snapshotschedules.yaml');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/3 valid, 0 invalid/);
  });

  it('prints every error, one a line, naming object, field and fix', async () => {
    const r = await run('validate', '-f', 'test/fixtures/bad-schedules.yaml');
    expect(r.code).toBe(1);
    const lines = r.err.trim().split('\n');
    expect(lines).toContain(
      'test/fixtures/bad-schedules.yaml: SnapshotSchedule default/bad-zone: spec.timeZone: unknown time zone "Europe/Berln": use an IANA name such as UTC, Asia/Shanghai or Europe/Berlin',
    );
    expect(lines.filter((l) => l.includes('default/bad-everything')).map((l) => l.split(': ')[2])).toEqual(
      expect.arrayContaining([
        'spec.colour',
        'spec.concurrencyPolicy',
        'spec.schedule',
        'spec.retention.expires',
      ]),
    );
  });

  it.each([
    [['validate', '-f', 'no/such.yaml'], /no\/such.yaml: no such file/],
    [['validate', '-f', 'test/fixtures/broken.yaml.txt'], /invalid YAML/],
    [['validate'], /usage: snapcron validate/],
  ])('fails clearly on %j', async (argv, message) => {
    const r = await run(...argv);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(message);
  });
});

describe('snapcron plan', () => {
  const args = [
    'plan',
    '-f',
    'test/fixtures/plan-schedule.yaml',
    '--snapshots',
    'test/fixtures/snapshots.json',
  ];

  it('prints every snapshot of the schedule with verdict and reasons as JSON', async () => {
    const r = await run(
      ...args,
      '--pvcs',
      'test/fixtures/pvcs.json',
      '--now',
      '2026-06-15T00:00:00Z',
      '-o',
      'json',
    );
    expect(r.code).toBe(0);
    const rows = (
      JSON.parse(r.out) as { name: string; pvc: string; verdict: string; reasons: string[] }[]
    ).map((x) => [x.name, x.pvc, x.verdict, x.reasons]);
    expect(rows).toEqual([
      ['disk-ssd-web-0-web-nightly-202606141800', 'disk-ssd-web-0', 'keep', ['min-ready']],
      ['disk-ssd-web-0-web-nightly-202606131800', 'disk-ssd-web-0', 'delete', ['failed']],
      ['disk-ssd-web-0-web-nightly-202606051800', 'disk-ssd-web-0', 'keep', ['within-policy']],
      ['disk-ssd-web-0-web-nightly-202606041800', 'disk-ssd-web-0', 'keep', ['in-use']],
    ]);
  });

  it('without the PVC list the in-use protection is unknown, so max-count applies', async () => {
    const r = await run(...args, '--now', '2026-06-15T00:00:00Z', '-o', 'json');
    const last = (JSON.parse(r.out) as { verdict: string; reasons: string[] }[]).at(-1);
    expect(last).toMatchObject({ verdict: 'delete', reasons: ['max-count'] });
  });

  it('groups the table by PVC with local times', async () => {
    const r = await run(...args, '--now', '2026-06-15T00:00:00Z');
    expect(r.out).toMatch(/SnapshotSchedule default\/web-nightly at 2026-06-15T00:00:00Z: 2 keep, 2 delete/);
    expect(r.out).toMatch(/PVC disk-ssd-web-0\n\s+NAME\s+TIME\s+STATE\s+VERDICT\s+REASONS/);
    expect(r.out).toMatch(
      /disk-ssd-web-0-web-nightly-202606141800\s+2026-06-15 02:00:00 \+08:00\s+ready\s+KEEP\s+min-ready/,
    );
  });

  it('refuses a bad --now and an invalid schedule with one line', async () => {
    expect((await run(...args, '--now', 'noon')).err).toMatch(/--now "noon" is not an RFC 3339 time/);
    const bad = await run(
      'plan',
      '-f',
      'test/fixtures/bad-schedules.yaml',
      '--snapshots',
      'test/fixtures/snapshots.json',
    );
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/default\/bad-zone: spec.timeZone: unknown time zone/);
  });
});
