/**
 * The API verbs snapcron uses, over rest.ts. Method and parameter names follow
 * @kubernetes/client-node's, so code reads as before; answers are the server's JSON as is
 * (timestamps stay RFC 3339 strings, unknown fields are kept).
 */
import type {
  CoreV1Event,
  CoreV1EventList,
  V1APIResourceList,
  V1Lease,
  V1MutatingWebhookConfiguration,
  V1PersistentVolumeClaim,
  V1PersistentVolumeClaimList,
  V1Pod,
  V1PodList,
  V1Secret,
  V1SelfSubjectAccessReview,
} from '@kubernetes/client-node';
import { collectionPath, coreCollection as core, LEASES, objectPath as one } from './paths.ts';
import type { Query, Rest } from './rest.ts';

export interface ListParams {
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
  limit?: number | undefined;
  _continue?: string | undefined;
  resourceVersion?: string | undefined;
}

export interface CustomResource {
  group: string;
  version: string;
  plural: string;
}

const listQuery = (p: ListParams): Query => ({
  labelSelector: p.labelSelector,
  fieldSelector: p.fieldSelector,
  limit: p.limit,
  continue: p._continue,
  resourceVersion: p.resourceVersion,
});

/** What every API group's class holds: the transport. */
class Verbs {
  protected readonly rest: Rest;
  constructor(rest: Rest) {
    this.rest = rest;
  }
}

/** A JSON patch (RFC 6902) is an array of operations; an object is a merge patch (RFC 7386). */
export const patchType = (body: unknown): string =>
  Array.isArray(body) ? 'application/json-patch+json' : 'application/merge-patch+json';

/* eslint-disable @typescript-eslint/no-explicit-any -- custom objects are typed by the caller, as client-node's are */
export class CustomObjectsApi extends Verbs {
  listNamespacedCustomObject(p: CustomResource & ListParams & { namespace: string }): Promise<any> {
    return this.rest.send('GET', collectionPath(p, p.namespace), { query: listQuery(p) });
  }
  listClusterCustomObject(p: CustomResource & ListParams): Promise<any> {
    return this.rest.send('GET', collectionPath(p), { query: listQuery(p) });
  }
  getNamespacedCustomObject(p: CustomResource & { namespace: string; name: string }): Promise<any> {
    return this.rest.send('GET', one(collectionPath(p, p.namespace), p.name));
  }
  /** `dryRun: 'All'`: validated and admitted, not stored; `fieldValidation: 'Strict'`: unknown fields refused. */
  createNamespacedCustomObject(
    p: CustomResource & {
      namespace: string;
      body: object;
      dryRun?: string | undefined;
      fieldValidation?: string | undefined;
    },
  ): Promise<any> {
    return this.rest.send('POST', collectionPath(p, p.namespace), {
      body: p.body,
      query: { dryRun: p.dryRun, fieldValidation: p.fieldValidation },
    });
  }
  /** `body` is DeleteOptions (preconditions, propagationPolicy). */
  deleteNamespacedCustomObject(
    p: CustomResource & { namespace: string; name: string; body?: object },
  ): Promise<any> {
    return this.rest.send('DELETE', one(collectionPath(p, p.namespace), p.name), { body: p.body });
  }
  replaceNamespacedCustomObjectStatus(
    p: CustomResource & { namespace: string; name: string; body: object },
  ): Promise<any> {
    return this.rest.send('PUT', `${one(collectionPath(p, p.namespace), p.name)}/status`, { body: p.body });
  }
  /** A merge patch (an object: what snapcron sends) or a JSON patch (an array of operations). */
  patchNamespacedCustomObject(
    p: CustomResource & { namespace: string; name: string; body: object },
  ): Promise<any> {
    return this.rest.send('PATCH', one(collectionPath(p, p.namespace), p.name), {
      body: p.body,
      contentType: patchType(p.body),
    });
  }
  /** The resources a group version serves (discovery); 404 when it is not served. */
  getAPIResources(p: { group: string; version: string }): Promise<V1APIResourceList> {
    return this.rest.send('GET', `/apis/${p.group}/${p.version}`);
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export class CoreV1Api extends Verbs {
  listNamespacedPersistentVolumeClaim(
    p: ListParams & { namespace: string },
  ): Promise<V1PersistentVolumeClaimList> {
    return this.rest.send('GET', core('persistentvolumeclaims', p.namespace), { query: listQuery(p) });
  }
  listPersistentVolumeClaimForAllNamespaces(p: ListParams = {}): Promise<V1PersistentVolumeClaimList> {
    return this.rest.send('GET', core('persistentvolumeclaims'), { query: listQuery(p) });
  }
  readNamespacedPersistentVolumeClaim(p: {
    namespace: string;
    name: string;
  }): Promise<V1PersistentVolumeClaim> {
    return this.rest.send('GET', one(core('persistentvolumeclaims', p.namespace), p.name));
  }
  createNamespacedPersistentVolumeClaim(p: {
    namespace: string;
    body: V1PersistentVolumeClaim;
    dryRun?: string | undefined;
  }): Promise<V1PersistentVolumeClaim> {
    return this.rest.send('POST', core('persistentvolumeclaims', p.namespace), {
      body: p.body,
      query: { dryRun: p.dryRun },
    });
  }
  listNamespacedEvent(p: ListParams & { namespace: string }): Promise<CoreV1EventList> {
    return this.rest.send('GET', core('events', p.namespace), { query: listQuery(p) });
  }
  readNamespacedEvent(p: { namespace: string; name: string }): Promise<CoreV1Event> {
    return this.rest.send('GET', one(core('events', p.namespace), p.name));
  }
  createNamespacedEvent(p: { namespace: string; body: CoreV1Event }): Promise<CoreV1Event> {
    return this.rest.send('POST', core('events', p.namespace), { body: p.body });
  }
  replaceNamespacedEvent(p: { namespace: string; name: string; body: CoreV1Event }): Promise<CoreV1Event> {
    return this.rest.send('PUT', one(core('events', p.namespace), p.name), { body: p.body });
  }
  readNamespacedSecret(p: { namespace: string; name: string }): Promise<V1Secret> {
    return this.rest.send('GET', one(core('secrets', p.namespace), p.name));
  }
  createNamespacedSecret(p: { namespace: string; body: V1Secret }): Promise<V1Secret> {
    return this.rest.send('POST', core('secrets', p.namespace), { body: p.body });
  }
  replaceNamespacedSecret(p: { namespace: string; name: string; body: V1Secret }): Promise<V1Secret> {
    return this.rest.send('PUT', one(core('secrets', p.namespace), p.name), { body: p.body });
  }
  listNamespacedPod(p: ListParams & { namespace: string }): Promise<V1PodList> {
    return this.rest.send('GET', core('pods', p.namespace), { query: listQuery(p) });
  }
  readNamespacedPod(p: { namespace: string; name: string }): Promise<V1Pod> {
    return this.rest.send('GET', one(core('pods', p.namespace), p.name));
  }
}

const leases = (namespace: string): string => collectionPath(LEASES, namespace);

export class CoordinationV1Api extends Verbs {
  readNamespacedLease(p: { namespace: string; name: string }): Promise<V1Lease> {
    return this.rest.send('GET', one(leases(p.namespace), p.name));
  }
  createNamespacedLease(p: { namespace: string; body: V1Lease }): Promise<V1Lease> {
    return this.rest.send('POST', leases(p.namespace), { body: p.body });
  }
  replaceNamespacedLease(p: { namespace: string; name: string; body: V1Lease }): Promise<V1Lease> {
    return this.rest.send('PUT', one(leases(p.namespace), p.name), { body: p.body });
  }
}

const mutatingWebhooks = collectionPath({
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  plural: 'mutatingwebhookconfigurations',
});

export class AdmissionregistrationV1Api extends Verbs {
  readMutatingWebhookConfiguration(p: { name: string }): Promise<V1MutatingWebhookConfiguration> {
    return this.rest.send('GET', one(mutatingWebhooks, p.name));
  }
  replaceMutatingWebhookConfiguration(p: {
    name: string;
    body: V1MutatingWebhookConfiguration;
  }): Promise<V1MutatingWebhookConfiguration> {
    return this.rest.send('PUT', one(mutatingWebhooks, p.name), { body: p.body });
  }
}

export class AuthorizationV1Api extends Verbs {
  createSelfSubjectAccessReview(p: { body: V1SelfSubjectAccessReview }): Promise<V1SelfSubjectAccessReview> {
    return this.rest.send(
      'POST',
      collectionPath({ group: 'authorization.k8s.io', version: 'v1', plural: 'selfsubjectaccessreviews' }),
      { body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', ...p.body } },
    );
  }
}
