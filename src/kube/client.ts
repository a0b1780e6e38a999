/** The Kubernetes clients snapcron uses (api.ts over rest.ts), built once from a ClusterAccess, with write throttling. */
import { readFileSync } from 'node:fs';
import {
  GROUP,
  GROUP_SNAPSHOT_GROUP,
  GROUP_SNAPSHOT_VERSION,
  SCHEDULE_PLURAL,
  SNAPSHOT_GROUP,
  SNAPSHOT_VERSION,
  VERSION,
} from '../api/constants.ts';
import {
  AdmissionregistrationV1Api,
  AuthorizationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
} from './api.ts';
import { FairLimiter, type Lane } from './fair-limiter.ts';
import { loadDefault, loadFile, type ClusterAccess } from './kubeconfig.ts';
import { Rest } from './rest.ts';
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

/** Where the connection settings came from, so a lazily loaded client (hook exec) uses the same. */
export interface KubeOrigin {
  /** A kubeconfig file; else the default search (loadDefault). */
  file?: string | undefined;
  context?: string | undefined;
}

type KubeClass<K> = new (access: ClusterAccess, opts?: KubeOptions & { origin?: KubeOrigin }) => K;

export class Kube {
  readonly rest: Rest;
  readonly origin: KubeOrigin;
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;
  readonly admission: AdmissionregistrationV1Api;
  readonly authorization: AuthorizationV1Api;
  readonly writes: FairLimiter;
  private readonly retry: RetryOptions;
  private fence: (() => boolean) | undefined;

  constructor(access: ClusterAccess, opts: KubeOptions & { origin?: KubeOrigin } = {}) {
    this.rest = new Rest(access);
    this.origin = opts.origin ?? {};
    this.custom = new CustomObjectsApi(this.rest);
    this.core = new CoreV1Api(this.rest);
    this.coordination = new CoordinationV1Api(this.rest);
    this.admission = new AdmissionregistrationV1Api(this.rest);
    this.authorization = new AuthorizationV1Api(this.rest);
    this.writes = new FairLimiter(opts.qps ?? DEFAULT_QPS, opts.burst ?? DEFAULT_BURST);
    this.retry = opts.retry ?? {};
  }

  /** As kubectl: $KUBECONFIG, ~/.kube/config, else the pod's service account. A subclass builds its own kind. */
  static fromDefault<K extends Kube>(
    this: KubeClass<K>,
    opts: KubeOptions & { context?: string | undefined } = {},
  ): K {
    return new this(loadDefault({ ...(opts.context ? { context: opts.context } : {}) }), {
      ...opts,
      origin: { context: opts.context },
    });
  }

  /** One kubeconfig file (its current context unless `context`). A subclass builds its own kind. */
  static fromFile<K extends Kube>(
    this: KubeClass<K>,
    file: string,
    opts: KubeOptions & { context?: string | undefined } = {},
  ): K {
    return new this(loadFile(file, { ...(opts.context ? { context: opts.context } : {}) }), {
      ...opts,
      origin: { file, context: opts.context },
    });
  }

  /** The namespace for our own objects (the Lease): in-cluster, else the context's, else default. */
  defaultNamespace(): string {
    try {
      return readFileSync(IN_CLUSTER_NAMESPACE, 'utf8').trim();
    } catch {
      return this.rest.access.namespace || 'default';
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
