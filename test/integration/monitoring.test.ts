// The monitoring overlay, checked: the PrometheusRule's alerts with promtool (built from the
// Prometheus Go module, hack/build-promtool.sh) on synthetic series, and the controller's real
// /metrics with `promtool check metrics`; every metric the rules and the Grafana dashboard
// name must be on that real /metrics, so a renamed metric cannot leave an alert silent.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { freePort } from '../../dev/control-plane.ts';
import { installRestoreWebhook } from '../../dev/restore-webhook.ts';
import {
  boundPvc,
  createSchedule,
  createSnapshot,
  deleteNamespaceAndWait,
  eventually,
  kube,
  kubeConfig,
} from '../env/kube.ts';
import { metrics, startController, type Running } from '../env/processes.ts';
import {
  allPanels,
  DASHBOARD_FILE,
  dashboardQueries,
  exposedNames,
  metricNames,
  readPrometheusRule,
  readRuleTests,
  RULE_TESTS_FILE,
  type Dashboard,
} from '../monitoring/promql.ts';
import { hackScriptOutput } from '../../dev/hack-script.ts';
import type { SkipReason } from '../../src/controller/decide.ts';
import type { AdmissionOutcome } from '../../src/restore/admission.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ARTIFACTS = join(ROOT, 'test-artifacts');

/** promtool (built on first use, cached in ~/.cache/snapcron/promtool; $SNAPCRON_PROMTOOL wins). */
const promtool = (): string => hackScriptOutput('hack/build-promtool.sh');

function run(args: string[], input?: string): { code: number | null; out: string } {
  const r = spawnSync(promtool(), args, { input, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The PrometheusRule's spec.groups as a Prometheus rule file, next to a copy of the rule tests. */
const tempDirs: string[] = [];
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

function ruleFiles(): { dir: string; rules: string; tests: string } {
  const dir = mkdtempSync(join(tmpdir(), 'snapcron-rules-'));
  tempDirs.push(dir);
  const rules = join(dir, readRuleTests().rule_files[0] ?? 'snapcron-rules.yaml');
  writeFileSync(rules, stringify({ groups: readPrometheusRule().spec.groups }));
  const tests = join(dir, 'alerts.test.yaml');
  copyFileSync(RULE_TESTS_FILE, tests);
  return { dir, rules, tests };
}

const alerts = (): string[] =>
  readPrometheusRule()
    .spec.groups.flatMap((g) => g.rules)
    .flatMap((r) => (r.alert ? [r.alert] : []));

describe('alert rules (deploy/overlays/monitoring/prometheusrule.yaml) under promtool', () => {
  it('is a PrometheusRule named snapcron in snapcron-system whose alerts say what to do', () => {
    const pr = readPrometheusRule();
    expect(pr).toMatchObject({
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: 'snapcron', namespace: 'snapcron-system' },
    });
    const rules = pr.spec.groups.flatMap((g) => g.rules);
    expect(rules.length).toBeGreaterThanOrEqual(6);
    for (const r of rules) {
      expect(r.alert, r.expr).toMatch(/^Snapcron[A-Z]\w+$/);
      expect(['critical', 'warning', 'info'], r.alert).toContain(r.labels?.severity);
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      // A description says what to look at: a command to run.
      expect(r.annotations?.description, r.alert).toMatch(/`kubectl [^`]+`/);
      // Alerts about a schedule name it and its namespace.
      if (/\bschedule\b/.test(r.expr))
        expect(`${r.annotations?.summary} ${r.annotations?.description}`, r.alert).toMatch(
          /\{\{ \$labels\.namespace \}\}\/\{\{ \$labels\.schedule \}\}/,
        );
    }
    expect(alerts()).toEqual(
      expect.arrayContaining([
        'SnapcronSnapshotTooOld',
        'SnapcronPVCWithoutReadySnapshot',
        'SnapcronSnapshotsFailing',
        'SnapcronSnapshotsStuck',
        'SnapcronNoLeader',
        'SnapcronRestoreRefused',
        'SnapcronWebhookSlow',
      ]),
    );
  });

  it("README's alert table lists every alert, with the rule's severity and 'for'", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const rows = [...readme.matchAll(/^\| `(Snapcron\w+)` \|.*\| (\w+), ([\w ]+) \|$/gm)];
    const rules = readPrometheusRule()
      .spec.groups.flatMap((g) => g.rules)
      .filter((r) => r.alert);
    expect(rows.map((m) => m[1]).sort()).toEqual(rules.map((r) => r.alert).sort());
    for (const [, name, severity, wait] of rows) {
      const rule = rules.find((r) => r.alert === name);
      expect(rule?.labels?.severity, name).toBe(severity);
      expect(rule?.for, name).toBe(wait === 'at once' ? '0m' : wait);
    }
  });

  it('the label values the alerts filter on are ones snapcron exports (typed: a renamed value fails typecheck)', () => {
    const skipped: SkipReason[] = ['PreviousNotReady', 'TooManyPending', 'DeadlinePassed'];
    const refused: AdmissionOutcome['summary']['result'][] = ['denied', 'empty'];
    const exprs = readPrometheusRule()
      .spec.groups.flatMap((g) => g.rules)
      .map((r) => r.expr)
      .join('\n');
    const matchers = [...exprs.matchAll(/(\w+)=~"([^"]+)"/g)].map((m) => `${m[1]}=${m[2]}`);
    expect(matchers.length).toBeGreaterThan(0);
    for (const m of matchers)
      expect([`reason=${skipped.join('|')}`, `result=${refused.join('|')}`]).toContain(m);
  });

  it("the ServiceMonitor keeps the metrics' namespace label, which the alerts name", () => {
    const objects = parseAllDocuments(
      readFileSync(join(ROOT, 'deploy/overlays/monitoring/servicemonitor.yaml'), 'utf8'),
    ).map((d) => d.toJS() as { kind?: string; spec?: { endpoints?: { honorLabels?: boolean }[] } });
    const monitors = objects.filter((o) => o.kind === 'ServiceMonitor');
    expect(monitors.length).toBe(1);
    for (const e of monitors[0]?.spec?.endpoints ?? []) expect(e.honorLabels).toBe(true);
  });

  it("the overlay installs the rules and ships the dashboard to Grafana's sidecar", () => {
    const k = parse(readFileSync(join(ROOT, 'deploy/overlays/monitoring/kustomization.yaml'), 'utf8')) as {
      resources?: string[];
      configMapGenerator?: {
        name: string;
        files?: string[];
        options?: { labels?: Record<string, string> };
      }[];
    };
    expect(k.resources).toContain('prometheusrule.yaml');
    const dashboard = k.configMapGenerator?.find((g) =>
      (g.files ?? []).some((f) => f.endsWith('dashboard.json')),
    );
    expect(dashboard?.name).toBe('snapcron-dashboard');
    expect(dashboard?.options?.labels?.grafana_dashboard).toBe('1');
  });

  it('promtool check rules accepts the groups', () => {
    const { rules } = ruleFiles();
    expect(run(['--version']).out).toMatch(/^promtool, version 3\.\d+\.\d+/);
    const r = run(['check', 'rules', rules]);
    expect(r.out).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.code, r.out).toBe(0);
  });

  it('every alert has a case where it fires and one where it must not', () => {
    const cases = readRuleTests().tests.flatMap((t) => t.alert_rule_test ?? []);
    const firing = new Set(cases.filter((c) => (c.exp_alerts ?? []).length > 0).map((c) => c.alertname));
    const quiet = new Set(cases.filter((c) => (c.exp_alerts ?? []).length === 0).map((c) => c.alertname));
    const known = new Set(alerts());
    for (const name of known) {
      expect(firing.has(name), `${name} never fires in ${RULE_TESTS_FILE}`).toBe(true);
      expect(quiet.has(name), `${name} is never required quiet in ${RULE_TESTS_FILE}`).toBe(true);
    }
    // A case for an alert that no longer exists would pass for nothing.
    for (const c of cases) expect(known.has(c.alertname), `no alert ${c.alertname}`).toBe(true);
  });

  it('promtool test rules passes on the synthetic series', () => {
    const { dir } = ruleFiles();
    const r = spawnSync(promtool(), ['test', 'rules', 'alerts.test.yaml'], { cwd: dir, encoding: 'utf8' });
    const out = `${r.stdout}${r.stderr}`;
    expect(out).toMatch(/SUCCESS/);
    expect(r.status, out).toBe(0);
  });

  it("the README's query for a copy older than twice the interval runs on two replicas' gauges", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const expr = readme.match(/"No good copy for twice the\s+interval"[\s\S]*?```\n([^`]+)```/)?.[1];
    expect(expr).toBeTruthy();
    const dir = mkdtempSync(join(tmpdir(), 'snapcron-readme-query-'));
    tempDirs.push(dir);
    writeFileSync(
      join(dir, 'rules.yaml'),
      stringify({ groups: [{ name: 'readme', rules: [{ alert: 'ReadmeQuery', expr }] }] }),
    );
    // The first case's series: pods a and b export the same gauges; db-0's copy is from t=0.
    const series = readRuleTests().tests[0]?.input_series;
    expect(JSON.stringify(series)).toMatch(/snapcron-b/);
    writeFileSync(
      join(dir, 'tests.yaml'),
      stringify({
        rule_files: ['rules.yaml'],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: series,
            alert_rule_test: [
              { eval_time: '1h', alertname: 'ReadmeQuery', exp_alerts: [] },
              {
                eval_time: '2h10m',
                alertname: 'ReadmeQuery',
                exp_alerts: [{ exp_labels: { namespace: 'shop', schedule: 'hourly', pvc: 'db-0' } }],
              },
            ],
          },
        ],
      }),
    );
    const r = spawnSync(promtool(), ['test', 'rules', 'tests.yaml'], { cwd: dir, encoding: 'utf8' });
    const out = `${r.stdout}${r.stderr}`;
    expect(out).toMatch(/SUCCESS/);
    expect(r.status, out).toBe(0);
  });

  it('promtool test rules fails when a rule breaks (the tests can fail)', () => {
    const { dir, rules } = ruleFiles();
    // Thrice the interval instead of twice: the stale copy's case must catch it.
    writeFileSync(rules, readFileSync(rules, 'utf8').replaceAll('2 * max by', '3 * max by'));
    const r = spawnSync(promtool(), ['test', 'rules', 'alerts.test.yaml'], { cwd: dir, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/SnapcronSnapshotTooOld/);
  });
});

describe('the metric-name tokenizer', () => {
  it('finds metric names, not functions, keywords, labels, durations or Grafana variables', () => {
    expect(
      metricNames(
        'histogram_quantile(0.9, sum by (namespace, le) (rate(a_bucket{namespace=~"$namespace", x="y z"}[$__rate_interval]))) > on (namespace) group_left () 2 * max without (pod) (b) or absent(c) unless d offset 1h and vector(0)',
      ).sort(),
    ).toEqual(['a_bucket', 'b', 'c', 'd']);
  });
});

describe("the controller's real /metrics", () => {
  const name = `monitoring-${randomBytes(4).toString('hex')}`;
  const ns = (): string => name;
  let ctl: Running;
  let text = '';

  afterAll(async () => {
    await kubeConfig()
      .makeApiClient(k8s.AdmissionregistrationV1Api)
      .deleteMutatingWebhookConfiguration({ name: `snapcron-restore-${ns()}` })
      .catch(() => undefined);
    await deleteNamespaceAndWait(name);
  });

  // startController belongs in a test (it reports the controller's output when one fails).
  it('serves every snapcron metric family with real series', async () => {
    // Everything a metric family counts, for real: a schedule firing every 2 s on a bound PVC,
    // an unbound PVC it skips, a ready copy, an expired failed snapshot it deletes, a PVC no
    // schedule selects, and a restore the webhook denies through the API server.
    await kube().core.createNamespace({ body: { metadata: { name } } });
    const app = { app: 'db' };
    await boundPvc(ns(), 'data-0', app);
    await boundPvc(ns(), 'scratch-0');
    await kube().core.createNamespacedPersistentVolumeClaim({
      namespace: ns(),
      body: {
        metadata: { name: 'unbound-0', labels: app },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: 'no-such-class',
          resources: { requests: { storage: '1Gi' } },
        },
      },
    });
    await createSchedule(ns(), 'every2s', {
      schedule: '*/2 * * * * *',
      claimSelector: { matchLabels: app },
      retention: { maxCount: 100, failedAfter: '10m' },
    });
    const hourAgo = new Date(Date.now() - 3600_000);
    await createSnapshot(ns(), 'data-0-ready', {
      pvc: 'data-0',
      schedule: 'every2s',
      takenAt: new Date(Date.now() - 60_000),
      status: { readyToUse: true, restoreSize: '1Gi' },
    });
    await createSnapshot(ns(), 'data-0-broken', {
      pvc: 'data-0',
      schedule: 'every2s',
      takenAt: hourAgo,
      status: { readyToUse: false, error: { message: 'quota exceeded' } },
    });

    const config = `snapcron-restore-${ns()}`;
    const port = await freePort();
    await installRestoreWebhook(kubeConfig(), config, port, ns());
    ctl = startController(ns(), [
      '--report-metrics-period=1s',
      `--webhook-addr=127.0.0.1:${port}`,
      `--webhook-config-name=${config}`,
      '--webhook-dns-names=localhost',
    ]);
    const metricsPort = await ctl.metricsPort();
    await eventually(async () => ctl.logs().some((l) => l.msg === 'caBundle injected'), 30_000);
    // A restore with nothing to restore from: denied by the webhook, through the API server
    // (retried until the API server has read the injected caBundle).
    await eventually(
      async () =>
        kube()
          .core.createNamespacedPersistentVolumeClaim({
            namespace: ns(),
            body: {
              metadata: {
                name: `restore-${Date.now()}`,
                labels: { 'snapcron.io/restore': 'true' },
                annotations: { 'snapcron.io/restore-from': 'nothing' },
              },
              spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
            },
          })
          .then(
            () => false,
            (err: Error) => /no ready VolumeSnapshot/.test(err.message),
          ),
      30_000,
      300,
    );
    const wanted = [
      'snapcron_snapshots_created_total{',
      'snapcron_snapshots_pruned_total{',
      'snapcron_snapshots_failed_total{',
      'snapcron_pvcs_skipped_total{',
      'snapcron_fire_lag_seconds_bucket{',
      'snapcron_snapshot_create_lag_seconds_bucket{',
      'snapcron_write_wait_seconds_bucket{',
      'snapcron_writes_waiting{lane="create"}',
      'snapcron_next_fire_timestamp_seconds{',
      'snapcron_snapshots{',
      'snapcron_webhook_admission_duration_seconds_bucket{',
      'snapcron_leader 1',
      'snapcron_passes_total{result="success"}',
      'snapcron_pvc_newest_ready_snapshot_timestamp_seconds{',
      'snapcron_schedule_interval_seconds{',
      'snapcron_stale_pvcs{',
      'snapcron_stuck_pvcs{',
      'snapcron_unprotected_pvcs{',
    ];
    text = await eventually(async () => {
      const t = await metrics(metricsPort);
      const missing = wanted.filter((w) => !t.includes(w));
      if (missing.length > 0) throw new Error(`not yet on /metrics: ${missing.join(', ')}`);
      return t;
    }, 60_000);
    // SnapcronRestoreRefused counts this label value.
    expect(text).toMatch(
      /^snapcron_webhook_admission_duration_seconds_count\{[^}]*result="denied"[^}]*\} [1-9]/m,
    );
    await ctl.kill();
  });

  it('passes promtool check metrics, lint included, for every snapcron metric', () => {
    const r = run(['check', 'metrics'], text);
    // The scrape and promtool's findings, for a person to read.
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(ARTIFACTS, 'controller-metrics.txt'), text);
    writeFileSync(join(ARTIFACTS, 'promtool-check-metrics.txt'), r.out);
    // Lint findings are "name problem" lines; snapcron's own metrics must have none. The
    // Node.js runtime metrics carry prom-client's names (runtime-metrics.ts), findings included.
    const findings = r.out.split('\n').filter(Boolean);
    expect(findings.filter((l) => l.startsWith('snapcron_'))).toEqual([]);
    // Anything but a lint finding (exit 3) is a format error.
    expect([0, 3], r.out).toContain(r.code);
    for (const l of findings) expect(l).toMatch(/^(nodejs|process)_\w+ /);
    // Without lint (cardinality analysis instead), the text format parses cleanly.
    const strict = run(['check', 'metrics', '--lint=none', '--extended'], text);
    expect(strict.code, strict.out).toBe(0);
  });

  it('has every metric the alert rules use', () => {
    const exposed = exposedNames(text);
    const used = readPrometheusRule()
      .spec.groups.flatMap((g) => g.rules)
      .flatMap((r) => metricNames(r.expr).map((m) => ({ m, rule: r.alert })));
    expect(used.length).toBeGreaterThan(10);
    const missing = used.filter((u) => !exposed.has(u.m));
    expect(missing, 'rules name metrics the controller does not export').toEqual([]);
  });

  it('has every metric the Grafana dashboard queries, and the dashboard loads', () => {
    const raw = readFileSync(DASHBOARD_FILE, 'utf8');
    const d = JSON.parse(raw) as Dashboard;
    // What Grafana needs to import it: a title, a uid, a schema version, panels with ids and
    // positions, and Prometheus targets with an expr and refId.
    expect(d.title).toBe('snapcron');
    expect(d.uid).toMatch(/^[\w-]{1,40}$/);
    expect(d.schemaVersion).toBeGreaterThanOrEqual(30);
    const panels = allPanels(d);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect(typeof p.id, p.title).toBe('number');
      expect(typeof p.type, p.title).toBe('string');
      expect(p.gridPos?.h, p.title).toBeGreaterThan(0);
      expect(p.gridPos?.w, p.title).toBeGreaterThan(0);
      if (p.type === 'row') continue;
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        expect(t.expr, p.title).toBeTruthy();
        expect(t.refId, p.title).toMatch(/^[A-Z]$/);
      }
    }
    const titles = panels.map((p) => p.title ?? '').join('\n');
    for (const topic of [/taken/i, /pruned/i, /fire lag/i, /state/i, /failures/i, /webhook/i, /leader/i])
      expect(titles).toMatch(topic);

    const exposed = exposedNames(text);
    const queries = dashboardQueries(d);
    const used = queries.flatMap((q) => metricNames(q).map((m) => ({ m, q })));
    expect(used.length).toBeGreaterThan(20);
    expect(
      used.filter((u) => !exposed.has(u.m)),
      'dashboard queries metrics the controller does not export',
    ).toEqual([]);
    // Every query is PromQL Prometheus accepts, once Grafana's variables are filled in.
    const asRules = queries.map((q, i) => ({
      record: `dashboard:query_${i}`,
      expr: q.replaceAll('$__rate_interval', '5m').replaceAll(/\$\{?\w+\}?/g, '.*'),
    }));
    const { dir } = ruleFiles();
    const file = join(dir, 'dashboard-queries.yaml');
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: asRules }] }));
    const r = run(['check', 'rules', file]);
    expect(r.code, r.out).toBe(0);
  });
});
