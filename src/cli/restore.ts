/**
 * `snapcron restore`: the webhook's choice, without a webhook — create (or print) a PVC from the
 * best snapshot; or, with `--group`, one PVC per member of a VolumeGroupSnapshot (one instant).
 */
import { yaml } from '../yaml.ts';
import type { PersistentVolumeClaim, VolumeGroupSnapshot, VolumeSnapshot } from '../api/objects.ts';
import { SNAPSHOT_GROUP, SNAPSHOT_KIND } from '../api/constants.ts';
import { Kube } from '../kube/client.ts';
import { errorMessage, statusOf } from '../kube/retry.ts';
import {
  ANNOTATION_RESTORED_FROM,
  ANNOTATION_RESTORED_FROM_GROUP,
  ANNOTATION_RESTORED_TIME,
  chooseSnapshot,
  DEFAULT_NAME_TEMPLATE,
  planGroupRestore,
  sizeProblem,
} from '../restore/select.ts';
import { formatDuration } from '../schedule/duration.ts';
import { UserError } from './errors.ts';
import { parseTimeFlag } from './manifests.ts';
import { defineCommand, parseCommand, usageError } from './options.ts';

export const restoreCommand = defineCommand({
  name: 'restore',
  summary:
    "Creates (or prints) a PVC restored from a source PVC's newest good snapshot, as the webhook would, and tells which snapshot and how old it is; with --group and no --from, one PVC per member of that VolumeGroupSnapshot.",
  positionals: 'NEW_PVC --from SOURCE_PVC | --group GROUP',
  options: {
    from: {
      type: 'string',
      value: 'SOURCE_PVC',
      description: 'the PVC whose snapshots to restore from (it may be gone)',
    },
    group: {
      type: 'string',
      value: 'GROUP',
      description:
        "a VolumeGroupSnapshot: with --from, restore that PVC's member of it; without, every member, each to a PVC named by --name-template",
    },
    'name-template': {
      type: 'string',
      value: 'TEMPLATE',
      shownDefault: DEFAULT_NAME_TEMPLATE,
      description:
        "with --group alone: the new PVCs' names, {pvc} = the member's source PVC, {ordinal} = its trailing number (e.g. data-db-new-{ordinal})",
    },
    schedule: { type: 'string', value: 'NAME', description: "only this schedule's snapshots" },
    at: {
      type: 'string',
      value: 'RFC3339',
      description: 'the newest ready snapshot taken at or before this time',
    },
    'storage-class': {
      type: 'string',
      value: 'CLASS',
      shownDefault: "the source PVC's",
      description: 'storage class of the new PVC',
    },
    size: {
      type: 'string',
      value: 'QUANTITY',
      shownDefault: "the snapshot's restoreSize",
      description: 'requested storage, e.g. 20Gi',
    },
    namespace: {
      type: 'string',
      short: 'n',
      value: 'NS',
      shownDefault: "the kubeconfig context's",
      description: 'namespace of the snapshots and the new PVCs',
    },
    'dry-run': { type: 'boolean', default: false, description: 'print the PVC instead of creating it' },
    output: {
      type: 'string',
      short: 'o',
      default: 'yaml',
      value: 'FORMAT',
      description: 'yaml or json, for --dry-run',
    },
  },
});

type Values = ReturnType<typeof parseCommand<typeof restoreCommand.options>>['values'];

const isoSeconds = (t: Date): string => t.toISOString().replace(/\.\d{3}Z$/, 'Z');

export async function runRestore(args: string[], now: Date, out: (line: string) => void): Promise<number> {
  const { values, positionals } = parseCommand(restoreCommand, args);
  const [name] = positionals;
  const wholeGroup = values.group !== undefined && values.from === undefined;
  if (wholeGroup) {
    if (positionals.length > 0)
      throw usageError(
        restoreCommand,
        `--group without --from restores every member, named by --name-template: drop '${name ?? ''}', or add --from to restore one PVC`,
      );
    for (const flag of ['schedule', 'at'] as const)
      if (values[flag] !== undefined)
        throw usageError(restoreCommand, `--group names the copy to restore: drop --${flag}`);
  } else {
    if (values.from === undefined) throw usageError(restoreCommand, 'missing --from or --group');
    if (!name || positionals.length !== 1)
      throw usageError(restoreCommand, name ? 'one new PVC name only' : 'missing the new PVC name');
    if (values['name-template'] !== undefined)
      throw usageError(restoreCommand, '--name-template names the PVCs of --group without --from: drop it');
  }
  if (values.output !== 'yaml' && values.output !== 'json')
    throw new UserError(`-o "${values.output}": use yaml or json`, 2);
  const at = values.at === undefined ? undefined : parseTimeFlag('at', values.at, now);
  let kube: Kube;
  try {
    kube = Kube.fromDefault();
  } catch (err) {
    throw new UserError(`cannot load a kubeconfig (set KUBECONFIG): ${errorMessage(err)}`);
  }
  const namespace = values.namespace ?? kube.defaultNamespace();
  const list = (await kube.read(() =>
    kube.custom.listNamespacedCustomObject({ ...kube.snapshots, namespace }),
  )) as {
    items: VolumeSnapshot[];
  };
  const groups = await listGroups(kube, namespace, values.group !== undefined);
  if (wholeGroup) return restoreGroup(kube, namespace, values, list.items, groups, now, out);

  const from = values.from ?? '';
  const choice = chooseSnapshot(
    { sourcePvc: from, schedule: values.schedule, at, policy: 'Required', group: values.group },
    namespace,
    list.items,
    { groups },
  );
  if (choice.kind === 'none') {
    throw new UserError(
      values.group === undefined
        ? choice.message
        : `${choice.message}: pick a ready one with a member of PVC ${from} (kubectl get volumegroupsnapshots -n ${namespace}), or drop --group to restore the newest copy`,
    );
  }
  const pvc = await restoreManifest(kube, values, {
    name: name ?? '',
    namespace,
    sourcePvc: from,
    snapshot: choice.snapshot,
    time: choice.time,
    group: choice.group,
  });
  const age = formatDuration(now.getTime() - choice.time.getTime());
  const what =
    choice.group === undefined
      ? `VolumeSnapshot ${choice.name}`
      : `VolumeSnapshot ${choice.name} of VolumeGroupSnapshot ${choice.group}`;
  if (values['dry-run']) {
    out(values.output === 'json' ? JSON.stringify(pvc, null, 2) : yaml().stringify(pvc).trimEnd());
    process.stderr.write(`# would restore from ${what}, taken ${choice.time.toISOString()} (${age} ago)\n`);
    return 0;
  }
  try {
    await kube.write(() => kube.core.createNamespacedPersistentVolumeClaim({ namespace, body: pvc }));
  } catch (err) {
    throw new UserError(`could not create PVC ${namespace}/${name ?? ''}: ${errorMessage(err)}`);
  }
  out(`created PVC ${namespace}/${name ?? ''} from ${what}, taken ${choice.time.toISOString()} (${age} ago)`);
  return 0;
}

/**
 * The namespace's VolumeGroupSnapshots: none where the API has no such kind (members then never
 * count). Without permission to list them, a restore by --group cannot go on; any other goes on
 * without members, and says so.
 */
async function listGroups(kube: Kube, namespace: string, needed: boolean): Promise<VolumeGroupSnapshot[]> {
  try {
    const list = (await kube.read(() =>
      kube.custom.listNamespacedCustomObject({ ...kube.groupSnapshots, namespace }),
    )) as { items: VolumeGroupSnapshot[] };
    return list.items;
  } catch (err) {
    const status = statusOf(err);
    if (status === 404 && !needed) return [];
    if (status === 404)
      throw new UserError(
        `the cluster has no VolumeGroupSnapshot API (groupsnapshot.storage.k8s.io/v1): install the external-snapshotter v8.6+ CRDs, or restore without --group`,
      );
    if (status === 403 && !needed) {
      process.stderr.write(
        `# cannot list VolumeGroupSnapshots in ${namespace} (forbidden): snapshots in consistency groups are skipped\n`,
      );
      return [];
    }
    throw new UserError(`could not list VolumeGroupSnapshots in ${namespace}: ${errorMessage(err)}`);
  }
}

/** The PVC `snapcron restore` creates. */
interface RestoredPvc {
  apiVersion: 'v1';
  kind: 'PersistentVolumeClaim';
  metadata: { name: string; namespace: string; annotations: Record<string, string> };
  spec: {
    accessModes: string[];
    storageClassName?: string;
    resources: { requests: { storage: string } };
    dataSource: { apiGroup: string; kind: string; name: string };
    dataSourceRef: { apiGroup: string; kind: string; name: string };
  };
}

/** The new PVC for one restore; size, class and access modes default to the source PVC's. */
async function restoreManifest(
  kube: Kube,
  values: Values,
  r: {
    name: string;
    namespace: string;
    sourcePvc: string;
    snapshot: VolumeSnapshot;
    time: Date;
    group?: string | undefined;
  },
): Promise<RestoredPvc> {
  let source: PersistentVolumeClaim | undefined;
  try {
    source = (await kube.read(() =>
      kube.core.readNamespacedPersistentVolumeClaim({ name: r.sourcePvc, namespace: r.namespace }),
    )) as unknown as PersistentVolumeClaim;
  } catch (err) {
    if (statusOf(err) !== 404) throw err; // a deleted source is the case that matters most: go on without it
  }
  const snapshotName = r.snapshot.metadata.name ?? '';
  const size = values.size ?? r.snapshot.status?.restoreSize ?? source?.spec?.resources?.requests?.storage;
  if (!size)
    throw new UserError(`snapshot ${snapshotName} has no restoreSize yet: pass --size, e.g. --size 20Gi`);
  const problem = sizeProblem(r.snapshot, size);
  if (problem) throw new UserError(problem);
  const ref = { apiGroup: SNAPSHOT_GROUP, kind: SNAPSHOT_KIND, name: snapshotName };
  const storageClassName = values['storage-class'] ?? source?.spec?.storageClassName;
  const sourceSpec = source?.spec as { accessModes?: string[] } | undefined;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: r.name,
      namespace: r.namespace,
      annotations: {
        [ANNOTATION_RESTORED_FROM]: snapshotName,
        [ANNOTATION_RESTORED_TIME]: isoSeconds(r.time),
        ...(r.group !== undefined ? { [ANNOTATION_RESTORED_FROM_GROUP]: r.group } : {}),
      },
    },
    spec: {
      accessModes: sourceSpec?.accessModes ?? ['ReadWriteOnce'],
      ...(storageClassName ? { storageClassName } : {}),
      resources: { requests: { storage: size } },
      dataSource: ref,
      dataSourceRef: ref,
    },
  };
}

/**
 * `--group` without `--from`: every member to its own PVC. All are checked before any is
 * created; a PVC already restored from the same member is left as it is, so after a failure
 * the same command finishes the job.
 */
async function restoreGroup(
  kube: Kube,
  namespace: string,
  values: Values,
  snapshots: VolumeSnapshot[],
  groups: VolumeGroupSnapshot[],
  now: Date,
  out: (line: string) => void,
): Promise<number> {
  const groupName = values.group ?? '';
  const planned = planGroupRestore(
    namespace,
    groupName,
    values['name-template'] ?? DEFAULT_NAME_TEMPLATE,
    snapshots,
    groups,
  );
  if (!planned.ok) throw new UserError(planned.message);
  const { time, restores } = planned.value;
  const manifests: RestoredPvc[] = [];
  for (const r of restores) {
    manifests.push(
      await restoreManifest(kube, values, { ...r, namespace, time, group: groupName }).catch(
        (err: unknown) => {
          throw err instanceof UserError
            ? new UserError(`member of PVC ${r.sourcePvc}: ${err.message}`, err.exitCode)
            : err;
        },
      ),
    );
  }
  const age = formatDuration(now.getTime() - time.getTime());
  const summary = `VolumeGroupSnapshot ${namespace}/${groupName}, taken ${time.toISOString()} (${age} ago)`;
  if (values['dry-run']) {
    out(
      values.output === 'json'
        ? JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests }, null, 2)
        : manifests.map((m) => yaml().stringify(m).trimEnd()).join('\n---\n'),
    );
    process.stderr.write(`# would restore ${manifests.length} PVCs from ${summary}\n`);
    return 0;
  }

  // Nothing is created while any name is taken by something else.
  const done = new Set<string>();
  for (const m of manifests) {
    const name = m.metadata.name;
    let existing: PersistentVolumeClaim | undefined;
    try {
      existing = (await kube.read(() =>
        kube.core.readNamespacedPersistentVolumeClaim({ name, namespace }),
      )) as unknown as PersistentVolumeClaim;
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    if (!existing) continue;
    if (existing.spec?.dataSource?.name !== m.spec.dataSource.name) {
      throw new UserError(
        `PVC ${namespace}/${name} already exists${existing.spec?.dataSource ? ` (from ${existing.spec.dataSource.kind} ${existing.spec.dataSource.name})` : ''}: delete it, or choose other names with --name-template; nothing was created`,
      );
    }
    done.add(name);
  }
  const created: string[] = [];
  for (const [i, m] of manifests.entries()) {
    const name = m.metadata.name;
    const r = restores[i];
    const what = `VolumeSnapshot ${r?.snapshot.metadata.name ?? ''} (PVC ${r?.sourcePvc ?? ''})`;
    if (done.has(name)) {
      out(`PVC ${namespace}/${name} already restored from ${what}: left as it is`);
      continue;
    }
    try {
      await kube.write(() => kube.core.createNamespacedPersistentVolumeClaim({ namespace, body: m }));
    } catch (err) {
      throw new UserError(
        `could not create PVC ${namespace}/${name}: ${errorMessage(err)}; ${created.length > 0 ? `created ${created.join(', ')} before it; ` : ''}run the same command again to finish (PVCs already restored are kept)`,
      );
    }
    created.push(name);
    out(`created PVC ${namespace}/${name} from ${what}`);
  }
  out(`restored ${manifests.length} PVCs from ${summary}`);
  return 0;
}
