/**
 * The AckWarnings condition on the real API server: the controller watches
 * VolumeSnapshotClasses and re-checks its schedules when one changes; a tick reads them once.
 */
import * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.ts';
import { Metrics } from '../../src/controller/metrics.ts';
import { Kube } from '../../src/kube/client.ts';
import {
  createSchedule,
  eventually,
  getSchedule,
  kubeConfig,
  kubeconfigPath,
  useNamespace,
} from '../env/kube.ts';
import { runTick } from '../env/processes.ts';

const CLASS = { group: 'snapshot.storage.k8s.io', version: 'v1', plural: 'volumesnapshotclasses' };
const custom = (): k8s.CustomObjectsApi => kubeConfig().makeApiClient(k8s.CustomObjectsApi);
const ackCondition = async (ns: string, name: string) =>
  (await getSchedule(ns, name)).status?.conditions?.find((c) => c.type === 'AckWarnings');

describe('AckWarnings: ACK limits in the schedule status', () => {
  const ns = useNamespace('ack');
  const className = `ecs-${Date.now().toString(36)}`;

  afterAll(async () => {
    await custom()
      .deleteClusterCustomObject({ ...CLASS, name: className })
      .catch(() => undefined);
  });

  it('the controller sets it from the class, and follows a change of the class', async () => {
    await custom().createClusterCustomObject({
      ...CLASS,
      body: {
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshotClass',
        metadata: { name: className },
        driver: 'diskplugin.csi.alibabacloud.com',
        deletionPolicy: 'Delete',
        parameters: { retentionDays: '3' },
      },
    });
    await createSchedule(ns(), 'daily', {
      schedule: '0 2 * * *',
      snapshotClassName: className,
      retention: { expires: '30d', maxPending: 3 },
    });
    const controller = new Controller({
      kube: Kube.fromFile(kubeconfigPath(), { qps: 100, burst: 100 }),
      log: pino({ level: process.env.TEST_LOG ?? 'silent' }),
      metrics: new Metrics(),
      namespace: ns(),
      lease: { namespace: ns(), name: 'ack', identity: 'ack', durationSeconds: 15, retryPeriodMs: 200 },
    });
    await controller.start();
    try {
      const warned = await eventually(async () => {
        const c = await ackCondition(ns(), 'daily');
        return c?.status === 'True' ? c : undefined;
      }, 15_000);
      expect(warned.reason).toBe('ExceedsEcsLimits');
      expect(warned.message).toContain(`VolumeSnapshotClass ${className} sets retentionDays 3`);

      // retentionDays removed from the class: the watch brings a new pass, the warning goes.
      await custom().patchClusterCustomObject(
        { ...CLASS, name: className, body: [{ op: 'remove', path: '/parameters/retentionDays' }] },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
      );
      const cleared = await eventually(async () => {
        const c = await ackCondition(ns(), 'daily');
        return c?.status === 'False' ? c : undefined;
      }, 15_000);
      expect(cleared.reason).toBe('WithinEcsLimits');
    } finally {
      await controller.stop();
    }
  });

  it('a tick sets it too', async () => {
    await createSchedule(ns(), 'every-second', {
      schedule: '* * * * * *',
      snapshotClassName: className,
      retention: { maxCount: 3, maxPending: 3 },
    });
    const tick = await runTick(ns());
    expect(tick.code).toBe(0);
    const c = await ackCondition(ns(), 'every-second');
    expect(c?.status).toBe('True');
    expect(c?.message).toMatch(/^spec\.schedule: fires every 1s/);
  });
});
