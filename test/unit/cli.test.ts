import { afterEach, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { run } from '../support/cli.ts';
import { subcommands } from '../../src/cli/main.ts';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { helpText, parseCommand } from '../../src/cli/options.ts';
import { Kube } from '../../src/kube/client.ts';

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

  it('prints the local time with the offset of that instant across a DST change, half-hour zones too', async () => {
    const berlin = await run(
      'next',
      '30 2 * * *',
      '--tz',
      'Europe/Berlin',
      '--from',
      '2026-03-28T00:00:00Z',
      '--count',
      '2',
    );
    expect(berlin.out.trim().split('\n')).toEqual([
      '2026-03-28T01:30:00Z  2026-03-28 02:30:00 +01:00',
      '2026-03-29T01:00:00Z  2026-03-29 03:00:00 +02:00',
    ]);
    const stJohns = await run(
      'next',
      '0 12 1 * *',
      '--tz',
      'America/St_Johns',
      '--from',
      '2026-02-15T00:00:00Z',
      '--count',
      '2',
    );
    expect(stJohns.out.trim().split('\n')).toEqual([
      '2026-03-01T15:30:00Z  2026-03-01 12:00:00 -03:30',
      '2026-04-01T14:30:00Z  2026-04-01 12:00:00 -02:30',
    ]);
  });

  it.each([
    [['next', '61 * * * *'], /cron: "61 \* \* \* \*" is not a valid cron/],
    [['next', '@daily', '--tz', 'Mars/Olympus'], /--tz: unknown time zone "Mars\/Olympus"/],
    [['next', '@daily', '--from', 'yesterday'], /--from "yesterday" is not an RFC 3339 time/],
    [['next', '@daily', '--count', '0'], /--count "0" must be a whole number/],
    [['next', '@daily', '--frm', 'x'], /^snapcron next: unknown option '--frm': see snapcron next --help$/m],
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

  it('warns (exit 0) when startingDeadlineSeconds is shorter than the CronJob tick interval', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snapcron-validate-'));
    const file = join(dir, 'short.yaml');
    writeFileSync(
      file,
      'apiVersion: snapcron.io/v1\nkind: SnapshotSchedule\nmetadata: {name: short}\nspec:\n  schedule: "0 * * * *"\n  startingDeadlineSeconds: 120\n  retention: {maxCount: 3}\n',
    );
    const r = await run('validate', '-f', file);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/1 valid, 0 invalid/);
    expect(r.err).toMatch(
      /SnapshotSchedule default\/short: warning: spec\.startingDeadlineSeconds: 120s is shorter than the tick interval \(300s\)/,
    );
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

describe('--help', () => {
  // Help must never reach a cluster: fail loudly if a subcommand tries to connect.
  let connect: MockInstance<typeof Kube.fromDefault>;
  beforeEach(() => {
    connect = vi.spyOn(Kube, 'fromDefault').mockImplementation(() => {
      throw new Error('unit tests have no cluster');
    });
  });
  afterEach(() => connect.mockRestore());

  it('(the guard works: without --help, tick does try to connect)', async () => {
    const r = await run('tick');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/unit tests have no cluster/);
    expect(connect).toHaveBeenCalledOnce();
  });

  it('covers every subcommand', () => {
    expect(subcommands.map((s) => s.command.name)).toEqual([
      'next',
      'validate',
      'plan',
      'controller',
      'tick',
      'run',
      'restore',
      'report',
    ]);
  });

  describe.each(subcommands.map((s) => [s.command.name, s.command] as const))(
    'snapcron %s',
    (name, command) => {
      it.each(['--help', '-h'])(
        'answers %s with usage listing every option of its table, exit 0',
        async (flag) => {
          const r = await run(name, flag);
          expect(r.code).toBe(0);
          expect(r.err).toBe('');
          expect(r.out).toMatch(new RegExp(`^Usage: snapcron ${name}\\b`));
          // Every option the parser knows is listed, with its short form and value name...
          for (const [long, option] of Object.entries(command.options)) {
            const row = r.out.split('\n').find((line) => new RegExp(`^ {2}.{0,4}--${long} `).test(line));
            expect(row, `--${long} missing from snapcron ${name} --help`).toBeDefined();
            if (option.short) expect(row).toContain(`-${option.short}, --${long}`);
            if (option.type === 'string') expect(row).toContain(`--${long} ${option.value ?? ''}`);
          }
          // ...and nothing else: the rows are exactly the table.
          const listed = [...r.out.matchAll(/^ {2}(?:-\w, | {4})--([\w-]+)/gm)].map((m) => m[1]);
          expect(listed).toEqual(Object.keys(command.options));
          // The text comes from the table the subcommand parsed with.
          expect(r.out.trimEnd()).toBe(helpText(command));
          expect(connect).not.toHaveBeenCalled();
        },
      );

      it('answers help before checking other arguments', async () => {
        const r = await run(name, '--no-such-option', 'x', '--help');
        expect(r.code).toBe(0);
        expect(r.out).toMatch(`Usage: snapcron ${name}`);
        expect(connect).not.toHaveBeenCalled();
      });

      it('is what snapcron help <command> prints', async () => {
        const viaHelp = await run('help', name);
        expect(viaHelp.code).toBe(0);
        expect(viaHelp.out).toBe((await run(name, '--help')).out);
      });

      it('refuses an unknown option with exit 2, naming the command and pointing to --help', async () => {
        const r = await run(name, '--no-such-option');
        expect(r.code).toBe(2);
        expect(r.out).toBe('');
        expect(r.err.trim()).toBe(
          `snapcron ${name}: unknown option '--no-such-option': see snapcron ${name} --help`,
        );
        expect(connect).not.toHaveBeenCalled();
      });
    },
  );

  it('snapcron --help, -h and help list every subcommand, exit 0', async () => {
    for (const argv of [['--help'], ['-h'], ['help']]) {
      const r = await run(...argv);
      expect(r.code).toBe(0);
      for (const { command } of subcommands) expect(r.out).toContain(`snapcron ${command.name}`);
      expect(r.out).toMatch(/snapcron <command> --help/);
    }
  });

  it('snapcron help of an unknown command exits 2', async () => {
    const r = await run('help', 'nope');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^snapcron help: unknown command "nope"/);
  });

  it('after --, -h is an argument, not a request for help', async () => {
    const r = await run('next', '--', '-h');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cron: "-h"/);
  });

  it.each([
    [
      ['plan', '-f', 'test/fixtures/plan-schedule.yaml'],
      /^snapcron plan: missing --snapshots; usage: snapcron plan -f FILE --snapshots FILE \[options\]/,
    ],
    [['plan', 'extra'], /^snapcron plan: unexpected argument 'extra'/],
    [
      ['next', '@daily', '--count'],
      /^snapcron next: Option '--count <value>' argument missing; usage: snapcron next/,
    ],
    [
      ['restore', '--from', 'web-0'],
      /^snapcron restore: missing the new PVC name; usage: snapcron restore NEW_PVC --from SOURCE_PVC/,
    ],
  ])('usage errors exit 2 with one line pointing to --help: %j', async (argv, message) => {
    const r = await run(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toContain(`see snapcron ${argv[0] ?? ''} --help`);
  });
});

describe('the shipped manifests', () => {
  // The Deployment's and CronJob's container args must parse with the tables the CLI uses.
  it.each(['deploy/base/controller.yaml', 'deploy/overlays/cronjob/cronjob.yaml'])(
    '%s passes only options snapcron knows',
    (file) => {
      const argLists: string[][] = [];
      const walk = (node: unknown): void => {
        if (Array.isArray(node)) node.forEach(walk);
        else if (node && typeof node === 'object')
          for (const [key, value] of Object.entries(node)) {
            if (key === 'args' && Array.isArray(value)) argLists.push(value.map(String));
            else walk(value);
          }
      };
      for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) walk(doc.toJS());
      expect(argLists.length).toBeGreaterThan(0);
      for (const [name, ...args] of argLists) {
        const sub = subcommands.find((s) => s.command.name === name);
        expect(sub, `${file}: unknown subcommand ${name}`).toBeDefined();
        if (sub) expect(() => parseCommand(sub.command, args)).not.toThrow();
      }
    },
  );

  it.each([
    [
      ['--webhook-client-names=kube-apiserver'],
      /^snapcron controller: --webhook-client-names needs --webhook-client-ca/,
    ],
    [
      ['--webhook-client-ca=/nonexistent/ca.crt'],
      /^snapcron controller: --webhook-client-ca: cannot read \/nonexistent\/ca.crt/,
    ],
    [
      ['--webhook-client-ca=package.json'],
      /^snapcron controller: --webhook-client-ca: package.json holds no PEM certificate/,
    ],
  ])('controller %j is refused before connecting', async (args, message) => {
    const connect = vi.spyOn(Kube, 'fromDefault');
    try {
      const r = await run('controller', ...args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
      expect(connect).not.toHaveBeenCalled();
    } finally {
      connect.mockRestore();
    }
  });

  it('a bad --interval is refused before connecting', async () => {
    const connect = vi.spyOn(Kube, 'fromDefault');
    try {
      const r = await run('tick', '--interval=5x');
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/^snapcron tick: --interval: "5x" is not a duration/);
      expect(connect).not.toHaveBeenCalled();
    } finally {
      connect.mockRestore();
    }
  });
});

describe('snapcron controller: the defaults the README gives', () => {
  it('each flag defaults to what README "snapcron controller" and "Monitoring" say', () => {
    const controller = subcommands.find((s) => s.command.name === 'controller');
    expect(controller).toBeDefined();
    const { values } = parseCommand(controller!.command, []);
    const readme = readFileSync('README.md', 'utf8').replace(/\s+/g, ' ');
    const promised: [string, string, string][] = [
      ['metrics-addr', ':8080', '`--metrics-addr :8080`'],
      ['lease-duration', '15s', '`--lease-duration 15s`'],
      ['retry-period', '2s', '`--retry-period 2s`'],
      ['qps', '100', '`--qps 100 --burst 200`'],
      ['burst', '200', '`--qps 100 --burst 200`'],
      ['concurrency', '1000', '`--concurrency 1000`'],
      ['lease-name', 'snapcron-controller', 'Lease `snapcron-controller`'],
      ['webhook-addr', ':9443', '`--webhook-addr :9443`'],
      ['report-metrics-period', '60s', '`--report-metrics-period` (60 s)'],
      ['cloud-refresh', '10m', '`--cloud-refresh` (default `10m`)'],
      [
        'webhook-dns-names',
        'snapcron-webhook.snapcron-system.svc,localhost',
        '`--webhook-dns-names` (default `snapcron-webhook.snapcron-system.svc,localhost`)',
      ],
    ];
    for (const [flag, value, sentence] of promised) {
      expect((values as Record<string, unknown>)[flag], flag).toBe(value);
      expect(readme, flag).toContain(sentence);
    }
  });
});
