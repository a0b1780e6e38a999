/**
 * The retention report's shape: what `snapcron report -o json` prints and the controller's
 * `/report` serves. It is a contract for machines: fields are only ever added. Times are
 * RFC 3339 UTC strings with seconds, durations are whole seconds, sizes are bytes; a value
 * that does not exist is `null`, never a missing key (except `snapshots`, present with --plan).
 * README.md ("Retention reports") documents every field with an example. The fields for
 * consistency groups (`group`, `groups`, `totals.groups`, a finding's `group`) are there only
 * when a schedule in scope has spec.group, so a report without groups reads as it always did.
 */
import type { GroupPolicy, RetentionPolicy } from '../api/types.generated.ts';
import type { DeleteReason, ProtectReason, Reason } from '../retention/plan.ts';
import type { SnapshotState } from '../retention/snapshot-state.ts';

export const REPORT_API_VERSION = 'snapcron.io/v1';
export const REPORT_KIND = 'RetentionReport';

/** What `--fail-on` takes, in the order findings are listed. */
export const FINDING_KINDS = ['unprotected', 'invalid', 'stale', 'failed', 'stuck'] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];
/** Drift between the cluster and Alibaba Cloud ECS, found with `--cloud alibaba` (src/report/alibaba.ts). */
export const ALIBABA_FINDING_KINDS = ['orphan', 'dangling', 'expiring'] as const;
export type AlibabaFindingKind = (typeof ALIBABA_FINDING_KINDS)[number];
/** Every kind `--fail-on` takes, in the order findings are listed. */
export const ALL_FINDING_KINDS = [...FINDING_KINDS, ...ALIBABA_FINDING_KINDS] as const;

export type StateCounts = Record<SnapshotState, number>;

export interface Report {
  apiVersion: typeof REPORT_API_VERSION;
  kind: typeof REPORT_KIND;
  /** The moment the report describes (`--now`, else when it was made). */
  generatedAt: string;
  scope: {
    /** The one namespace looked at; null: every namespace. */
    namespace: string | null;
    /** Only this schedule (`--schedule`); null: every schedule. */
    schedule: string | null;
  };
  /** PVCs in scope that no active schedule selects; empty with --schedule. Namespace, then name. */
  unprotected: UnprotectedPvc[];
  /** Namespace, then name. */
  schedules: ScheduleReport[];
  /** Everything a person should act on, one line each: kind order, then namespace, schedule, PVC. */
  findings: Finding[];
  totals: Totals;
  /** With `--cloud alibaba` only: the ECS snapshots behind the VolumeSnapshots, drift, cost, ACK warnings. */
  alibaba?: AlibabaReport;
}

export interface UnprotectedPvc {
  namespace: string;
  pvc: string;
  /** status.phase, e.g. Bound or Pending. */
  phase: string | null;
  /** spec.resources.requests.storage, e.g. 20Gi. */
  storage: string | null;
  /**
   * Schedules that select the PVC but take no snapshots of it: suspended or invalid ones, and
   * (`not-in-group`) ones with spec.group by Label whose labelKey the PVC lacks: it is in no group.
   */
  selectedBy: SelectedBy[];
}

export type SelectedBy =
  | { schedule: string; why: 'suspended' | 'invalid' }
  | { schedule: string; why: 'not-in-group'; labelKey: string };

export interface ScheduleReport {
  namespace: string;
  name: string;
  /** spec.schedule as written. */
  schedule: string;
  timeZone: string;
  suspended: boolean;
  /** Why the schedule is invalid (it takes no snapshots), field by field; empty when valid. */
  errors: { path: string; message: string }[];
  /** From status: the scheduled time of the last run taken, and of the last run with every snapshot created. */
  lastScheduleTime: string | null;
  lastSuccessfulTime: string | null;
  /** The next fire time after generatedAt; null when suspended or invalid. */
  nextFireTime: string | null;
  /** The gap between the two most recent fire times: what `stale` is measured against. */
  intervalSeconds: number | null;
  retention: RetentionPolicy | null;
  counts: StateCounts;
  restoreSizeBytes: number;
  /** PVCs the schedule selects, and PVCs that still have snapshots of it; by name. Empty with spec.group (see `groups`). */
  pvcs: PvcReport[];
  /** spec.group as written: the schedule takes one VolumeGroupSnapshot per group. Only with spec.group. */
  group?: GroupPolicy;
  /** Only with spec.group: a row per group, by key; `counts` and retention are then per recovery point. */
  groups?: GroupReport[];
}

export interface SnapshotRef {
  name: string;
  /** When the data was cut (status.creationTime, else creation). */
  time: string;
}

export interface PvcReport {
  pvc: string;
  /** status.phase; null when the PVC no longer exists (its snapshots do). */
  phase: string | null;
  /** The schedule selects it now (it may have snapshots of the schedule without). */
  selected: boolean;
  counts: StateCounts;
  newestReady: (SnapshotRef & { ageSeconds: number }) | null;
  /** The oldest ready snapshot retention keeps: how far back a restore can go. */
  oldestKept: SnapshotRef | null;
  /** Sum of status.restoreSize over the PVC's snapshots of this schedule. */
  restoreSizeBytes: number;
  stale: boolean;
  /** Snapshots kept by a protection, and which: hold, in-use, pending, stuck, min-ready. */
  protected: (SnapshotRef & { reasons: readonly ProtectReason[] })[];
  nextDeletion: NextDeletion | null;
  /** With --plan: every snapshot with the planner's verdict and reasons, newest first. */
  snapshots?: SnapshotVerdict[];
}

export interface NextDeletion {
  /** When retention first deletes it: generatedAt when it already would. */
  at: string;
  /** now: retention deletes it at its next pass; run: the run at `at` pushes it out; time: it expires or fails at `at`. */
  trigger: 'now' | 'run' | 'time';
  /** The oldest snapshot deleted at `at`. */
  name: string;
  time: string;
  reasons: readonly DeleteReason[];
  /** True when it is a snapshot a future run takes (its name is the one that run will use). */
  planned: boolean;
  /** How many snapshots of the PVC go at `at`, this one included. */
  count: number;
}

export interface SnapshotVerdict extends SnapshotRef {
  state: SnapshotState;
  verdict: 'keep' | 'delete';
  reasons: readonly Reason[];
  overridden: readonly DeleteReason[];
  restoreSize: string | null;
  error: string | null;
}

/** A member VolumeSnapshot of a recovery point, made by the snapshot-controller for one PVC. */
export interface MemberSnapshot {
  pvc: string;
  name: string;
  readyToUse: boolean;
  restoreSize: string | null;
  error: string | null;
}

/**
 * One group of a schedule with spec.group: what a PvcReport says of a PVC, said of the group's
 * recovery points (VolumeGroupSnapshots), judged as the controller judges them (a recovery
 * point is kept or deleted whole).
 */
export interface GroupReport {
  /** The group key: `group` for by Schedule, the PVCs' label value for by Label. */
  group: string;
  /** The PVCs the schedule selects into the group now, by name; empty when none is left. */
  members: { pvc: string; phase: string | null }[];
  /** Bound when every member is, else Pending (the group is taken whole once all are Bound); null when no member is left. */
  phase: string | null;
  /** The schedule selects PVCs into this group now (it may have recovery points without). */
  selected: boolean;
  /** Recovery points by state. */
  counts: StateCounts;
  /** The newest ready recovery point, with its members: what a restore of the group reads. */
  newestReady: (SnapshotRef & { ageSeconds: number; members: MemberSnapshot[] }) | null;
  oldestKept: SnapshotRef | null;
  /** Sum of the members' status.restoreSize over the group's recovery points. */
  restoreSizeBytes: number;
  stale: boolean;
  protected: (SnapshotRef & { reasons: readonly ProtectReason[] })[];
  nextDeletion: NextDeletion | null;
  /** With --plan: every recovery point with the planner's verdict and its members, newest first. */
  snapshots?: (SnapshotVerdict & { members: MemberSnapshot[] })[];
}

export interface Finding {
  kind: FindingKind | AlibabaFindingKind;
  namespace: string;
  schedule: string | null;
  pvc: string | null;
  /** The group key, for a finding about a group of a schedule with spec.group (then `pvc` is null). */
  group?: string;
  /** The snapshots concerned (failed, stuck, the stale PVC's newest ready). */
  snapshots: string[];
  message: string;
}

export interface Totals {
  schedules: number;
  suspendedSchedules: number;
  invalidSchedules: number;
  /** PVCs in scope (not being deleted). */
  pvcs: number;
  unprotectedPvcs: number;
  stalePvcs: number;
  snapshots: StateCounts;
  restoreSizeBytes: number;
  /** A count per kind; the `--cloud` kinds only with `--cloud`. */
  findings: Record<FindingKind, number> & Partial<Record<AlibabaFindingKind, number>>;
  /** Only when a schedule in scope has spec.group: its groups; their recovery points are also in `snapshots`. */
  groups?: {
    groups: number;
    staleGroups: number;
    recoveryPoints: StateCounts;
    /** Member VolumeSnapshots of those recovery points. */
    memberSnapshots: number;
  };
}

/** One ECS snapshot as DescribeSnapshots tells it. */
export interface EcsSnapshotView {
  snapshotId: string;
  /** ECS's SnapshotName (the ACK driver's: `alibabacloud-disk-<VolumeSnapshot UID>`). */
  name: string;
  /** progressing, accomplished or failed. */
  status: string;
  progress: string;
  available: boolean;
  sourceDiskId: string;
  sourceDiskSizeBytes: number;
  creationTime: string | null;
  /** ECS deletes it by itself this many days after creation (the class's retentionDays); null: never. */
  retentionDays: number | null;
  /** creationTime + retentionDays: when ECS deletes it. */
  expiresAt: string | null;
  category: string;
}

export interface AlibabaSnapshot {
  namespace: string;
  /** The VolumeSnapshot the content is bound to. */
  volumeSnapshot: string;
  content: string;
  snapshotId: string;
  /** The snapcron schedule and source PVC (labels); null for snapshots snapcron did not take. */
  schedule: string | null;
  pvc: string | null;
  readyToUse: boolean;
  /** null: ECS has no such snapshot (a `dangling` finding). */
  ecs: EcsSnapshotView | null;
}

export interface CostLine {
  bytes: number;
  /** bytes / 2^30 × --price-per-gb-month, rounded to cents; null without a price. */
  monthly: number | null;
}

export interface AlibabaReport {
  regionId: string;
  /** The ACK cluster ID whose `ack.aliyun.com` tag marks its snapshots; null: orphans were not searched. */
  clusterId: string | null;
  /** The CSI driver whose VolumeSnapshotContents are ECS snapshots. */
  driver: string;
  snapshots: AlibabaSnapshot[];
  /** ECS snapshots the cluster's driver made that no VolumeSnapshotContent points at. */
  orphans: (EcsSnapshotView & { namespace: string | null; volumeSnapshot: string | null })[];
  cost: {
    pricePerGbMonth: number | null;
    total: CostLine;
    /** Per disk: DescribeSnapshotLinks' TotalSize, the chain's real (incremental) size. */
    disks: (CostLine & { diskId: string; snapshots: number; namespace: string | null; pvc: string | null })[];
    pvcs: (CostLine & { namespace: string; pvc: string; diskId: string })[];
    schedules: (CostLine & { namespace: string; schedule: string })[];
    namespaces: (CostLine & { namespace: string })[];
  };
  /** ACK advice about schedules (see src/api/warnings.ts ackWarnings). */
  warnings: { namespace: string; schedule: string; path: string; message: string }[];
  /** What the audit could not see, e.g. a tag filter that hit ECS's 1,000-resource limit. */
  notes: string[];
  /** ECS API calls made. */
  calls: { describeSnapshots: number; describeSnapshotLinks: number };
}
