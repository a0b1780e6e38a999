import { pino } from 'pino';
import { Registry } from '../../src/controller/prometheus.ts';
import { describe, expect, it } from 'vitest';
import type { EcsApi, EcsSnapshot } from '../../src/cloud/ecs-api.ts';
import { CloudAudit } from '../../src/report/cloud-audit.ts';
import { buildReport } from '../../src/report/build.ts';

const DRIVER = 'diskplugin.csi.alibabacloud.com';
const now = new Date('2026-03-01T00:00:00Z');
const ecsSnapshot = (id: string): EcsSnapshot => ({
  snapshotId: id,
  snapshotName: id,
  status: 'accomplished',
  progress: '100%',
  available: true,
  sourceDiskId: 'd-1',
  sourceDiskSize: 20,
  creationTime: '2026-02-28T00:00:00Z',
  retentionDays: null,
  category: 'standard',
  tags: { 'ack.aliyun.com': 'c-1' },
});

/** An ECS that answers from a list, or fails while `down`. */
function fakeEcs(snapshots: EcsSnapshot[]) {
  const state = { down: false };
  const api: EcsApi = {
    calls: { describeSnapshots: 0, describeSnapshotLinks: 0 },
    snapshotsByIds: (ids) => {
      api.calls.describeSnapshots++;
      if (state.down)
        return Promise.reject(new Error('ECS DescribeSnapshots failed: ServiceUnavailable (HTTP 503)'));
      return Promise.resolve(snapshots.filter((s) => ids.includes(s.snapshotId)));
    },
    snapshotsByTag: () => {
      api.calls.describeSnapshots++;
      return Promise.resolve({ snapshots, truncated: false });
    },
    snapshotLinks: () => {
      api.calls.describeSnapshotLinks++;
      return Promise.resolve([{ sourceDiskId: 'd-1', totalSize: 2 ** 30, totalCount: snapshots.length }]);
    },
  };
  return { api, state };
}

function audit(snapshots: EcsSnapshot[]) {
  const { api, state } = fakeEcs(snapshots);
  const registry = new Registry();
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
  const content = (name: string, handle: string) => ({
    metadata: { name },
    spec: { driver: DRIVER, volumeSnapshotRef: { namespace: 'app', name: `vs-${name}` } },
    status: { snapshotHandle: handle },
  });
  const cloud = new CloudAudit({
    api,
    options: { regionId: 'cn-hangzhou', driver: DRIVER, clusterId: 'c-1', pricePerGbMonth: null },
    readInfra: () =>
      Promise.resolve({ contents: [content('a', 's-a'), content('b', 's-gone')], classes: [] }),
    objects: () => ({ schedules: [], pvcs: [], snapshots: [] }),
    periodMs: 3_600_000,
    log,
    registry,
    clock: () => now,
  });
  return { cloud, api, state, registry, lines };
}

describe('CloudAudit: the controller’s periodic ECS view', () => {
  it('answers /report from its last refresh without calling ECS, and sets the gauges', async () => {
    const { cloud, api, registry } = audit([ecsSnapshot('s-a'), ecsSnapshot('s-orphan')]);
    const empty = buildReport({ schedules: [], pvcs: [], snapshots: [], now });
    expect(cloud.apply(empty, { now }).alibaba?.notes).toEqual([
      'no ECS answer yet: the first refresh is under way',
    ]);
    await cloud.refresh();
    const calls = { ...api.calls };
    const report = cloud.apply(empty, { now });
    cloud.apply(empty, { now });
    expect(api.calls).toEqual(calls);
    expect(report.alibaba?.notes[0]).toBe('ECS data as of 2026-03-01T00:00:00Z (refreshed every 3600s)');
    expect(report.findings.map((f) => f.kind)).toEqual(['orphan', 'dangling']);
    const text = await registry.metrics();
    expect(text).toMatch(/^snapcron_cloud_findings\{kind="orphan"\} 1$/m);
    expect(text).toMatch(/^snapcron_cloud_findings\{kind="dangling"\} 1$/m);
    expect(text).toMatch(/^snapcron_cloud_refresh_timestamp_seconds 1772323200$/m);
    expect(text).toMatch(/^snapcron_cloud_refresh_failing 0$/m);
  });

  it('keeps the last answer through failures, says so, and logs once per failure streak', async () => {
    const { cloud, state, registry, lines } = audit([ecsSnapshot('s-a')]);
    await cloud.refresh();
    state.down = true;
    await cloud.refresh();
    await cloud.refresh();
    const empty = buildReport({ schedules: [], pvcs: [], snapshots: [], now });
    const report = cloud.apply(empty, { now });
    expect(report.alibaba?.notes[0]).toMatch(
      /; the latest refresh failed: ECS DescribeSnapshots failed: ServiceUnavailable/,
    );
    expect(report.alibaba?.snapshots.map((s) => s.snapshotId)).toEqual(['s-a', 's-gone']);
    expect(await registry.metrics()).toMatch(/^snapcron_cloud_refresh_failing 1$/m);
    expect(lines.filter((l) => l.includes('ECS refresh failed'))).toHaveLength(1);
    state.down = false;
    await cloud.refresh();
    expect(lines.filter((l) => l.includes('ECS refresh works again'))).toHaveLength(1);
    expect(await registry.metrics()).toMatch(/^snapcron_cloud_refresh_failing 0$/m);
  });
});
