/**
 * `snapcron report --cloud alibaba`, offline (objects from files) against our ECS endpoint
 * through the real SDK: every drift finding (orphan, dangling, stuck, expiring) and the cases
 * that must not be one, cost sums from DescribeSnapshotLinks, --fail-on exit codes, calls per
 * page, errors as one line without the secret; and the ACK warnings of `validate`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { run } from '../support/cli.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../../src/api/objects.ts';
import type { SnapshotScheduleSpec } from '../../src/api/types.generated.ts';
import { ACK_DISK_DRIVER, ackCondition, ackWarnings, snapshotClassOf } from '../../src/api/warnings.ts';
import { auditAlibaba, type EcsFacts, type VolumeSnapshotContent } from '../../src/report/alibaba.ts';
import type { EcsSnapshot } from '../../src/cloud/alibaba-ecs.ts';
import type { Report } from '../../src/report/model.ts';
import { snapshotMetadata, snapshotName } from '../../src/snapshot/naming.ts';
import { EcsEndpoint } from '../env/ecs-endpoint.ts';

const AK = 'LTAI5tReportKey0000002';
const SECRET = 'report-secret-9f8Kq2LmZ0pX';
const NOW = '2026-06-15T10:00:00Z';
const GiB = 1024 ** 3;
const day = (d: number, hh = '02:00:05') => `2026-06-${String(d).padStart(2, '0')}T${hh}Z`;

/** A snapcron snapshot of web-0 for the run of `runDay` at 02:00, cut at `cut`, with its content. */
function web0(runDay: number, ready: boolean, ecsId: string): [VolumeSnapshot, VolumeSnapshotContent] {
  const at = new Date(day(runDay, '02:00:00'));
  const name = snapshotName('web-0', 'web', at);
  const vs: VolumeSnapshot = {
    apiVersion: 'snapshot.storage.k8s.io/v1',
    kind: 'VolumeSnapshot',
    metadata: {
      name,
      namespace: 'shop',
      creationTimestamp: day(runDay),
      ...snapshotMetadata('web-0', 'web', at),
    },
    spec: {
      source: { persistentVolumeClaimName: 'web-0' },
      volumeSnapshotClassName: 'alicloud-disk-snapshot',
    },
    status: {
      readyToUse: ready,
      creationTime: day(runDay),
      restoreSize: '20Gi',
      boundVolumeSnapshotContentName: `snapcontent-${ecsId}`,
    },
  };
  const content: VolumeSnapshotContent = {
    metadata: { name: `snapcontent-${ecsId}` },
    spec: {
      driver: ACK_DISK_DRIVER,
      source: { volumeHandle: 'd-web0' },
      volumeSnapshotRef: { name, namespace: 'shop' },
    },
    status: { snapshotHandle: ecsId, readyToUse: ready },
  };
  return [vs, content];
}

const pvcs: PersistentVolumeClaim[] = [
  {
    metadata: {
      name: 'web-0',
      namespace: 'shop',
      labels: { app: 'web' },
      creationTimestamp: '2026-06-01T00:00:00Z',
    },
    spec: { resources: { requests: { storage: '20Gi' } } },
    status: { phase: 'Bound' },
  },
];
const scheduleDoc = {
  apiVersion: 'snapcron.io/v1',
  kind: 'SnapshotSchedule',
  metadata: { name: 'web', namespace: 'shop', creationTimestamp: '2026-06-01T00:00:00Z' },
  spec: {
    schedule: '0 2 * * *',
    claimSelector: { matchLabels: { app: 'web' } },
    snapshotClassName: 'alicloud-disk-snapshot',
    retention: { maxCount: 7 },
  },
};
const ackClass = {
  apiVersion: 'snapshot.storage.k8s.io/v1',
  kind: 'VolumeSnapshotClass',
  metadata: { name: 'alicloud-disk-snapshot' },
  driver: ACK_DISK_DRIVER,
  deletionPolicy: 'Delete',
  parameters: { retentionDays: '5' },
};

describe('snapcron report --cloud alibaba (offline files, real SDK, our ECS)', () => {
  let dir: string;
  let ecs: EcsEndpoint;
  let files: string[];
  const saved = { ...process.env };
  const cloud = (...more: string[]) => [
    'report',
    '-n',
    'shop',
    ...files,
    '--now',
    NOW,
    '--cloud',
    'alibaba',
    '--region',
    'cn-hangzhou',
    '--ecs-endpoint',
    `http://${ecs.endpoint}`,
    '--ecs-timeout',
    '2',
    ...more,
  ];
  const json = async (...more: string[]): Promise<Report> => {
    const r = await run(...cloud('-o', 'json', ...more));
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.out) as Report;
  };

  const [expiring, expiringContent] = web0(12, true, 's-expiring');
  const [gone, goneContent] = web0(13, true, 's-gone');
  const [fine, fineContent] = web0(14, true, 's-fine');
  const [progressing, progressingContent] = web0(15, false, 's-progressing');
  // Another driver's content, in scope: not ECS's business.
  const otherDriver: VolumeSnapshotContent = {
    metadata: { name: 'snapcontent-hostpath' },
    spec: { driver: 'hostpath.csi.k8s.io', volumeSnapshotRef: { name: 'x', namespace: 'shop' } },
    status: { snapshotHandle: 'hostpath-1' },
  };

  beforeAll(async () => {
    process.env.ALIBABA_CLOUD_ACCESS_KEY_ID = AK;
    process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = SECRET;
    dir = mkdtempSync(join(tmpdir(), 'snapcron-alibaba-'));
    const write = (name: string, value: unknown): string => {
      const path = join(dir, name);
      writeFileSync(path, JSON.stringify(value));
      return path;
    };
    files = [
      '-f',
      write('schedules.json', scheduleDoc),
      '--snapshots',
      write('snapshots.json', { kind: 'List', items: [expiring, gone, fine, progressing] }),
      '--pvcs',
      write('pvcs.json', { kind: 'List', items: pvcs }),
      '--contents',
      write('contents.json', {
        kind: 'List',
        items: [expiringContent, goneContent, fineContent, progressingContent, otherDriver],
      }),
      '--snapshot-classes',
      write('classes.json', { kind: 'List', items: [ackClass] }),
    ];
    ecs = await new EcsEndpoint({ [AK]: SECRET }).start();
    const tags = (vs: string, ns = 'shop') => ({
      'ack.aliyun.com': 'c-test',
      createdby: 'alibabacloud-csi-plugin',
      'csi.alibabacloud.com/snapshot/name': vs,
      'csi.alibabacloud.com/snapshot/namespace': ns,
    });
    ecs.seed(
      // ECS deletes it on 06-17 (5 days), while maxCount 7 of a daily schedule keeps it a week.
      {
        SnapshotId: 's-expiring',
        SourceDiskId: 'd-web0',
        CreationTime: day(12),
        RetentionDays: 5,
        SizeBytes: 3 * GiB,
        Tags: tags(expiring.metadata.name ?? ''),
      },
      // ECS deletes it on 07-14, long after maxCount pushes it out (06-21): not expiring.
      {
        SnapshotId: 's-fine',
        SourceDiskId: 'd-web0',
        CreationTime: day(14),
        RetentionDays: 30,
        SizeBytes: 1 * GiB,
        Tags: tags(fine.metadata.name ?? ''),
      },
      // In progress for 8 hours, past the default pendingDeadline of 6h.
      {
        SnapshotId: 's-progressing',
        Status: 'progressing',
        Progress: '42%',
        SourceDiskId: 'd-web0',
        CreationTime: day(15),
        SizeBytes: 0,
        Tags: tags(progressing.metadata.name ?? ''),
      },
      // The driver made it for a VolumeSnapshot long gone: an orphan.
      {
        SnapshotId: 's-orphan',
        SnapshotName: 'alibabacloud-disk-0b8c',
        SourceDiskId: 'd-old',
        CreationTime: '2026-05-01T00:00:00Z',
        SizeBytes: 2 * GiB,
        Tags: tags('web-0-manual'),
      },
      // Another namespace's orphan: outside -n shop.
      {
        SnapshotId: 's-orphan-other',
        SourceDiskId: 'd-other',
        CreationTime: '2026-05-01T00:00:00Z',
        SizeBytes: GiB,
        Tags: tags('x', 'other'),
      },
      // Another cluster's snapshot: not ours to call an orphan.
      {
        SnapshotId: 's-foreign',
        SourceDiskId: 'd-foreign',
        CreationTime: '2026-05-01T00:00:00Z',
        SizeBytes: GiB,
        Tags: { 'ack.aliyun.com': 'c-else' },
      },
    );
  });
  afterEach(() => ecs.clearFaults());
  afterAll(async () => {
    process.env = saved;
    await ecs.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds each drift, and only those', async () => {
    const r = await json('--cluster-id', 'c-test');
    const drift = r.findings
      .filter((f) => ['orphan', 'dangling', 'expiring'].includes(f.kind) || /ECS/.test(f.message))
      .map((f) => [f.kind, f.snapshots[0]]);
    expect(drift).toEqual([
      ['stuck', progressing.metadata.name],
      ['orphan', 's-orphan'],
      ['dangling', gone.metadata.name],
      ['expiring', expiring.metadata.name],
    ]);
    const text = (kind: string) => r.findings.find((f) => f.kind === kind)?.message ?? '';
    expect(text('orphan')).toMatch(
      /^ECS snapshot s-orphan \(alibabacloud-disk-0b8c, made for VolumeSnapshot shop\/web-0-manual, disk d-old, 2026-05-01T00:00:00Z\) has no VolumeSnapshotContent/,
    );
    expect(text('dangling')).toContain('stands for ECS snapshot s-gone, which ECS no longer has');
    expect(text('expiring')).toContain(
      'ECS deletes snapshot s-expiring at 2026-06-17T02:00:05Z (RetentionDays 5)',
    );
    expect(r.findings.find((f) => f.kind === 'stuck' && /ECS/.test(f.message))?.message).toMatch(
      /s-progressing is still in progress \(42%\) 7h59m55s after it began, past pendingDeadline 6h/,
    );
    expect(r.totals.findings).toMatchObject({ orphan: 1, dangling: 1, expiring: 1 });
  });

  it('gives each snapshot its ECS view', async () => {
    const r = await json('--cluster-id', 'c-test');
    const a = r.alibaba;
    expect(a).toMatchObject({ regionId: 'cn-hangzhou', clusterId: 'c-test', driver: ACK_DISK_DRIVER });
    expect(a?.snapshots.map((s) => [s.snapshotId, s.ecs?.status ?? null])).toEqual(
      [
        [expiring, 's-expiring', 'accomplished'],
        [gone, 's-gone', null],
        [fine, 's-fine', 'accomplished'],
        [progressing, 's-progressing', 'progressing'],
      ]
        .sort(([a], [b]) =>
          (a as VolumeSnapshot).metadata.name! < (b as VolumeSnapshot).metadata.name! ? -1 : 1,
        )
        .map(([, id, st]) => [id, st]),
    );
    expect(a?.snapshots.find((s) => s.snapshotId === 's-expiring')).toEqual({
      namespace: 'shop',
      volumeSnapshot: expiring.metadata.name,
      content: 'snapcontent-s-expiring',
      snapshotId: 's-expiring',
      schedule: 'web',
      pvc: 'web-0',
      readyToUse: true,
      ecs: {
        snapshotId: 's-expiring',
        name: '',
        status: 'accomplished',
        progress: '100%',
        available: true,
        sourceDiskId: 'd-web0',
        sourceDiskSizeBytes: 20 * GiB,
        creationTime: day(12),
        retentionDays: 5,
        expiresAt: '2026-06-17T02:00:05Z',
        category: 'standard',
      },
    });
    expect(a?.orphans.map((o) => o.snapshotId)).toEqual(['s-orphan']);
  });

  it('sums the chains from DescribeSnapshotLinks per disk, PVC, schedule and namespace, priced', async () => {
    const r = await json('--cluster-id', 'c-test', '--price-per-gb-month', '0.017');
    const cost = r.alibaba?.cost;
    // d-web0's chain: 3 + 1 + 0 GiB (s-gone is gone); d-old: the orphan's 2 GiB.
    expect(cost?.disks).toEqual([
      { diskId: 'd-old', snapshots: 1, namespace: 'shop', pvc: null, bytes: 2 * GiB, monthly: 0.03 },
      { diskId: 'd-web0', snapshots: 3, namespace: 'shop', pvc: 'web-0', bytes: 4 * GiB, monthly: 0.07 },
    ]);
    expect(cost?.pvcs).toEqual([
      { namespace: 'shop', pvc: 'web-0', diskId: 'd-web0', bytes: 4 * GiB, monthly: 0.07 },
    ]);
    expect(cost?.schedules).toEqual([{ namespace: 'shop', schedule: 'web', bytes: 4 * GiB, monthly: 0.07 }]);
    expect(cost?.namespaces).toEqual([{ namespace: 'shop', bytes: 6 * GiB, monthly: 0.1 }]);
    expect(cost?.total).toEqual({ bytes: 6 * GiB, monthly: 0.1 });
    expect(cost?.pricePerGbMonth).toBe(0.017);
    // Without a price: sizes, no estimate.
    const bare = await json('--cluster-id', 'c-test');
    expect(bare.alibaba?.cost.total).toEqual({ bytes: 6 * GiB, monthly: null });
  });

  it('calls only DescribeSnapshots and DescribeSnapshotLinks (read-only)', async () => {
    await json('--cluster-id', 'c-test');
    expect([...new Set(ecs.requests.map((r) => r.action))].sort()).toEqual([
      'DescribeSnapshotLinks',
      'DescribeSnapshots',
    ]);
  });

  it('takes the region from ALIBABA_CLOUD_REGION_ID', async () => {
    process.env.ALIBABA_CLOUD_REGION_ID = 'cn-hangzhou';
    try {
      const argv = cloud('-o', 'json');
      argv.splice(argv.indexOf('--region'), 2);
      const r = await run(...argv);
      expect(r.code).toBe(0);
      expect((JSON.parse(r.out) as Report).alibaba?.regionId).toBe('cn-hangzhou');
    } finally {
      delete process.env.ALIBABA_CLOUD_REGION_ID;
    }
  });

  it('retries 4 times by default (--ecs-retries), then gives up', async () => {
    ecs.inject({ action: 'DescribeSnapshots', code: 'InternalError', status: 500, times: 4 });
    expect((await run(...cloud())).code).toBe(0);
    ecs.clearFaults();
    ecs.inject({ action: 'DescribeSnapshots', code: 'InternalError', status: 500, times: 5 });
    const r = await run(...cloud());
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^snapcron report: ECS DescribeSnapshots failed: InternalError \(HTTP 500\)/);
  }, 30_000);

  it('--help shows the ECS defaults', async () => {
    const help = (await run('report', '--help')).out.replace(/\s+/g, ' ');
    expect(help).toMatch(
      /--ecs-timeout SECONDS +with --cloud alibaba: connect and read timeout of each ECS call \(default: 10\)/,
    );
    expect(help).toMatch(/--ecs-retries N +.*\(default: 4\)/);
    expect(help).toMatch(/--csi-driver NAME +.*\(default: diskplugin\.csi\.alibabacloud\.com\)/);
  });

  it('one call per page: by IDs, by tag, and the chains', async () => {
    const before = { s: ecs.count('DescribeSnapshots'), l: ecs.count('DescribeSnapshotLinks') };
    const r = await json('--cluster-id', 'c-test');
    expect(r.alibaba?.calls).toEqual({ describeSnapshots: 2, describeSnapshotLinks: 1 });
    expect(ecs.count('DescribeSnapshots') - before.s).toBe(2);
    expect(ecs.count('DescribeSnapshotLinks') - before.l).toBe(1);
  });

  it('without --cluster-id, orphans are not searched, and the report says so', async () => {
    const r = await json();
    expect(r.alibaba?.orphans).toEqual([]);
    expect(r.alibaba?.notes).toEqual([
      'orphans not searched: give --cluster-id (the ACK cluster ID its driver tags snapshots with)',
    ]);
    expect(r.findings.some((f) => f.kind === 'orphan')).toBe(false);
    expect(r.alibaba?.calls.describeSnapshots).toBe(1);
  });

  it('--fail-on takes the drift kinds: exit 2 and each on stderr', async () => {
    const r = await run(...cloud('--cluster-id', 'c-test', '--fail-on', 'orphan,dangling'));
    expect(r.code).toBe(2);
    const lines = r.err.trim().split('\n');
    expect(lines[0]).toMatch(/^orphan: ECS snapshot s-orphan /);
    expect(lines[1]).toMatch(/^dangling: VolumeSnapshot shop\//);
    expect(lines[2]).toBe('snapcron report: 2 finding(s) of the kinds in --fail-on orphan,dangling');
    expect((await run(...cloud('--fail-on', 'expiring'))).code).toBe(2);
    expect((await run(...cloud('--fail-on', 'orphan'))).code).toBe(0);
  });

  it('the table has the ECS section, the cost and the ACK warnings', async () => {
    const r = await run(...cloud('--cluster-id', 'c-test', '--price-per-gb-month', '0.017'));
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      '\nAlibaba Cloud ECS, region cn-hangzhou, driver diskplugin.csi.alibabacloud.com, cluster c-test\n',
    );
    expect(r.out).toContain(
      '4 snapshot(s) with ECS snapshots, 1 gone in ECS, 1 orphan(s); storage 6Gi, 0.10 a month (0.017 per GB-month); 2 DescribeSnapshots and 1 DescribeSnapshotLinks call(s)',
    );
    expect(r.out).toContain('storage per disk (snapshot chain, DescribeSnapshotLinks):');
    expect(r.out).toMatch(/d-web0 +shop +web-0 +3 +4Gi +0\.07/);
    expect(r.out).toMatch(
      /shop\/web: spec\.retention: retention keeps a snapshot for up to about 1w, but VolumeSnapshotClass alicloud-disk-snapshot sets retentionDays 5/,
    );
    const json = JSON.parse((await run(...cloud('-o', 'json'))).out) as Report;
    expect(json.alibaba?.warnings.map((w) => w.path)).toEqual(['spec.retention']);
  });

  it('Throttling.User and 5xx are retried; the report is the same', async () => {
    const clean = await json('--cluster-id', 'c-test');
    ecs.inject({ action: 'DescribeSnapshots', code: 'Throttling.User', status: 400, times: 2 });
    ecs.inject({ action: 'DescribeSnapshotLinks', code: 'InternalError', status: 500, times: 1 });
    const retried = await json('--cluster-id', 'c-test');
    expect(retried.findings).toEqual(clean.findings);
    expect(retried.alibaba?.cost).toEqual(clean.alibaba?.cost);
  }, 30_000);

  it('a refused signature is one line naming the ECS code, exit 1, and the secret appears nowhere', async () => {
    process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = 'not-the-secret-Lw0';
    try {
      const r = await run(...cloud('--cluster-id', 'c-test'));
      expect(r.code).toBe(1);
      expect(r.out).toBe('');
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(
        /^snapcron report: ECS DescribeSnapshots failed: SignatureDoesNotMatch \(HTTP 400\): .*check the credentials/,
      );
      for (const text of [r.out, r.err]) {
        expect(text).not.toContain('not-the-secret-Lw0');
        expect(text).not.toContain(SECRET);
        expect(text).not.toContain(AK);
      }
    } finally {
      process.env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = SECRET;
    }
    // A good run's outputs carry no credential either, in any format.
    for (const format of ['json', 'table', 'markdown', 'html']) {
      const r = await run(...cloud('--cluster-id', 'c-test', '-o', format));
      expect(r.code).toBe(0);
      expect(r.out + r.err).not.toContain(SECRET);
      expect(r.out + r.err).not.toContain(AK);
    }
  });

  it('bad --cloud flags are usage errors', async () => {
    expect((await run(...cloud('--cloud', 'aws'))).err).toMatch(/--cloud "aws": use alibaba/);
    const noRegion = await run('report', ...files, '--cloud', 'alibaba');
    expect(noRegion.code).toBe(2);
    expect(noRegion.err).toMatch(/--cloud alibaba needs --region/);
    expect((await run(...cloud('--price-per-gb-month', 'cheap'))).code).toBe(2);
    expect((await run('report', ...files)).err).toMatch(
      /--contents and --snapshot-classes go with --cloud alibaba/,
    );
  });
});

describe('auditAlibaba (pure)', () => {
  const ecsSnap = (id: string, o: Partial<EcsSnapshot> = {}): EcsSnapshot => ({
    snapshotId: id,
    snapshotName: '',
    status: 'accomplished',
    progress: '100%',
    available: true,
    sourceDiskId: 'd-web0',
    sourceDiskSize: 20,
    creationTime: day(15),
    retentionDays: null,
    category: 'standard',
    tags: {},
    ...o,
  });
  const facts = (byId: EcsSnapshot[], o: Partial<EcsFacts> = {}): EcsFacts => ({
    byId,
    tagged: null,
    taggedTruncated: false,
    links: [],
    calls: { describeSnapshots: 1, describeSnapshotLinks: 0 },
    ...o,
  });
  const options = {
    regionId: 'cn-hangzhou',
    driver: ACK_DISK_DRIVER,
    clusterId: null,
    pricePerGbMonth: null,
  };
  const [vs, content] = web0(15, false, 's-1');
  const input = (pendingDeadline?: string) => ({
    schedules: [
      {
        ...scheduleDoc,
        spec: {
          ...scheduleDoc.spec,
          retention: { maxCount: 7, ...(pendingDeadline ? { pendingDeadline } : {}) },
        },
      },
    ] as never,
    pvcs,
    snapshots: [vs],
    contents: [content],
    classes: [],
    now: new Date(NOW),
  });

  it('stuck: failed in ECS while the VolumeSnapshot waits', () => {
    const { findings } = auditAlibaba(
      input(),
      facts([ecsSnap('s-1', { status: 'failed', available: false })]),
      options,
    );
    expect(findings.map((f) => f.kind)).toEqual(['stuck']);
    expect(findings[0]?.message).toMatch(
      /ECS snapshot s-1 failed in ECS, while Kubernetes still waits for it/,
    );
  });

  it("stuck is measured against the schedule's pendingDeadline", () => {
    const progressing = [ecsSnap('s-1', { status: 'progressing', progress: '10%' })];
    expect(auditAlibaba(input(), facts(progressing), options).findings.map((f) => f.kind)).toEqual(['stuck']);
    expect(auditAlibaba(input('12h'), facts(progressing), options).findings).toEqual([]);
  });

  it("says when the tag filter hit ECS's limit of 1,000", () => {
    const { section } = auditAlibaba(
      input(),
      facts([ecsSnap('s-1')], { tagged: [ecsSnap('s-1')], taggedTruncated: true }),
      { ...options, clusterId: 'c-test' },
    );
    expect(section.notes).toEqual([
      'ECS answers a tag filter with at most 1,000 snapshots: orphans beyond those were not seen',
    ]);
  });
});

describe('README "Alibaba Cloud (ACK)"', () => {
  const readme = readFileSync('README.md', 'utf8');
  const start = readme.indexOf('## Retention reports');
  const section = readme.slice(start, readme.indexOf('\n## Development'));

  it('documents every JSON field --cloud alibaba adds', () => {
    const [vs, content] = web0(15, true, 's-1');
    const audit = auditAlibaba(
      {
        schedules: [scheduleDoc] as never,
        pvcs,
        snapshots: [vs],
        contents: [content],
        classes: [ackClass],
        now: new Date(NOW),
      },
      {
        byId: [],
        tagged: [
          {
            snapshotId: 's-o',
            snapshotName: 'n',
            status: 'accomplished',
            progress: '100%',
            available: true,
            sourceDiskId: 'd-o',
            sourceDiskSize: 1,
            creationTime: day(1),
            retentionDays: 3,
            category: 'standard',
            tags: {},
          },
        ],
        taggedTruncated: false,
        links: [{ sourceDiskId: 'd-o', totalSize: 5, totalCount: 1 }],
        calls: { describeSnapshots: 2, describeSnapshotLinks: 1 },
      },
      { regionId: 'cn-hangzhou', driver: ACK_DISK_DRIVER, clusterId: 'c', pricePerGbMonth: 1 },
    );
    const keys = new Set<string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object')
        for (const [k, x] of Object.entries(v)) {
          keys.add(k);
          walk(x);
        }
    };
    walk({
      alibaba: {
        ...audit.section,
        snapshots: [{ ...audit.section.snapshots[0], ecs: audit.section.orphans[0] }],
      },
    });
    for (const k of keys)
      expect(section, `README does not document "${k}"`).toMatch(new RegExp(`\`${k}(\\[\\])?\``));
  });

  it('names every finding kind and flag it describes', async () => {
    const help = (await run('report', '--help')).out;
    for (const flag of [
      '--cloud',
      '--region',
      '--cluster-id',
      '--ecs-endpoint',
      '--price-per-gb-month',
      '--csi-driver',
      '--ecs-timeout',
      '--ecs-retries',
      '--contents',
      '--snapshot-classes',
    ])
      expect(help).toContain(flag);
    for (const kind of ['orphan', 'dangling', 'stuck', 'expiring'])
      expect(section).toContain(`- \`${kind}\`:`);
  });
});

describe('ACK warnings (ackWarnings)', () => {
  const now = new Date(NOW);
  const spec = (s: Partial<SnapshotScheduleSpec>): SnapshotScheduleSpec => ({
    schedule: '0 2 * * *',
    retention: { maxCount: 7 },
    ...s,
  });
  const ack = (parameters: Record<string, string> = {}) => ({
    metadata: { name: 'ack' },
    driver: ACK_DISK_DRIVER,
    parameters,
  });

  it('retention longer than the class retentionDays', () => {
    expect(ackWarnings(spec({}), ack({ retentionDays: '5' }), now).map((w) => w.path)).toEqual([
      'spec.retention',
    ]);
    expect(ackWarnings(spec({}), ack({ retentionDays: '7' }), now)).toEqual([]);
    expect(ackWarnings(spec({ retention: { expires: '3d' } }), ack({ retentionDays: '5' }), now)).toEqual([]);
    // keep: the longest rule decides; maxCount next to it can cut it short.
    expect(
      ackWarnings(spec({ retention: { keep: { daily: 3, weekly: 2 } } }), ack({ retentionDays: '10' }), now),
    ).toHaveLength(1);
    expect(
      ackWarnings(
        spec({ retention: { keep: { daily: 3, weekly: 2 }, maxCount: 3 } }),
        ack({ retentionDays: '10' }),
        now,
      ),
    ).toEqual([]);
  });

  it('more snapshots per disk than ECS allows (256)', () => {
    const w = ackWarnings(spec({ schedule: '*/5 * * * *', retention: { maxCount: 300 } }), ack(), now);
    expect(w.map((x) => x.path)).toEqual(['spec.retention.maxCount']);
    expect(w[0]?.message).toMatch(
      /^retention can keep 300 ready snapshots of a PVC, plus up to 3 in progress \(maxPending\), more than the 256 manual snapshots ECS allows per disk/,
    );
    expect(ackWarnings(spec({ schedule: '*/5 * * * *', retention: { maxCount: 253 } }), ack(), now)).toEqual(
      [],
    );
    expect(
      ackWarnings(spec({ schedule: '*/5 * * * *', retention: { maxCount: 254 } }), ack(), now),
    ).toHaveLength(1);
    expect(
      ackWarnings(spec({ retention: { keep: { hourly: 200, daily: 100 } } }), ack(), now).map((x) => x.path),
    ).toEqual(['spec.retention.keep']);
    // expires counts the runs within it: every 5 minutes for 1 day is 288.
    expect(
      ackWarnings(spec({ schedule: '*/5 * * * *', retention: { expires: '1d' } }), ack(), now).map(
        (x) => x.path,
      ),
    ).toEqual(['spec.retention.expires']);
  });

  it('a seconds schedule faster than once a minute', () => {
    expect(
      ackWarnings(spec({ schedule: '*/30 * * * * *', retention: { maxCount: 3 } }), ack(), now).map(
        (w) => w.path,
      ),
    ).toEqual(['spec.schedule']);
    expect(ackWarnings(spec({ schedule: '0 * * * * *', retention: { maxCount: 3 } }), ack(), now)).toEqual(
      [],
    );
  });

  it('nothing for another driver or an unknown class', () => {
    const s = spec({ schedule: '*/30 * * * * *', retention: { maxCount: 300 } });
    expect(ackWarnings(s, { driver: 'hostpath.csi.k8s.io' }, now)).toEqual([]);
    expect(ackWarnings(s, undefined, now)).toEqual([]);
    expect(ackWarnings(s, ack(), now)).toHaveLength(2);
  });

  it('as a condition for the controller (AckWarnings)', () => {
    const w = ackWarnings(spec({ schedule: '*/30 * * * * *', retention: { maxCount: 3 } }), ack(), now);
    expect(ackCondition(w)).toEqual({
      type: 'AckWarnings',
      status: 'True',
      reason: 'ExceedsEcsLimits',
      message: `spec.schedule: ${w[0]?.message ?? ''}`,
    });
    expect(ackCondition([])).toMatchObject({
      type: 'AckWarnings',
      status: 'False',
      reason: 'WithinEcsLimits',
    });
  });

  it("a schedule's class: by name, else the one default", () => {
    const classes = [
      { metadata: { name: 'a' }, driver: 'x' },
      {
        metadata: { name: 'b', annotations: { 'snapshot.storage.kubernetes.io/is-default-class': 'true' } },
        driver: ACK_DISK_DRIVER,
      },
    ];
    expect(snapshotClassOf({ snapshotClassName: 'a' }, classes)?.metadata.name).toBe('a');
    expect(snapshotClassOf({}, classes)?.metadata.name).toBe('b');
    expect(snapshotClassOf({ snapshotClassName: 'zz' }, classes)).toBeUndefined();
  });

  it('snapcron validate --snapshot-classes prints them as warnings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snapcron-ack-validate-'));
    try {
      const sched = join(dir, 's.json');
      const classes = join(dir, 'c.json');
      writeFileSync(
        sched,
        JSON.stringify({ ...scheduleDoc, spec: { ...scheduleDoc.spec, schedule: '*/20 * * * * *' } }),
      );
      writeFileSync(classes, JSON.stringify({ kind: 'List', items: [ackClass] }));
      const r = await run('validate', '-f', sched, '--snapshot-classes', classes);
      expect(r.code).toBe(0);
      expect(r.out.trim()).toBe('1 valid, 0 invalid');
      const lines = r.err.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^.*s\.json: SnapshotSchedule shop\/web: warning: spec\.schedule: fires every 20s, but ECS takes one snapshot of a disk at a time/,
      );
      // 7 runs 20 s apart fit well within retentionDays 5: only the speed warns.
      const without = await run('validate', '-f', sched);
      expect(without.err).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
