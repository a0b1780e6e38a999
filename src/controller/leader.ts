/**
 * Leader election on a coordination.k8s.io Lease, client-go style: the holder renews
 * every retry period; a standby takes over once it has seen the lease unchanged
 * for a full lease duration (judged by its own clock, so clock skew between
 * nodes does not matter). Updates carry the resourceVersion, so two standbys can
 * never both win.
 */
import type { V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Kube } from '../kube/client.ts';
import { errorMessage, sleep, statusOf } from '../kube/retry.ts';

export interface LeaderOptions {
  kube: Kube;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  retryPeriodMs: number;
  log: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

/** metav1.MicroTime wants six fractional digits. */
const microTime = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class LeaderElector {
  private readonly o: LeaderOptions;
  private leading = false;
  private stopped = false;
  private observedRecord = '';
  private observedAt = 0;
  private lastRenew = 0;
  private loop: Promise<void> | undefined;

  constructor(o: LeaderOptions) {
    this.o = o;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.tryAcquireOrRenew();
      } catch (err) {
        this.o.log.warn({ err: errorMessage(err), lease: this.o.name }, 'lease update failed');
      }
      // Lost the ability to renew for a whole lease: stop acting before anyone else may start.
      if (this.leading && Date.now() - this.lastRenew > this.o.leaseDurationSeconds * 1000 * 0.8) {
        this.setLeading(false);
      }
      await sleep(this.o.retryPeriodMs);
    }
  }

  private setLeading(value: boolean): void {
    if (value === this.leading) return;
    this.leading = value;
    this.o.log.info(
      { lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity },
      value ? 'became leader' : 'stopped leading',
    );
    if (value) this.o.onStartedLeading();
    else this.o.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const { kube, namespace, name, identity } = this.o;
    const now = new Date();
    let lease: V1Lease;
    try {
      lease = await kube.coordination.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      await kube.coordination.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: this.o.leaseDurationSeconds,
            acquireTime: microTime(now) as unknown as Date,
            renewTime: microTime(now) as unknown as Date,
            leaseTransitions: 0,
          },
        },
      });
      this.lastRenew = Date.now();
      this.setLeading(true);
      return;
    }
    const spec = lease.spec ?? {};
    const record = `${spec.holderIdentity ?? ''}|${String(spec.renewTime)}`;
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = Date.now();
    }
    const holder = spec.holderIdentity ?? '';
    const duration = (spec.leaseDurationSeconds ?? this.o.leaseDurationSeconds) * 1000;
    const expired = holder === '' || Date.now() - this.observedAt > duration;
    if (holder !== identity && !expired) {
      this.setLeading(false);
      return;
    }
    const takingOver = holder !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: this.o.leaseDurationSeconds,
      renewTime: microTime(now) as unknown as Date,
      ...(takingOver
        ? {
            acquireTime: microTime(now) as unknown as Date,
            leaseTransitions: (spec.leaseTransitions ?? 0) + 1,
          }
        : {}),
    };
    try {
      await kube.coordination.replaceNamespacedLease({ name, namespace, body: lease });
    } catch (err) {
      if (statusOf(err) === 409) return; // someone else wrote first; look again next period
      throw err;
    }
    this.lastRenew = Date.now();
    this.setLeading(true);
  }

  /** Stops renewing and, if leading, hands the lease back so a standby takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    await this.loop;
    if (!this.leading) return;
    const { kube, namespace, name } = this.o;
    try {
      const lease = await kube.coordination.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity === this.o.identity) {
        lease.spec = { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 };
        await kube.coordination.replaceNamespacedLease({ name, namespace, body: lease });
      }
    } catch (err) {
      this.o.log.warn({ err: errorMessage(err) }, 'could not release lease');
    }
    this.setLeading(false);
  }
}
