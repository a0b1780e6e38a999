/** The Kubernetes clients snapcron uses, built once from a KubeConfig, with write throttling. */
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { GROUP, SCHEDULE_PLURAL, SNAPSHOT_GROUP, SNAPSHOT_VERSION, VERSION } from '../api/constants.ts';
import { FairLimiter, type Lane } from './fair-limiter.ts';
import { NotLeaderError, withRetry, type RetryOptions } from './retry.ts';

const IN_CLUSTER_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** Default client-side write budget: enough for 1,000 schedules x 10 PVCs every 5 minutes (bench:scale). */
export const DEFAULT_QPS = 100;
export const DEFAULT_BURST = 200;

export interface KubeOptions {
  qps?: number;
  burst?: number;
  retry?: RetryOptions;
}

export class Kube {
  readonly kc: k8s.KubeConfig;
  readonly custom: k8s.CustomObjectsApi;
  readonly core: k8s.CoreV1Api;
  readonly coordination: k8s.CoordinationV1Api;
  readonly admission: k8s.AdmissionregistrationV1Api;
  readonly writes: FairLimiter;
  private readonly retry: RetryOptions;
  private fence: (() => boolean) | undefined;

  constructor(kc: k8s.KubeConfig, opts: KubeOptions = {}) {
    this.kc = kc;
    this.custom = kc.makeApiClient(k8s.CustomObjectsApi);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.coordination = kc.makeApiClient(k8s.CoordinationV1Api);
    this.admission = kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    this.writes = new FairLimiter(opts.qps ?? DEFAULT_QPS, opts.burst ?? DEFAULT_BURST);
    this.retry = opts.retry ?? {};
  }

  static fromDefault(opts: KubeOptions = {}): Kube {
    const kc = new k8s.KubeConfig();
    kc.loadFromDefault();
    return new Kube(kc, opts);
  }

  /** The namespace for our own objects (the Lease): in-cluster, else the context's, else default. */
  defaultNamespace(): string {
    try {
      return readFileSync(IN_CLUSTER_NAMESPACE, 'utf8').trim();
    } catch {
      const ctx = this.kc.getContextObject(this.kc.getCurrentContext());
      return ctx?.namespace || 'default';
    }
  }

  /** A read, retried on transient errors. */
  read<T>(fn: () => Promise<T>): Promise<T> {
    return withRetry(fn, this.retry);
  }

  /**
   * The same clients and write budget, but writes go out only while `holds()` is true
   * (the controller's lease check), asked at the moment of each attempt, after the rate
   * limiter's wait. The webhook keeps the unfenced client: every replica serves it.
   */
  fenced(holds: () => boolean): Kube {
    const view = Object.create(this) as Kube;
    view.fence = holds;
    return view;
  }

  /**
   * A write: throttled by the shared budget (fairly per `key`, in its `lane`), fenced by the
   * lease, retried on transient errors.
   */
  write<T>(fn: () => Promise<T>, by: { key?: string; lane?: Lane } = {}): Promise<T> {
    return withRetry(async () => {
      await this.writes.take(by.key, by.lane);
      if (this.fence && !this.fence()) throw new NotLeaderError();
      return fn();
    }, this.retry);
  }

  readonly schedules = { group: GROUP, version: VERSION, plural: SCHEDULE_PLURAL } as const;
  readonly snapshots = {
    group: SNAPSHOT_GROUP,
    version: SNAPSHOT_VERSION,
    plural: 'volumesnapshots',
  } as const;
}
