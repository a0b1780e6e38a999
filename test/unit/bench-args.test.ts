/** bench:scale's command line as the README's bench row gives it. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseScaleArgs, SMALL } from '../../bench/scale.ts';

/** The options after `--` in the README row of `npm run bench:scale`, split as a shell would. */
function readmeExamples(): string[][] {
  const row = readFileSync('README.md', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('| `npm run bench:scale` |'));
  if (!row) throw new Error('README has no bench:scale row');
  return [...row.matchAll(/`-- ([^`]+)`/g)].map((m) =>
    [...(m[1] ?? '').matchAll(/'([^']*)'|(\S+)/g)].map((w) => w[1] ?? w[2] ?? ''),
  );
}

describe('bench:scale options (README "Benchmarks")', () => {
  it('parses every example the README gives', () => {
    const examples = readmeExamples();
    expect(examples.map((e) => e[0])).toEqual(
      expect.arrayContaining([
        '--minutes',
        '--small',
        '--no-ready',
        '--cpu-prof',
        '--alloc-prof',
        '--node-options',
      ]),
    );
    for (const e of examples) expect(() => parseScaleArgs(e), e.join(' ')).not.toThrow();
  });

  it('takes V8 flags after --node-options as its value, in either form', () => {
    for (const argv of [
      ['--node-options', '--max-semi-space-size=16 --trace-gc', '--no-ready'],
      ['--node-options=--max-semi-space-size=16 --trace-gc', '--no-ready'],
    ]) {
      const o = parseScaleArgs(argv);
      expect(o.nodeOptions).toBe('--max-semi-space-size=16 --trace-gc');
      expect(o.ready).toBe(false);
    }
  });

  it('starts from the full size, or from CI’s with --small, and overrides what is given', () => {
    expect(parseScaleArgs([])).toMatchObject({
      schedules: 1000,
      pvcsPerSchedule: 10,
      minutes: 30,
      ready: true,
    });
    expect(parseScaleArgs(['--small', '--minutes', '3'])).toMatchObject({
      ...SMALL,
      minutes: 3,
    });
  });

  it('refuses a count that is not a number, naming it', () => {
    expect(() => parseScaleArgs(['--schedules', 'many'])).toThrow(/"many"/);
  });

  it('--alloc-prof preloads a profiler that writes what the process allocated, by function, at exit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'alloc-prof-'));
    const o = parseScaleArgs(['--alloc-prof', dir]);
    expect(o.allocProfDir).toBe(dir);
    // A process that allocates 64 MiB of short-lived arrays in one named function, then exits.
    const r = spawnSync(
      process.execPath,
      [
        '--import=./bench/alloc-profile.ts',
        '-e',
        'function churn() { let n = 0; for (let i = 0; i < 2e5; i++) n += new Array(40).fill(i).length; return n; } churn();',
      ],
      { env: { ...process.env, SNAPCRON_ALLOC_PROF_DIR: dir }, encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    const [file] = readdirSync(dir);
    interface Node {
      callFrame: { functionName: string };
      selfSize: number;
      children: Node[];
    }
    const bytes = new Map<string, number>();
    const walk = (n: Node): void => {
      bytes.set(n.callFrame.functionName, (bytes.get(n.callFrame.functionName) ?? 0) + n.selfSize);
      n.children.forEach(walk);
    };
    walk((JSON.parse(readFileSync(join(dir, file ?? ''), 'utf8')) as { head: Node }).head);
    // Garbage included: the arrays were collected long before exit, yet most of the 64 MiB shows.
    expect(bytes.get('churn') ?? 0).toBeGreaterThan(32 * 2 ** 20);
  });
});
