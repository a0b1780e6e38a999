/**
 * The floor under the controller's CPU in bench:scale: a bare Node process that makes the
 * sustained window's VolumeSnapshot creates at the window's pace (each schedule's PVCs at once,
 * at its offset in the period), through snapcron's own client, under the controller's V8
 * settings, and nothing else: no watches, caches, passes, status, events or metrics. What the
 * controller spends per create above this is its own work.
 *
 * With `transport: "node-https"` the same creates go through node's https with a keep-alive
 * Agent of as many connections (what src/kube/rest.ts used before src/kube/h1.ts): the baseline
 * for the controller's own HTTP/1.1 client, measured in the same run.
 *
 * bench/scale.ts runs it as `node bench/paced-client.ts '<json Options>'` with the controller's
 * NODE_OPTIONS and KUBECONFIG; it prints `{"creates":n,"cpuSeconds":s}`: the CPU of its whole
 * process (every thread) from the first create to the last answer.
 */
import { Agent, request } from 'node:https';
import { createSecureContext } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { Kube } from '../src/kube/client.ts';
import { MAX_CONNECTIONS } from '../src/kube/rest.ts';
import { snapshotMetadata } from '../src/snapshot/naming.ts';
import { benchPvcs, sleep } from './fixtures.ts';

// As src/cli.ts sets it for the controller.
setFlagsFromString('--optimize-for-size');

interface Options {
  namespaces: string[];
  pvcsPerSchedule: number;
  /** The period the fires are spread over, and how much of it to replay. */
  periodSeconds: number;
  seconds: number;
  qps: number;
  burst: number;
  /** Which HTTP client makes the creates: snapcron's (default) or node's https. */
  transport?: 'h1' | 'node-https';
}

const o = JSON.parse(process.argv[2] ?? '{}') as Options;
const kube = Kube.fromFile(process.env.KUBECONFIG ?? '', { qps: o.qps, burst: o.burst });
const pvcs = benchPvcs(o.namespaces, o.pvcsPerSchedule);
const byNamespace = Map.groupBy(pvcs, (p) => p.ns);

/** A create through node:https with one keep-alive Agent, the identity's TLS context and credentials. */
async function nodeHttpsClient(): Promise<(path: string, body: object) => Promise<unknown>> {
  const access = kube.rest.access;
  const creds = await access.credentials();
  const url = new URL(access.server);
  const agent = new Agent({
    keepAlive: true,
    maxSockets: MAX_CONNECTIONS,
    secureContext: createSecureContext({
      ...(access.ca ? { ca: access.ca } : {}),
      ...(creds.cert ? { cert: creds.cert } : {}),
      ...(creds.key ? { key: creds.key } : {}),
    }),
    ...(access.servername ? { servername: access.servername } : {}),
    rejectUnauthorized: !access.insecure,
  });
  return (path, body) =>
    new Promise((resolve, reject) => {
      const payload = JSON.stringify(body);
      const headers: Record<string, string> = {
        accept: 'application/json',
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(payload)),
      };
      if (creds.authorization) headers.authorization = creds.authorization;
      const req = request(
        {
          hostname: url.hostname,
          port: url.port,
          path: url.pathname.replace(/\/+$/, '') + path,
          method: 'POST',
          headers,
          agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.once('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode === 201) resolve(JSON.parse(text));
            else reject(new Error(`POST ${path}: HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
          });
          res.once('error', reject);
        },
      );
      req.once('error', reject);
      req.end(payload);
    });
}
const viaNode = o.transport === 'node-https' ? await nodeHttpsClient() : undefined;
const create = (namespace: string, body: object): Promise<unknown> =>
  viaNode
    ? viaNode(`/apis/snapshot.storage.k8s.io/v1/namespaces/${namespace}/volumesnapshots`, body)
    : kube.custom.createNamespacedCustomObject({ ...kube.snapshots, namespace, body });

/** A VolumeSnapshot of `pvc` named `name`, as the controller would create it for `at`. */
const snapshotOf = (name: string, pvc: string, at: Date): object => ({
  apiVersion: 'snapshot.storage.k8s.io/v1',
  kind: 'VolumeSnapshot',
  metadata: { name, ...snapshotMetadata(pvc, 'bench', at) },
  spec: { source: { persistentVolumeClaimName: pvc } },
});

// Warm up as the controller is warm by its window: the first requests open connections and
// compile the client's code.
await Promise.all(
  pvcs
    .slice(0, 32)
    .map((p, i) => create(p.ns, snapshotOf(`paced-warm-${o.transport ?? 'h1'}-${i}`, p.name, new Date()))),
);

const start = performance.now();
const cpu0 = process.cpuUsage();
const made: Promise<unknown>[] = [];
let creates = 0;
for (const [i, ns] of o.namespaces.entries()) {
  const offsetMs = ((i * o.periodSeconds) / o.namespaces.length) * 1000;
  if (offsetMs >= o.seconds * 1000) break;
  await sleep(Math.max(0, offsetMs - (performance.now() - start)));
  const scheduledAt = new Date();
  for (const p of byNamespace.get(ns) ?? []) {
    creates++;
    made.push(
      kube.write(
        () => create(ns, snapshotOf(`paced-${o.transport ?? 'h1'}-${p.name}-${i}`, p.name, scheduledAt)),
        { key: ns, lane: 'create' },
      ),
    );
  }
}
await Promise.all(made);
const used = process.cpuUsage(cpu0);
process.stdout.write(JSON.stringify({ creates, cpuSeconds: (used.user + used.system) / 1e6 }));
process.exit(0);
