/**
 * The seed's StatefulSets for a real node (dev/node.ts): `web`, whose pods serve a page and
 * count, once a second, into their own CSI volume, and `web-restore`, whose claim template
 * asks snapcron's webhook for `disk-ssd-web-{ordinal}`'s newest snapshot and whose pods only
 * serve what they were restored with. Shared by the node e2e test and `npm run demo -- --node`.
 */
import type * as k8s from '@kubernetes/client-node';
import { WEB_IMAGE } from './node.ts';

export const WEB_PORT = 8080;
/** Each claim template is `disk-ssd`, so replica N's PVC is `disk-ssd-<statefulset>-N`. */
export const CLAIM = 'disk-ssd';

// Files are written aside and renamed, so a snapshot (a tar of the folder) never holds half a page.
const WRITER = [
  'n=$(cat /data/counter 2>/dev/null || echo 0)',
  'while true; do',
  '  n=$((n+1))',
  '  echo "$n" > /data/.counter && mv /data/.counter /data/counter',
  '  echo "$(hostname) count=$n at=$(date +%s)" > /data/.page && mv /data/.page /data/index.html',
  '  sleep 1',
  'done &',
].join('\n');
const SERVE = `exec httpd -f -p ${WEB_PORT} -h /data`;

/** What a page says: which replica wrote it, its counter, and when (Unix seconds). */
export function parsePage(page: string): { writer: string; count: number; at: number } | undefined {
  const m = /^(\S+) count=(\d+) at=(\d+)\s*$/.exec(page);
  return m ? { writer: m[1] ?? '', count: Number(m[2]), at: Number(m[3]) } : undefined;
}

export function webStatefulSet(opts: {
  name: string;
  storageClass: string;
  replicas?: number;
  /** `restoreFrom` makes a restore: the claims ask the webhook, the pods only serve. */
  restoreFrom?: string;
  claimLabels?: Record<string, string>;
}): k8s.V1StatefulSet {
  const labels = { app: opts.name };
  const restore = opts.restoreFrom !== undefined;
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: opts.name },
    spec: {
      serviceName: opts.name,
      replicas: opts.replicas ?? 2,
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'web',
              image: WEB_IMAGE,
              imagePullPolicy: 'Never',
              command: ['/bin/sh', '-c', restore ? SERVE : `${WRITER}\n${SERVE}`],
              ports: [{ name: 'http', containerPort: WEB_PORT }],
              readinessProbe: {
                exec: { command: ['test', '-s', '/data/index.html'] },
                periodSeconds: 1,
              },
              volumeMounts: [{ name: CLAIM, mountPath: '/data' }],
            },
          ],
        },
      },
      volumeClaimTemplates: [
        {
          metadata: {
            name: CLAIM,
            labels: {
              ...opts.claimLabels,
              ...(restore ? { 'snapcron.io/restore': 'true' } : {}),
            },
            ...(restore ? { annotations: { 'snapcron.io/restore-from': opts.restoreFrom ?? '' } } : {}),
          },
          spec: {
            accessModes: ['ReadWriteOnce'],
            storageClassName: opts.storageClass,
            resources: { requests: { storage: '1Gi' } },
          },
        },
      ],
    },
  };
}
