/**
 * The ECS calls snapcron makes (read-only), through `@alicloud/ecs20140526` and its
 * OpenAPI core: DescribeSnapshots by SnapshotIds (at most 100 a call) or by tag, and
 * DescribeSnapshotLinks by DiskIds (at most 100 a call), each paged with MaxResults/NextToken.
 * Never one call per snapshot.
 *
 * Credentials come from `@alicloud/credentials`' default chain (environment access key,
 * RRSA/OIDC on ACK, config files, the ECS RAM role). Retries (`Throttling*`, 5xx, timeouts,
 * reset connections) go through the SDK's own `retryOptions`, with exponential backoff and
 * jitter; connect and read timeouts are set (the SDK's default is 3 s). Errors become
 * {@link EcsError}s with one clear line, never a stack trace, and never a credential.
 */
import EcsModule, * as $Ecs from '@alicloud/ecs20140526';
import CredentialsModule from '@alicloud/credentials';
import * as $OpenApi from '@alicloud/openapi-core';
import { BackoffPolicy, RetryOptions, type RetryPolicyContext } from '@darabonba/typescript';

import {
  EcsError,
  IDS_PER_CALL,
  PAGE_SIZE,
  TAG_FILTER_LIMIT,
  type EcsApi,
  type EcsCalls,
  type EcsOptions,
  type EcsSnapshot,
  type EcsSnapshotLink,
} from './ecs-api.ts';

export * from './ecs-api.ts';

/** The SDK's error classes (ThrottlingError, ServerError) and transport failures that are worth another try. */
const RETRY_EXCEPTIONS = ['ThrottlingError', 'ServerError', 'RequestTimeoutError', 'ResponseTimeoutError'];
const RETRY_CODES = [
  'Throttling',
  'Throttling.User',
  'Throttling.Api',
  'ServiceUnavailable',
  'InternalError',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
];

/**
 * Exponential backoff with equal jitter, as a policy of the SDK's own retry machinery: the
 * n-th retry waits between half and all of min(cap, base × 2^(n-1)). (The SDK's built-in
 * exponential policies grow by 2^period per retry, far too steep to be useful here.)
 */
class JitteredExponential extends BackoffPolicy {
  private readonly baseMs: number;
  private readonly capMs: number;
  constructor(baseMs: number, capMs: number) {
    super({ policy: 'JitteredExponential' });
    this.baseMs = baseMs;
    this.capMs = capMs;
  }
  override getDelayTime(ctx: RetryPolicyContext): number {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** Math.max(0, ctx.retriesAttempted - 1));
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }
}

/** The SDK's retry options: `retries` more attempts for throttling, 5xx and transport failures, backing off. */
export function ecsRetryOptions(retries: number, maxBackoffMs: number, baseBackoffMs = 200): RetryOptions {
  const options = new RetryOptions({
    retryable: retries > 0,
    retryCondition: [
      {
        maxAttempts: retries + 1,
        exception: RETRY_EXCEPTIONS,
        errorCode: RETRY_CODES,
        maxDelay: maxBackoffMs,
      },
    ],
    noRetryCondition: [],
  });
  for (const c of options.retryCondition) c.backoff = new JitteredExponential(baseBackoffMs, maxBackoffMs);
  return options;
}

/** Credentials this process could hold (the key ID too): scrubbed from every message, whatever produced it. */
function secrets(): string[] {
  return [
    process.env.ALIBABA_CLOUD_ACCESS_KEY_ID,
    process.env.ALICLOUD_ACCESS_KEY_ID,
    process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET,
    process.env.ALICLOUD_ACCESS_KEY_SECRET,
    process.env.ALIBABA_CLOUD_SECURITY_TOKEN,
    process.env.ALICLOUD_SECURITY_TOKEN,
  ].filter((s): s is string => typeof s === 'string' && s.length >= 4);
}

export function scrub(text: string): string {
  let out = text;
  for (const s of secrets()) out = out.split(s).join('***');
  // A signature or authorization header quoted by a transport error.
  return out.replace(/(Authorization:?\s*)[^;\n]*/gi, '$1***').replace(/(Signature=)[0-9a-f]+/gi, '$1***');
}

/** One line for an SDK or transport error: the ECS code, the message, the request id; no stack. */
export function describeEcsError(action: string, err: unknown): EcsError {
  const e = (err ?? {}) as {
    name?: string;
    code?: unknown;
    statusCode?: unknown;
    message?: unknown;
    requestId?: unknown;
    data?: { Message?: unknown; Recommend?: unknown };
  };
  const code = typeof e.code === 'string' && e.code !== '' ? e.code : String(e.name ?? 'Error');
  const status = typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const raw = typeof e.data?.Message === 'string' ? e.data.Message : String(e.message ?? err);
  // The SDK's message is "code: 403, <Message> request id: <id>": keep the ECS part.
  const message = raw
    .replace(/\s*\n\s*/g, ' ')
    .replace(/^code: \d+, /, '')
    .replace(/ request id: .*$/, '')
    // A transport error's message runs into the request line ("read ECONNRESETPOST http://…").
    .replace(/(?<=\S)(?=(?:GET|POST) https?:\/\/)/, '; ');
  const requestId = typeof e.requestId === 'string' && e.requestId !== 'undefined' ? e.requestId : undefined;
  let advice = '';
  if (
    /^(InvalidAccessKeyId|SignatureDoesNotMatch|IncompleteSignature|InvalidSecurityToken|Forbidden|NoPermission)/.test(
      code,
    )
  )
    advice =
      ': check the credentials (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, RRSA on ACK, or the ECS RAM role) and that they allow ecs:DescribeSnapshots and ecs:DescribeSnapshotLinks';
  else if (/Throttling/.test(code)) advice = ': ECS kept throttling after the retries; try again later';
  else if (/Timeout/i.test(code))
    advice = ': ECS did not answer in time after the retries; check the endpoint or raise --ecs-timeout';
  else if (/^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN)$/.test(code)) advice = ': check --ecs-endpoint or --region';
  else if (/^(ECONNRESET|EPIPE)$/.test(code))
    advice =
      ': the connection to ECS kept breaking after the retries; check the network path to the endpoint';
  const text = `ECS ${action} failed: ${code}${status ? ` (HTTP ${status})` : ''}: ${message}${requestId ? ` (request id ${requestId})` : ''}${advice}`;
  return new EcsError(scrub(text), code, status);
}

type EcsClient = InstanceType<typeof EcsModule.default>;
type CredentialClient = InstanceType<typeof CredentialsModule.default>;

/**
 * The class a CommonJS package exports as `default`: Node's ESM loader hands over
 * `module.exports` (the class is its `.default`), a bundler may hand over the class itself.
 */
function cjsClass<T>(mod: unknown): T {
  if (typeof mod === 'function') return mod as T;
  const m = mod as { default?: unknown };
  if (typeof m.default === 'function') return m.default as T;
  return (m.default as { default: T }).default;
}
const EcsClientClass = cjsClass<typeof EcsModule.default>(EcsModule);
const CredentialClass = cjsClass<typeof CredentialsModule.default>(CredentialsModule);

const toSnapshot = (s: $Ecs.DescribeSnapshotsResponseBodySnapshotsSnapshot): EcsSnapshot => ({
  snapshotId: s.snapshotId ?? '',
  snapshotName: s.snapshotName ?? '',
  status: s.status ?? '',
  progress: s.progress ?? '',
  available: s.available === true,
  sourceDiskId: s.sourceDiskId ?? '',
  sourceDiskSize: Number(s.sourceDiskSize ?? 0),
  creationTime: s.creationTime ?? '',
  retentionDays: typeof s.retentionDays === 'number' && s.retentionDays > 0 ? s.retentionDays : null,
  category: s.category ?? '',
  tags: Object.fromEntries((s.tags?.tag ?? []).map((t) => [t.tagKey ?? '', t.tagValue ?? ''])),
});

const chunks = <T>(items: T[], size: number): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
};

/** The SDK client for `options`, credentials from the default chain unless given. */
export function ecsClient(options: EcsOptions): EcsClient {
  const timeout = options.timeoutMs ?? 10_000;
  const credential = (options.credential ?? new CredentialClass()) as CredentialClient;
  const config = new $OpenApi.$OpenApiUtil.Config({
    credential,
    regionId: options.regionId,
    endpoint: options.endpoint ?? `ecs.${options.regionId}.aliyuncs.com`,
    protocol: options.protocol ?? 'https',
    connectTimeout: timeout,
    readTimeout: timeout,
    retryOptions: ecsRetryOptions(options.retries ?? 4, options.maxBackoffMs ?? 8_000),
  });
  return new EcsClientClass(config);
}

/** {@link EcsApi} through the real SDK. */
export function ecsApi(options: EcsOptions, client: EcsClient = ecsClient(options)): EcsApi {
  const calls: EcsCalls = { describeSnapshots: 0, describeSnapshotLinks: 0 };
  const regionId = options.regionId;

  async function describeSnapshots(
    request: Partial<$Ecs.DescribeSnapshotsRequest>,
  ): Promise<{ snapshots: EcsSnapshot[]; count: number }> {
    const out: EcsSnapshot[] = [];
    let nextToken: string | undefined;
    do {
      calls.describeSnapshots++;
      let body: $Ecs.DescribeSnapshotsResponseBody | undefined;
      try {
        const res = await client.describeSnapshots(
          new $Ecs.DescribeSnapshotsRequest({ ...request, regionId, maxResults: PAGE_SIZE, nextToken }),
        );
        body = res.body;
      } catch (err) {
        throw describeEcsError('DescribeSnapshots', err);
      }
      out.push(...(body?.snapshots?.snapshot ?? []).map(toSnapshot));
      nextToken = body?.nextToken || undefined;
    } while (nextToken);
    return { snapshots: out, count: out.length };
  }

  return {
    calls,
    async snapshotsByIds(ids) {
      const unique = [...new Set(ids.filter(Boolean))];
      const out: EcsSnapshot[] = [];
      for (const batch of chunks(unique, IDS_PER_CALL)) {
        out.push(...(await describeSnapshots({ snapshotIds: JSON.stringify(batch) })).snapshots);
      }
      return out;
    },
    async snapshotsByTag(key, value) {
      const { snapshots } = await describeSnapshots({
        tag: [new $Ecs.DescribeSnapshotsRequestTag({ key, value })],
      });
      return { snapshots, truncated: snapshots.length >= TAG_FILTER_LIMIT };
    },
    async snapshotLinks(diskIds) {
      const unique = [...new Set(diskIds.filter(Boolean))];
      const out: EcsSnapshotLink[] = [];
      for (const batch of chunks(unique, IDS_PER_CALL)) {
        let nextToken: string | undefined;
        do {
          calls.describeSnapshotLinks++;
          let body: $Ecs.DescribeSnapshotLinksResponseBody | undefined;
          try {
            const res = await client.describeSnapshotLinks(
              new $Ecs.DescribeSnapshotLinksRequest({
                regionId,
                diskIds: JSON.stringify(batch),
                maxResults: PAGE_SIZE,
                nextToken,
              }),
            );
            body = res.body;
          } catch (err) {
            throw describeEcsError('DescribeSnapshotLinks', err);
          }
          for (const l of body?.snapshotLinks?.snapshotLink ?? []) {
            out.push({
              sourceDiskId: l.sourceDiskId ?? l.snapshotLinkId ?? '',
              totalSize: Number(l.totalSize ?? 0),
              totalCount: Number(l.totalCount ?? 0),
            });
          }
          nextToken = body?.nextToken || undefined;
        } while (nextToken);
      }
      return out;
    },
  };
}
