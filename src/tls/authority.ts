/**
 * A small certificate authority: the webhook's self-made serving certificate and the test
 * harness's control-plane PKI both come from it. Node makes and signs with keys but cannot
 * write an X.509 certificate, so the certificate's DER is ours (src/tls/der.ts): ECDSA P-256,
 * SHA-256, and the extensions kube-apiserver and TLS clients check. @peculiar/x509 did this
 * before with about 10 MiB of RSS for its ASN.1 modules, which a controller that made its pair
 * kept for life (BENCHMARKS.md). Shelling out to openssl would not work in a slim image.
 */
import { createHash, generateKeyPair, type KeyObject, randomBytes, sign } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { promisify } from 'node:util';
import {
  bitString,
  boolean,
  explicit,
  implicit,
  namedBits,
  objectIdentifier,
  octetString,
  sequence,
  set,
  smallInteger,
  time,
  unsignedInteger,
  utf8String,
} from './der.ts';

const DAY_MS = 86_400_000;
// Backdated so a peer whose clock runs a little behind still accepts a fresh certificate.
const CLOCK_SKEW_MS = 3_600_000;

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** KeyUsage bit numbers (RFC 5280 4.2.1.3). */
const KEY_USAGE = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

const NAME_TYPES: Record<string, string> = {
  CN: OID.commonName,
  O: OID.organization,
  OU: OID.organizationalUnit,
};

export interface KeyAndCert {
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  dns?: string[];
  ips?: string[];
  /** serverAuth when true, clientAuth otherwise. */
  server?: boolean;
  days?: number;
}

/**
 * A distinguished name like `CN=admin,O=system:masters`, one attribute per RDN in the order
 * given (as Kubernetes reads a client certificate: CN the user, each O a group).
 */
export function encodeName(dn: string): Buffer {
  const rdns = dn.split(',').map((part) => {
    const eq = part.indexOf('=');
    const type = NAME_TYPES[part.slice(0, eq).trim()];
    const value = part.slice(eq + 1);
    if (eq < 0 || !type || !value || /[\\+"]/.test(value))
      throw new Error(`certificate subject "${dn}": each part must be CN=, O= or OU= a plain value`);
    return set(sequence(objectIdentifier(type), utf8String(value)));
  });
  return sequence(...rdns);
}

/** An IP address's bytes for an iPAddress SAN: 4 for IPv4, 16 for IPv6. */
export function ipAddressBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new Error(`certificate SAN "${ip}" is not an IP address`);
  let text = ip;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups =
    tail === undefined
      ? headGroups
      : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

const extension = (oid: string, critical: boolean, value: Buffer): Buffer =>
  sequence(objectIdentifier(oid), ...(critical ? [boolean(true)] : []), octetString(value));

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the public key's bits (the EC point). */
function keyIdentifier(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([
    Buffer.of(4),
    Buffer.from(jwk.x ?? '', 'base64url'),
    Buffer.from(jwk.y ?? '', 'base64url'),
  ]);
  return createHash('sha1').update(point).digest();
}

// Positive, unique enough for throwaway CAs (RFC 5280 allows up to 20 octets).
const serial = (): Buffer => unsignedInteger(Buffer.concat([Buffer.of(1), randomBytes(8)]));

const pem = (label: string, der: Buffer): string =>
  `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;

const newKeys = (): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> =>
  promisify(generateKeyPair)('ec', { namedCurve: 'P-256' });

const SIGNATURE_ALGORITHM = sequence(objectIdentifier(OID.ecdsaWithSha256));

interface CertificateFields {
  issuer: Buffer;
  subject: Buffer;
  days: number;
  publicKey: KeyObject;
  authorityKeyId: Buffer;
  extensions: Buffer[];
  signingKey: KeyObject;
}

function certificate(f: CertificateFields): string {
  const now = Date.now();
  const tbs = sequence(
    explicit(0, smallInteger(2)), // v3
    serial(),
    SIGNATURE_ALGORITHM,
    f.issuer,
    sequence(time(new Date(now - CLOCK_SKEW_MS)), time(new Date(now + f.days * DAY_MS))),
    f.subject,
    f.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(
      3,
      sequence(
        ...f.extensions,
        extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(f.publicKey))),
        extension(OID.authorityKeyIdentifier, false, sequence(implicit(0, f.authorityKeyId))),
      ),
    ),
  );
  // Node signs ECDSA as the DER Ecdsa-Sig-Value X.509 wants.
  const signature = sign('sha256', tbs, f.signingKey);
  return pem('CERTIFICATE', sequence(tbs, SIGNATURE_ALGORITHM, bitString(signature)));
}

export class CertificateAuthority {
  readonly certPem: string;
  private readonly subject: Buffer;
  private readonly keyId: Buffer;
  private readonly privateKey: KeyObject;
  private constructor(certPem: string, subject: Buffer, keyId: Buffer, privateKey: KeyObject) {
    this.certPem = certPem;
    this.subject = subject;
    this.keyId = keyId;
    this.privateKey = privateKey;
  }

  static async create(name: string, days = 365): Promise<CertificateAuthority> {
    const { publicKey, privateKey } = await newKeys();
    const subject = encodeName(`CN=${name}`);
    const keyId = keyIdentifier(publicKey);
    const certPem = certificate({
      issuer: subject,
      subject,
      days,
      publicKey,
      authorityKeyId: keyId,
      signingKey: privateKey,
      extensions: [
        extension(OID.basicConstraints, true, sequence(boolean(true), smallInteger(0))),
        extension(OID.keyUsage, true, namedBits([KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign])),
      ],
    });
    return new CertificateAuthority(certPem, subject, keyId, privateKey);
  }

  /** subject like `CN=admin,O=system:masters`; SANs name what a serving certificate serves. */
  async issue(subject: string, opts: IssueOptions = {}): Promise<KeyAndCert> {
    const { publicKey, privateKey } = await newKeys();
    for (const dns of opts.dns ?? [])
      if (!/^[\x21-\x7e]+$/.test(dns)) throw new Error(`certificate SAN "${dns}" is not an ASCII DNS name`);
    const names = [
      ...(opts.dns ?? []).map((dns) => implicit(2, Buffer.from(dns, 'ascii'))),
      ...(opts.ips ?? []).map((ip) => implicit(7, ipAddressBytes(ip))),
    ];
    const certPem = certificate({
      issuer: this.subject,
      subject: encodeName(subject),
      days: opts.days ?? 365,
      publicKey,
      authorityKeyId: this.keyId,
      signingKey: this.privateKey,
      extensions: [
        // cA FALSE is the default, so DER leaves it out: an empty SEQUENCE.
        extension(OID.basicConstraints, true, sequence()),
        extension(OID.keyUsage, true, namedBits([KEY_USAGE.digitalSignature, KEY_USAGE.keyEncipherment])),
        extension(
          OID.extKeyUsage,
          false,
          sequence(objectIdentifier(opts.server ? OID.serverAuth : OID.clientAuth)),
        ),
        ...(names.length > 0 ? [extension(OID.subjectAltName, false, sequence(...names))] : []),
      ],
    });
    return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
  }
}
