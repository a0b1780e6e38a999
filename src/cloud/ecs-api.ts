/**
 * The ECS side of snapcron without the SDK: the shapes, limits and errors that the report and
 * the controller share. `alibaba-ecs.ts` implements {@link EcsApi} with `@alicloud/ecs20140526`
 * and is imported only when `--cloud alibaba` is used: the SDK alone costs about 74 MB of
 * RSS, which the controller does not pay unless it reads ECS.
 */
/** The ACK disk CSI driver's name: its VolumeSnapshotContents' snapshotHandle is an ECS SnapshotId. */
export { ACK_DISK_DRIVER } from '../api/warnings.ts';
/** Tags the ACK disk CSI driver puts on the ECS snapshots it makes. */
export const TAG_CLUSTER = 'ack.aliyun.com';
export const TAG_SNAPSHOT_NAME = 'csi.alibabacloud.com/snapshot/name';
export const TAG_SNAPSHOT_NAMESPACE = 'csi.alibabacloud.com/snapshot/namespace';
/** DescribeSnapshots' SnapshotIds and DescribeSnapshotLinks' DiskIds take at most this many IDs. */
export const IDS_PER_CALL = 100;
/** MaxResults' upper bound. */
export const PAGE_SIZE = 100;
/** ECS answers a tag filter with at most this many resources. */
export const TAG_FILTER_LIMIT = 1000;

/** One ECS snapshot, as DescribeSnapshots describes it (the fields snapcron reads). */
export interface EcsSnapshot {
  snapshotId: string;
  snapshotName: string;
  /** progressing, accomplished or failed. */
  status: string;
  /** e.g. "100%". */
  progress: string;
  available: boolean;
  sourceDiskId: string;
  /** GiB. */
  sourceDiskSize: number;
  creationTime: string;
  /** ECS deletes the snapshot this many days after creationTime; null: kept until deleted. */
  retentionDays: number | null;
  /** standard, flash, archive… */
  category: string;
  tags: Record<string, string>;
}

/** A disk's snapshot chain, from DescribeSnapshotLinks. */
export interface EcsSnapshotLink {
  sourceDiskId: string;
  /** Bytes all the chain's snapshots really use (incremental). */
  totalSize: number;
  totalCount: number;
}

export interface EcsCalls {
  describeSnapshots: number;
  describeSnapshotLinks: number;
}

/** What the report needs from ECS; an interface so a test can count or fake it. */
export interface EcsApi {
  readonly calls: EcsCalls;
  /** The snapshots of these IDs that exist (missing ones are simply absent). */
  snapshotsByIds(ids: string[]): Promise<EcsSnapshot[]>;
  /** Every snapshot carrying tag key=value; `truncated` when ECS's tag-filter limit was reached. */
  snapshotsByTag(key: string, value: string): Promise<{ snapshots: EcsSnapshot[]; truncated: boolean }>;
  snapshotLinks(diskIds: string[]): Promise<EcsSnapshotLink[]>;
}

export interface EcsOptions {
  regionId: string;
  /** `host:port` of a private or test endpoint; default the region's public endpoint. */
  endpoint?: string | undefined;
  /** http for a local endpoint; default https. */
  protocol?: 'http' | 'https' | undefined;
  /** Connect and read timeout per attempt, ms (default 10,000). */
  timeoutMs?: number | undefined;
  /** Retries after the first attempt (default 4). */
  retries?: number | undefined;
  /** Longest backoff between attempts, ms (default 8,000). */
  maxBackoffMs?: number | undefined;
  /** A credential client; default `@alicloud/credentials`' default chain. */
  credential?: unknown;
}

/** A failed ECS call, in one line that says what to do. */
export class EcsError extends Error {
  readonly code: string;
  readonly statusCode: number | undefined;
  constructor(message: string, code: string, statusCode: number | undefined) {
    super(message);
    this.name = 'EcsError';
    this.code = code;
    this.statusCode = statusCode;
  }
}
