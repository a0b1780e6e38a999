/**
 * Leader election (src/controller/leader.ts) on the real API server, in-process: a leader
 * renews with one write a period and no read (client-go's optimistic renewal), and any other
 * write to the lease sends it back to reading and deciding: it keeps a lease that is still its
 * own, and never overwrites another holder. (Take-over after a kill and hand-over on SIGTERM are
 * process-level tests in scheduler.test.ts.)
 */
import type { V1Lease } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LeaderElector } from '../../src/controller/leader.ts';
import { Kube } from '../../src/kube/client.ts';
import { sleep } from '../../src/kube/retry.ts';
import { eventually, kube, kubeconfigPath, retryOnConflict, useNamespace } from '../env/kube.ts';

describe('leader election on a real Lease', () => {
  const ns = useNamespace('leader');
  const electors: LeaderElector[] = [];
  afterEach(async () => {
    await Promise.all(electors.splice(0).map((e) => e.release()));
  });

  /** An elector on its own client, counting that client's lease reads and writes. */
  function elector(identity: string): { e: LeaderElector; reads: () => number; writes: () => number } {
    const k = Kube.fromFile(kubeconfigPath());
    let reads = 0;
    let writes = 0;
    const read = k.coordination.readNamespacedLease.bind(k.coordination);
    const replace = k.coordination.replaceNamespacedLease.bind(k.coordination);
    k.coordination.readNamespacedLease = (p) => (reads++, read(p));
    k.coordination.replaceNamespacedLease = (p) => (writes++, replace(p));
    const e = new LeaderElector({
      kube: k,
      namespace: ns(),
      name: 'snapcron-controller',
      identity,
      leaseDurationSeconds: 3,
      retryPeriodMs: 100,
      log: pino({ level: 'silent' }),
      onStartedLeading: () => undefined,
      onStoppedLeading: () => undefined,
    });
    electors.push(e);
    e.start();
    return { e, reads: () => reads, writes: () => writes };
  }
  const lease = () =>
    kube().coordination.readNamespacedLease({ namespace: ns(), name: 'snapcron-controller' });
  /** Someone else's write to the Lease: read, change, replace, read again if a renewal came between. */
  const writeLease = (change: (l: V1Lease) => void): Promise<void> =>
    retryOnConflict(async () => {
      const l = await lease();
      change(l);
      await kube().coordination.replaceNamespacedLease({
        namespace: ns(),
        name: 'snapcron-controller',
        body: l,
      });
    });

  it('renews with one write a period and no read; a write by someone else sends it back to reading', async () => {
    const a = elector('ctl-a');
    await eventually(async () => a.e.isLeader, 5000, 20);
    const [reads0, writes0] = [a.reads(), a.writes()];
    const renewedAt0 = String((await lease()).spec?.renewTime);
    await sleep(1000);
    expect(a.writes() - writes0).toBeGreaterThanOrEqual(5); // a period is 100 ms
    expect(a.reads() - reads0).toBe(0);
    expect(String((await lease()).spec?.renewTime)).not.toBe(renewedAt0);

    // Someone else writes the lease (a label): the leader's copy is stale, its write refused; it
    // reads the lease, finds it still its own, and keeps leading.
    await writeLease((l) => {
      l.metadata = { ...l.metadata, labels: { touched: 'yes' } };
    });
    const reads1 = a.reads();
    await eventually(async () => a.reads() > reads1, 5000, 20);
    await sleep(500);
    expect(a.e.isLeader).toBe(true);
    expect((await lease()).metadata?.labels).toEqual({ touched: 'yes' }); // renewed on the new version
    expect(a.reads() - reads1).toBe(1); // one read, then its own copy again
  });

  it('never renews over another holder: a lease taken meanwhile stops it leading', async () => {
    const a = elector('ctl-a');
    await eventually(async () => a.e.isLeader, 5000, 20);
    await writeLease((l) => {
      l.spec = {
        ...l.spec,
        holderIdentity: 'ctl-elsewhere',
        renewTime: new Date().toISOString().replace('Z', '000Z') as unknown as Date,
      };
    });
    await eventually(async () => !a.e.isLeader, 5000, 20);
    await sleep(500);
    expect((await lease()).spec?.holderIdentity).toBe('ctl-elsewhere');
  });
});
