/**
 * The restore webhook's HTTPS server: AdmissionReview in, the pure admitRestore
 * decision out, answered from the controller's snapshot cache (no LIST per request).
 * TLS comes from mounted files (a cert-manager Secret: tls.crt/tls.key, reloaded when
 * they change) or is generated at start-up, with its CA written into the
 * MutatingWebhookConfiguration's caBundle.
 */
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { VolumeSnapshot } from '../api/objects.ts';
import type { Kube } from '../kube/client.ts';
import type { EventRecorder } from '../kube/events.ts';
import { errorMessage, statusOf } from '../kube/retry.ts';
import { admitRestore, type AdmissionRequest } from './admission.ts';
import { makeServingCertificate } from './certs.ts';

export const WEBHOOK_PATH = '/mutate-v1-pvc';

export interface WebhookOptions {
  /** `host:port` or `:port`. */
  address: string;
  /** Directory holding tls.crt and tls.key; generated when unset. */
  certDir?: string | undefined;
  /** Names the generated certificate is valid for. */
  dnsNames: string[];
  /** MutatingWebhookConfiguration whose caBundle receives the generated CA. */
  configName?: string | undefined;
  kube: Kube;
  log: Logger;
  events?: EventRecorder | undefined;
  snapshotsIn: (namespace: string) => VolumeSnapshot[];
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 3 * 1024 * 1024) throw new Error('request body over 3 MiB');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function startWebhook(
  o: WebhookOptions,
): Promise<{ server: Server; port: number; caPem?: string }> {
  let tls: { cert: string; key: string };
  let caPem: string | undefined;
  if (o.certDir) {
    tls = {
      cert: readFileSync(join(o.certDir, 'tls.crt'), 'utf8'),
      key: readFileSync(join(o.certDir, 'tls.key'), 'utf8'),
    };
  } else {
    const generated = await makeServingCertificate(o.dnsNames, ['127.0.0.1']);
    tls = { cert: generated.certPem, key: generated.keyPem };
    caPem = generated.caPem;
  }

  const server = createServer({ ...tls, minVersion: 'TLSv1.2' }, (req, res) => {
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== WEBHOOK_PATH) {
      res.writeHead(404);
      res.end();
      return;
    }
    void (async () => {
      let review: { apiVersion?: string; request?: AdmissionRequest };
      try {
        review = JSON.parse(await readBody(req)) as typeof review;
        if (!review.request?.uid) throw new Error('no request.uid');
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end(`bad AdmissionReview: ${errorMessage(err)}`);
        return;
      }
      const request = review.request;
      const namespace = request.namespace ?? 'default';
      const outcome = admitRestore(request, o.snapshotsIn(namespace));
      const s = outcome.summary;
      if (s.result !== 'ignored') {
        o.log.info(
          { namespace, pvc: s.pvc, snapshot: s.snapshot, result: s.result, reason: s.message },
          'restore admission',
        );
        const target = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', name: s.pvc, namespace };
        if (s.result === 'restored')
          void o.events?.record(target, 'Normal', 'RestoreFromSnapshot', s.message);
        if (s.result === 'empty') void o.events?.record(target, 'Warning', 'RestoreEmpty', s.message);
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          apiVersion: review.apiVersion ?? 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: outcome.response,
        }),
      );
    })();
  });

  if (o.certDir) watchCertificates(server, o.certDir, o.log);
  const [host, port] = splitAddress(o.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const boundPort = typeof addr === 'object' && addr ? addr.port : port;
  if (caPem && o.configName) await injectCaBundle(o.kube, o.configName, caPem, o.log);
  o.log.info({ port: boundPort, path: WEBHOOK_PATH, generatedCert: !!caPem }, 'restore webhook serving');
  return { server, port: boundPort, ...(caPem ? { caPem } : {}) };
}

export function splitAddress(address: string): [string | undefined, number] {
  const i = address.lastIndexOf(':');
  const host = i > 0 ? address.slice(0, i) : undefined;
  return [host, Number(address.slice(i + 1))];
}

/** cert-manager renews the Secret in place: pick the new files up without a restart. */
function watchCertificates(server: Server, dir: string, log: Logger): void {
  let stamp = statSync(join(dir, 'tls.crt')).mtimeMs;
  setInterval(() => {
    try {
      const now = statSync(join(dir, 'tls.crt')).mtimeMs;
      if (now === stamp) return;
      stamp = now;
      server.setSecureContext({
        cert: readFileSync(join(dir, 'tls.crt')),
        key: readFileSync(join(dir, 'tls.key')),
      });
      log.info({ dir }, 'webhook certificate reloaded');
    } catch (err) {
      log.warn({ dir, err: errorMessage(err) }, 'webhook certificate reload failed');
    }
  }, 30_000).unref();
}

/** Writes the CA into every webhook of the configuration, so the API server trusts our generated certificate. */
async function injectCaBundle(kube: Kube, name: string, caPem: string, log: Logger): Promise<void> {
  const caBundle = Buffer.from(caPem).toString('base64');
  for (let attempt = 1; attempt <= 5; attempt++) {
    try {
      const config = await kube.read(() => kube.admission.readMutatingWebhookConfiguration({ name }));
      for (const w of config.webhooks ?? []) w.clientConfig.caBundle = caBundle;
      await kube.write(() => kube.admission.replaceMutatingWebhookConfiguration({ name, body: config }));
      log.info({ configuration: name }, 'caBundle injected');
      return;
    } catch (err) {
      if (statusOf(err) === 404) {
        log.warn(
          { configuration: name },
          'MutatingWebhookConfiguration not found: apply deploy/webhook.yaml, or pass --webhook-cert-dir with a CA you manage',
        );
        return;
      }
      if (statusOf(err) !== 409 || attempt === 5) throw err;
    }
  }
}
