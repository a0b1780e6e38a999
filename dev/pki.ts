/** Certificates for a throwaway control plane: the CA is snapcron's own; plus service-account keys. */
import { generateKeyPairSync } from 'node:crypto';

export { CertificateAuthority } from '../src/tls/authority.ts';

/** An RSA key pair for service-account token signing. */
export function serviceAccountKeys(): { publicPem: string; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
