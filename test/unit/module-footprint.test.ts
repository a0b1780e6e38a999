/**
 * What the controller's process loads at start-up. Every module loaded stays in its memory for
 * its whole life: the README promises that @kubernetes/client-node is loaded only to exec hooks
 * and the ECS SDK only with --cloud, and BENCHMARKS.md counts on node:http being reached
 * without undici, http2 and web streams (an ES import of node:http loads them for its lazy
 * WebSocket export: 5 MiB of RSS at start-up), on the schedule's validator being ajv's code
 * generated ahead of time (compiling the schema at run time: 10 MiB), and on time zones coming
 * from the tz database rather than ICU (8 MiB). A fresh Node imports the CLI's entry point, as
 * `snapcron controller` does before it parses its options, and lists what came in.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const CRON = fileURLToPath(new URL('../../src/schedule/cron.ts', import.meta.url));
const PLAN = fileURLToPath(new URL('../../src/retention/plan.ts', import.meta.url));
const VALIDATE = fileURLToPath(new URL('../../src/api/validate.ts', import.meta.url));

/**
 * The child: records every npm module resolved, and every use of ICU's date formatting, imports
 * the CLI, then does what a pass does with time (validates a schedule in Europe/Berlin, walks its
 * fire times, buckets snapshots by local day), and prints builtins and modules.
 */
const CHILD = `
import { registerHooks } from 'node:module';
const modules = [];
registerHooks({
  resolve(specifier, context, next) {
    const found = next(specifier, context);
    const m = /node_modules\\/(.*)$/.exec(found.url);
    if (m) modules.push(m[1]);
    return found;
  },
});
const icu = [];
const DateTimeFormat = Intl.DateTimeFormat;
Intl.DateTimeFormat = function (...args) {
  icu.push(new Error('Intl.DateTimeFormat').stack);
  return new DateTimeFormat(...args);
};
await import(${JSON.stringify(MAIN)});
const { parseSchedule, nextFireTimes } = await import(${JSON.stringify(CRON)});
const { bucketNumbers } = await import(${JSON.stringify(PLAN)});
const { validateSchedule } = await import(${JSON.stringify(VALIDATE)});
const checked = validateSchedule({
  apiVersion: 'snapcron.io/v1',
  kind: 'SnapshotSchedule',
  metadata: { name: 'x' },
  spec: { schedule: '30 2 * * *', timeZone: 'Europe/Berlin', claimSelector: {}, retention: { maxCount: 3 } },
});
const s = parseSchedule('30 2 * * *', 'Europe/Berlin');
const fires = nextFireTimes(s, Date.UTC(2026, 2, 27), 3).map((d) => d.toISOString());
const day = bucketNumbers(Date.UTC(2026, 2, 29, 1, 30), s.zone).daily;
const builtins = process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13));
process.stdout.write(JSON.stringify({ builtins, modules, icu, fires, day, errors: checked.errors }));
`;

interface Loaded {
  builtins: string[];
  modules: string[];
  icu: string[];
  fires: string[];
  day: number;
  errors: unknown[];
}

function loaded(): Promise<Loaded> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', CHILD],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as Loaded);
      },
    );
  });
}

const packageOf = (path: string): string => /^((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1] ?? path;

describe("the controller's start-up footprint", () => {
  it("loads TLS for its own HTTP client, not undici, http2, web streams, client-node, the ECS SDK, luxon or ajv's compiler", async () => {
    const { builtins, modules, icu, fires, day, errors } = await loaded();
    // The import really happened: TLS for its own client, the webhook's https server, its logger.
    expect(builtins).toContain('tls');
    expect(builtins).toContain('https');
    const packages = [...new Set(modules.map(packageOf))];
    expect(packages).toContain('pino');
    expect(builtins.filter((m) => /undici|http2|webstreams/.test(m))).toEqual([]);
    expect(packages.filter((p) => p.startsWith('@kubernetes/') || p.startsWith('@alicloud/'))).toEqual([]);
    expect(packages.filter((p) => p === 'luxon' || p === 'node-cron')).toEqual([]);
    // YAML only when a kubeconfig file in YAML or manifests are read: never in a pod.
    expect(packages).not.toContain('yaml');
    // Of ajv, only the runtime helpers its generated code requires.
    expect(modules.filter((m) => /^ajv(-formats)?\//.test(m))).toEqual(
      expect.arrayContaining(['ajv/dist/runtime/ucs2length.js', 'ajv-formats/dist/formats.js']),
    );
    expect(modules.filter((m) => /^ajv\//.test(m) && !m.startsWith('ajv/dist/runtime/'))).toEqual([]);
    // The time work was done (the spring-forward night of 2026 in Berlin), and without ICU.
    expect(errors).toEqual([]);
    expect(fires).toEqual([
      '2026-03-27T01:30:00.000Z',
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:00:00.000Z',
    ]);
    expect(day).toBeGreaterThan(0);
    expect(icu).toEqual([]);
  }, 90_000);
});
