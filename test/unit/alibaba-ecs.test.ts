/**
 * The real `@alicloud/ecs20140526` SDK, through src/cloud/alibaba-ecs.ts, against our own
 * ECS endpoint (test/env/ecs-endpoint.ts): the endpoint recomputes every ACS3-HMAC-SHA256
 * signature, so these tests fail if the SDK's requests, or the endpoint's checks, drift from
 * the published V3 structure. Credentials come from the default chain (environment).
 */
import { createHash, createHmac } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { getBackoffDelay, RetryPolicyContext } from '@darabonba/typescript';
import {
  describeEcsError,
  ecsApi,
  EcsError,
  ecsRetryOptions,
  IDS_PER_CALL,
} from '../../src/cloud/alibaba-ecs.ts';
import { EcsEndpoint, rfc3986, type SeedSnapshot } from '../env/ecs-endpoint.ts';

const AK = 'LTAI5tTestKeyId00000001';
const SECRET = 'ecs-secret-Zx81qPq0sVb3mKd9';
const TOKEN_LIKE = 'sts-token-never-printed-7Qw';

const snap = (i: number, extra: Partial<SeedSnapshot> = {}): SeedSnapshot => ({
  SnapshotId: `s-${String(i).padStart(6, '0')}`,
  SourceDiskId: `d-${String(i % 7).padStart(4, '0')}`,
  CreationTime: new Date(Date.UTC(2026, 5, 1) + i * 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
  SizeBytes: 1024 * i,
  Tags: { 'ack.aliyun.com': i % 2 ? 'c-one' : 'c-two', createdby: 'alibabacloud-csi-plugin' },
  ...extra,
});

describe('the ECS SDK against our ECS endpoint', () => {
  let ecs: EcsEndpoint;
  const saved = { ...process.env };
  const api = (over: Record<string, unknown> = {}) =>
    ecsApi({
      regionId: 'cn-hangzhou',
      endpoint: ecs.endpoint,
      protocol: 'http',
      timeoutMs: 2_000,
      maxBackoffMs: 300,
      ...over,
    });

  beforeAll(async () => {
    process.env.ALIBABA_CLOUD_ACCESS_KEY_ID = AK;
    process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = SECRET;
    ecs = await new EcsEndpoint({ [AK]: SECRET }).start();
    for (let i = 1; i <= 250; i++) ecs.seed(snap(i));
  });
  afterEach(() => ecs.clearFaults());
  afterAll(async () => {
    process.env = saved;
    await ecs.stop();
  });

  it('signs as the V3 document says: our endpoint recomputes the signature and accepts it', async () => {
    const before = ecs.requests.length;
    const found = await api().snapshotsByIds(['s-000001', 's-000002', 's-999999']);
    expect(found.map((s) => s.snapshotId).sort()).toEqual(['s-000001', 's-000002']);
    const [req] = ecs.requests.slice(before);
    expect(req).toMatchObject({ action: 'DescribeSnapshots', status: 200, accessKeyId: AK });
    expect(req?.headers.authorization).toMatch(
      /^ACS3-HMAC-SHA256 Credential=LTAI5tTestKeyId00000001,SignedHeaders=[^,]*host;[^,]*x-acs-action;/,
    );
    expect(req?.params.SnapshotIds).toBe('["s-000001","s-000002","s-999999"]');
  });

  it("the endpoint's check is the document's, not the SDK's: a hand-made request signs the same way", async () => {
    // Built here from the document alone: if the endpoint accepted anything, this would not prove it.
    const query = { Action: 'x', RegionId: 'cn-hangzhou', SnapshotIds: '["s-000003"]' };
    const qs = Object.entries(query)
      .map(([k, v]) => [rfc3986(k), rfc3986(v)])
      .sort(([a = ''], [b = '']) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${v}`)
      .join('&');
    const headers: Record<string, string> = {
      host: ecs.endpoint,
      'x-acs-action': 'DescribeSnapshots',
      'x-acs-content-sha256': createHash('sha256').update('').digest('hex'),
      'x-acs-date': new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      'x-acs-signature-nonce': `n-${Date.now()}`,
      'x-acs-version': '2014-05-26',
    };
    const signed = Object.keys(headers).sort().join(';');
    const canonical = [
      'POST',
      '/',
      qs,
      Object.keys(headers)
        .sort()
        .map((h) => `${h}:${headers[h]}\n`)
        .join(''),
      signed,
      headers['x-acs-content-sha256'],
    ].join('\n');
    const sign = (secret: string) =>
      createHmac('sha256', secret)
        .update(`ACS3-HMAC-SHA256\n${createHash('sha256').update(canonical).digest('hex')}`)
        .digest('hex');
    const call = (secret: string, nonce = headers['x-acs-signature-nonce']) =>
      fetch(`http://${ecs.endpoint}/?${qs}`, {
        method: 'POST',
        headers: {
          ...headers,
          'x-acs-signature-nonce': nonce ?? '',
          authorization: `ACS3-HMAC-SHA256 Credential=${AK},SignedHeaders=${signed},Signature=${sign(secret)}`,
        },
      });
    const ok = await call(SECRET);
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as { Snapshots: { Snapshot: { SnapshotId: string }[] } };
    expect(body.Snapshots.Snapshot.map((s) => s.SnapshotId)).toEqual(['s-000003']);
    // The same nonce again is a replay.
    const replay = await call(SECRET);
    expect(((await replay.json()) as { Code: string }).Code).toBe('SignatureNonceUsed');
    const bad = await call('wrong', `n2-${Date.now()}`);
    expect(bad.status).toBe(400);
    const shape = (await bad.json()) as Record<string, unknown>;
    expect(Object.keys(shape).sort()).toEqual(['Code', 'HostId', 'Message', 'Recommend', 'RequestId']);
    expect(shape.Code).toBe('SignatureDoesNotMatch');
  });

  it('a wrong secret is refused in ECS shape, and the message names the code but never the secret', async () => {
    process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = `${SECRET}-wrong`;
    process.env.ALIBABA_CLOUD_SECURITY_TOKEN = TOKEN_LIKE;
    try {
      const err = await api()
        .snapshotsByIds(['s-000001'])
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EcsError);
      const message = (err as Error).message;
      expect(message).toMatch(
        /^ECS DescribeSnapshots failed: SignatureDoesNotMatch \(HTTP 400\): .*check the credentials/,
      );
      expect(message).not.toContain(SECRET);
      expect(message).not.toContain(TOKEN_LIKE);
      expect(message).not.toContain('\n    at ');
    } finally {
      process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = SECRET;
      delete process.env.ALIBABA_CLOUD_SECURITY_TOKEN;
    }
  });

  it('asks for at most 100 IDs a call and pages with NextToken: 250 IDs in 3 calls', async () => {
    const a = api();
    const ids = Array.from({ length: 250 }, (_, i) => `s-${String(i + 1).padStart(6, '0')}`);
    const found = await a.snapshotsByIds(ids);
    expect(found).toHaveLength(250);
    expect(a.calls.describeSnapshots).toBe(Math.ceil(250 / IDS_PER_CALL));
    const tagged = await a.snapshotsByTag('ack.aliyun.com', 'c-one');
    expect(tagged.snapshots).toHaveLength(125);
    expect(tagged.snapshots.every((s) => s.tags['ack.aliyun.com'] === 'c-one')).toBe(true);
    expect(a.calls.describeSnapshots).toBe(3 + 2);
    const links = await a.snapshotLinks(found.map((s) => s.sourceDiskId));
    expect(links).toHaveLength(7);
    expect(a.calls.describeSnapshotLinks).toBe(1);
    const d1 = links.find((l) => l.sourceDiskId === 'd-0001');
    const expected = ids.map((_, i) => i + 1).filter((i) => i % 7 === 1);
    expect(d1).toEqual({
      sourceDiskId: 'd-0001',
      totalCount: expected.length,
      totalSize: expected.reduce((n, i) => n + 1024 * i, 0),
    });
  });

  it('retries Throttling.User and 5xx through the SDK retry options, then succeeds', async () => {
    ecs.inject({
      action: 'DescribeSnapshots',
      code: 'Throttling.User',
      status: 400,
      message: 'Request was denied due to user flow control.',
      times: 2,
    });
    ecs.inject({ action: 'DescribeSnapshots', code: 'ServiceUnavailable', status: 503, times: 1 });
    const before = ecs.count('DescribeSnapshots');
    const found = await api().snapshotsByIds(['s-000010']);
    expect(found).toHaveLength(1);
    expect(ecs.count('DescribeSnapshots') - before).toBe(4);
  });

  it('retries a reset connection, then succeeds', async () => {
    ecs.inject({ action: 'DescribeSnapshots', reset: true, times: 2 });
    const before = ecs.count('DescribeSnapshots');
    const found = await api().snapshotsByIds(['s-000013']);
    expect(found).toHaveLength(1);
    expect(ecs.count('DescribeSnapshots') - before).toBe(3);
  });

  it('a connection reset on every try is one clear line naming it', async () => {
    ecs.inject({ action: 'DescribeSnapshotLinks', reset: true, times: 3 });
    const before = ecs.count('DescribeSnapshotLinks');
    const err = (await api({ retries: 2 })
      .snapshotLinks(['d-0002'])
      .catch((e: unknown) => e)) as EcsError;
    expect(err).toBeInstanceOf(EcsError);
    expect(err.message).toMatch(
      /^ECS DescribeSnapshotLinks failed: ECONNRESET: read ECONNRESET; POST http:\/\/127\.0\.0\.1:\d+\/\S* failed\.: the connection to ECS kept breaking after the retries; check the network path to the endpoint$/,
    );
    expect(ecs.count('DescribeSnapshotLinks') - before).toBe(3);
  });

  it('gives up after the retries with one clear line', async () => {
    ecs.inject({ action: 'DescribeSnapshotLinks', code: 'InternalError', status: 500, times: 10 });
    const before = ecs.count('DescribeSnapshotLinks');
    const err = (await api({ retries: 2 })
      .snapshotLinks(['d-0001'])
      .catch((e: unknown) => e)) as EcsError;
    expect(err.message).toMatch(
      /^ECS DescribeSnapshotLinks failed: InternalError \(HTTP 500\): Injected InternalError\. \(request id [0-9A-F-]+\)$/,
    );
    expect(ecs.count('DescribeSnapshotLinks') - before).toBe(3);
  });

  it('times out a slow answer and retries it', async () => {
    ecs.inject({ action: 'DescribeSnapshots', delayMs: 1_500, times: 1 });
    const before = ecs.count('DescribeSnapshots');
    const t0 = Date.now();
    const found = await api({ timeoutMs: 500 }).snapshotsByIds(['s-000011']);
    expect(found).toHaveLength(1);
    expect(Date.now() - t0).toBeLessThan(1_400);
    // The slow one is recorded when it is answered, after the client gave up on it.
    await new Promise((r) => setTimeout(r, 1_200));
    expect(ecs.count('DescribeSnapshots') - before).toBe(2);
  });

  it('a slow ECS past every retry is a timeout message, not a hang', async () => {
    ecs.inject({ action: 'DescribeSnapshots', delayMs: 800, times: 3 });
    const err = (await api({ timeoutMs: 300, retries: 1 })
      .snapshotsByIds(['s-000012'])
      .catch((e: unknown) => e)) as EcsError;
    expect(err).toBeInstanceOf(EcsError);
    expect(err.message).toMatch(/^ECS DescribeSnapshots failed: RequestTimeoutError: .*raise --ecs-timeout/);
  });

  it("a tag filter stops at ECS's 1,000 resources, and says so", async () => {
    for (let i = 1; i <= 1005; i++) ecs.seed(snap(100_000 + i, { Tags: { 'ack.aliyun.com': 'c-many' } }));
    const a = api();
    const r = await a.snapshotsByTag('ack.aliyun.com', 'c-many');
    expect(r.snapshots).toHaveLength(1000);
    expect(r.truncated).toBe(true);
    expect(a.calls.describeSnapshots).toBe(10);
    for (let i = 1; i <= 1005; i++) ecs.snapshots.delete(`s-${100_000 + i}`);
  });

  it('backs off half to all of 0.2 s doubling per retry, up to the cap, through the SDK', () => {
    const options = ecsRetryOptions(4, 8_000);
    const delays = (n: number) =>
      Array.from({ length: 200 }, () =>
        getBackoffDelay(
          options,
          new RetryPolicyContext({
            retriesAttempted: n,
            exception: { name: 'ThrottlingError', code: 'Throttling.User' },
          }),
        ),
      );
    for (const [n, ceiling] of [
      [1, 200],
      [2, 400],
      [3, 800],
      [7, 8_000],
      [9, 8_000],
    ] as const) {
      const d = delays(n);
      expect(Math.min(...d)).toBeGreaterThanOrEqual(ceiling / 2);
      expect(Math.max(...d)).toBeLessThanOrEqual(ceiling);
    }
  });

  it('scrubs credentials from any error text, whoever wrote them', () => {
    process.env.ALIBABA_CLOUD_SECURITY_TOKEN = TOKEN_LIKE;
    try {
      const e = describeEcsError(
        'DescribeSnapshots',
        Object.assign(
          new Error(
            `provider said: key ${AK} secret ${SECRET} token ${TOKEN_LIKE}; Authorization: ACS3-HMAC-SHA256 x`,
          ),
          {
            code: 'CredentialsError',
          },
        ),
      );
      expect(e.message).toBe(
        'ECS DescribeSnapshots failed: CredentialsError: provider said: key *** secret *** token ***; Authorization: ***',
      );
    } finally {
      delete process.env.ALIBABA_CLOUD_SECURITY_TOKEN;
    }
  });

  it('asks DescribeSnapshotLinks for at most 100 disks a call: 250 disks in 3 calls', async () => {
    // One snapshot on each of 250 disks of their own (untagged: the tag test above is not moved).
    for (let i = 0; i < 250; i++)
      ecs.seed(snap(1000 + i, { SourceDiskId: `d-links-${String(i).padStart(3, '0')}`, Tags: {} }));
    const disks = Array.from({ length: 250 }, (_, i) => `d-links-${String(i).padStart(3, '0')}`);
    const a = api();
    const before = ecs.count('DescribeSnapshotLinks');
    const links = await a.snapshotLinks(disks);
    expect(links.map((l) => l.sourceDiskId).sort()).toEqual(disks);
    expect(links.every((l) => l.totalCount === 1)).toBe(true);
    expect(a.calls.describeSnapshotLinks).toBe(3);
    // The endpoint refuses more than 100 disks a call, as ECS does: no call was refused.
    expect(ecs.count('DescribeSnapshotLinks') - before).toBe(3);
  });

  it('NotFound codes are not retried and say what to check', async () => {
    const before = ecs.count('DescribeSnapshots');
    const err = (await api({ regionId: 'cn-nowhere' })
      .snapshotsByIds(['s-000001'])
      .catch((e: unknown) => e)) as EcsError;
    expect(err.message).toMatch(
      /^ECS DescribeSnapshots failed: InvalidRegionId\.NotFound \(HTTP 404\): The specified RegionId does not exist\./,
    );
    expect(ecs.count('DescribeSnapshots') - before).toBe(1);
  });
});
