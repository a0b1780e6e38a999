/** A MutatingWebhookConfiguration that sends labelled PVCs to a local snapcron webhook. */
import * as k8s from '@kubernetes/client-node';

/**
 * Like deploy/base/webhook.yaml, but by URL on loopback; `namespace` limits it to one namespace.
 * Without `caPem` the controller injects its generated CA; with it, the caller manages trust
 * (as cert-manager's CA injector would).
 */
export async function installRestoreWebhook(
  kc: k8s.KubeConfig,
  name: string,
  port: number,
  namespace?: string,
  caPem?: string,
): Promise<void> {
  await kc.makeApiClient(k8s.AdmissionregistrationV1Api).createMutatingWebhookConfiguration({
    body: {
      metadata: { name },
      webhooks: [
        {
          name: 'restore.snapcron.io',
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: 'Fail',
          timeoutSeconds: 5,
          clientConfig: {
            url: `https://127.0.0.1:${port}/mutate-v1-pvc`,
            ...(caPem ? { caBundle: Buffer.from(caPem).toString('base64') } : {}),
          },
          objectSelector: { matchLabels: { 'snapcron.io/restore': 'true' } },
          ...(namespace
            ? { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } }
            : {}),
          rules: [
            {
              apiGroups: [''],
              apiVersions: ['v1'],
              operations: ['CREATE'],
              resources: ['persistentvolumeclaims'],
            },
          ],
        },
      ],
    },
  });
}
