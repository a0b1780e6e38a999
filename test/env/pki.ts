/** Certificates for a throwaway control plane: a CA, the API server's serving cert, client certs. */
import 'reflect-metadata';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { pem } from '../../src/restore/certs.ts';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface KeyAndCert {
  certPem: string;
  keyPem: string;
}

export class CertificateAuthority {
  readonly certPem: string;
  private readonly cert: x509.X509Certificate;
  private readonly keys: webcrypto.CryptoKeyPair;
  private constructor(certPem: string, cert: x509.X509Certificate, keys: webcrypto.CryptoKeyPair) {
    this.certPem = certPem;
    this.cert = cert;
    this.keys = keys;
  }

  static async create(name: string): Promise<CertificateAuthority> {
    const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: `CN=${name}`,
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 7 * 86_400_000),
      keys,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    });
    return new CertificateAuthority(cert.toString('pem'), cert, keys);
  }

  /** subject like `CN=admin,O=system:masters`; SANs make it a serving certificate. */
  async issue(
    subject: string,
    opts: { dns?: string[]; ips?: string[]; server?: boolean } = {},
  ): Promise<KeyAndCert> {
    const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const sans = [
      ...(opts.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: Math.floor(Math.random() * 1e12).toString(16),
      subject,
      issuer: this.cert.subject,
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 7 * 86_400_000),
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

/** An RSA key pair for service-account token signing. */
export function serviceAccountKeys(): { publicPem: string; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
