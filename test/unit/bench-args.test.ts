/** bench:scale's command line as the README's bench row gives it. */
import { readFileSync } from 'node:fs';
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
      expect.arrayContaining(['--minutes', '--small', '--no-ready', '--cpu-prof', '--node-options']),
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
});
