/**
 * The restore webhook's HTTPS server: AdmissionReview in, the pure admitRestore
 * decision out, answered from the controller's snapshot cache (no LIST per request).
 * TLS comes from mounted files (a cert-manager Secret: tls.crt/tls.key, reloaded when
 * they change) or from a Secret the replicas generate and share, with its CA written into
 * the MutatingWebhookConfiguration's caBundle. With a client CA (mutual TLS) only callers
 * holding a certificate from it, normally the API server through its admission kubeconfig, get
 * past the handshake: anyone else who can reach the port learns nothing about snapshots.
 */
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { PeerCertificate, SecureContextOptions, TLSSocket } from 'node:tls';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Kube } from '../kube/client.ts';
import type { EventRecorder } from '../kube/events.ts';
import { errorMessage, statusOf } from '../kube/retry.ts';
import type { PersistentVolumeClaim } from '../api/objects.ts';
import {
  admitRestore,
  type AdmissionOutcome,
  type AdmissionRequest,
  type GroupSnapshotLookup,
  type RestorePvcLookup,
  type SnapshotLookup,
} from './admission.ts';
import { ANNOTATION_FROM, ANNOTATION_RESTORED_FROM_GROUP } from './select.ts';
import { ensureSharedCertificate, nextCertificateCheckMs, type ServingPair } from './shared-certificate.ts';

export const WEBHOOK_PATH = '/mutate-v1-pvc';

export interface WebhookOptions {
  /** `host:port` or `:port`. */
  address: string;
  /** Directory holding tls.crt and tls.key; when unset the shared generated Secret is used. */
  certDir?: string | undefined;
  /** Where replicas share the generated certificate (the controller's own namespace). */
  secret: { namespace: string; name: string };
  /** Names the generated certificate is valid for. */
  dnsNames: string[];
  /** MutatingWebhookConfiguration whose caBundle receives the generated CA. */
  configName?: string | undefined;
  kube: Kube;
  log: Logger;
  events?: EventRecorder | undefined;
  /** Observes each admission's time in this process (snapcron_webhook_admission_duration_seconds). */
  observeAdmission?: ((seconds: number, result: string) => void) | undefined;
  /** The cached snapshots of one source PVC (an index lookup, not a scan of the namespace). */
  snapshotsOf: SnapshotLookup;
  /** The cached VolumeGroupSnapshots of a namespace; without it no group member is restored. */
  groupSnapshotsOf?: GroupSnapshotLookup | undefined;
  /** The cached restore PVCs of a namespace, whose restored group pins the rest of their set. */
  restorePvcsOf?: RestorePvcLookup | undefined;
  /** Mutual TLS: require a client certificate signed by a CA in this PEM file (re-read when it changes). */
  clientCaFile?: string | undefined;
  /** With clientCaFile: also require one of these names as the certificate's CN or a DNS SAN. */
  clientNames?: string[] | undefined;
}

/** The names a client certificate claims: its subject CN(s) and DNS subject alternative names. */
export function certificateNames(cert: Pick<PeerCertificate, 'subject' | 'subjectaltname'>): string[] {
  const cn = (cert.subject as Record<string, string | string[] | undefined> | undefined)?.CN;
  const sans = (cert.subjectaltname ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4));
  return [...(Array.isArray(cn) ? cn : cn ? [cn] : []), ...sans];
}

/** How long a process remembers a group restore it admitted: until its cache surely shows the PVC. */
const RECENT_MS = 60_000;

/**
 * The admission decision over the webhook's inputs: the caches, plus the group restores this
 * process admitted in the last minute. A StatefulSet with Parallel pod management creates its
 * claims milliseconds apart, sooner than a watch delivers the first: without the memory, a group
 * becoming ready in between could split the set across two instants.
 */
export function restoreAdmitter(
  o: Pick<WebhookOptions, 'snapshotsOf' | 'groupSnapshotsOf' | 'restorePvcsOf'>,
  now: () => number = Date.now,
): (request: AdmissionRequest) => AdmissionOutcome {
  const recent = new Map<string, { pvc: PersistentVolumeClaim; until: number }>();
  const siblings = (namespace: string): PersistentVolumeClaim[] => {
    const cached = o.restorePvcsOf?.(namespace) ?? [];
    const known = new Set(cached.map((p) => p.metadata.name));
    const remembered = [...recent.values()]
      .map((r) => r.pvc)
      .filter((p) => p.metadata.namespace === namespace && !known.has(p.metadata.name));
    return remembered.length > 0 ? [...cached, ...remembered] : cached;
  };
  return (request) => {
    const t = now();
    for (const [key, r] of recent) if (r.until <= t) recent.delete(key);
    const outcome = admitRestore(request, o.snapshotsOf, { groups: o.groupSnapshotsOf, siblings });
    const { result, group, namespace, pvc } = outcome.summary;
    const from = request.object?.metadata.annotations?.[ANNOTATION_FROM] ?? '';
    // Only a set's PVCs ({ordinal}) can pin; a dry run created nothing.
    if (result === 'restored' && group !== undefined && from.includes('{ordinal}') && !request.dryRun) {
      recent.set(`${namespace}/${pvc}`, {
        pvc: {
          metadata: {
            name: pvc,
            namespace,
            annotations: { [ANNOTATION_FROM]: from, [ANNOTATION_RESTORED_FROM_GROUP]: group },
          },
        },
        until: t + RECENT_MS,
      });
    }
    return outcome;
  };
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

export async function startWebhook(o: WebhookOptions): Promise<{ server: Server; port: number }> {
  let tls: { cert: string; key: string };
  let shared: ServingPair | undefined;
  const loadShared = (): Promise<ServingPair> =>
    ensureSharedCertificate({ kube: o.kube, ...o.secret, dnsNames: o.dnsNames, log: o.log });
  if (o.certDir) {
    tls = {
      cert: readFileSync(join(o.certDir, 'tls.crt'), 'utf8'),
      key: readFileSync(join(o.certDir, 'tls.key'), 'utf8'),
    };
  } else {
    shared = await loadShared();
    tls = { cert: shared.certPem, key: shared.keyPem };
  }

  // Every secure context carries the client CA, so a renewed serving pair keeps mutual TLS on.
  let clientCa = o.clientCaFile ? readFileSync(o.clientCaFile, 'utf8') : undefined;
  let serving = tls;
  const context = (): SecureContextOptions => ({
    cert: serving.cert,
    key: serving.key,
    minVersion: 'TLSv1.2',
    ...(clientCa ? { ca: clientCa } : {}),
  });
  const setServing = (pair: { cert: string; key: string }): void => {
    serving = pair;
    server.setSecureContext(context());
  };
  const allowedNames = new Set(o.clientNames ?? []);
  const admit = restoreAdmitter(o);

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== WEBHOOK_PATH) {
      res.writeHead(404);
      res.end();
      return;
    }
    void (async () => {
      let review: { apiVersion?: string; request?: AdmissionRequest };
      let started: number;
      try {
        const body = await readBody(req);
        started = performance.now(); // from the whole request read to the answer written
        review = JSON.parse(body) as typeof review;
        if (!review.request?.uid) throw new Error('no request.uid');
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        res.end(`bad AdmissionReview: ${errorMessage(err)}`);
        return;
      }
      const request = review.request;
      const namespace = request.namespace ?? 'default';
      const outcome = admit(request);
      const s = outcome.summary;
      if (s.result !== 'ignored') {
        o.log.info(
          {
            namespace,
            pvc: s.pvc,
            snapshot: s.snapshot,
            group: s.group,
            result: s.result,
            reason: s.message,
          },
          'restore admission',
        );
        const target = { apiVersion: 'v1', kind: 'PersistentVolumeClaim', name: s.pvc, namespace };
        if (s.result === 'restored')
          void o.events?.record(target, 'Normal', 'RestoreFromSnapshot', s.message);
        if (s.result === 'empty') void o.events?.record(target, 'Warning', 'RestoreEmpty', s.message);
        // A set split across instants: the user may want to recreate the PVC with restore-group.
        for (const warning of outcome.response.warnings ?? [])
          void o.events?.record(target, 'Warning', 'RestoreGroupChanged', warning);
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          apiVersion: review.apiVersion ?? 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: outcome.response,
        }),
      );
      o.observeAdmission?.((performance.now() - started) / 1000, s.result);
    })();
  };

  const server = createServer(
    // rejectUnauthorized ends the handshake of a client without a certificate from the CA.
    { ...context(), ...(clientCa ? { requestCert: true, rejectUnauthorized: true } : {}) },
    (req, res) => {
      if (allowedNames.size > 0) {
        const names = certificateNames((req.socket as TLSSocket).getPeerCertificate());
        if (!names.some((n) => allowedNames.has(n))) {
          o.log.warn(
            { clientNames: names, remote: req.socket.remoteAddress },
            'webhook client certificate refused: its CN and DNS names are not in --webhook-client-names',
          );
          // The API server quotes this in its error: say what was presented and what decides.
          res.writeHead(403, { 'content-type': 'text/plain' });
          res.end(
            `client certificate (${names.join(', ') || 'no names'}) not allowed: not among the webhook's --webhook-client-names`,
          );
          return;
        }
      }
      handle(req, res);
    },
  );

  if (o.certDir) watchCertificates(o.certDir, setServing, o.log);
  if (o.clientCaFile) {
    const file = o.clientCaFile;
    watchFile(file, CERT_RELOAD_MS, o.log, 'webhook client CA', () => {
      clientCa = readFileSync(file, 'utf8');
      server.setSecureContext(context());
    });
  }
  const [host, port] = splitAddress(o.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const boundPort = typeof addr === 'object' && addr ? addr.port : port;
  if (shared) {
    if (o.configName) await injectCaBundle(o.kube, o.configName, shared.caBundlePem, o.log);
    refreshShared(setServing, shared, loadShared, o);
  }
  o.log.info(
    { port: boundPort, path: WEBHOOK_PATH, generatedCert: !!shared, clientAuth: !!clientCa },
    'restore webhook serving',
  );
  return { server, port: boundPort };
}

/** After a failed read or renewal, the next try. */
const SHARED_RETRY_MS = 5 * 60_000;

/** Re-reads the shared Secret when the served pair comes due (nextCertificateCheckMs), and daily. */
function refreshShared(
  setServing: (pair: { cert: string; key: string }) => void,
  initial: ServingPair,
  load: () => Promise<ServingPair>,
  o: WebhookOptions,
): void {
  let serving = initial;
  const check = async (): Promise<number> => {
    try {
      const next = await load();
      if (next.certPem !== serving.certPem || next.caBundlePem !== serving.caBundlePem) {
        // Trust first, then serve: the bundle holds the old CA too, so no request fails in between.
        if (o.configName) await injectCaBundle(o.kube, o.configName, next.caBundlePem, o.log);
        setServing({ cert: next.certPem, key: next.keyPem });
        serving = next;
        o.log.info({ secret: o.secret.name }, 'webhook certificate renewed');
      }
      return nextCertificateCheckMs(serving.certPem, new Date());
    } catch (err) {
      o.log.warn({ secret: o.secret.name, err: errorMessage(err) }, 'webhook certificate refresh failed');
      return SHARED_RETRY_MS;
    }
  };
  const schedule = (ms: number): void => {
    setTimeout(() => void check().then(schedule), Math.max(ms, 1000)).unref();
  };
  schedule(nextCertificateCheckMs(serving.certPem, new Date()));
}

export function splitAddress(address: string): [string | undefined, number] {
  const i = address.lastIndexOf(':');
  const host = i > 0 ? address.slice(0, i) : undefined;
  return [host, Number(address.slice(i + 1))];
}

/** How often the mounted certificate is checked for renewal. */
const CERT_RELOAD_MS = 10_000;

/**
 * cert-manager renews the Secret in place and the kubelet swaps the mounted files (a symlink
 * flip): pick the new pair up without a restart. Identity is inode + mtime, so a swap to a
 * file with an older mtime still counts.
 */
function watchCertificates(
  dir: string,
  setServing: (pair: { cert: string; key: string }) => void,
  log: Logger,
): void {
  watchFile(join(dir, 'tls.crt'), CERT_RELOAD_MS, log, 'webhook certificate', () =>
    setServing({
      cert: readFileSync(join(dir, 'tls.crt'), 'utf8'),
      key: readFileSync(join(dir, 'tls.key'), 'utf8'),
    }),
  );
}

/** Calls `reload` when `file` changes (inode or mtime); a failed reload is retried next time. */
function watchFile(file: string, everyMs: number, log: Logger, what: string, reload: () => void): void {
  const identity = (): string => {
    const st = statSync(file);
    return `${st.ino}:${st.mtimeMs}`;
  };
  let seen = identity();
  setInterval(() => {
    try {
      const now = identity();
      if (now === seen) return;
      reload();
      seen = now;
      log.info({ file }, `${what} reloaded`);
    } catch (err) {
      // A half-written file fails to load: keep serving the old one and try again next time.
      log.warn({ file, err: errorMessage(err) }, `${what} reload failed`);
    }
  }, everyMs).unref();
}

/** Writes the CA into every webhook of the configuration, so the API server trusts our generated certificate. */
async function injectCaBundle(kube: Kube, name: string, caBundlePem: string, log: Logger): Promise<void> {
  const caBundle = Buffer.from(caBundlePem).toString('base64');
  for (let attempt = 1; attempt <= 5; attempt++) {
    try {
      const config = await kube.read(() => kube.admission.readMutatingWebhookConfiguration({ name }));
      if ((config.webhooks ?? []).every((w) => w.clientConfig.caBundle === caBundle)) {
        log.info({ configuration: name }, 'caBundle injected'); // already there: another replica wrote it
        return;
      }
      for (const w of config.webhooks ?? []) w.clientConfig.caBundle = caBundle;
      await kube.write(() => kube.admission.replaceMutatingWebhookConfiguration({ name, body: config }));
      log.info({ configuration: name }, 'caBundle injected');
      return;
    } catch (err) {
      if (statusOf(err) === 404) {
        log.warn(
          { configuration: name },
          'MutatingWebhookConfiguration not found: apply deploy/base (kubectl apply -k), or pass --webhook-cert-dir with a CA you manage',
        );
        return;
      }
      if (statusOf(err) !== 409 || attempt === 5) throw err;
    }
  }
}
