/**
 * `snapcron report --cloud alibaba`: the ECS snapshots behind the VolumeSnapshots of the ACK
 * disk CSI driver (a VolumeSnapshotContent's `snapshotHandle` is the ECS SnapshotId), and how
 * the two drifted apart:
 *
 * - `orphan`: an ECS snapshot the cluster's driver made (tag `ack.aliyun.com=<cluster id>`)
 *   that no VolumeSnapshotContent points at: it costs money and Kubernetes cannot see it;
 * - `dangling`: a VolumeSnapshotContent whose ECS snapshot is gone: a restore from it fails;
 * - `stuck`: an ECS snapshot still progressing after pendingDeadline, or failed in ECS while
 *   the VolumeSnapshot still waits;
 * - `expiring`: ECS deletes the snapshot (its RetentionDays) while snapcron's retention would
 *   still keep it: the retention the user wrote does not hold.
 *
 * Cost is the snapshot chain's real size per disk (DescribeSnapshotLinks' TotalSize), summed
 * per PVC, schedule and namespace, priced with `--price-per-gb-month` when given.
 *
 * {@link collectAlibaba} makes the ECS calls (batched and paged, src/cloud/alibaba-ecs.ts);
 * {@link auditAlibaba} is pure; {@link withAlibaba} adds the result to a report.
 */
import { byCodePoint } from '../api/order.ts';
import { LABEL_SCHEDULE, LABEL_PVC } from '../api/constants.ts';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../api/objects.ts';
import type { SnapshotSchedule } from '../api/types.generated.ts';
import { validateSchedule } from '../api/validate.ts';
import { ackWarnings, snapshotClassOf, type SnapshotClassLike } from '../api/warnings.ts';
import {
  TAG_CLUSTER,
  TAG_SNAPSHOT_NAME,
  TAG_SNAPSHOT_NAMESPACE,
  type EcsApi,
  type EcsSnapshot,
  type EcsSnapshotLink,
} from '../cloud/ecs-api.ts';
import { planRetention } from '../retention/plan.ts';
import { DEFAULT_PENDING_DEADLINE, sourcePvc } from '../retention/snapshot-state.ts';
import { fireTimes, parseSchedule } from '../schedule/cron.ts';
import { formatDuration, parseDuration } from '../schedule/duration.ts';
import { labelValue, snapshotMetadata, snapshotName } from '../snapshot/naming.ts';
import {
  ALL_FINDING_KINDS,
  ALIBABA_FINDING_KINDS,
  type AlibabaReport,
  type AlibabaSnapshot,
  type CostLine,
  type EcsSnapshotView,
  type Finding,
  type Report,
} from './model.ts';

/** The parts of a VolumeSnapshotContent the audit reads. */
export interface VolumeSnapshotContent {
  metadata: { name?: string | undefined };
  spec: {
    driver?: string;
    source?: { snapshotHandle?: string; volumeHandle?: string };
    volumeSnapshotRef?: { name?: string; namespace?: string };
  };
  status?: { snapshotHandle?: string; readyToUse?: boolean };
}

export interface AlibabaOptions {
  regionId: string;
  /** The VolumeSnapshotContents' driver (default the ACK disk driver). */
  driver: string;
  /** Orphans are searched by the driver's `ack.aliyun.com` tag; null: not searched. */
  clusterId: string | null;
  pricePerGbMonth: number | null;
}

/** What ECS said, as {@link collectAlibaba} gathered it. */
export interface EcsFacts {
  /** DescribeSnapshots by the contents' SnapshotIds: those that exist. */
  byId: EcsSnapshot[];
  /** DescribeSnapshots by the cluster's tag; null when not searched. */
  tagged: EcsSnapshot[] | null;
  taggedTruncated: boolean;
  links: EcsSnapshotLink[];
  calls: { describeSnapshots: number; describeSnapshotLinks: number };
}

export interface AlibabaInput {
  schedules: SnapshotSchedule[];
  pvcs: PersistentVolumeClaim[];
  snapshots: VolumeSnapshot[];
  contents: VolumeSnapshotContent[];
  classes: SnapshotClassLike[];
  now: Date;
  namespace?: string | undefined;
  schedule?: string | undefined;
}

const GiB = 1024 ** 3;
const DAY = 86_400_000;
const isoUtc = (t: Date | number): string => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
const handleOf = (c: VolumeSnapshotContent): string =>
  c.status?.snapshotHandle ?? c.spec.source?.snapshotHandle ?? '';
const byText = byCodePoint;

/** The contents of `driver` that have an ECS snapshot (a handle), cluster-wide. */
const driverContents = (contents: VolumeSnapshotContent[], driver: string): VolumeSnapshotContent[] =>
  contents.filter((c) => c.spec.driver === driver && handleOf(c) !== '');

/** Makes the ECS calls the audit needs: by ID in batches of 100, by tag, the disks' chains. */
export async function collectAlibaba(
  api: EcsApi,
  input: Pick<AlibabaInput, 'contents'>,
  options: AlibabaOptions,
): Promise<EcsFacts> {
  const ids = driverContents(input.contents, options.driver).map(handleOf);
  const byId = await api.snapshotsByIds(ids);
  let tagged: EcsSnapshot[] | null = null;
  let taggedTruncated = false;
  if (options.clusterId !== null) {
    const r = await api.snapshotsByTag(TAG_CLUSTER, options.clusterId);
    tagged = r.snapshots;
    taggedTruncated = r.truncated;
  }
  const disks = [...new Set([...byId, ...(tagged ?? [])].map((s) => s.sourceDiskId).filter(Boolean))].sort();
  const links = disks.length > 0 ? await api.snapshotLinks(disks) : [];
  return { byId, tagged, taggedTruncated, links, calls: { ...api.calls } };
}

function view(s: EcsSnapshot): EcsSnapshotView {
  const created = Date.parse(s.creationTime);
  return {
    snapshotId: s.snapshotId,
    name: s.snapshotName,
    status: s.status,
    progress: s.progress,
    available: s.available,
    sourceDiskId: s.sourceDiskId,
    sourceDiskSizeBytes: s.sourceDiskSize * GiB,
    creationTime: Number.isNaN(created) ? null : isoUtc(created),
    retentionDays: s.retentionDays,
    expiresAt:
      s.retentionDays !== null && !Number.isNaN(created) ? isoUtc(created + s.retentionDays * DAY) : null,
    category: s.category,
  };
}

const priced = (bytes: number, price: number | null): CostLine => ({
  bytes,
  monthly: price === null ? null : Math.round((bytes / GiB) * price * 100) / 100,
});

/** Would snapcron's retention still keep `target` at `at`, runs going on as planned until then? */
function keptAt(
  target: VolumeSnapshot,
  schedule: SnapshotSchedule,
  own: VolumeSnapshot[],
  restoring: PersistentVolumeClaim[],
  takesRuns: boolean,
  now: Date,
  at: Date,
): boolean {
  const spec = schedule.spec;
  const name = schedule.metadata?.name ?? '';
  const pvc = sourcePvc(target) ?? '';
  const future: VolumeSnapshot[] = [];
  if (takesRuns && at > now) {
    const cron = parseSchedule(spec.schedule, spec.timeZone ?? 'UTC');
    for (const t of fireTimes(cron, now, at)) {
      if (future.length >= 1000) break;
      const stamp = isoUtc(t);
      future.push({
        metadata: {
          name: snapshotName(pvc, name, t),
          namespace: target.metadata.namespace,
          ...snapshotMetadata(pvc, name, t),
        },
        spec: { source: { persistentVolumeClaimName: pvc } },
        status: { readyToUse: true, creationTime: stamp },
      });
    }
  }
  const plan = planRetention({
    scheduleName: name,
    retention: spec.retention,
    timeZone: spec.timeZone ?? 'UTC',
    snapshots: [...own, ...future],
    pvcs: restoring,
    now: at > now ? at : now,
  });
  return plan.verdicts.find((v) => v.name === target.metadata.name)?.verdict !== 'delete';
}

/** The audit: the ECS view of every content in scope, drift findings, cost and ACK warnings. Pure. */
export function auditAlibaba(
  input: AlibabaInput,
  ecs: EcsFacts,
  options: AlibabaOptions,
): { section: AlibabaReport; findings: Finding[] } {
  const { now, namespace } = input;
  const inScope = (ns: string | null | undefined): boolean => namespace === undefined || ns === namespace;
  const nsOf = (o: { metadata?: { namespace?: string | undefined } | undefined }): string =>
    o.metadata?.namespace || 'default';
  const findings: Finding[] = [];
  const notes: string[] = [];

  // Valid schedules by namespace/name (defaults applied).
  const schedules = new Map<string, SnapshotSchedule>();
  /** `namespace/label value` to schedule: how a snapshot's schedule label finds it. */
  const byLabel = new Map<string, SnapshotSchedule>();
  for (const s of input.schedules) {
    const { schedule } = validateSchedule({
      ...s,
      apiVersion: s.apiVersion ?? 'snapcron.io/v1',
      kind: s.kind ?? 'SnapshotSchedule',
      metadata: undefined,
      status: undefined,
    });
    if (!schedule) continue;
    const valid = { ...schedule, metadata: s.metadata };
    schedules.set(`${nsOf(s)}/${s.metadata?.name ?? ''}`, valid);
    byLabel.set(`${nsOf(s)}/${labelValue(s.metadata?.name ?? '')}`, valid);
  }
  const snapshotsByKey = new Map(input.snapshots.map((s) => [`${nsOf(s)}/${s.metadata.name ?? ''}`, s]));
  /** `namespace/schedule label/pvc` to that PVC's snapshots of the schedule (not being deleted). */
  const ownSnapshots = new Map<string, VolumeSnapshot[]>();
  for (const s of input.snapshots) {
    const label = s.metadata.labels?.[LABEL_SCHEDULE];
    if (label === undefined || s.metadata.deletionTimestamp) continue;
    const key = `${nsOf(s)}/${label}/${sourcePvc(s) ?? ''}`;
    const list = ownSnapshots.get(key);
    if (list) list.push(s);
    else ownSnapshots.set(key, [s]);
  }
  const pvcByKey = new Map(input.pvcs.map((p) => [`${nsOf(p)}/${p.metadata.name ?? ''}`, p]));
  const ecsById = new Map<string, EcsSnapshot>();
  for (const s of [...(ecs.tagged ?? []), ...ecs.byId]) ecsById.set(s.snapshotId, s);
  const contents = driverContents(input.contents, options.driver);
  const handles = new Set(contents.map(handleOf));

  // Per content in scope: its VolumeSnapshot and ECS snapshot.
  const rows: AlibabaSnapshot[] = [];
  const diskOwners = new Map<string, { namespace: string; pvc: string; schedules: Set<string> }>();
  const restoringByNs = new Map<string, PersistentVolumeClaim[]>();
  for (const p of input.pvcs) {
    if (p.status?.phase === 'Bound') continue;
    const list = restoringByNs.get(nsOf(p)) ?? [];
    list.push(p);
    restoringByNs.set(nsOf(p), list);
  }
  for (const c of contents) {
    const ref = c.spec.volumeSnapshotRef ?? {};
    const ns = ref.namespace ?? '';
    if (!inScope(ns)) continue;
    const vs = snapshotsByKey.get(`${ns}/${ref.name ?? ''}`);
    const scheduleLabel = vs?.metadata.labels?.[LABEL_SCHEDULE] ?? null;
    const schedule = scheduleLabel ? byLabel.get(`${ns}/${scheduleLabel}`) : undefined;
    const scheduleName = schedule?.metadata?.name ?? scheduleLabel;
    if (input.schedule !== undefined && scheduleName !== input.schedule) continue;
    const pvc = vs ? (sourcePvc(vs) ?? vs.metadata.labels?.[LABEL_PVC] ?? null) : null;
    const id = handleOf(c);
    const found = ecsById.get(id);
    const row: AlibabaSnapshot = {
      namespace: ns,
      volumeSnapshot: ref.name ?? '',
      content: c.metadata.name ?? '',
      snapshotId: id,
      schedule: scheduleName,
      pvc,
      readyToUse: vs?.status?.readyToUse === true,
      ecs: found ? view(found) : null,
    };
    rows.push(row);
    const where = `VolumeSnapshot ${ns}/${row.volumeSnapshot} (content ${row.content})`;
    const findingBase = { namespace: ns, schedule: scheduleName, pvc, snapshots: [row.volumeSnapshot] };

    if (!found) {
      findings.push({
        kind: 'dangling',
        ...findingBase,
        message: `${where} stands for ECS snapshot ${id}, which ECS no longer has (deleted by the class's retentionDays or by hand): a restore from it would fail. Delete the VolumeSnapshot (kubectl delete volumesnapshot ${row.volumeSnapshot} -n ${ns}) and check who deletes ECS snapshots`,
      });
      continue;
    }
    if (found.sourceDiskId && pvc) {
      const owner = diskOwners.get(found.sourceDiskId) ?? {
        namespace: ns,
        pvc,
        schedules: new Set<string>(),
      };
      if (scheduleName) owner.schedules.add(scheduleName);
      diskOwners.set(found.sourceDiskId, owner);
    }

    const created = Date.parse(found.creationTime);
    const deadlineText = schedule?.spec.retention.pendingDeadline ?? DEFAULT_PENDING_DEADLINE;
    const deadline = parseDuration(deadlineText);
    if (found.status === 'failed' && !row.readyToUse) {
      findings.push({
        kind: 'stuck',
        ...findingBase,
        message: `${where}: ECS snapshot ${id} failed in ECS, while Kubernetes still waits for it: it will never be ready. Delete the VolumeSnapshot so the next run takes a new one, and check the disk in the ECS console`,
      });
    } else if (
      found.status === 'progressing' &&
      !Number.isNaN(created) &&
      now.getTime() - created > deadline
    ) {
      findings.push({
        kind: 'stuck',
        ...findingBase,
        message: `${where}: ECS snapshot ${id} is still in progress (${found.progress || '?'}) ${formatDuration(now.getTime() - created)} after it began, past pendingDeadline ${deadlineText}: ECS takes one snapshot of a disk at a time, so the disk's next runs wait. Check the snapshot in the ECS console`,
      });
    }

    // Expiring: ECS deletes it before snapcron's retention would.
    if (found.retentionDays !== null && !Number.isNaN(created) && schedule && vs && pvc) {
      const ecsDeletes = new Date(created + found.retentionDays * DAY);
      const own = ownSnapshots.get(`${ns}/${scheduleLabel ?? ''}/${pvc}`) ?? [];
      const claim = pvcByKey.get(`${ns}/${pvc}`);
      const takesRuns = schedule.spec.suspend !== true && claim?.status?.phase === 'Bound';
      if (keptAt(vs, schedule, own, restoringByNs.get(ns) ?? [], takesRuns, now, ecsDeletes)) {
        findings.push({
          kind: 'expiring',
          ...findingBase,
          message: `${where}: ECS deletes snapshot ${id} at ${isoUtc(ecsDeletes)} (RetentionDays ${found.retentionDays}), while schedule ${ns}/${scheduleName}'s retention would still keep it then: the retention you wrote does not hold. Remove retentionDays from the VolumeSnapshotClass, or shorten the schedule's retention to fit it`,
        });
      }
    }
  }

  // Orphans: the cluster's ECS snapshots with no content pointing at them.
  const orphans: AlibabaReport['orphans'] = [];
  if (ecs.tagged === null) {
    notes.push('orphans not searched: give --cluster-id (the ACK cluster ID its driver tags snapshots with)');
  } else {
    if (ecs.taggedTruncated)
      notes.push('ECS answers a tag filter with at most 1,000 snapshots: orphans beyond those were not seen');
    for (const s of ecs.tagged) {
      if (handles.has(s.snapshotId)) continue;
      const ns = s.tags[TAG_SNAPSHOT_NAMESPACE] ?? null;
      if (namespace !== undefined && ns !== namespace) continue;
      if (input.schedule !== undefined) continue;
      const vsName = s.tags[TAG_SNAPSHOT_NAME] ?? null;
      orphans.push({ ...view(s), namespace: ns, volumeSnapshot: vsName });
      findings.push({
        kind: 'orphan',
        namespace: ns ?? '',
        schedule: null,
        pvc: null,
        snapshots: [s.snapshotId],
        message: `ECS snapshot ${s.snapshotId} (${s.snapshotName || 'no name'}${vsName ? `, made for VolumeSnapshot ${ns ?? '?'}/${vsName}` : ''}, disk ${s.sourceDiskId}, ${s.creationTime}) has no VolumeSnapshotContent in the cluster: it costs storage and Kubernetes cannot see or restore it. Delete it in ECS (DeleteSnapshot), or import it with a pre-provisioned VolumeSnapshotContent`,
      });
    }
  }
  rows.sort((a, b) => byText(a.namespace, b.namespace) || byText(a.volumeSnapshot, b.volumeSnapshot));
  orphans.sort((a, b) => byText(a.snapshotId, b.snapshotId));

  // Cost: the chain's size per disk, attributed to the PVC whose snapshots it holds.
  const price = options.pricePerGbMonth;
  const orphanDisks = new Map<string, string | null>();
  for (const o of orphans) if (!diskOwners.has(o.sourceDiskId)) orphanDisks.set(o.sourceDiskId, o.namespace);
  const disks: AlibabaReport['cost']['disks'] = [];
  const pvcCost = new Map<string, AlibabaReport['cost']['pvcs'][number]>();
  const scheduleCost = new Map<string, number>();
  const namespaceCost = new Map<string, number>();
  let total = 0;
  for (const l of [...ecs.links].sort((a, b) => byText(a.sourceDiskId, b.sourceDiskId))) {
    const owner = diskOwners.get(l.sourceDiskId);
    const ns = owner?.namespace ?? orphanDisks.get(l.sourceDiskId) ?? null;
    if (!owner && !orphanDisks.has(l.sourceDiskId)) continue;
    disks.push({
      diskId: l.sourceDiskId,
      snapshots: l.totalCount,
      namespace: ns,
      pvc: owner?.pvc ?? null,
      ...priced(l.totalSize, price),
    });
    total += l.totalSize;
    if (ns !== null) namespaceCost.set(ns, (namespaceCost.get(ns) ?? 0) + l.totalSize);
    if (owner) {
      pvcCost.set(`${owner.namespace}/${owner.pvc}`, {
        namespace: owner.namespace,
        pvc: owner.pvc,
        diskId: l.sourceDiskId,
        ...priced(l.totalSize, price),
      });
      for (const s of owner.schedules) {
        const key = `${owner.namespace}/${s}`;
        scheduleCost.set(key, (scheduleCost.get(key) ?? 0) + l.totalSize);
      }
    }
  }

  // ACK warnings for the schedules in scope.
  const warnings: AlibabaReport['warnings'] = [];
  for (const [key, s] of [...schedules].sort(([a], [b]) => byText(a, b))) {
    const ns = nsOf(s);
    const name = s.metadata?.name ?? '';
    if (!inScope(ns) || (input.schedule !== undefined && name !== input.schedule)) continue;
    for (const w of ackWarnings(s.spec, snapshotClassOf(s.spec, input.classes), now))
      warnings.push({ namespace: ns, schedule: key.slice(ns.length + 1), ...w });
  }

  return {
    section: {
      regionId: options.regionId,
      clusterId: options.clusterId,
      driver: options.driver,
      snapshots: rows,
      orphans,
      cost: {
        pricePerGbMonth: price,
        total: priced(total, price),
        disks,
        pvcs: [...pvcCost.values()].sort((a, b) => byText(a.namespace, b.namespace) || byText(a.pvc, b.pvc)),
        schedules: [...scheduleCost]
          .sort(([a], [b]) => byText(a, b))
          .map(([key, bytes]) => {
            const [ns = '', ...rest] = key.split('/');
            return { namespace: ns, schedule: rest.join('/'), ...priced(bytes, price) };
          }),
        namespaces: [...namespaceCost]
          .sort(([a], [b]) => byText(a, b))
          .map(([ns, bytes]) => ({ namespace: ns, ...priced(bytes, price) })),
      },
      warnings,
      notes,
      calls: { ...ecs.calls },
    },
    findings,
  };
}

/** The report with the audit added: its findings merged in kind order, counted in totals. */
export function withAlibaba(report: Report, audit: { section: AlibabaReport; findings: Finding[] }): Report {
  const order = new Map<string, number>(ALL_FINDING_KINDS.map((k, i) => [k, i]));
  const findings = [...report.findings, ...audit.findings].sort(
    (a, b) =>
      (order.get(a.kind) ?? 0) - (order.get(b.kind) ?? 0) ||
      byText(a.namespace, b.namespace) ||
      byText(a.schedule ?? '', b.schedule ?? '') ||
      byText(a.pvc ?? '', b.pvc ?? '') ||
      byText(a.snapshots[0] ?? '', b.snapshots[0] ?? ''),
  );
  const counts = { ...report.totals.findings };
  for (const k of ALIBABA_FINDING_KINDS) counts[k] = 0;
  for (const f of audit.findings) counts[f.kind] = (counts[f.kind] ?? 0) + 1;
  return { ...report, findings, totals: { ...report.totals, findings: counts }, alibaba: audit.section };
}
