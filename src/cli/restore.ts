/** `snapcron restore`: the webhook's choice, without a webhook — create (or print) a PVC from the best snapshot. */
import { stringify } from 'yaml';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../api/objects.ts';
import { SNAPSHOT_GROUP, SNAPSHOT_KIND } from '../api/constants.ts';
import { Kube } from '../kube/client.ts';
import { errorMessage, statusOf } from '../kube/retry.ts';
import {
  ANNOTATION_RESTORED_FROM,
  ANNOTATION_RESTORED_TIME,
  chooseSnapshot,
  sizeProblem,
} from '../restore/select.ts';
import { formatDuration } from '../schedule/duration.ts';
import { UserError } from './errors.ts';
import { parseTimeFlag } from './manifests.ts';
import { defineCommand, parseCommand, usageError } from './options.ts';

export const restoreCommand = defineCommand({
  name: 'restore',
  summary:
    "Creates (or prints) a PVC restored from a source PVC's newest good snapshot, as the webhook would, and tells which snapshot and how old it is.",
  positionals: 'NEW_PVC',
  options: {
    from: {
      type: 'string',
      required: true,
      value: 'SOURCE_PVC',
      description: 'the PVC whose snapshots to restore from (it may be gone)',
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
      description: 'namespace of both PVCs',
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

export async function runRestore(args: string[], now: Date, out: (line: string) => void): Promise<number> {
  const { values, positionals } = parseCommand(restoreCommand, args);
  const [name] = positionals;
  if (!name || positionals.length !== 1)
    throw usageError(restoreCommand, name ? 'one new PVC name only' : 'missing the new PVC name');
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
  const choice = chooseSnapshot(
    { sourcePvc: values.from, schedule: values.schedule, at, policy: 'Required' },
    namespace,
    list.items,
  );
  if (choice.kind === 'none') throw new UserError(choice.message);

  let source: PersistentVolumeClaim | undefined;
  try {
    source = (await kube.read(() =>
      kube.core.readNamespacedPersistentVolumeClaim({ name: values.from, namespace }),
    )) as unknown as PersistentVolumeClaim;
  } catch (err) {
    if (statusOf(err) !== 404) throw err; // a deleted source is the case that matters most: go on without it
  }
  const size =
    values.size ?? choice.snapshot.status?.restoreSize ?? source?.spec?.resources?.requests?.storage;
  if (!size)
    throw new UserError(`snapshot ${choice.name} has no restoreSize yet: pass --size, e.g. --size 20Gi`);
  const problem = sizeProblem(choice.snapshot, size);
  if (problem) throw new UserError(problem);
  const ref = { apiGroup: SNAPSHOT_GROUP, kind: SNAPSHOT_KIND, name: choice.name };
  const storageClassName = values['storage-class'] ?? source?.spec?.storageClassName;
  const sourceSpec = source?.spec as { accessModes?: string[] } | undefined;
  const pvc = {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name,
      namespace,
      annotations: {
        [ANNOTATION_RESTORED_FROM]: choice.name,
        [ANNOTATION_RESTORED_TIME]: choice.time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
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
  const age = formatDuration(now.getTime() - choice.time.getTime());
  if (values['dry-run']) {
    out(values.output === 'json' ? JSON.stringify(pvc, null, 2) : stringify(pvc).trimEnd());
    process.stderr.write(
      `# would restore from VolumeSnapshot ${choice.name}, taken ${choice.time.toISOString()} (${age} ago)\n`,
    );
    return 0;
  }
  try {
    await kube.write(() => kube.core.createNamespacedPersistentVolumeClaim({ namespace, body: pvc }));
  } catch (err) {
    throw new UserError(`could not create PVC ${namespace}/${name}: ${errorMessage(err)}`);
  }
  out(
    `created PVC ${namespace}/${name} from VolumeSnapshot ${choice.name}, taken ${choice.time.toISOString()} (${age} ago)`,
  );
  return 0;
}
