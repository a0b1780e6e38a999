/**
 * Kube with the verbs tests and benchmarks need besides snapcron's own (namespaces, PVs, pods,
 * replace, delete-collection, cluster-scoped custom objects): the same transport, so a test
 * that hands its client to the controller tests the controller's client.
 */
import type {
  AuthenticationV1TokenRequest,
  V1Namespace,
  V1NamespaceList,
  V1PersistentVolume,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Status,
} from '@kubernetes/client-node';
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  patchType,
  type CustomResource,
} from '../src/kube/api.ts';
import { Kube } from '../src/kube/client.ts';
import { collectionPath, coreCollection as core, LEASES, objectPath as one } from '../src/kube/paths.ts';

export class AdminCoreV1Api extends CoreV1Api {
  createNamespace(p: { body: V1Namespace }): Promise<V1Namespace> {
    return this.rest.send('POST', core('namespaces'), { body: p.body });
  }
  readNamespace(p: { name: string }): Promise<V1Namespace> {
    return this.rest.send('GET', one(core('namespaces'), p.name));
  }
  listNamespace(): Promise<V1NamespaceList> {
    return this.rest.send('GET', core('namespaces'));
  }
  deleteNamespace(p: { name: string }): Promise<V1Status> {
    return this.rest.send('DELETE', one(core('namespaces'), p.name));
  }
  createPersistentVolume(p: { body: V1PersistentVolume }): Promise<V1PersistentVolume> {
    return this.rest.send('POST', core('persistentvolumes'), { body: p.body });
  }
  readPersistentVolume(p: { name: string }): Promise<V1PersistentVolume> {
    return this.rest.send('GET', one(core('persistentvolumes'), p.name));
  }
  patchNamespacedPersistentVolumeClaim(p: {
    namespace: string;
    name: string;
    body: object;
  }): Promise<V1PersistentVolumeClaim> {
    return this.rest.send('PATCH', one(core('persistentvolumeclaims', p.namespace), p.name), {
      body: p.body,
      contentType: patchType(p.body),
    });
  }
  deleteNamespacedPersistentVolumeClaim(p: {
    namespace: string;
    name: string;
  }): Promise<V1PersistentVolumeClaim> {
    return this.rest.send('DELETE', one(core('persistentvolumeclaims', p.namespace), p.name));
  }
  createNamespacedPod(p: { namespace: string; body: V1Pod }): Promise<V1Pod> {
    return this.rest.send('POST', core('pods', p.namespace), { body: p.body });
  }
  deleteNamespacedPod(p: { namespace: string; name: string; gracePeriodSeconds?: number }): Promise<V1Pod> {
    return this.rest.send('DELETE', one(core('pods', p.namespace), p.name), {
      query: { gracePeriodSeconds: p.gracePeriodSeconds },
    });
  }
  createNamespacedServiceAccountToken(p: {
    namespace: string;
    name: string;
    body: AuthenticationV1TokenRequest;
  }): Promise<AuthenticationV1TokenRequest> {
    return this.rest.send('POST', `${one(core('serviceaccounts', p.namespace), p.name)}/token`, {
      body: p.body,
    });
  }
}

/* eslint-disable @typescript-eslint/no-explicit-any -- custom objects are typed by the caller */
export class AdminCustomObjectsApi extends CustomObjectsApi {
  replaceNamespacedCustomObject(
    p: CustomResource & { namespace: string; name: string; body: object },
  ): Promise<any> {
    return this.rest.send('PUT', one(collectionPath(p, p.namespace), p.name), { body: p.body });
  }
  deleteCollectionNamespacedCustomObject(p: CustomResource & { namespace: string }): Promise<any> {
    return this.rest.send('DELETE', collectionPath(p, p.namespace));
  }
  createClusterCustomObject(p: CustomResource & { body: object }): Promise<any> {
    return this.rest.send('POST', collectionPath(p), { body: p.body });
  }
  getClusterCustomObject(p: CustomResource & { name: string }): Promise<any> {
    return this.rest.send('GET', one(collectionPath(p), p.name));
  }
  replaceClusterCustomObject(p: CustomResource & { name: string; body: object }): Promise<any> {
    return this.rest.send('PUT', one(collectionPath(p), p.name), { body: p.body });
  }
  deleteClusterCustomObject(p: CustomResource & { name: string }): Promise<any> {
    return this.rest.send('DELETE', one(collectionPath(p), p.name));
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export class AdminCoordinationV1Api extends CoordinationV1Api {
  deleteNamespacedLease(p: { namespace: string; name: string }): Promise<V1Status> {
    return this.rest.send('DELETE', one(collectionPath(LEASES, p.namespace), p.name));
  }
}

export class AdminKube extends Kube {
  declare readonly core: AdminCoreV1Api;
  declare readonly custom: AdminCustomObjectsApi;
  declare readonly coordination: AdminCoordinationV1Api;

  constructor(...args: ConstructorParameters<typeof Kube>) {
    super(...args);
    Object.assign(this, {
      core: new AdminCoreV1Api(this.rest),
      custom: new AdminCustomObjectsApi(this.rest),
      coordination: new AdminCoordinationV1Api(this.rest),
    });
  }
}
