/**
 * Leader election on a coordination.k8s.io Lease, client-go style: the holder renews
 * every retry period; a standby takes over once it has seen the lease unchanged
 * for a full lease duration (judged by its own clock, so clock skew between
 * nodes does not matter). Updates carry the resourceVersion, so two standbys can
 * never both win.
 *
 * Fencing: a standby's lease-duration countdown starts no earlier than our last
 * successful renewal was *sent*. So "am I leader" is not a flag but a deadline,
 * `renewSentAt + fenceFraction * leaseDuration`, checked at the moment of every write
 * (`holdsLease()`): a process that was frozen, or whose renewal hangs, stops writing
 * before a standby can start. Every lease call has a deadline of its own.
 *
 * The leader renews with one write a period, on its own copy of the lease (client-go's
 * optimistic renewal, as controller-runtime's leaders do): reading it first would double the
 * requests of a quiet controller. Any other write to the lease makes that copy stale, the write
 * is refused (409) and the period falls back to reading the lease and deciding again.
 */
import type { V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Kube } from '../kube/client.ts';
import { errorMessage, sleep, statusOf, withDeadline } from '../kube/retry.ts';

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
  /** Monotonic milliseconds; injectable for tests. */
  monotonicNow?: () => number;
}

/** Share of the lease duration after the last renewal was sent during which we still act. */
const FENCE_FRACTION = 0.8;

/** metav1.MicroTime wants six fractional digits. */
const microTime = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class LeaderElector {
  private readonly o: LeaderOptions;
  private leading = false;
  private stopped = false;
  private observedRecord = '';
  private observedAt = 0;
  /** The lease as our last successful write left it, resourceVersion included: what the next renewal replaces. */
  private ownLease: V1Lease | undefined;
  /** Monotonic time at which the last successful renewal (or acquisition) was sent. */
  private renewSentAt = -Infinity;
  private loop: Promise<void> | undefined;
  private readonly mono: () => number;

  constructor(o: LeaderOptions) {
    this.o = o;
    this.mono = o.monotonicNow ?? (() => performance.now());
  }

  /** True only while the lease is ours by our own clock: checked at the moment of each write. */
  holdsLease(): boolean {
    return this.leading && this.mono() - this.renewSentAt < this.fenceMs();
  }

  get isLeader(): boolean {
    return this.holdsLease();
  }

  private fenceMs(): number {
    return this.o.leaseDurationSeconds * 1000 * FENCE_FRACTION;
  }

  /** A lease call may not outlive the fence: a hung renewal must not keep us "leading". */
  private callDeadlineMs(): number {
    return Math.max(500, Math.min(this.o.retryPeriodMs * 2, this.fenceMs() / 2));
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
      // Could not renew within the fence: stop acting before anyone else may start.
      if (this.leading && !this.holdsLease()) this.setLeading(false);
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

  /** Writes the lease (a renewal or a take-over); the answer is the copy the next renewal replaces. */
  private async replaceLease(body: V1Lease): Promise<void> {
    const { kube, namespace, name } = this.o;
    // The standby's countdown starts after it sees this write, so time it from before sending.
    const sentAt = this.mono();
    this.ownLease = await withDeadline(
      kube.coordination.replaceNamespacedLease({ name, namespace, body }),
      this.callDeadlineMs(),
      'renew lease',
    );
    this.renewSentAt = sentAt;
  }

  /** One write, no read: true when the lease was renewed on our copy of it. */
  private async renewOwn(): Promise<boolean> {
    const own = this.ownLease;
    if (!own || !this.holdsLease()) return false;
    try {
      await this.replaceLease({
        ...own,
        spec: { ...own.spec, renewTime: microTime(new Date()) as unknown as Date },
      });
      return true;
    } catch (err) {
      this.ownLease = undefined;
      this.o.log.debug(
        { err: errorMessage(err), lease: this.o.name },
        'renewing our copy of the lease failed; reading it',
      );
      return false;
    }
  }

  private async tryAcquireOrRenew(): Promise<void> {
    if (await this.renewOwn()) return;
    const { kube, namespace, name, identity } = this.o;
    const deadline = this.callDeadlineMs();
    const now = new Date();
    let lease: V1Lease;
    try {
      lease = await withDeadline(
        kube.coordination.readNamespacedLease({ name, namespace }),
        deadline,
        'read lease',
      );
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      const sentAt = this.mono();
      this.ownLease = await withDeadline(
        kube.coordination.createNamespacedLease({
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
        }),
        deadline,
        'create lease',
      );
      this.renewSentAt = sentAt;
      this.setLeading(true);
      return;
    }
    const spec = lease.spec ?? {};
    const record = `${spec.holderIdentity ?? ''}|${String(spec.renewTime)}`;
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = this.mono();
    }
    const holder = spec.holderIdentity ?? '';
    const duration = (spec.leaseDurationSeconds ?? this.o.leaseDurationSeconds) * 1000;
    const expired = holder === '' || this.mono() - this.observedAt > duration;
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
      await this.replaceLease(lease);
    } catch (err) {
      if (statusOf(err) === 409) return; // someone else wrote first; look again next period
      throw err;
    }
    this.setLeading(true);
  }

  /** Stops renewing and, if leading, hands the lease back so a standby takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    await this.loop;
    if (!this.leading) return;
    const { kube, namespace, name } = this.o;
    const deadline = this.callDeadlineMs();
    try {
      const lease = await withDeadline(
        kube.coordination.readNamespacedLease({ name, namespace }),
        deadline,
        'read lease',
      );
      if (lease.spec?.holderIdentity === this.o.identity) {
        lease.spec = { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 };
        await withDeadline(
          kube.coordination.replaceNamespacedLease({ name, namespace, body: lease }),
          deadline,
          'release lease',
        );
      }
    } catch (err) {
      this.o.log.warn({ err: errorMessage(err) }, 'could not release lease');
    }
    this.setLeading(false);
  }
}
