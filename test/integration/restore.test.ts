import { X509Certificate } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { PersistentVolumeClaim, VolumeSnapshot } from '../../src/api/objects.ts';
import { freePort } from '../../dev/control-plane.ts';
import {
  createSchedule,
  createSnapshot,
  eventually,
  eventsOf,
  kube,
  kubeConfig,
  listSnapshots,
  useNamespace,
} from '../env/kube.ts';
import { runCli, startController, type Running } from '../env/processes.ts';
import { installRestoreWebhook } from '../../dev/restore-webhook.ts';
import { CertificateAuthority } from '../../src/tls/authority.ts';

const HOUR = 3_600_000;

function snapshot(
  namespace: string,
  name: string,
  pvc: string,
  hoursAgo: number,
  status: VolumeSnapshot['status'],
  schedule = 'nightly',
): Promise<void> {
  return createSnapshot(namespace, name, {
    pvc,
    schedule,
    takenAt: new Date(Date.now() - hoursAgo * HOUR),
    status,
  });
}

/** Creates a PVC; resolves with the stored object or rejects with the API server's message. */
async function createPvc(
  namespace: string,
  name: string,
  opts: { annotations?: Record<string, string>; routed?: boolean; storage?: string } = {},
): Promise<PersistentVolumeClaim> {
  try {
    return (await kube().core.createNamespacedPersistentVolumeClaim({
      namespace,
      body: {
        metadata: {
          name,
          labels: opts.routed === false ? {} : { 'snapcron.io/restore': 'true' },
          annotations: opts.annotations ?? {},
        },
        // A class nothing provisions: the PVC stays Pending, like a restore in progress.
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: 'restore-test',
          resources: { requests: { storage: opts.storage ?? '1Gi' } },
        },
      },
    })) as unknown as PersistentVolumeClaim;
  } catch (err) {
    const body = (err as { body?: unknown }).body;
    throw new Error(
      typeof body === 'string' ? (JSON.parse(body) as { message: string }).message : String(err),
      {
        cause: err,
      },
    );
  }
}

/** Connects over TLS trusting only `caPem`: was the served certificate verified, and which was it? */
function servedCertificate(
  port: number,
  caPem: string,
): Promise<{ authorized: boolean; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      { host: '127.0.0.1', port, ca: caPem, servername: 'localhost', rejectUnauthorized: false },
      () => {
        resolve({ authorized: socket.authorized, fingerprint: socket.getPeerCertificate().fingerprint256 });
        socket.end();
      },
    );
    socket.once('error', reject);
  });
}

describe('restore from latest through the admission webhook (real API server, TLS)', () => {
  const ns = useNamespace('restore');
  let ctl: Running;
  let port: number;

  async function startWithWebhook(): Promise<void> {
    const name = `snapcron-restore-${ns()}`;
    port = await freePort();
    await installRestoreWebhook(kubeConfig(), name, port, ns());
    ctl = startController(ns(), [
      `--webhook-addr=127.0.0.1:${port}`,
      `--webhook-config-name=${name}`,
      '--webhook-dns-names=localhost',
    ]);
    await eventually(async () => ctl.logs().some((l) => l.msg === 'caBundle injected'), 20_000);
    // The API server reads the new caBundle through its own watch: wait until a routed create is served.
    await eventually(
      async () =>
        createPvc(ns(), `probe-${Date.now()}`, {
          annotations: { 'snapcron.io/restore-from': 'nothing' },
        }).then(
          () => false,
          (err: Error) => /no ready VolumeSnapshot/.test(err.message),
        ),
      20_000,
      300,
    );
  }

  afterEach(async () => {
    const admission = kubeConfig().makeApiClient(k8s.AdmissionregistrationV1Api);
    await admission
      .deleteMutatingWebhookConfiguration({ name: `snapcron-restore-${ns()}` })
      .catch(() => undefined);
  });

  beforeEach(async () => {
    // Source PVC web-0 never exists here: restoring a deleted volume is the case that matters most.
    await snapshot(ns(), 'web-0-pending', 'web-0', 1, undefined);
    await snapshot(ns(), 'web-0-failed', 'web-0', 2, { readyToUse: false, error: { message: 'quota' } });
    await snapshot(ns(), 'web-0-3h', 'web-0', 3, { readyToUse: true, restoreSize: '1Gi' });
    await snapshot(ns(), 'web-0-5h', 'web-0', 5, { readyToUse: true, restoreSize: '1Gi' }, 'weekly');
    await snapshot(ns(), 'web-0-9h', 'web-0', 9, { readyToUse: true, restoreSize: '1Gi' });
    await snapshot(ns(), 'disk-ssd-web-2-1h', 'disk-ssd-web-2', 1, { readyToUse: true, restoreSize: '20Gi' });
    await startWithWebhook();
  });

  it('restores the newest ready snapshot, not a newer pending or failed one, after the source PVC is gone', async () => {
    const pvc = await createPvc(ns(), 'web-0-restore', {
      annotations: { 'snapcron.io/restore-from': 'web-0' },
    });
    const ref = { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'web-0-3h' };
    expect(pvc.spec?.dataSource).toEqual(ref);
    expect(pvc.spec?.dataSourceRef).toMatchObject(ref);
    expect(pvc.metadata.annotations?.['snapcron.io/restored-from-snapshot']).toBe('web-0-3h');
    expect(pvc.metadata.annotations?.['snapcron.io/restored-snapshot-time']).toMatch(/Z$/);
  });

  it('restore-at and restore-schedule pick the right copy', async () => {
    const at = new Date(Date.now() - 4 * HOUR).toISOString();
    const a = await createPvc(ns(), 'at-4h', {
      annotations: { 'snapcron.io/restore-from': 'web-0', 'snapcron.io/restore-at': at },
    });
    expect(a.spec?.dataSource?.name).toBe('web-0-5h');
    const b = await createPvc(ns(), 'weekly-only', {
      annotations: { 'snapcron.io/restore-from': 'web-0', 'snapcron.io/restore-schedule': 'weekly' },
    });
    expect(b.spec?.dataSource?.name).toBe('web-0-5h');
  });

  it('{ordinal} restores each StatefulSet replica from its own source', async () => {
    const pvc = await createPvc(ns(), 'disk-ssd-web-restore-2', {
      annotations: { 'snapcron.io/restore-from': 'disk-ssd-web-{ordinal}' },
      storage: '20Gi',
    });
    expect(pvc.spec?.dataSource?.name).toBe('disk-ssd-web-2-1h');
  });

  it('Required denies when nothing fits; IfAvailable creates an empty volume and says so', async () => {
    await expect(
      createPvc(ns(), 'req', { annotations: { 'snapcron.io/restore-from': 'db-0' } }),
    ).rejects.toThrow(
      /denied the request: snapcron restore of PVC restore-[0-9a-f]+\/req: no ready VolumeSnapshot of PVC restore-[0-9a-f]+\/db-0/,
    );
    const empty = await createPvc(ns(), 'opt', {
      annotations: { 'snapcron.io/restore-from': 'db-0', 'snapcron.io/restore-policy': 'IfAvailable' },
    });
    expect(empty.spec?.dataSource).toBeUndefined();
    expect(empty.metadata.annotations?.['snapcron.io/restore-result']).toMatch(
      /^created empty: no ready VolumeSnapshot/,
    );
    // README: "says so in snapcron.io/restore-result and an event".
    const event = await eventually(
      async () => (await eventsOf(ns(), 'RestoreEmpty')).find((e) => e.involvedObject.name === 'opt'),
      10_000,
    );
    expect(event.type).toBe('Warning');
    expect(event.message).toMatch(/no ready VolumeSnapshot of PVC restore-[0-9a-f]+\/db-0/);
  });

  it('denies a source in another namespace, a too-small request and malformed annotations', async () => {
    const other = `${ns()}-other`;
    await kube().core.createNamespace({ body: { metadata: { name: other } } });
    try {
      await snapshot(other, 'elsewhere', 'db-1', 1, { readyToUse: true });
      await expect(
        createPvc(ns(), 'cross', { annotations: { 'snapcron.io/restore-from': 'db-1' } }),
      ).rejects.toThrow(/no ready VolumeSnapshot/);
    } finally {
      await kube()
        .core.deleteNamespace({ name: other })
        .catch(() => undefined);
    }
    await expect(
      createPvc(ns(), 'small-0', {
        annotations: { 'snapcron.io/restore-from': 'disk-ssd-web-2' },
        storage: '10Gi',
      }),
    ).rejects.toThrow(/requested storage 10Gi is smaller than snapshot disk-ssd-web-2-1h's restoreSize 20Gi/);
    await expect(
      createPvc(ns(), 'bad-at', {
        annotations: { 'snapcron.io/restore-from': 'web-0', 'snapcron.io/restore-at': 'noon' },
      }),
    ).rejects.toThrow(/restore-at "noon" is not an RFC 3339 time/);
  });

  it('an unrouted PVC never reaches the webhook, and an outage blocks only routed PVCs', async () => {
    const plain = await createPvc(ns(), 'plain', {
      routed: false,
      annotations: { 'snapcron.io/restore-from': 'web-0' },
    });
    expect(plain.spec?.dataSource).toBeUndefined();
    expect(ctl.logs().some((l) => l.pvc === 'plain')).toBe(false);

    await ctl.kill('SIGKILL');
    await expect(
      createPvc(ns(), 'routed-down', { annotations: { 'snapcron.io/restore-from': 'web-0' } }),
    ).rejects.toThrow(/failed calling webhook/);
    const stillFine = await createPvc(ns(), 'plain-2', { routed: false });
    expect(stillFine.metadata.name).toBe('plain-2');
  });

  it('every replica serves the one shared certificate that caBundle trusts', async () => {
    const port2 = await freePort();
    const second = startController(
      ns(),
      [
        `--webhook-addr=127.0.0.1:${port2}`,
        `--webhook-config-name=snapcron-restore-${ns()}`,
        '--webhook-dns-names=localhost',
      ],
      'ctl-2',
    );
    await eventually(async () => second.logs().some((l) => l.msg === 'restore webhook serving'), 20_000);
    const config = await kubeConfig()
      .makeApiClient(k8s.AdmissionregistrationV1Api)
      .readMutatingWebhookConfiguration({ name: `snapcron-restore-${ns()}` });
    const bundle = Buffer.from(config.webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64').toString();
    const [a, b] = await Promise.all([servedCertificate(port, bundle), servedCertificate(port2, bundle)]);
    expect(a.authorized).toBe(true);
    expect(b.authorized).toBe(true);
    expect(b.fingerprint).toBe(a.fingerprint);
    const secret = await kube().core.readNamespacedSecret({ namespace: ns(), name: 'snapcron-webhook-tls' });
    expect(secret.type).toBe('kubernetes.io/tls');
    expect(Object.keys(secret.data ?? {}).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    // README: a CA is made for two years, the serving pair for one.
    const days = (key: string): number => {
      const c = new X509Certificate(Buffer.from(secret.data?.[key] ?? '', 'base64'));
      return Math.round((Date.parse(c.validTo) - Date.parse(c.validFrom)) / 86_400_000);
    };
    expect(days('ca.crt')).toBe(730);
    expect(days('tls.crt')).toBe(365);
  });

  it('the snapshot chosen for a Pending PVC survives pruning', async () => {
    await createSchedule(ns(), 'nightly', { schedule: '0 0 1 1 *', retention: { maxCount: 1 } });
    const at = new Date(Date.now() - 8 * HOUR).toISOString();
    const pvc = await createPvc(ns(), 'old-copy', {
      annotations: { 'snapcron.io/restore-from': 'web-0', 'snapcron.io/restore-at': at },
    });
    expect(pvc.spec?.dataSource?.name).toBe('web-0-9h');
    // maxCount 1 leaves web-0-3h (newest) and deletes the failed one; web-0-9h is in use.
    await eventually(
      async () => !(await listSnapshots(ns())).some((s) => s.metadata.name === 'web-0-failed'),
      15_000,
    );
    const names = (await listSnapshots(ns())).map((s) => s.metadata.name);
    expect(names).toContain('web-0-9h');
    expect(names).toContain('web-0-3h');
  });
});

describe('webhook certificate from a mounted Secret (cert-manager)', () => {
  const ns = useNamespace('restore-certdir');
  let dir: string | undefined;

  afterEach(async () => {
    await kubeConfig()
      .makeApiClient(k8s.AdmissionregistrationV1Api)
      .deleteMutatingWebhookConfiguration({ name: `snapcron-restore-${ns()}` })
      .catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  async function writePair(ca: CertificateAuthority): Promise<void> {
    const leaf = await ca.issue('CN=localhost', { dns: ['localhost'], ips: ['127.0.0.1'], server: true });
    // Like the kubelet's atomic update of a Secret volume: new files renamed into place.
    const d = dir ?? '';
    writeFileSync(join(d, 'tls.key.new'), leaf.keyPem);
    writeFileSync(join(d, 'tls.crt.new'), leaf.certPem);
    renameSync(join(d, 'tls.key.new'), join(d, 'tls.key'));
    renameSync(join(d, 'tls.crt.new'), join(d, 'tls.crt'));
  }

  it('renews a shared generated certificate near expiry at start-up, keeping the old CA trusted', async () => {
    const name = `snapcron-restore-${ns()}`;
    const old = await CertificateAuthority.create('old CA');
    const expiring = await old.issue('CN=localhost', { dns: ['localhost'], server: true, days: 10 });
    const b64 = (text: string): string => Buffer.from(text).toString('base64');
    await kube().core.createNamespacedSecret({
      namespace: ns(),
      body: {
        metadata: { name: 'snapcron-webhook-tls' },
        type: 'kubernetes.io/tls',
        data: {
          'ca.crt': b64(old.certPem),
          'tls.crt': b64(expiring.certPem),
          'tls.key': b64(expiring.keyPem),
        },
      },
    });
    const port = await freePort();
    await installRestoreWebhook(kubeConfig(), name, port, ns());
    const ctl = startController(ns(), [
      `--webhook-addr=127.0.0.1:${port}`,
      `--webhook-config-name=${name}`,
      '--webhook-dns-names=localhost',
    ]);
    await eventually(async () => ctl.logs().some((l) => l.msg === 'caBundle injected'), 20_000);
    const stored = ctl.logs().find((l) => l.msg === 'webhook certificate stored');
    expect(stored?.reason).toMatch(/^certificate expires /);
    const secret = await kube().core.readNamespacedSecret({ namespace: ns(), name: 'snapcron-webhook-tls' });
    const data = (key: string): string => Buffer.from(secret.data?.[key] ?? '', 'base64').toString();
    expect(data('ca-previous.crt')).toBe(old.certPem);
    expect(data('tls.crt')).not.toBe(expiring.certPem);
    const config = await kubeConfig()
      .makeApiClient(k8s.AdmissionregistrationV1Api)
      .readMutatingWebhookConfiguration({ name });
    const bundle = Buffer.from(config.webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64').toString();
    expect(bundle).toBe(data('ca.crt') + old.certPem);
    expect((await servedCertificate(port, data('ca.crt'))).authorized).toBe(true);
  });

  it('serves the mounted certificate, leaves caBundle alone, and picks up a renewal without a restart', async () => {
    dir = mkdtempSync(join(tmpdir(), 'snapcron-certs-'));
    const name = `snapcron-restore-${ns()}`;
    const first = await CertificateAuthority.create('cert-manager CA 1');
    await writePair(first);
    await snapshot(ns(), 'web-0-1h', 'web-0', 1, { readyToUse: true, restoreSize: '1Gi' });
    const port = await freePort();
    await installRestoreWebhook(kubeConfig(), name, port, ns(), first.certPem);
    const ctl = startController(ns(), [
      `--webhook-addr=127.0.0.1:${port}`,
      `--webhook-config-name=${name}`,
      `--webhook-cert-dir=${dir}`,
    ]);
    const restored = await eventually(
      // The API server may still hold the old caBundle for a moment: retry until served.
      () => createPvc(ns(), `a-${Date.now()}`, { annotations: { 'snapcron.io/restore-from': 'web-0' } }),
      20_000,
      300,
    );
    expect(restored.spec?.dataSource?.name).toBe('web-0-1h');
    const admission = kubeConfig().makeApiClient(k8s.AdmissionregistrationV1Api);
    const config = await admission.readMutatingWebhookConfiguration({ name });
    expect(config.webhooks?.[0]?.clientConfig.caBundle).toBe(Buffer.from(first.certPem).toString('base64'));
    expect(ctl.logs().some((l) => l.msg === 'caBundle injected')).toBe(false);

    // Renewal by a new CA: the API server now trusts only the new one, so a served request
    // proves the controller reloaded its certificate.
    const second = await CertificateAuthority.create('cert-manager CA 2');
    await writePair(second);
    for (const w of config.webhooks ?? [])
      w.clientConfig.caBundle = Buffer.from(second.certPem).toString('base64');
    await admission.replaceMutatingWebhookConfiguration({ name, body: config });
    await eventually(async () => ctl.logs().some((l) => l.msg === 'webhook certificate reloaded'), 25_000);
    const renewed = await eventually(
      // The API server may still hold the old caBundle for a moment: retry until served.
      () => createPvc(ns(), `b-${Date.now()}`, { annotations: { 'snapcron.io/restore-from': 'web-0' } }),
      20_000,
      300,
    );
    expect(renewed.spec?.dataSource?.name).toBe('web-0-1h');
  });
});

describe('snapcron restore (the same choice without a webhook)', () => {
  const ns = useNamespace('restore-cli');

  it('prints with --dry-run, then creates the PVC from the newest ready snapshot', async () => {
    await snapshot(ns(), 'web-0-3h', 'web-0', 3, { readyToUse: true, restoreSize: '2Gi' });
    await snapshot(ns(), 'web-0-1h', 'web-0', 1, undefined);
    const dry = await runCli([
      'restore',
      'web-0-restore',
      '--from',
      'web-0',
      '-n',
      ns(),
      '--dry-run',
      '-o',
      'json',
    ]);
    expect(dry.code).toBe(0);
    const manifest = JSON.parse(dry.out) as PersistentVolumeClaim;
    expect(manifest.spec?.dataSource?.name).toBe('web-0-3h');
    expect(manifest.spec?.resources?.requests?.storage).toBe('2Gi');
    expect(dry.err).toMatch(/would restore from VolumeSnapshot web-0-3h, taken .* \(3h\d*m?\d*s? ago\)/);

    const real = await runCli([
      'restore',
      'web-0-restore',
      '--from',
      'web-0',
      '-n',
      ns(),
      '--storage-class',
      'fast',
    ]);
    expect(real.code).toBe(0);
    expect(real.out).toMatch(/created PVC restore-cli-[0-9a-f]+\/web-0-restore from VolumeSnapshot web-0-3h/);
    const pvc = await kube().core.readNamespacedPersistentVolumeClaim({
      name: 'web-0-restore',
      namespace: ns(),
    });
    expect(pvc.spec?.dataSource?.name).toBe('web-0-3h');
    expect(pvc.spec?.storageClassName).toBe('fast');

    // --schedule and --at narrow the choice as the annotations do; --size asks for more; -o yaml.
    await snapshot(ns(), 'web-0-6h-hourly', 'web-0', 6, { readyToUse: true, restoreSize: '2Gi' }, 'hourly');
    await snapshot(ns(), 'web-0-8h', 'web-0', 8, { readyToUse: true, restoreSize: '2Gi' });
    const narrowed = await runCli([
      'restore',
      'web-0-older',
      '--from',
      'web-0',
      '--schedule',
      'nightly',
      '--at',
      new Date(Date.now() - 5 * HOUR).toISOString(),
      '--size',
      '5Gi',
      '-n',
      ns(),
      '--dry-run',
      '-o',
      'yaml',
    ]);
    expect(narrowed.code, narrowed.err).toBe(0);
    const older = parse(narrowed.out) as PersistentVolumeClaim;
    expect(older.metadata?.name).toBe('web-0-older');
    expect(older.spec?.dataSource?.name).toBe('web-0-8h');
    expect(older.spec?.resources?.requests?.storage).toBe('5Gi');
    const hourly = await runCli([
      'restore',
      'y',
      '--from',
      'web-0',
      '--schedule',
      'hourly',
      '-n',
      ns(),
      '--dry-run',
      '-o',
      'json',
    ]);
    expect((JSON.parse(hourly.out) as PersistentVolumeClaim).spec?.dataSource?.name).toBe('web-0-6h-hourly');

    const none = await runCli(['restore', 'x', '--from', 'db-0', '-n', ns()]);
    expect(none.code).toBe(1);
    expect(none.err.trim()).toMatch(
      /^snapcron restore: no ready VolumeSnapshot of PVC restore-cli-[0-9a-f]+\/db-0$/,
    );
  });
});
