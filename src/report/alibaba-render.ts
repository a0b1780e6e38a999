/** The `--cloud alibaba` part of the table and Markdown report: ECS snapshots, orphans, cost, ACK warnings. */
import { formatBytes } from './format.ts';
import type { AlibabaReport, CostLine } from './model.ts';

export interface TextStyle {
  heading: (text: string) => string;
  line: (text: string) => string;
  table: (header: string[], rows: string[][]) => string;
  list: (items: string[]) => string;
}

const money = (c: CostLine): string => (c.monthly === null ? '-' : c.monthly.toFixed(2));

export function alibabaSection(a: AlibabaReport, style: TextStyle): string[] {
  const out: string[] = [];
  const price =
    a.cost.pricePerGbMonth === null
      ? 'no price given (--price-per-gb-month)'
      : `${a.cost.pricePerGbMonth} per GB-month`;
  out.push(
    style.heading(
      `Alibaba Cloud ECS, region ${a.regionId}, driver ${a.driver}${a.clusterId ? `, cluster ${a.clusterId}` : ''}`,
    ),
  );
  out.push(
    style.line(
      `${a.snapshots.length} snapshot(s) with ECS snapshots, ${a.snapshots.filter((s) => s.ecs === null).length} gone in ECS, ${a.orphans.length} orphan(s); storage ${formatBytes(a.cost.total.bytes)}${a.cost.total.monthly === null ? '' : `, ${money(a.cost.total)} a month`} (${price}); ${a.calls.describeSnapshots} DescribeSnapshots and ${a.calls.describeSnapshotLinks} DescribeSnapshotLinks call(s)`,
    ),
  );
  for (const n of a.notes) out.push(style.line(`note: ${n}`));
  if (a.snapshots.length > 0) {
    out.push(
      style.table(
        [
          'NAMESPACE',
          'VOLUMESNAPSHOT',
          'ECS SNAPSHOT',
          'STATUS',
          'PROGRESS',
          'DISK',
          'CREATED',
          'ECS DELETES AT',
        ],
        a.snapshots.map((s) => [
          s.namespace,
          s.volumeSnapshot,
          s.snapshotId,
          s.ecs ? s.ecs.status : 'GONE',
          s.ecs?.progress || '-',
          s.ecs?.sourceDiskId || '-',
          s.ecs?.creationTime ?? '-',
          s.ecs?.expiresAt ?? '-',
        ]),
      ),
    );
  }
  if (a.orphans.length > 0) {
    out.push(style.line('orphans (no VolumeSnapshotContent):'));
    out.push(
      style.table(
        ['ECS SNAPSHOT', 'NAME', 'MADE FOR', 'DISK', 'CREATED'],
        a.orphans.map((o) => [
          o.snapshotId,
          o.name || '-',
          o.volumeSnapshot ? `${o.namespace ?? '?'}/${o.volumeSnapshot}` : '-',
          o.sourceDiskId,
          o.creationTime ?? '-',
        ]),
      ),
    );
  }
  if (a.cost.disks.length > 0) {
    out.push(style.line('storage per disk (snapshot chain, DescribeSnapshotLinks):'));
    out.push(
      style.table(
        ['DISK', 'NAMESPACE', 'PVC', 'SNAPSHOTS', 'SIZE', 'MONTHLY'],
        a.cost.disks.map((d) => [
          d.diskId,
          d.namespace ?? '-',
          d.pvc ?? '(orphans)',
          String(d.snapshots),
          formatBytes(d.bytes),
          money(d),
        ]),
      ),
    );
    out.push(style.line('per schedule:'));
    out.push(
      style.list(
        a.cost.schedules.map(
          (s) => `${s.namespace}/${s.schedule}: ${formatBytes(s.bytes)}, ${money(s)} a month`,
        ),
      ),
    );
    out.push(style.line('per namespace:'));
    out.push(
      style.list(
        a.cost.namespaces.map((n) => `${n.namespace}: ${formatBytes(n.bytes)}, ${money(n)} a month`),
      ),
    );
  }
  if (a.warnings.length > 0) {
    out.push(style.line('ACK warnings:'));
    out.push(style.list(a.warnings.map((w) => `${w.namespace}/${w.schedule}: ${w.path}: ${w.message}`)));
  }
  return out;
}
