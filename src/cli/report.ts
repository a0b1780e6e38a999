/**
 * `snapcron report` (and `kubectl snapcron report`): the retention report, from a cluster
 * (one paged LIST per kind) or offline from files, as a table, JSON, Markdown or one HTML page.
 */
import { GROUP_SNAPSHOT_KIND } from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../api/objects.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import { Kube } from '../kube/client.ts';
import { errorMessage } from '../kube/retry.ts';
import { EcsError, type EcsApi } from '../cloud/ecs-api.ts';
import type { SnapshotClassLike } from '../api/warnings.ts';
import { auditAlibaba, collectAlibaba, withAlibaba, type VolumeSnapshotContent } from '../report/alibaba.ts';
import { buildReport, type ReportInput } from '../report/build.ts';
import { ALL_FINDING_KINDS, type AlibabaFindingKind, type FindingKind } from '../report/model.ts';
import { REPORT_FORMATS, renderReport, type ReportFormat } from '../report/render.ts';
import { ALIBABA_FLAGS, alibabaOptions, type CloudOptions } from './alibaba-options.ts';
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
      description: `exit 2 when a finding of these kinds exists, comma-separated: ${ALL_FINDING_KINDS.join(',')} (the last three with --cloud alibaba)`,
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
      description:
        'offline: VolumeSnapshots, e.g. from kubectl get volumesnapshots -A -o json; for schedules with spec.group add their VolumeGroupSnapshots (kubectl get volumesnapshots,volumegroupsnapshots -A -o json)',
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
    ...ALIBABA_FLAGS,
    contents: {
      type: 'string',
      value: 'FILE',
      description:
        'offline, with --cloud alibaba: VolumeSnapshotContents, e.g. from kubectl get volumesnapshotcontents -o json',
    },
    'snapshot-classes': {
      type: 'string',
      value: 'FILE',
      description: 'offline, with --cloud alibaba: VolumeSnapshotClasses, for the ACK warnings',
    },
  },
});

/** `stale,failed` to kinds; a usage error names the unknown one. */
export function parseFailOn(text: string): (FindingKind | AlibabaFindingKind)[] {
  const kinds = text
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  for (const k of kinds) {
    if (!(ALL_FINDING_KINDS as readonly string[]).includes(k))
      throw new UserError(`--fail-on: unknown kind "${k}": use ${ALL_FINDING_KINDS.join(', ')}`, 2);
  }
  return kinds as (FindingKind | AlibabaFindingKind)[];
}

/** VolumeSnapshotContents and VolumeSnapshotClasses (cluster-scoped), one paged LIST each. */
export async function readSnapshotInfra(
  kube: Kube,
  limit: number,
): Promise<{ contents: VolumeSnapshotContent[]; classes: SnapshotClassLike[] }> {
  const cluster = (plural: string) => (cont: string | undefined) =>
    kube.custom.listClusterCustomObject({
      group: 'snapshot.storage.k8s.io',
      version: 'v1',
      plural,
      limit,
      _continue: cont,
    }) as Promise<Page<never>>;
  const [contents, classes] = await Promise.all([
    listAll<VolumeSnapshotContent>(kube, cluster('volumesnapshotcontents')),
    listAll<SnapshotClassLike>(kube, cluster('volumesnapshotclasses')),
  ]);
  return { contents, classes };
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

/** The Kubernetes API's status code of a failed call, if it has one. */
const statusOf = (err: unknown): number | undefined => {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  for (const c of [e.code, e.statusCode, e.response?.statusCode]) if (typeof c === 'number') return c;
  return undefined;
};

/**
 * The schedules, PVCs and snapshots of a namespace (or all), with one paged LIST per kind; and
 * when a schedule has spec.group, the VolumeGroupSnapshots too (none when the API server does
 * not serve groupsnapshot.storage.k8s.io/v1 or RBAC forbids listing them: 404, 403).
 */
export async function readCluster(
  kube: Kube,
  namespace: string | undefined,
  limit: number,
): Promise<Pick<ReportInput, 'schedules' | 'pvcs' | 'snapshots' | 'groupSnapshots'>> {
  const custom =
    (resource: typeof kube.schedules | typeof kube.snapshots | typeof kube.groupSnapshots) =>
    (cont: string | undefined) =>
      (namespace
        ? kube.custom.listNamespacedCustomObject({ ...resource, namespace, limit, _continue: cont })
        : kube.custom.listClusterCustomObject({ ...resource, limit, _continue: cont })) as Promise<
        Page<never>
      >;
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
  // Only then: a report without groups makes no call more than it always did.
  if (!schedules.some((s) => s.spec?.group)) return { schedules, pvcs, snapshots };
  let groupSnapshots: VolumeGroupSnapshot[] = [];
  try {
    groupSnapshots = await listAll<VolumeGroupSnapshot>(kube, custom(kube.groupSnapshots));
  } catch (err) {
    const code = statusOf(err);
    if (code !== 404 && code !== 403) throw err;
  }
  return { schedules, pvcs, snapshots, groupSnapshots };
}

function connect(kubeconfig: string | undefined, context: string | undefined): Kube {
  try {
    return kubeconfig ? Kube.fromFile(kubeconfig, { context }) : Kube.fromDefault({ context });
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
  /** For tests: the ECS API to use instead of the SDK's. */
  ecs?: (options: CloudOptions) => EcsApi,
): Promise<number> {
  const { values } = parseCommand(reportCommand, args);
  if (values.cloud !== undefined && values.cloud !== 'alibaba')
    throw new UserError(`--cloud "${values.cloud}": use alibaba`, 2);
  const cloud = values.cloud === 'alibaba' ? alibabaOptions(values, reportCommand) : undefined;
  if (!cloud && (values.contents !== undefined || values['snapshot-classes'] !== undefined))
    throw usageError(reportCommand, '--contents and --snapshot-classes go with --cloud alibaba');
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
  let objects: Pick<ReportInput, 'schedules' | 'pvcs' | 'snapshots' | 'groupSnapshots'>;
  let infra: { contents: VolumeSnapshotContent[]; classes: SnapshotClassLike[] } = {
    contents: [],
    classes: [],
  };
  let namespace: string | undefined = values.namespace;
  if (offline.some((v) => v !== undefined)) {
    if (offline.some((v) => v === undefined))
      throw usageError(reportCommand, 'offline, give all of -f, --snapshots and --pvcs');
    if (cloud && values.contents === undefined)
      throw usageError(reportCommand, 'offline, --cloud alibaba needs --contents');
    if (cloud) {
      infra = {
        contents: objectsOfKind<VolumeSnapshotContent>(values.contents as string, 'VolumeSnapshotContent'),
        classes:
          values['snapshot-classes'] === undefined
            ? []
            : objectsOfKind<SnapshotClassLike>(values['snapshot-classes'], 'VolumeSnapshotClass'),
      };
    }
    objects = {
      schedules: objectsOfKind<SnapshotSchedule>(values.filename as string, 'SnapshotSchedule'),
      snapshots: objectsOfKind<VolumeSnapshot>(values.snapshots as string, 'VolumeSnapshot'),
      pvcs: objectsOfKind<PersistentVolumeClaim>(values.pvcs as string, 'PersistentVolumeClaim'),
      // One file holds both kinds (kubectl get volumesnapshots,volumegroupsnapshots -o json).
      groupSnapshots: readObjects(values.snapshots as string).filter(
        (o) => (o as { kind?: unknown }).kind === GROUP_SNAPSHOT_KIND,
      ) as VolumeGroupSnapshot[],
    };
  } else {
    const kube = connect(values.kubeconfig, values.context);
    if (!values['all-namespaces']) namespace ??= kube.defaultNamespace();
    try {
      [objects, infra] = await Promise.all([
        readCluster(kube, namespace, chunk),
        cloud ? readSnapshotInfra(kube, chunk) : Promise.resolve(infra),
      ]);
    } catch (e) {
      throw new UserError(`cannot read the cluster: ${errorMessage(e)}`);
    }
  }

  let report = buildReport({
    ...objects,
    now: at,
    namespace,
    schedule: values.schedule,
    plan: values.plan || format === 'html',
  });
  if (cloud) {
    // Loaded only here: the SDK is large, and most reports never talk to ECS.
    const api = ecs ? ecs(cloud) : (await import('../cloud/alibaba-ecs.ts')).ecsApi(cloud);
    let facts;
    try {
      facts = await collectAlibaba(api, infra, cloud);
    } catch (e) {
      if (e instanceof EcsError) throw new UserError(e.message);
      throw e;
    }
    const input = { ...objects, ...infra, now: at, namespace, schedule: values.schedule };
    report = withAlibaba(report, auditAlibaba(input, facts, cloud));
  }
  out(renderReport(report, format));
  const failing = report.findings.filter((f) => failOn.includes(f.kind));
  if (failing.length === 0) return 0;
  for (const f of failing) err(`${f.kind}: ${f.message}`);
  err(`snapcron report: ${failing.length} finding(s) of the kinds in --fail-on ${failOn.join(',')}`);
  return 2;
}
