/**
 * `snapcron report` (and `kubectl snapcron report`): the retention report, from a cluster
 * (one paged LIST per kind) or offline from files, as a table, JSON, Markdown or one HTML page.
 */
import * as k8s from '@kubernetes/client-node';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../api/objects.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import { Kube } from '../kube/client.ts';
import { errorMessage } from '../kube/retry.ts';
import { buildReport, type ReportInput } from '../report/build.ts';
import { FINDING_KINDS, type FindingKind } from '../report/model.ts';
import { REPORT_FORMATS, renderReport, type ReportFormat } from '../report/render.ts';
import { UserError } from './errors.ts';
import { parseTimeFlag, readObjects } from './manifests.ts';
import { defineCommand, parseCommand, usageError } from './options.ts';

export const reportCommand = defineCommand({
  name: 'report',
  summary:
    'The retention report: PVCs no schedule protects, per schedule and PVC the newest good copy, what is deleted next and when, what failed or is stuck, and totals; from the cluster, or offline from files with -f, --snapshots and --pvcs.',
  options: {
    namespace: {
      type: 'string',
      short: 'n',
      value: 'NS',
      shownDefault: "the kubeconfig context's; offline: every namespace in the files",
      description: 'only this namespace',
    },
    'all-namespaces': { type: 'boolean', short: 'A', default: false, description: 'every namespace' },
    schedule: {
      type: 'string',
      value: 'NAME',
      description: 'only this SnapshotSchedule (no unprotected list then)',
    },
    output: {
      type: 'string',
      short: 'o',
      default: 'table',
      value: 'FORMAT',
      description: 'table, json, markdown or html (one self-contained page)',
    },
    plan: {
      type: 'boolean',
      default: false,
      description: 'add every snapshot with its verdict and reasons',
    },
    'fail-on': {
      type: 'string',
      value: 'KINDS',
      description: `exit 2 when a finding of these kinds exists, comma-separated: ${FINDING_KINDS.join(',')}`,
    },
    now: { type: 'string', value: 'RFC3339', shownDefault: 'now', description: 'report as of this time' },
    filename: {
      type: 'string',
      short: 'f',
      value: 'FILE',
      description: 'offline: the SnapshotSchedule(s), YAML or JSON (with --snapshots and --pvcs)',
    },
    snapshots: {
      type: 'string',
      value: 'FILE',
      description: 'offline: VolumeSnapshots, e.g. from kubectl get volumesnapshots -A -o json',
    },
    pvcs: {
      type: 'string',
      value: 'FILE',
      description: 'offline: PVCs, e.g. from kubectl get pvc -A -o json',
    },
    kubeconfig: {
      type: 'string',
      value: 'FILE',
      shownDefault: '$KUBECONFIG, else ~/.kube/config, else in-cluster',
      description: 'the kubeconfig to use',
    },
    context: {
      type: 'string',
      value: 'NAME',
      shownDefault: "the kubeconfig's current context",
      description: 'the kubeconfig context to use',
    },
    'chunk-size': {
      type: 'string',
      default: '500',
      value: 'N',
      description: 'list the cluster in pages of this many objects',
    },
  },
});

/** `stale,failed` to kinds; a usage error names the unknown one. */
export function parseFailOn(text: string): FindingKind[] {
  const kinds = text
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  for (const k of kinds) {
    if (!(FINDING_KINDS as readonly string[]).includes(k))
      throw new UserError(`--fail-on: unknown kind "${k}": use ${FINDING_KINDS.join(', ')}`, 2);
  }
  return kinds as FindingKind[];
}

function objectsOfKind<T>(file: string, kind: string): T[] {
  return readObjects(file).filter((o) => {
    const k = (o as { kind?: unknown }).kind;
    return k === undefined || k === kind;
  }) as T[];
}

interface Page<T> {
  items: T[];
  metadata?: { _continue?: string; continue?: string };
}

/** Every object of one kind, in pages of `limit`: one LIST call per page. */
async function listAll<T>(kube: Kube, fetch: (cont: string | undefined) => Promise<Page<T>>): Promise<T[]> {
  const out: T[] = [];
  let cont: string | undefined;
  do {
    const page = await kube.read(() => fetch(cont));
    out.push(...page.items);
    cont = page.metadata?._continue || page.metadata?.continue || undefined;
  } while (cont);
  return out;
}

/** The schedules, PVCs and snapshots of a namespace (or all), with one paged LIST per kind. */
export async function readCluster(
  kube: Kube,
  namespace: string | undefined,
  limit: number,
): Promise<Pick<ReportInput, 'schedules' | 'pvcs' | 'snapshots'>> {
  const custom = (resource: typeof kube.schedules | typeof kube.snapshots) => (cont: string | undefined) =>
    (namespace
      ? kube.custom.listNamespacedCustomObject({ ...resource, namespace, limit, _continue: cont })
      : kube.custom.listClusterCustomObject({ ...resource, limit, _continue: cont })) as Promise<Page<never>>;
  const [schedules, pvcs, snapshots] = await Promise.all([
    listAll<SnapshotSchedule>(kube, custom(kube.schedules)),
    listAll<PersistentVolumeClaim>(
      kube,
      (cont) =>
        (namespace
          ? kube.core.listNamespacedPersistentVolumeClaim({ namespace, limit, _continue: cont })
          : kube.core.listPersistentVolumeClaimForAllNamespaces({
              limit,
              _continue: cont,
            })) as unknown as Promise<Page<PersistentVolumeClaim>>,
    ),
    listAll<VolumeSnapshot>(kube, custom(kube.snapshots)),
  ]);
  return { schedules, pvcs, snapshots };
}

function connect(kubeconfig: string | undefined, context: string | undefined): Kube {
  try {
    if (kubeconfig === undefined && context === undefined) return Kube.fromDefault();
    const kc = new k8s.KubeConfig();
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else kc.loadFromDefault();
    if (context) {
      if (!kc.getContextObject(context)) throw new Error(`no context "${context}" in the kubeconfig`);
      kc.setCurrentContext(context);
    }
    return new Kube(kc);
  } catch (err) {
    throw new UserError(`cannot load a kubeconfig (set KUBECONFIG or --kubeconfig): ${errorMessage(err)}`);
  }
}

/** Prints the report; exit 0, or 2 with --fail-on when a finding of those kinds exists (each on stderr). */
export async function runReport(
  args: string[],
  now: Date,
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<number> {
  const { values } = parseCommand(reportCommand, args);
  const format = values.output as ReportFormat;
  if (!REPORT_FORMATS.includes(format))
    throw new UserError(`-o "${values.output}": use ${REPORT_FORMATS.join(', ')}`, 2);
  const failOn = values['fail-on'] === undefined ? [] : parseFailOn(values['fail-on']);
  const at = parseTimeFlag('now', values.now, now);
  const chunk = Number(values['chunk-size']);
  if (!Number.isInteger(chunk) || chunk <= 0)
    throw new UserError(`--chunk-size "${values['chunk-size']}" must be a whole number above 0`, 2);
  if (values.namespace !== undefined && values['all-namespaces'])
    throw usageError(reportCommand, '-n and -A exclude each other');

  const offline = [values.filename, values.snapshots, values.pvcs];
  let objects: Pick<ReportInput, 'schedules' | 'pvcs' | 'snapshots'>;
  let namespace: string | undefined = values.namespace;
  if (offline.some((v) => v !== undefined)) {
    if (offline.some((v) => v === undefined))
      throw usageError(reportCommand, 'offline, give all of -f, --snapshots and --pvcs');
    objects = {
      schedules: objectsOfKind<SnapshotSchedule>(values.filename as string, 'SnapshotSchedule'),
      snapshots: objectsOfKind<VolumeSnapshot>(values.snapshots as string, 'VolumeSnapshot'),
      pvcs: objectsOfKind<PersistentVolumeClaim>(values.pvcs as string, 'PersistentVolumeClaim'),
    };
  } else {
    const kube = connect(values.kubeconfig, values.context);
    if (!values['all-namespaces']) namespace ??= kube.defaultNamespace();
    try {
      objects = await readCluster(kube, namespace, chunk);
    } catch (e) {
      throw new UserError(`cannot read the cluster: ${errorMessage(e)}`);
    }
  }

  const report = buildReport({
    ...objects,
    now: at,
    namespace,
    schedule: values.schedule,
    plan: values.plan || format === 'html',
  });
  out(renderReport(report, format));
  const failing = report.findings.filter((f) => failOn.includes(f.kind));
  if (failing.length === 0) return 0;
  for (const f of failing) err(`${f.kind}: ${f.message}`);
  err(`snapcron report: ${failing.length} finding(s) of the kinds in --fail-on ${failOn.join(',')}`);
  return 2;
}
