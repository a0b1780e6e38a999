/**
 * A small certificate authority: the webhook's self-made serving certificate and the test
 * harness's control-plane PKI both come from it. @peculiar/x509 over Node's WebCrypto: Node
 * can make keys but not X.509 certificates, and shelling out to openssl would not work in a
 * slim image.
 */
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
// Backdated so a peer whose clock runs a little behind still accepts a fresh certificate.
const CLOCK_SKEW_MS = 3_600_000;

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

/** DER bytes as a PEM block. */
const pem = (label: string, der: ArrayBuffer): string =>
  `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;

// Positive, unique enough for throwaway CAs (RFC 5280 allows up to 20 octets).
const serial = (): string => '01' + randomBytes(8).toString('hex');

const validity = (days: number): { notBefore: Date; notAfter: Date } => ({
  notBefore: new Date(Date.now() - CLOCK_SKEW_MS),
  notAfter: new Date(Date.now() + days * DAY_MS),
});

export class CertificateAuthority {
  readonly certPem: string;
  private readonly cert: x509.X509Certificate;
  private readonly keys: webcrypto.CryptoKeyPair;
  private constructor(cert: x509.X509Certificate, keys: webcrypto.CryptoKeyPair) {
    this.certPem = cert.toString('pem');
    this.cert = cert;
    this.keys = keys;
  }

  static async create(name: string, days = 365): Promise<CertificateAuthority> {
    const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=${name}`,
      ...validity(days),
      keys,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    });
    return new CertificateAuthority(cert, keys);
  }

  /** subject like `CN=admin,O=system:masters`; SANs name what a serving certificate serves. */
  async issue(subject: string, opts: IssueOptions = {}): Promise<KeyAndCert> {
    const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const sans = [
      ...(opts.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject,
      issuer: this.cert.subject,
      ...validity(opts.days ?? 365),
      publicKey: keys.publicKey,
      signingKey: this.keys.privateKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([
          opts.server ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
        ]),
        ...(sans.length > 0 ? [new x509.SubjectAlternativeNameExtension(sans)] : []),
      ],
    });
    return {
      certPem: cert.toString('pem'),
      keyPem: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)),
    };
  }
}
