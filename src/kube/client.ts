/** The Kubernetes clients snapcron uses, built once from a KubeConfig, with write throttling. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import {
  GROUP,
  GROUP_SNAPSHOT_GROUP,
  GROUP_SNAPSHOT_VERSION,
  SCHEDULE_PLURAL,
  SNAPSHOT_GROUP,
  SNAPSHOT_VERSION,
  VERSION,
} from '../api/constants.ts';
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

/**
 * client-node 2.0 builds a new undici Agent for every request (KubeConfig.createDispatcher),
 * so no connection is ever reused: each call pays a TLS handshake and leaves a socket to idle
 * out — under bench:scale's load, 500 open sockets and most of the controller's CPU. One
 * Agent per (API server, TLS identity) brings back keep-alive. Tokens travel in headers, not
 * in the Agent, so a rotated token still applies; a changed client certificate gets a new Agent.
 */
const identity = (v: unknown): string =>
  Buffer.isBuffer(v) ? v.toString('base64') : typeof v === 'string' ? v : (JSON.stringify(v) ?? '');

function shareDispatcher(kc: k8s.KubeConfig): void {
  type Create = (cluster: k8s.Cluster | null, options: Record<string, unknown>) => unknown;
  const target = kc as unknown as { createDispatcher: Create; snapcronShared?: true };
  if (target.snapcronShared) return;
  const original = target.createDispatcher.bind(kc);
  const agents = new Map<string, unknown>();
  target.createDispatcher = (cluster, options) => {
    const key = createHash('sha256')
      .update(
        JSON.stringify([
          cluster?.server,
          cluster?.proxyUrl,
          ...['ca', 'cert', 'key', 'pfx', 'passphrase', 'servername', 'rejectUnauthorized'].map((k) =>
            identity(options[k]),
          ),
        ]),
      )
      .digest('hex');
    let agent = agents.get(key);
    if (agent === undefined) {
      agent = original(cluster, options);
      agents.set(key, agent);
    }
    return agent;
  };
  target.snapcronShared = true;
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
    shareDispatcher(kc);
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
  readonly groupSnapshots = {
    group: GROUP_SNAPSHOT_GROUP,
    version: GROUP_SNAPSHOT_VERSION,
    plural: 'volumegroupsnapshots',
  } as const;
}
