// Mutual TLS between kube-apiserver and the restore webhook: the real API server presents the
// client certificate of its admission kubeconfig (dev/control-plane.ts configures one, as a
// cluster operator would), so restores through it work, while anyone else who reaches the
// port directly is refused before learning a snapshot's name.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PersistentVolumeClaim } from '../../src/api/objects.ts';
import { CertificateAuthority } from '../../src/tls/authority.ts';
import { freePort, WEBHOOK_CLIENT_NAME } from '../../dev/control-plane.ts';
import { installRestoreWebhook } from '../../dev/restore-webhook.ts';
import { createSnapshot, eventually, kube, kubeConfig, kubeconfigFor, useNamespace } from '../env/kube.ts';
import { helmBinary } from '../env/helm.ts';
import { kubectlBinary } from '../env/kubectl.ts';
import { startController, type Running } from '../env/processes.ts';

const SNAPSHOT = 'web-0-1h';

interface ClientCert {
  cert: string;
  key: string;
}

/** The client certificate of a kubeconfig the control plane minted (signed by its CA). */
function certOf(kubeconfigPath: string): ClientCert {
  const user = kubeConfig(kubeconfigPath).getCurrentUser();
  const pem = (b64: string | undefined): string => Buffer.from(b64 ?? '', 'base64').toString('utf8');
  return { cert: pem(user?.certData), key: pem(user?.keyData) };
}

/**
 * POSTs an AdmissionReview straight to the webhook, as a pod that can reach its port would.
 * Resolves with the HTTP answer, or with the connection error when TLS refused the client.
 */
function callDirectly(
  port: number,
  namespace: string,
  client?: ClientCert,
): Promise<{ status?: number; body: string; error?: string }> {
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'direct-call',
      operation: 'CREATE',
      namespace,
      kind: { group: '', version: 'v1', kind: 'PersistentVolumeClaim' },
      object: {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: {
          name: 'probe',
          namespace,
          labels: { 'snapcron.io/restore': 'true' },
          annotations: { 'snapcron.io/restore-from': 'web-0' },
        },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      },
    },
  };
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate-v1-pvc',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        // The caller's view of the server does not matter here: what the server accepts does.
        rejectUnauthorized: false,
        agent: false,
        ...client,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', (err: NodeJS.ErrnoException) =>
          resolve({ status: res.statusCode ?? 0, body, error: err.code ?? err.message }),
        );
      },
    );
    req.once('error', (err: NodeJS.ErrnoException) => resolve({ body: '', error: err.code ?? err.message }));
    req.end(JSON.stringify(review));
  });
}

/** The snapshot the webhook's JSON patch names, if it answered with one. */
function patchedSnapshot(body: string): string | undefined {
  const review = JSON.parse(body) as { response?: { patch?: string } };
  const patch = review.response?.patch;
  if (!patch) return undefined;
  const ops = JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as { path: string; value: unknown }[];
  return (ops.find((op) => op.path === '/spec/dataSource')?.value as { name?: string } | undefined)?.name;
}

async function createRestorePvc(namespace: string, name: string): Promise<PersistentVolumeClaim> {
  try {
    return (await kube().core.createNamespacedPersistentVolumeClaim({
      namespace,
      body: {
        metadata: {
          name,
          labels: { 'snapcron.io/restore': 'true' },
          annotations: { 'snapcron.io/restore-from': 'web-0' },
        },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: 'restore-test',
          resources: { requests: { storage: '1Gi' } },
        },
      },
    })) as unknown as PersistentVolumeClaim;
  } catch (err) {
    const body = (err as { body?: unknown }).body;
    throw new Error(
      typeof body === 'string' ? (JSON.parse(body) as { message: string }).message : String(err),
      { cause: err },
    );
  }
}

describe('restore webhook with mutual TLS (--webhook-client-ca) on the real kube-apiserver', () => {
  const ns = useNamespace('mtls');
  let dir: string;
  let clientCaFile: string;
  let ctl: Running;
  let port: number;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'snapcron-mtls-'));
    // The control plane's CA, which signed the API server's admission client certificate.
    const caData = kubeConfig().getCurrentCluster()?.caData ?? '';
    clientCaFile = join(dir, 'client-ca.crt');
    writeFileSync(clientCaFile, Buffer.from(caData, 'base64'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  beforeEach(async () => {
    await createSnapshot(ns(), SNAPSHOT, {
      pvc: 'web-0',
      schedule: 'nightly',
      takenAt: new Date(Date.now() - 3_600_000),
      status: { readyToUse: true, restoreSize: '1Gi' },
    });
  });

  afterEach(async () => {
    await kubeConfig()
      .makeApiClient(k8s.AdmissionregistrationV1Api)
      .deleteMutatingWebhookConfiguration({ name: `snapcron-restore-${ns()}` })
      .catch(() => undefined);
  });

  /** Starts the controller's webhook with `flags`, registered by URL for this namespace only. */
  async function start(flags: string[]): Promise<void> {
    const name = `snapcron-restore-${ns()}`;
    port = await freePort();
    await installRestoreWebhook(kubeConfig(), name, port, ns());
    ctl = startController(ns(), [
      `--webhook-addr=127.0.0.1:${port}`,
      `--webhook-config-name=${name}`,
      '--webhook-dns-names=localhost',
      ...flags,
    ]);
    await eventually(async () => ctl.logs().some((l) => l.msg === 'caBundle injected'), 20_000);
    await eventually(async () => ctl.logs().some((l) => l.msg === 'restore webhook serving'), 20_000);
  }

  /** Waits until the API server has the injected caBundle and a routed create gets an answer. */
  async function restoreThroughApiServer(): Promise<PersistentVolumeClaim | Error> {
    let last: PersistentVolumeClaim | Error = new Error('no attempt');
    await eventually(
      async () => {
        last = await createRestorePvc(ns(), `restored-${Date.now()}`).catch((err: Error) => err);
        // Until the API server has read the caBundle it fails verifying the server: retry.
        return !(last instanceof Error && /x509|certificate signed by unknown authority/.test(last.message));
      },
      20_000,
      300,
    );
    return last;
  }

  it('restores through the API server, which authenticates with its admission client certificate; refuses other callers at the TLS layer', async () => {
    await start([`--webhook-client-ca=${clientCaFile}`, `--webhook-client-names=${WEBHOOK_CLIENT_NAME}`]);
    expect(ctl.logs().find((l) => l.msg === 'restore webhook serving')?.clientAuth).toBe(true);

    const pvc = await restoreThroughApiServer();
    expect(pvc).not.toBeInstanceOf(Error);
    expect((pvc as PersistentVolumeClaim).spec?.dataSource?.name).toBe(SNAPSHOT);

    // No client certificate: the handshake is refused, no HTTP answer, no snapshot name.
    const anonymous = await callDirectly(port, ns());
    expect(anonymous.status).toBeUndefined();
    expect(anonymous.error).toMatch(/CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE|ECONNRESET|EPIPE/);
    expect(anonymous.body).not.toContain(SNAPSHOT);

    // A certificate with the right name from another CA: refused the same way.
    const other = await CertificateAuthority.create('not-the-cluster-ca');
    const forged = await other.issue(`CN=${WEBHOOK_CLIENT_NAME}`);
    const foreign = await callDirectly(port, ns(), { cert: forged.certPem, key: forged.keyPem });
    expect(foreign.status).toBeUndefined();
    expect(foreign.error).toMatch(/UNKNOWN_CA|BAD_CERTIFICATE|ECONNRESET|EPIPE/);
    expect(foreign.body).not.toContain(SNAPSHOT);

    // The cluster's CA, but another identity (any user's client certificate): 403, nothing leaked.
    const user = await callDirectly(port, ns(), certOf(await kubeconfigFor('mallory')));
    expect(user.status).toBe(403);
    expect(user.body).not.toContain(SNAPSHOT);
    expect(user.body).toMatch(/^client certificate \(mallory\) not allowed/);
    await eventually(async () =>
      ctl
        .logs()
        .some(
          (l) =>
            String(l.msg).startsWith('webhook client certificate refused') &&
            JSON.stringify(l.clientNames) === '["mallory"]',
        ),
    );

    // Control: the API server's identity, called directly, is answered with the snapshot, so
    // the refusals above are the client check and not a broken request.
    const apiserver = await callDirectly(port, ns(), certOf(await kubeconfigFor(WEBHOOK_CLIENT_NAME)));
    expect(apiserver.status).toBe(200);
    expect(patchedSnapshot(apiserver.body)).toBe(SNAPSHOT);
  });

  it('the name check applies to the API server too: another required name makes its calls fail', async () => {
    await start([`--webhook-client-ca=${clientCaFile}`, '--webhook-client-names=someone-else']);
    const result = await restoreThroughApiServer();
    expect(result).toBeInstanceOf(Error);
    expect((result as Error).message).toMatch(
      /failed calling webhook "restore.snapcron.io".*client certificate \(kube-apiserver-webhook-client\) not allowed/,
    );
    const refused = await eventually(async () =>
      ctl.logs().find((l) => String(l.msg).startsWith('webhook client certificate refused')),
    );
    expect(refused.clientNames).toEqual([WEBHOOK_CLIENT_NAME]);
  });

  it('re-reads the client CA file when it is replaced, as a mounted ConfigMap is', async () => {
    // First a CA that did not sign the API server's certificate: its calls are cut off in the
    // handshake. TLS 1.3 checks the client after the server's Finished, so the API server has
    // already sent its request and reports EOF, the alert, or (when the server closes with that
    // request unread) a reset: never an HTTP answer.
    const other = await CertificateAuthority.create('previous-client-ca');
    const file = join(dir, 'rotating-ca.crt');
    writeFileSync(file, other.certPem);
    await start([`--webhook-client-ca=${file}`, `--webhook-client-names=${WEBHOOK_CLIENT_NAME}`]);
    const refused = await restoreThroughApiServer();
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error).message).toMatch(
      /failed calling webhook "restore.snapcron.io".*(EOF|tls: |connection reset by peer)/,
    );
    // The kubelet swaps ConfigMap files by rename: the new file is a new inode.
    writeFileSync(`${file}.new`, readFileSync(clientCaFile));
    renameSync(`${file}.new`, file);
    await eventually(async () => ctl.logs().some((l) => l.msg === 'webhook client CA reloaded'), 25_000);
    const pvc = await eventually(async () => createRestorePvc(ns(), `after-${Date.now()}`), 10_000, 300);
    expect(pvc.spec?.dataSource?.name).toBe(SNAPSHOT);
  });

  it('without --webhook-client-ca any TLS client is answered, as before (what the flag closes)', async () => {
    await start([]);
    const pvc = await restoreThroughApiServer();
    expect((pvc as PersistentVolumeClaim).spec?.dataSource?.name).toBe(SNAPSHOT);
    const anonymous = await callDirectly(port, ns());
    expect(anonymous.status).toBe(200);
    expect(patchedSnapshot(anonymous.body)).toBe(SNAPSHOT);
  });

  it('the network-policy overlay selects the controller pods, names their webhook and metrics ports, is accepted, and the README overlay and Helm line replace its range', async () => {
    const OVERLAY = 'deploy/overlays/network-policy';
    const docs = (file: string): Record<string, unknown>[] =>
      parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Record<string, unknown>);
    // loadAllYaml maps YAML onto client-node's models (`from` is `_from` there), so it serializes back intact.
    const [policy] = k8s.loadAllYaml(
      readFileSync(`${OVERLAY}/networkpolicy.yaml`, 'utf8'),
    ) as k8s.V1NetworkPolicy[];
    const deployment = docs('deploy/base/controller.yaml').find(
      (d) => d.kind === 'Deployment',
    ) as unknown as k8s.V1Deployment;
    const pod = deployment.spec?.template;
    // It selects the Deployment's pods...
    for (const [k, v] of Object.entries(policy?.spec?.podSelector?.matchLabels ?? {}))
      expect(pod?.metadata?.labels?.[k], `pod label ${k}`).toBe(v);
    // ...and its rules name their ports: the webhook from an ipBlock, metrics from a namespace.
    const ports = Object.fromEntries(
      (pod?.spec?.containers[0]?.ports ?? []).map((p) => [p.name ?? '', p.containerPort]),
    );
    const args = pod?.spec?.containers[0]?.args ?? [];
    expect(args).toContain(`--webhook-addr=:${ports.webhook}`);
    expect(args).toContain(`--metrics-addr=:${ports.metrics}`);
    const [webhookRule, metricsRule] = policy?.spec?.ingress ?? [];
    expect(webhookRule?.ports?.map((p) => p.port)).toEqual(['webhook']);
    // The placeholder the README tells users to replace (a documentation-only range).
    const placeholder = webhookRule?._from?.[0]?.ipBlock?.cidr;
    expect(placeholder).toBe('192.0.2.0/24');
    expect(metricsRule?.ports?.map((p) => p.port)).toEqual(['metrics']);
    expect(metricsRule?._from?.[0]?.namespaceSelector?.matchLabels).toEqual({
      'kubernetes.io/metadata.name': 'monitoring',
    });
    expect(policy?.spec?.ingress).toHaveLength(2); // nothing else gets in
    // The API server accepts it as written (no CNI enforces it here).
    const stored = await kubeConfig()
      .makeApiClient(k8s.NetworkingV1Api)
      .createNamespacedNetworkPolicy({
        namespace: ns(),
        body: { ...policy, metadata: { ...policy?.metadata, namespace: ns() } },
      });
    expect(stored.spec?.ingress?.[0]?.ports?.[0]?.port).toBe('webhook');
    expect(stored.spec?.ingress?.[0]?._from?.[0]?.ipBlock?.cidr).toBe(placeholder);

    type Rendered = {
      kind: string;
      metadata: { name: string; namespace?: string };
      spec: { ingress: { from: { ipBlock?: { cidr: string } }[] }[] };
    } | null;
    const parse = (text: string): Rendered[] => parseAllDocuments(text).map((d) => d.toJS() as Rendered);
    const cidrOf = (objs: Rendered[]): string | undefined =>
      objs.find((o) => o?.kind === 'NetworkPolicy')?.spec.ingress[0]?.from[0]?.ipBlock?.cidr;
    const kustomize = (path: string): Rendered[] =>
      parse(execFileSync(kubectlBinary(), ['kustomize', path], { encoding: 'utf8' }));
    const shipped = kustomize(OVERLAY);
    expect(cidrOf(shipped)).toBe(placeholder);

    // The README's own overlay, built on this one, fills in the API server's range.
    const readme = readFileSync('README.md', 'utf8');
    const userOverlay = /```yaml\n# your-overlay\/kustomization\.yaml\n((?:.*\n)*?)```/.exec(readme)?.[1];
    expect(userOverlay, 'README: the network-policy overlay patch').toMatch(/ipBlock\/cidr\n/);
    const resource = /^ {2}- (\S+)/m.exec(userOverlay ?? '')?.[1];
    expect(resource).toMatch(/\/deploy\/overlays\/network-policy$/);
    const cidr = /value: (\S+)/.exec(userOverlay ?? '')?.[1];
    expect(cidr).not.toBe(placeholder);
    const overlay = join(dir, 'overlay');
    mkdirSync(overlay);
    writeFileSync(
      join(overlay, 'kustomization.yaml'),
      (userOverlay ?? '').replace(resource ?? '', relative(overlay, resolve(OVERLAY))),
    );
    const patched = kustomize(overlay);
    expect(cidrOf(patched)).toBe(cidr);
    // ...and changes nothing else.
    expect(patched.map((o) => `${o?.kind}/${o?.metadata.name}`)).toEqual(
      shipped.map((o) => `${o?.kind}/${o?.metadata.name}`),
    );

    // Helm users set the same range with the README's line; the default renders no policy.
    const helmLine = /`--set (networkPolicy\.enabled=true,networkPolicy\.apiServerCIDR=[^`]+)`/.exec(
      readme,
    )?.[1];
    expect(helmLine, 'README: the Helm networkPolicy line').toBeDefined();
    const helmTemplate = (...sets: string[]): Rendered[] =>
      parse(
        execFileSync(
          helmBinary(),
          [
            'template',
            'snapcron',
            'deploy/helm/snapcron',
            '-n',
            'snapcron-system',
            ...sets.flatMap((s) => ['--set', s]),
          ],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
        ),
      );
    expect(cidrOf(helmTemplate(helmLine ?? ''))).toBe(cidr);
    const byDefault = helmTemplate();
    expect(byDefault.map((o) => o?.kind)).toContain('Deployment');
    expect(byDefault.map((o) => o?.kind)).not.toContain('NetworkPolicy');
  });
});
