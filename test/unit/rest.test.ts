/**
 * rest.ts and api.ts against a small HTTP server that records what it was sent: keep-alive,
 * credentials per request (and fresh ones after a 401), errors as ApiError with the server's
 * Status, query strings, patch types. The real API server is integration/ (every controller
 * test goes through this client).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { CoreV1Api, CustomObjectsApi } from '../../src/kube/api.ts';
import type { ClusterAccess } from '../../src/kube/kubeconfig.ts';
import { ApiError, H1Channel, MAX_CONNECTIONS, Rest } from '../../src/kube/rest.ts';
import { errorMessage, isTransient, statusOf } from '../../src/kube/retry.ts';
import { CertificateAuthority } from '../../src/tls/authority.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A server answering with `answer(request)`; counts TCP connections. */
async function serve(
  answer: (seen: Seen) => { status: number; body?: unknown } | undefined,
): Promise<{ url: string; seen: Seen[]; connections: () => number }> {
  const seen: Seen[] = [];
  let connections = 0;
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(s);
      const a = answer(s);
      if (!a) return; // never answer
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(a.body === undefined ? '' : JSON.stringify(a.body));
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    connections: () => connections,
  };
}

function access(url: string, tokens: string[] = ['t1']): ClusterAccess & { invalidations: number } {
  let i = 0;
  const a = {
    server: url,
    namespace: 'default',
    source: 'test',
    insecure: false,
    invalidations: 0,
    credentials: async () => ({ authorization: `Bearer ${tokens[Math.min(i, tokens.length - 1)]}` }),
    invalidate: () => {
      a.invalidations++;
      i++;
    },
  };
  return a;
}

describe('Rest: snapcron’s transport to the API server', () => {
  it('reuses one keep-alive connection for sequential requests', async () => {
    const api = await serve(() => ({ status: 200, body: { items: [] } }));
    const rest = new Rest(access(api.url));
    for (let i = 0; i < 20; i++) await rest.send('GET', '/api/v1/namespaces/a/persistentvolumeclaims');
    expect(api.seen).toHaveLength(20);
    expect(api.connections()).toBe(1);
  });

  it('a burst of requests shares MAX_CONNECTIONS connections; watches have their own', async () => {
    let inFlight = 0;
    let most = 0;
    const api = await serve((s) => {
      if (s.url.includes('watch=true')) return undefined; // a watch: held open
      most = Math.max(most, ++inFlight);
      return { status: 200, body: {} };
    });
    server?.on('request', (_req, res: ServerResponse) => res.once('finish', () => inFlight--));
    const rest = new Rest(access(api.url));
    // Watches the server holds open, each on its channel (stream() resolves only on an answer's head: not awaited).
    const channels = Array.from({ length: MAX_CONNECTIONS + 8 }, () => new H1Channel());
    for (const channel of channels)
      void rest.stream(channel, '/api/v1/pods', { query: { watch: 'true' } }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    await Promise.all(Array.from({ length: 200 }, () => rest.send('GET', '/api/v1/namespaces')));
    expect(most).toBeLessThanOrEqual(MAX_CONNECTIONS);
    expect(api.connections()).toBe(MAX_CONNECTIONS + 8 + MAX_CONNECTIONS);
    for (const channel of channels) channel.close();
  });

  it('sends the credentials with every request, and fresh ones once after a 401', async () => {
    const api = await serve((s) =>
      s.headers.authorization === 'Bearer t2'
        ? { status: 200, body: { ok: true } }
        : { status: 401, body: {} },
    );
    const a = access(api.url, ['t1', 't2']);
    await expect(new Rest(a).send('GET', '/api/v1/pods')).resolves.toEqual({ ok: true });
    expect(api.seen.map((s) => s.headers.authorization)).toEqual(['Bearer t1', 'Bearer t2']);
    expect(a.invalidations).toBe(1);
  });

  it('a second 401 is an ApiError, not a loop', async () => {
    const api = await serve(() => ({
      status: 401,
      body: { kind: 'Status', code: 401, reason: 'Unauthorized', message: 'Unauthorized' },
    }));
    const err = await new Rest(access(api.url)).send('GET', '/api/v1/pods').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(statusOf(err)).toBe(401);
    expect(api.seen).toHaveLength(2);
  });

  it('a refusal is an ApiError with the Status: code, reason and message for errorMessage', async () => {
    const status = {
      kind: 'Status',
      status: 'Failure',
      code: 409,
      reason: 'AlreadyExists',
      message: 'volumesnapshots.snapshot.storage.k8s.io "a" already exists',
    };
    const api = await serve(() => ({ status: 409, body: status }));
    const custom = new CustomObjectsApi(new Rest(access(api.url)));
    const err: unknown = await custom
      .createNamespacedCustomObject({ group: 'g', version: 'v1', plural: 'things', namespace: 'n', body: {} })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toMatchObject({ code: 409, reason: 'AlreadyExists', body: JSON.stringify(status) });
    expect(errorMessage(err)).toBe(status.message);
    expect(isTransient(err)).toBe(false);
  });

  it('errorMessage reads the message of what is not an Error (a WebSocket ErrorEvent), and prints the rest', () => {
    const wsError = { type: 'error', message: 'Unexpected server response: 403', error: new Error('x') };
    expect(errorMessage(wsError)).toBe('Unexpected server response: 403');
    expect(errorMessage(new Error('plain'))).toBe('plain');
    expect(errorMessage('text')).toBe('text');
    expect(errorMessage({ message: 7 })).toBe('[object Object]');
    expect(errorMessage(undefined)).toBe('undefined');
  });

  it('an answer that is not a Status still names the request and the HTTP code', async () => {
    const api = await serve(() => ({ status: 503, body: 'overloaded' }));
    const err = await new Rest(access(api.url)).send('GET', '/api/v1/pods').catch((e: unknown) => e);
    expect(statusOf(err)).toBe(503);
    expect(isTransient(err)).toBe(true);
    expect(String(err)).toContain('GET /api/v1/pods: HTTP 503');
  });

  it('no answer within the deadline rejects, naming the request (a transient error: retried)', async () => {
    const api = await serve(() => undefined);
    const err = await new Rest(access(api.url), { timeoutMs: 100 })
      .send('GET', '/api/v1/pods')
      .catch((e: unknown) => e);
    expect(String(err)).toContain('GET /api/v1/pods: no answer within 100 ms');
    expect(isTransient(err)).toBe(true);
  });

  it('paths, query strings, bodies and patch types are those the API server expects', async () => {
    const api = await serve(() => ({ status: 200, body: {} }));
    const rest = new Rest(access(api.url));
    const custom = new CustomObjectsApi(rest);
    const core = new CoreV1Api(rest);
    const r = { group: 'snapshot.storage.k8s.io', version: 'v1', plural: 'volumesnapshots' };
    await custom.listNamespacedCustomObject({
      ...r,
      namespace: 'db',
      labelSelector: 'snapcron.io/schedule=a,app in (x)',
      limit: 500,
      _continue: 'tok',
    });
    await custom.patchNamespacedCustomObject({ ...r, namespace: 'db', name: 's/1', body: { metadata: {} } });
    await custom.deleteNamespacedCustomObject({
      ...r,
      namespace: 'db',
      name: 'a',
      body: { preconditions: { resourceVersion: '7' } },
    });
    await core.createNamespacedPersistentVolumeClaim({
      namespace: 'db',
      body: { metadata: { name: 'p' } },
      dryRun: 'All',
    });
    await core.listPersistentVolumeClaimForAllNamespaces();
    await custom.patchNamespacedCustomObject({
      ...r,
      namespace: 'db',
      name: 'b',
      body: [{ op: 'remove', path: '/x' }],
    });
    const [list, patch, del, create, all, jsonPatch] = api.seen;
    expect(new URL(list?.url ?? '', api.url).pathname).toBe(
      '/apis/snapshot.storage.k8s.io/v1/namespaces/db/volumesnapshots',
    );
    expect(Object.fromEntries(new URL(list?.url ?? '', api.url).searchParams)).toEqual({
      labelSelector: 'snapcron.io/schedule=a,app in (x)',
      limit: '500',
      continue: 'tok',
    });
    expect(patch).toMatchObject({
      method: 'PATCH',
      url: '/apis/snapshot.storage.k8s.io/v1/namespaces/db/volumesnapshots/s%2F1',
    });
    expect(patch?.headers['content-type']).toBe('application/merge-patch+json');
    expect(del?.method).toBe('DELETE');
    expect(JSON.parse(del?.body ?? '')).toEqual({ preconditions: { resourceVersion: '7' } });
    expect(create).toMatchObject({
      method: 'POST',
      url: '/api/v1/namespaces/db/persistentvolumeclaims?dryRun=All',
    });
    expect(create?.headers['content-type']).toBe('application/json');
    expect(all?.url).toBe('/api/v1/persistentvolumeclaims');
    expect(jsonPatch?.headers['content-type']).toBe('application/json-patch+json');
  });

  it("a server URL with a path (a proxy's prefix) keeps it before every request's path", async () => {
    const api = await serve(() => ({ status: 200, body: {} }));
    const rest = new Rest(access(`${api.url}/k8s/clusters/c-1/`));
    await rest.send('GET', '/api/v1/pods', { query: { labelSelector: 'a=b', limit: 0, watch: '' } });
    await rest.send('GET', '/api/v1/namespaces/db/pods');
    expect(api.seen.map((r) => r.url)).toEqual([
      '/k8s/clusters/c-1/api/v1/pods?labelSelector=a%3Db&limit=0',
      '/k8s/clusters/c-1/api/v1/namespaces/db/pods',
    ]);
  });
});

describe('Rest over TLS: the server verified, the client certificate sent', () => {
  let tlsServer: HttpsServer | undefined;
  afterEach(async () => {
    tlsServer?.closeAllConnections();
    await new Promise<void>((r) => (tlsServer ? tlsServer.close(() => r()) : r()));
    tlsServer = undefined;
  });

  /** An HTTPS server for the name `kubernetes` (not its address) that answers with the client certificate's CN. */
  async function serveTls(ca: CertificateAuthority): Promise<string> {
    const serving = await ca.issue('CN=apiserver', { dns: ['kubernetes'], server: true });
    tlsServer = createHttpsServer(
      {
        cert: serving.certPem,
        key: serving.keyPem,
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerCertificate();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ user: peer.subject?.CN ?? null }));
      },
    );
    await new Promise<void>((r) => tlsServer?.listen(0, '127.0.0.1', r));
    return `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
  }

  it('trusts the kubeconfig CA under tls-server-name, sends the identity, and refuses another CA', async () => {
    const ca = await CertificateAuthority.create('cluster-ca');
    const url = await serveTls(ca);
    const client = await ca.issue('CN=snapcron');
    const tls = (over: Partial<ClusterAccess>): ClusterAccess => ({
      ...access(url),
      ca: Buffer.from(ca.certPem),
      servername: 'kubernetes',
      credentials: async () => ({ cert: Buffer.from(client.certPem), key: Buffer.from(client.keyPem) }),
      ...over,
    });
    expect(await new Rest(tls({})).send('GET', '/api')).toEqual({ user: 'snapcron' });
    // Every request after the first reuses the identity's connection and its TLS context.
    const rest = new Rest(tls({}));
    for (let i = 0; i < 3; i++) expect(await rest.send('GET', '/api')).toEqual({ user: 'snapcron' });

    const other = await CertificateAuthority.create('not-the-cluster');
    await expect(new Rest(tls({ ca: Buffer.from(other.certPem) })).send('GET', '/api')).rejects.toThrow(
      /self-signed|unable to verify|unable to get local issuer/,
    );
    await expect(new Rest(tls({ servername: undefined })).send('GET', '/api')).rejects.toThrow(
      /IP: 127\.0\.0\.1 is not in the cert's list|altnames/,
    );
    // insecure-skip-tls-verify: another CA is accepted, the client certificate still sent.
    expect(
      await new Rest(tls({ ca: Buffer.from(other.certPem), insecure: true })).send('GET', '/api'),
    ).toEqual({ user: 'snapcron' });
  });
});
