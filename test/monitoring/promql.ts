/**
 * What the monitoring tests read from the shipped PrometheusRule and Grafana dashboard, and the
 * metric names a PromQL expression refers to (a small tokenizer, not a parser: enough to tell
 * metric names from functions, keywords, labels, durations and Grafana variables).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const RULE_FILE = `${ROOT}deploy/overlays/monitoring/prometheusrule.yaml`;
export const DASHBOARD_FILE = `${ROOT}deploy/overlays/monitoring/dashboard.json`;
export const RULE_TESTS_FILE = `${ROOT}test/monitoring/alerts.test.yaml`;

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface RuleGroup {
  name: string;
  rules: Rule[];
}
export interface PrometheusRule {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  spec: { groups: RuleGroup[] };
}

export const readPrometheusRule = (): PrometheusRule =>
  parse(readFileSync(RULE_FILE, 'utf8')) as PrometheusRule;

export interface RuleTests {
  rule_files: string[];
  tests: {
    name?: string;
    input_series?: { series: string; values: string }[];
    alert_rule_test?: { alertname: string; eval_time: string; exp_alerts?: unknown[] }[];
  }[];
}
export const readRuleTests = (): RuleTests => parse(readFileSync(RULE_TESTS_FILE, 'utf8')) as RuleTests;

export interface Target {
  expr?: string;
  refId?: string;
}
export interface Panel {
  id?: number;
  type?: string;
  title?: string;
  gridPos?: { h: number; w: number; x: number; y: number };
  datasource?: unknown;
  targets?: Target[];
  panels?: Panel[];
}
export interface Dashboard {
  title?: string;
  uid?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: { name: string; type: string; query?: string | { query?: string } }[] };
}

/** Every panel, rows' nested panels included. */
export function allPanels(d: Dashboard): Panel[] {
  return (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** The PromQL of every dashboard target and template variable query. */
export function dashboardQueries(d: Dashboard): string[] {
  const exprs = allPanels(d).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
  const variables = (d.templating?.list ?? [])
    .filter((v) => v.type === 'query')
    .map((v) => (typeof v.query === 'string' ? v.query : (v.query?.query ?? '')))
    // label_values(metric, label): the metric is PromQL, the label is not.
    .map((q) => q.replace(/^label_values\(\s*([^,]+),[^)]*\)$/, '$1'));
  return [...exprs, ...variables];
}

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'bool',
  'and',
  'or',
  'unless',
  'atan2',
  'inf',
  'nan',
  'start',
  'end',
]);
/** Keywords followed by a parenthesized list of label names. */
const LABEL_LIST = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

const TOKEN =
  /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`|\$\{[^}]*\}|\$\w+|\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|[smhdwy])*|[A-Za-z_:][\w:]*|\S/gi;

/** The metric names an expression selects, e.g. `rate(x_bucket{a="b"}[5m]) > on (c) y` → x_bucket, y. */
export function metricNames(expr: string): string[] {
  const tokens = expr.match(TOKEN) ?? [];
  const names = new Set<string>();
  let braces = 0;
  let brackets = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] ?? '';
    if (t === '{') braces++;
    else if (t === '}') braces--;
    else if (t === '[') brackets++;
    else if (t === ']') brackets--;
    if (braces > 0 || brackets > 0 || !/^[A-Za-z_:][\w:]*$/.test(t)) continue;
    const lower = t.toLowerCase();
    if (LABEL_LIST.has(lower) && tokens[i + 1] === '(') {
      while (i < tokens.length && tokens[i] !== ')') i++;
      continue;
    }
    if (KEYWORDS.has(lower)) continue;
    // A function or an aggregation (sum by (x) (…) puts its clause between name and parenthesis).
    const next = tokens[i + 1];
    if (next === '(' || (next && LABEL_LIST.has(next.toLowerCase()))) continue;
    names.add(t);
  }
  return [...names];
}

/**
 * The metric names a /metrics text exposes: each family from `# TYPE`, with a histogram's or
 * summary's _bucket/_sum/_count series, and every sample's name.
 */
export function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)/.exec(line);
    if (type?.[1]) {
      const [, name, kind] = type;
      names.add(name);
      if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      if (kind === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
      continue;
    }
    const sample = /^([A-Za-z_:][\w:]*)[{ ]/.exec(line);
    if (sample?.[1]) names.add(sample[1]);
  }
  return names;
}
