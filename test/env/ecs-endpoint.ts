/**
 * A small ECS (API version 2014-05-26) endpoint for tests, written from Alibaba Cloud's public
 * API reference ("V3 request structure and signature", DescribeSnapshots,
 * DescribeSnapshotLinks): it lets the real `@alicloud/ecs20140526` SDK talk to something that
 * behaves like ECS where snapcron depends on it.
 *
 * - Every request's ACS3-HMAC-SHA256 signature is recomputed from the request as received
 *   (canonical request: method, URI, the query re-encoded by RFC 3986 and sorted, the signed
 *   headers, the payload hash) with the account's secret; a wrong one is refused with ECS's
 *   error shape (`{RequestId, HostId, Code, Message, Recommend}`, HTTP 400/404). A reused
 *   nonce, a stale x-acs-date, a payload hash that does not match, an unsigned x-acs-* header
 *   are refused too.
 * - DescribeSnapshots (RegionId, SnapshotIds ≤ 100, Tag.N.Key/Value, Status, DiskId,
 *   MaxResults/NextToken) and DescribeSnapshotLinks (RegionId, DiskIds ≤ 100,
 *   MaxResults/NextToken) answer in ECS's JSON shapes.
 * - Faults can be injected per action: Throttling.User, 5xx, slow answers, NotFound codes, reset connections.
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeedSnapshot {
  SnapshotId: string;
  SnapshotName?: string;
  Status?: 'progressing' | 'accomplished' | 'failed';
  Progress?: string;
  SourceDiskId: string;
  /** GiB, as ECS gives it (a string). */
  SourceDiskSize?: number;
  CreationTime: string;
  RetentionDays?: number;
  Category?: string;
  RegionId?: string;
  /** Bytes this snapshot adds to its disk's chain (DescribeSnapshotLinks' TotalSize sums them). */
  SizeBytes?: number;
  Tags?: Record<string, string>;
}

export interface Fault {
  /** Only this action (DescribeSnapshots, DescribeSnapshotLinks); default every one. */
  action?: string;
  /** How many requests it hits (default 1). */
  times?: number;
  /** Answer with this ECS error (Throttling.User, InternalError, InvalidRegionId.NotFound…). */
  code?: string;
  status?: number;
  message?: string;
  /** Wait this long before answering (a slow ECS). */
  delayMs?: number;
  /** Answer nothing: reset the connection (TCP RST), as a load balancer or a broken link does. */
  reset?: boolean;
}

export interface RecordedRequest {
  action: string;
  params: Record<string, string>;
  accessKeyId: string;
  /** Every header as received (for tests that search them). */
  headers: Record<string, string>;
  status: number;
  code: string | undefined;
}

/** RFC 3986 percent-encoding, as the V3 canonical query string requires. */
export const rfc3986 = (text: string): string =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/** Decoded key/value pairs of a raw query or form body (`+` is a space only in forms). */
function pairs(raw: string, form: boolean): [string, string][] {
  if (!raw) return [];
  return raw
    .split('&')
    .filter(Boolean)
    .map((part) => {
      const i = part.indexOf('=');
      const dec = (s: string): string => decodeURIComponent(form ? s.replace(/\+/g, ' ') : s);
      return i < 0 ? [dec(part), ''] : [dec(part.slice(0, i)), dec(part.slice(i + 1))];
    });
}

class EcsHttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly recommend: string | undefined;
  constructor(status: number, code: string, message: string, recommend?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.recommend = recommend;
  }
}

export class EcsEndpoint {
  readonly snapshots = new Map<string, SeedSnapshot>();
  readonly requests: RecordedRequest[] = [];
  private readonly faults: Fault[] = [];
  private readonly nonces = new Set<string>();
  private server: Server | undefined;
  private port = 0;

  private readonly accounts: Record<string, string>;
  private readonly regionId: string;

  /** `accounts`: AccessKeyId → AccessKeySecret. */
  constructor(accounts: Record<string, string>, regionId = 'cn-hangzhou') {
    this.accounts = accounts;
    this.regionId = regionId;
  }

  /** `127.0.0.1:PORT`, for the SDK's `endpoint` (protocol http). */
  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  seed(...snapshots: SeedSnapshot[]): void {
    for (const s of snapshots) this.snapshots.set(s.SnapshotId, s);
  }

  inject(fault: Fault): void {
    this.faults.push({ times: 1, ...fault });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Requests of one action that ECS answered (any status). */
  count(action: string): number {
    return this.requests.filter((r) => r.action === action).length;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      headers[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : (v ?? '');
    const action = headers['x-acs-action'] ?? '';
    const record: RecordedRequest = {
      action,
      params: {},
      accessKeyId: '',
      headers,
      status: 200,
      code: undefined,
    };
    this.requests.push(record);
    const requestId = randomUUID().toUpperCase();
    const send = (status: number, payload: unknown): void => {
      record.status = status;
      res.writeHead(status, {
        'content-type': 'application/json;charset=utf-8',
        'x-acs-request-id': requestId,
      });
      res.end(JSON.stringify(payload));
    };
    try {
      const url = new URL(req.url ?? '/', 'http://ecs.local');
      const rawQuery = (req.url ?? '').includes('?')
        ? (req.url ?? '').slice((req.url ?? '').indexOf('?') + 1)
        : '';
      const queryPairs = pairs(rawQuery, false);
      record.accessKeyId = this.verify(req.method ?? '', url.pathname, queryPairs, headers, body);
      const params: Record<string, string> = Object.fromEntries(queryPairs);
      if ((headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded'))
        Object.assign(params, Object.fromEntries(pairs(body.toString('utf8'), true)));
      record.params = params;

      const fault = this.faults.find(
        (f) => (f.times ?? 0) > 0 && (f.action === undefined || f.action === action),
      );
      if (fault) {
        fault.times = (fault.times ?? 1) - 1;
        if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
        if (fault.reset) {
          record.status = 0;
          record.code = 'connection reset';
          req.socket.resetAndDestroy();
          return;
        }
        if (fault.code)
          throw new EcsHttpError(fault.status ?? 400, fault.code, fault.message ?? `Injected ${fault.code}.`);
      }
      if (headers['x-acs-version'] !== '2014-05-26')
        throw new EcsHttpError(400, 'InvalidVersion', 'Specified parameter Version is not valid.');
      if (!params.RegionId)
        throw new EcsHttpError(400, 'MissingRegionId', 'RegionId is mandatory for this action.');
      if (params.RegionId !== this.regionId)
        throw new EcsHttpError(404, 'InvalidRegionId.NotFound', 'The specified RegionId does not exist.');
      switch (action) {
        case 'DescribeSnapshots':
          return send(200, { RequestId: requestId, ...this.describeSnapshots(params) });
        case 'DescribeSnapshotLinks':
          return send(200, { RequestId: requestId, ...this.describeSnapshotLinks(params) });
        default:
          throw new EcsHttpError(
            404,
            'InvalidAction.NotFound',
            `Specified api is not found, please check your url and method.`,
          );
      }
    } catch (err) {
      const e =
        err instanceof EcsHttpError
          ? err
          : new EcsHttpError(
              500,
              'InternalError',
              'The request processing has failed due to some unknown error.',
            );
      record.code = e.code;
      send(e.status, {
        RequestId: requestId,
        HostId: 'ecs.aliyuncs.com',
        Code: e.code,
        Message: e.message,
        Recommend: e.recommend ?? `https://api.aliyun.com/troubleshoot?q=${e.code}&product=Ecs`,
      });
    }
  }

  /** Checks the ACS3-HMAC-SHA256 signature; returns the AccessKeyId. */
  private verify(
    method: string,
    path: string,
    query: [string, string][],
    headers: Record<string, string>,
    body: Buffer,
  ): string {
    const auth = headers.authorization ?? '';
    const m = /^ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{64})$/.exec(
      auth,
    );
    if (!m)
      throw new EcsHttpError(
        400,
        'IncompleteSignature',
        'The request signature does not conform to Aliyun standards.',
      );
    const [, accessKeyId = '', signedList = '', signature = ''] = m;
    const secret = this.accounts[accessKeyId];
    if (secret === undefined)
      throw new EcsHttpError(404, 'InvalidAccessKeyId.NotFound', 'Specified access key is not found.');
    const signed = signedList.split(';');
    // Every x-acs-* header, host and content-type must be signed; the list is sorted.
    for (const name of Object.keys(headers)) {
      if ((name.startsWith('x-acs-') || name === 'host' || name === 'content-type') && !signed.includes(name))
        throw new EcsHttpError(400, 'IncompleteSignature', `The header ${name} must be signed.`);
    }
    if ([...signed].sort().join(';') !== signedList)
      throw new EcsHttpError(400, 'IncompleteSignature', 'SignedHeaders must be sorted.');
    const date = Date.parse(headers['x-acs-date'] ?? '');
    if (Number.isNaN(date) || Math.abs(Date.now() - date) > 15 * 60_000)
      throw new EcsHttpError(
        400,
        'InvalidTimeStamp.Expired',
        'Specified time stamp or date value is expired.',
      );
    const nonce = headers['x-acs-signature-nonce'] ?? '';
    if (!nonce)
      throw new EcsHttpError(400, 'MissingSignatureNonce', 'SignatureNonce is mandatory for this action.');
    if (this.nonces.has(nonce))
      throw new EcsHttpError(400, 'SignatureNonceUsed', 'Specified signature nonce was used already.');
    const payloadHash = sha256(body);
    if (headers['x-acs-content-sha256'] !== payloadHash)
      throw new EcsHttpError(
        400,
        'InvalidParameter.ContentSHA256',
        'x-acs-content-sha256 does not match the body.',
      );

    const canonicalQuery = query
      .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join('&');
    const canonicalHeaders = signed.map((name) => `${name}:${(headers[name] ?? '').trim()}\n`).join('');
    const canonicalUri = path || '/';
    const canonicalRequest = [
      method.toUpperCase(),
      canonicalUri,
      canonicalQuery,
      canonicalHeaders,
      signedList,
      payloadHash,
    ].join('\n');
    const stringToSign = `ACS3-HMAC-SHA256\n${sha256(canonicalRequest)}`;
    const expected = createHmac('sha256', secret).update(stringToSign).digest('hex');
    if (expected !== signature)
      throw new EcsHttpError(
        400,
        'SignatureDoesNotMatch',
        `Specified signature is not matched with our calculation. server string to sign is:${stringToSign}`,
      );
    this.nonces.add(nonce);
    return accessKeyId;
  }

  private page<T>(items: T[], params: Record<string, string>): { page: T[]; nextToken: string } {
    const max = Math.min(Math.max(Number(params.MaxResults ?? 10) || 10, 1), 100);
    const start = params.NextToken ? Number(Buffer.from(params.NextToken, 'base64url').toString()) : 0;
    if (!Number.isInteger(start) || start < 0 || start > items.length)
      throw new EcsHttpError(
        400,
        'InvalidNextToken.Malformed',
        'The specified parameter NextToken is not valid.',
      );
    const end = start + max;
    return {
      page: items.slice(start, end),
      nextToken: end < items.length ? Buffer.from(String(end)).toString('base64url') : '',
    };
  }

  private idList(params: Record<string, string>, name: string): string[] | undefined {
    const raw = params[name];
    if (raw === undefined) return undefined;
    let ids: unknown;
    try {
      ids = JSON.parse(raw);
    } catch {
      throw new EcsHttpError(
        400,
        `Invalid${name}.Malformed`,
        `The specified parameter ${name} is not valid.`,
      );
    }
    if (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string'))
      throw new EcsHttpError(
        400,
        `Invalid${name}.Malformed`,
        `The specified parameter ${name} is not valid.`,
      );
    if (ids.length > 100)
      throw new EcsHttpError(
        400,
        `Invalid${name}.Malformed`,
        `The specified parameter ${name} has more than 100 values.`,
      );
    return ids as string[];
  }

  private describeSnapshots(params: Record<string, string>): Record<string, unknown> {
    const ids = this.idList(params, 'SnapshotIds');
    const tags: [string, string | undefined][] = [];
    for (let n = 1; params[`Tag.${n}.Key`] !== undefined; n++)
      tags.push([params[`Tag.${n}.Key`] ?? '', params[`Tag.${n}.Value`]]);
    let list = [...this.snapshots.values()].sort((a, b) => (a.CreationTime < b.CreationTime ? 1 : -1));
    if (ids) list = list.filter((s) => ids.includes(s.SnapshotId));
    if (params.DiskId) list = list.filter((s) => s.SourceDiskId === params.DiskId);
    if (params.Status && params.Status !== 'all')
      list = list.filter((s) => (s.Status ?? 'accomplished') === params.Status);
    for (const [k, v] of tags)
      list = list.filter((s) => s.Tags?.[k] !== undefined && (v === undefined || s.Tags[k] === v));
    // A tag filter answers with at most 1,000 resources.
    if (tags.length > 0) list = list.slice(0, 1000);
    const { page, nextToken } = this.page(list, params);
    return {
      TotalCount: list.length,
      NextToken: nextToken,
      Snapshots: {
        Snapshot: page.map((s) => ({
          SnapshotId: s.SnapshotId,
          SnapshotName: s.SnapshotName ?? '',
          Status: s.Status ?? 'accomplished',
          Progress: s.Progress ?? ((s.Status ?? 'accomplished') === 'accomplished' ? '100%' : '0%'),
          Available: (s.Status ?? 'accomplished') === 'accomplished',
          SourceDiskId: s.SourceDiskId,
          SourceDiskSize: String(s.SourceDiskSize ?? 20),
          SourceDiskType: 'data',
          SourceStorageType: 'disk',
          CreationTime: s.CreationTime,
          LastModifiedTime: s.CreationTime,
          RetentionDays: s.RetentionDays ?? 0,
          Category: s.Category ?? 'standard',
          SnapshotType: 'user',
          Usage: 'none',
          Encrypted: false,
          InstantAccess: false,
          RegionId: s.RegionId ?? this.regionId,
          SnapshotSN: `64472-${s.SnapshotId}`,
          ResourceGroupId: '',
          Tags: { Tag: Object.entries(s.Tags ?? {}).map(([TagKey, TagValue]) => ({ TagKey, TagValue })) },
        })),
      },
    };
  }

  private describeSnapshotLinks(params: Record<string, string>): Record<string, unknown> {
    const disks = this.idList(params, 'DiskIds');
    const byDisk = new Map<string, SeedSnapshot[]>();
    for (const s of this.snapshots.values()) {
      if (disks && !disks.includes(s.SourceDiskId)) continue;
      byDisk.set(s.SourceDiskId, [...(byDisk.get(s.SourceDiskId) ?? []), s]);
    }
    const links = [...byDisk].sort(([a], [b]) => (a < b ? -1 : 1));
    const { page, nextToken } = this.page(links, params);
    return {
      TotalCount: links.length,
      NextToken: nextToken,
      SnapshotLinks: {
        SnapshotLink: page.map(([disk, snaps]) => ({
          SnapshotLinkId: `sl-${disk.replace(/^d-/, '')}`,
          RegionId: this.regionId,
          InstanceId: '',
          InstanceName: '',
          SourceDiskId: disk,
          SourceDiskName: '',
          SourceDiskSize: snaps[0]?.SourceDiskSize ?? 20,
          SourceDiskType: 'data',
          Category: 'standard',
          InstantAccess: false,
          TotalCount: snaps.length,
          TotalSize: snaps.reduce((n, s) => n + (s.SizeBytes ?? 0), 0),
        })),
      },
    };
  }
}
