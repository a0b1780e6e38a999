import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  nextCertificateCheckMs,
  reasonToRenew,
  RECHECK_AT_LEAST_EVERY_MS,
  RENEW_BEFORE_MS,
} from '../../src/restore/shared-certificate.ts';
import { CertificateAuthority } from '../../src/tls/authority.ts';

const NAMES = ['snapcron-webhook.snapcron-system.svc', 'localhost'];
const DAY = 86_400_000;

async function storedPair(days = 365, names = NAMES): Promise<Record<string, string>> {
  const ca = await CertificateAuthority.create('test CA', 730);
  const leaf = await ca.issue(`CN=${names[0]}`, { dns: names, ips: ['127.0.0.1'], server: true, days });
  return { 'ca.crt': ca.certPem, 'tls.crt': leaf.certPem, 'tls.key': leaf.keyPem };
}

describe('CertificateAuthority', () => {
  it('issues serving certificates it verifies, for the given names only', async () => {
    const ca = await CertificateAuthority.create('test CA');
    const pair = await ca.issue('CN=localhost', { dns: NAMES, ips: ['127.0.0.1'], server: true, days: 30 });
    const root = new X509Certificate(ca.certPem);
    const leaf = new X509Certificate(pair.certPem);
    expect(root.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.checkIssued(root)).toBe(true);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(leaf.checkHost('snapcron-webhook.snapcron-system.svc')).toBeDefined();
    expect(leaf.checkHost('other.example')).toBeUndefined();
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(leaf.keyUsage).toContain('1.3.6.1.5.5.7.3.1'); // serverAuth
    const lifetimeDays = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / DAY;
    expect(lifetimeDays).toBeGreaterThan(29);
    expect(lifetimeDays).toBeLessThan(32);
    expect(pair.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('issues client certificates with distinct serial numbers', async () => {
    const ca = await CertificateAuthority.create('test CA');
    const a = new X509Certificate((await ca.issue('CN=a,O=system:masters')).certPem);
    const b = new X509Certificate((await ca.issue('CN=b')).certPem);
    expect(a.serialNumber).not.toBe(b.serialNumber);
    expect(a.subject).toContain('O=system:masters');
    expect(a.keyUsage).toContain('1.3.6.1.5.5.7.3.2'); // clientAuth
  });

  it('writes certificates OpenSSL verifies, with the extensions TLS peers and kube-apiserver check', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'snapcron-certs-'));
    try {
      const ca = await CertificateAuthority.create('test CA', 730);
      const server = await ca.issue('CN=localhost', { dns: NAMES, ips: ['127.0.0.1', '::1'], server: true });
      const client = await ca.issue('CN=admin,O=system:masters,O=other');
      writeFileSync(join(dir, 'ca.pem'), ca.certPem);
      writeFileSync(join(dir, 'server.pem'), server.certPem);
      writeFileSync(join(dir, 'client.pem'), client.certPem);
      const openssl = (...args: string[]): string =>
        execFileSync('openssl', args, { cwd: dir, encoding: 'utf8' });
      expect(
        openssl('verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', 'ca.pem', 'server.pem'),
      ).toBe('server.pem: OK\n');
      expect(
        openssl('verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', 'ca.pem', 'client.pem'),
      ).toBe('client.pem: OK\n');
      const caText = openssl('x509', '-in', 'ca.pem', '-noout', '-text');
      expect(caText).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
      expect(caText).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
      const serverText = openssl('x509', '-in', 'server.pem', '-noout', '-text');
      expect(serverText).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
      expect(serverText).toMatch(/Extended Key Usage:\s*\n\s+TLS Web Server Authentication\n/);
      expect(serverText).toContain(
        'DNS:snapcron-webhook.snapcron-system.svc, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
      );
      expect(serverText).toMatch(/Subject Key Identifier/);
      expect(serverText).toMatch(/Authority Key Identifier/);
      expect(new X509Certificate(client.certPem).subject).toBe('CN=admin\nO=system:masters\nO=other');
      // The private key is the certificate's: OpenSSL derives the same public key from both.
      writeFileSync(join(dir, 'server.key'), server.keyPem);
      expect(openssl('pkey', '-in', 'server.key', '-pubout')).toBe(
        openssl('x509', '-in', 'server.pem', '-noout', '-pubkey'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('dates a certificate past 2049 in GeneralizedTime, and refuses a subject it cannot write', async () => {
    const ca = await CertificateAuthority.create('test CA', 40_000);
    const root = new X509Certificate(ca.certPem);
    expect(new Date(root.validTo).getUTCFullYear()).toBeGreaterThan(2100);
    expect(
      new X509Certificate((await ca.issue('CN=a', { days: 40_000 })).certPem).verify(root.publicKey),
    ).toBe(true);
    await expect(ca.issue('C=DE')).rejects.toThrow(/certificate subject "C=DE"/);
    await expect(ca.issue('CN=x', { dns: ['bücher.example'] })).rejects.toThrow(/not an ASCII DNS name/);
  });
});

describe('reasonToRenew (the shared webhook Secret)', () => {
  const now = new Date();

  it('serves a fresh pair that names every DNS name', async () => {
    expect(reasonToRenew(await storedPair(), NAMES, now)).toBeUndefined();
  });

  it('renews when nothing is stored or a key is missing', async () => {
    expect(reasonToRenew(undefined, NAMES, now)).toBe('no certificate stored yet');
    const noKey = await storedPair();
    delete noKey['tls.key'];
    expect(reasonToRenew(noKey, NAMES, now)).toBe('no certificate stored yet');
  });

  it('renews within the renewal window, not before it', async () => {
    const pair = await storedPair(90);
    const expiry = Date.parse(new X509Certificate(pair['tls.crt'] ?? '').validTo);
    // README: renewed 30 days before expiry.
    expect(RENEW_BEFORE_MS).toBe(30 * DAY);
    expect(reasonToRenew(pair, NAMES, new Date(expiry - 31 * DAY))).toBeUndefined();
    expect(reasonToRenew(pair, NAMES, new Date(expiry - 29 * DAY))).toMatch(/^certificate expires /);
  });

  it('renews when the service name changed', async () => {
    expect(reasonToRenew(await storedPair(365, ['old.svc']), NAMES, now)).toMatch(
      /does not name snapcron-webhook\.snapcron-system\.svc, localhost/,
    );
  });

  it('renews a pair whose CA does not match, or garbage', async () => {
    const a = await storedPair();
    const b = await storedPair();
    expect(reasonToRenew({ ...a, 'ca.crt': b['ca.crt'] ?? '' }, NAMES, now)).toBe(
      'stored certificate is not signed by the stored CA',
    );
    expect(reasonToRenew({ ...a, 'tls.crt': 'not a certificate' }, NAMES, now)).toMatch(/does not parse/);
  });
});

describe('nextCertificateCheckMs (when a replica re-reads the shared Secret)', () => {
  it('waits a day while the pair is far from renewal: no request every few minutes', async () => {
    const pair = await storedPair();
    expect(nextCertificateCheckMs(pair['tls.crt'] ?? '', new Date(), () => 0.5)).toBe(
      RECHECK_AT_LEAST_EVERY_MS,
    );
  });

  it('comes back when the pair is due, spread over an hour between replicas, and at once past it', async () => {
    const crt = (await storedPair())['tls.crt'] ?? '';
    const renewAt = Date.parse(new X509Certificate(crt).validTo) - RENEW_BEFORE_MS;
    const twoHoursBefore = new Date(renewAt - 2 * 3_600_000);
    expect(nextCertificateCheckMs(crt, twoHoursBefore, () => 0)).toBe(2 * 3_600_000);
    expect(nextCertificateCheckMs(crt, twoHoursBefore, () => 0.999)).toBeGreaterThan(2.99 * 3_600_000);
    expect(nextCertificateCheckMs(crt, new Date(renewAt + DAY), () => 0.5)).toBe(0);
    expect(nextCertificateCheckMs('not a certificate', new Date())).toBe(0);
  });
});
