/**
 * What a running controller loads, as a pod runs it (README: the ECS SDK only with --cloud,
 * @kubernetes/client-node only to exec hooks; in a pod no YAML library, no ajv compiler and no
 * ICU time-zone data). test/unit/module-footprint.test.ts checks the CLI's import graph; this
 * checks the process after real work, where a lazy import() would show: it takes snapshots of a
 * schedule in Europe/Berlin, answers /report and /metrics, and stops.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  boundPvc,
  createSchedule,
  eventually,
  kubeconfigPath,
  listSnapshots,
  useNamespace,
} from '../env/kube.ts';
import { startController } from '../env/processes.ts';

/** Preloaded with --import: records every npm module resolved and every ICU date formatter made, written at exit. */
const RECORDER = `
import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
const modules = new Set();
registerHooks({
  resolve(specifier, context, next) {
    const found = next(specifier, context);
    const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\/(.*)$/.exec(found.url);
    if (m) modules.add(m[1] + '/' + m[2]);
    return found;
  },
});
let formatters = 0;
const DateTimeFormat = Intl.DateTimeFormat;
Intl.DateTimeFormat = function (...args) {
  formatters++;
  return new DateTimeFormat(...args);
};
process.on('exit', () =>
  writeFileSync(process.env.SNAPCRON_MODULE_LOG, JSON.stringify({ modules: [...modules], formatters })),
);
`;

describe('a running controller without --cloud or hooks', () => {
  const ns = useNamespace('modules');

  it('loads no ECS SDK, client-node, YAML, ajv compiler, luxon or ICU date formatter', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snapcron-modules-'));
    const recorder = join(dir, 'recorder.mjs');
    writeFileSync(recorder, RECORDER);
    // A pod's credentials are not YAML: give the controller its kubeconfig as JSON.
    const kubeconfig = join(dir, 'kubeconfig.json');
    writeFileSync(kubeconfig, JSON.stringify(parse(readFileSync(kubeconfigPath(), 'utf8'))));
    const log = join(dir, 'modules.json');

    await boundPvc(ns(), 'data', { app: 'db' });
    await createSchedule(ns(), 'berlin', {
      schedule: '*/2 * * * * *',
      timeZone: 'Europe/Berlin',
      claimSelector: { matchLabels: { app: 'db' } },
      retention: { maxCount: 3, keep: { daily: 7 } },
    });
    const ctl = startController(ns(), [], 'modules', kubeconfig, {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${recorder}`,
      SNAPCRON_MODULE_LOG: log,
    });
    const port = await ctl.metricsPort();
    await eventually(
      async () => expect((await listSnapshots(ns())).length).toBeGreaterThanOrEqual(2),
      30_000,
    );
    const report = await fetch(`http://127.0.0.1:${port}/report?namespace=${ns()}`);
    expect(report.status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
    expect(await ctl.kill('SIGTERM')).toBe(0);

    const { modules, formatters } = JSON.parse(readFileSync(log, 'utf8')) as {
      modules: string[];
      formatters: number;
    };
    expect(
      modules.some((m) => m.startsWith('pino/')),
      'the recorder saw the modules loaded',
    ).toBe(true);
    const unwanted = modules.filter((m) =>
      /^(@alicloud\/|@darabonba\/|@kubernetes\/client-node\/|yaml\/|luxon\/|node-cron\/|ajv\/dist\/(core|ajv|compile)|ajv\/lib\/)/.test(
        m,
      ),
    );
    expect(unwanted).toEqual([]);
    expect(formatters, 'Intl.DateTimeFormat constructions').toBe(0);
  }, 90_000);
});
