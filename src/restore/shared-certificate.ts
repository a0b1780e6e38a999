/**
 * The webhook's generated certificate, shared by every replica through one Secret.
 *
 * Each replica making its own CA would not work: the Service sends a request to any replica,
 * but the configuration's caBundle holds the CA of whichever replica wrote last. So the first
 * replica to start creates the Secret (create is atomic: a second creator gets AlreadyExists
 * and reads the winner's), every replica serves that pair, and a renewal replaces it under
 * resourceVersion, keeping the previous CA in the bundle until the old pair has expired.
 */
import { X509Certificate } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Kube } from '../kube/client.ts';
import { statusOf } from '../kube/retry.ts';
import { CertificateAuthority } from '../tls/authority.ts';

const DAY_MS = 86_400_000;
/** Renew when the serving certificate has less than this left. */
export const RENEW_BEFORE_MS = 30 * DAY_MS;
const CERT_DAYS = 365;

export interface ServingPair {
  certPem: string;
  keyPem: string;
  /** PEM CAs the API server must trust: the current one first, then a previous one still in use. */
  caBundlePem: string;
}

/** Why a stored pair cannot be served, or undefined when it can. Pure: no I/O, `now` injected. */
export function reasonToRenew(
  data: Record<string, string> | undefined,
  dnsNames: string[],
  now: Date,
): string | undefined {
  const crt = data?.['tls.crt'];
  const key = data?.['tls.key'];
  const ca = data?.['ca.crt'];
  if (!crt || !key || !ca) return 'no certificate stored yet';
  let leaf: X509Certificate;
  let authority: X509Certificate;
  try {
    leaf = new X509Certificate(crt);
    authority = new X509Certificate(ca);
  } catch (err) {
    return `stored certificate does not parse: ${(err as Error).message}`;
  }
  if (!leaf.checkIssued(authority) || !leaf.verify(authority.publicKey))
    return 'stored certificate is not signed by the stored CA';
  const left = Date.parse(leaf.validTo) - now.getTime();
  if (left < RENEW_BEFORE_MS) return `certificate expires ${new Date(leaf.validTo).toISOString()}`;
  if (Date.parse(authority.validTo) - now.getTime() < RENEW_BEFORE_MS) return 'CA expires soon';
  const missing = dnsNames.filter((n) => leaf.checkHost(n, { wildcards: false }) === undefined);
  if (missing.length > 0) return `certificate does not name ${missing.join(', ')}`;
  return undefined;
}

/** The longest a replica goes without re-reading the shared Secret. */
export const RECHECK_AT_LEAST_EVERY_MS = DAY_MS;
/** Replicas spread their renewal over this window, so one renews and the others read its pair. */
const RENEW_SPREAD_MS = 3_600_000;

/**
 * How long until a replica serving `certPem` next reads the shared Secret: when that pair comes
 * due for renewal (plus a spread), and at least daily, which picks up a pair another replica
 * stored early (new DNS names) while the previous CA still vouches for ours. Reading every few
 * minutes cost the quiet controller a request its lease renewals did not need. Pure.
 */
export function nextCertificateCheckMs(
  certPem: string,
  now: Date,
  random: () => number = Math.random,
): number {
  let renewAt: number;
  try {
    renewAt = Date.parse(new X509Certificate(certPem).validTo) - RENEW_BEFORE_MS;
  } catch {
    return 0;
  }
  const due = renewAt + random() * RENEW_SPREAD_MS - now.getTime();
  return Math.min(Math.max(0, due), RECHECK_AT_LEAST_EVERY_MS);
}

const decode = (secret: V1Secret | undefined): Record<string, string> | undefined =>
  secret?.data
    ? Object.fromEntries(
        Object.entries(secret.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
      )
    : undefined;

const encode = (data: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));

const stillValid = (pem: string | undefined, now: Date): boolean => {
  if (!pem) return false;
  try {
    return Date.parse(new X509Certificate(pem).validTo) > now.getTime();
  } catch {
    return false;
  }
};

const pairOf = (data: Record<string, string>, now: Date): ServingPair => ({
  certPem: data['tls.crt'] ?? '',
  keyPem: data['tls.key'] ?? '',
  caBundlePem: [
    data['ca.crt'],
    stillValid(data['ca-previous.crt'], now) ? data['ca-previous.crt'] : undefined,
  ]
    .filter(Boolean)
    .join(''),
});

export interface SharedCertificateOptions {
  kube: Kube;
  namespace: string;
  name: string;
  dnsNames: string[];
  log: Logger;
  now?: () => Date;
}

/** Reads the shared pair, creating or renewing it when needed; safe to race between replicas. */
export async function ensureSharedCertificate(o: SharedCertificateOptions): Promise<ServingPair> {
  const now = o.now ?? ((): Date => new Date());
  const { kube, namespace, name } = o;
  for (let attempt = 1; ; attempt++) {
    let secret: V1Secret | undefined;
    try {
      secret = await kube.read(() => kube.core.readNamespacedSecret({ namespace, name }));
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    const stored = decode(secret);
    const reason = reasonToRenew(stored, o.dnsNames, now());
    if (stored && !reason) return pairOf(stored, now());

    const ca = await CertificateAuthority.create('snapcron webhook CA', CERT_DAYS * 2);
    const leaf = await ca.issue(`CN=${o.dnsNames[0] ?? 'snapcron-webhook'}`, {
      dns: o.dnsNames,
      ips: ['127.0.0.1'],
      server: true,
      days: CERT_DAYS,
    });
    const data: Record<string, string> = {
      'tls.crt': leaf.certPem,
      'tls.key': leaf.keyPem,
      'ca.crt': ca.certPem,
      // Replicas still serving the old pair stay trusted until they pick the new one up.
      ...(stored?.['ca.crt'] ? { 'ca-previous.crt': stored['ca.crt'] } : {}),
    };
    const body: V1Secret = {
      metadata: {
        name,
        namespace,
        labels: { 'app.kubernetes.io/managed-by': 'snapcron' },
        ...(secret?.metadata?.resourceVersion ? { resourceVersion: secret.metadata.resourceVersion } : {}),
      },
      type: 'kubernetes.io/tls',
      data: encode(data),
    };
    try {
      if (secret) await kube.write(() => kube.core.replaceNamespacedSecret({ namespace, name, body }));
      else await kube.write(() => kube.core.createNamespacedSecret({ namespace, body }));
      o.log.info({ namespace, secret: name, reason }, 'webhook certificate stored');
      return pairOf(data, now());
    } catch (err) {
      // Another replica stored its pair first: go round and serve that one.
      if (statusOf(err) !== 409 || attempt >= 5) throw err;
    }
  }
}
