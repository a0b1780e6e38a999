/**
 * rest.ts' `send` over HTTP/2 (http2.ts) against small TLS servers: one session for many
 * requests, at most MAX_STREAMS in flight, HTTP/1.1 for good when the server's TLS does not offer
 * h2, a new session after GOAWAY, a stream timeout, a 401 retried once, and DISABLE_HTTP2. The
 * real API server speaks h2, so every integration test goes through this path too.
 */
import { createSecureServer, type Http2SecureServer, type ServerHttp2Session } from 'node:http2';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_STREAMS } from '../../src/kube/http2.ts';
import type { ClusterAccess } from '../../src/kube/kubeconfig.ts';
import { Rest } from '../../src/kube/rest.ts';
import { CertificateAuthority } from '../../src/tls/authority.ts';

let tls: { ca: string; cert: string; key: string };
beforeAll(async () => {
  const ca = await CertificateAuthority.create('rest-http2 test CA', 1);
  const leaf = await ca.issue('CN=127.0.0.1', { ips: ['127.0.0.1'], server: true, days: 1 });
  tls = { ca: ca.certPem, cert: leaf.certPem, key: leaf.keyPem };
});

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;
interface Seen {
  method: string;
  url: string;
  httpVersion: string;
  authorization: string | undefined;
  body: string;
}

let server: Http2SecureServer | HttpsServer | undefined;
const sessions: ServerHttp2Session[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
  if (server && 'closeAllConnections' in server) server.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A TLS server offering h2 (or only HTTP/1.1 with `h1Only`), answering with `answer`. */
async function serve(
  answer: (seen: Seen, res: Res) => void,
  o: { h1Only?: boolean } = {},
): Promise<{ url: string; seen: Seen[]; sessions: () => number; maxInFlight: () => number }> {
  const seen: Seen[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const handle = (req: Req, res: Res): void => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let done = false;
    const end = (): void => {
      if (!done) inFlight--;
      done = true;
    };
    res.on('finish', end);
    res.on('close', end);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s: Seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        httpVersion: req.httpVersion,
        authorization: req.headers.authorization,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(s);
      answer(s, res);
    });
  };
  let opened = 0;
  if (o.h1Only) {
    server = createHttpsServer({ cert: tls.cert, key: tls.key }, handle);
  } else {
    const h2 = createSecureServer({ cert: tls.cert, key: tls.key }, handle);
    h2.on('session', (s: ServerHttp2Session) => {
      opened++;
      sessions.push(s);
    });
    server = h2;
  }
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    sessions: () => opened,
    maxInFlight: () => maxInFlight,
  };
}

const json = (res: Res, status: number, body: unknown): void => {
  (res as ServerResponse).writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

function access(url: string, counts = { invalidated: 0 }, token = (): string => 't0'): ClusterAccess {
  return {
    server: url,
    namespace: 'default',
    source: 'test',
    insecure: false,
    ca: Buffer.from(tls.ca),
    credentials: () => Promise.resolve({ authorization: `Bearer ${token()}` }),
    invalidate: () => void counts.invalidated++,
  };
}

describe('send over HTTP/2', () => {
  it('sends many requests over one session, at most MAX_STREAMS at once', async () => {
    const s = await serve((seen, res) =>
      setTimeout(() => json(res, 200, { path: seen.url, got: seen.body }), 20),
    );
    const rest = new Rest(access(s.url), { http2: true });
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        rest.send<{ path: string; got: string }>('POST', `/api/v1/things`, {
          query: { n: i },
          body: { i },
        }),
      ),
    );
    expect(answers.map((a) => a.path)).toEqual(
      Array.from({ length: 100 }, (_, i) => `/api/v1/things?n=${i}`),
    );
    expect(answers[7]?.got).toBe('{"i":7}');
    expect(new Set(s.seen.map((x) => x.httpVersion))).toEqual(new Set(['2.0']));
    expect(s.seen[0]?.authorization).toBe('Bearer t0');
    expect(s.sessions()).toBe(1);
    expect(s.maxInFlight()).toBeGreaterThan(1);
    expect(s.maxInFlight()).toBeLessThanOrEqual(MAX_STREAMS);
    expect(rest.http2).toBe(true);
  });

  it('uses HTTP/1.1 for good when the server does not offer h2', async () => {
    const s = await serve((seen, res) => json(res, 200, { n: s.seen.length }), { h1Only: true });
    const rest = new Rest(access(s.url), { http2: true });
    expect(await rest.send('GET', '/api')).toEqual({ n: 1 });
    expect(rest.http2).toBe(false);
    expect(await rest.send('GET', '/api')).toEqual({ n: 2 });
    expect(s.seen.map((x) => x.httpVersion)).toEqual(['1.1', '1.1']);
  });

  it('opens a new session after the server sends GOAWAY', async () => {
    const s = await serve((seen, res) => json(res, 200, { ok: true }));
    const rest = new Rest(access(s.url), { http2: true });
    await rest.send('GET', '/api');
    for (const session of sessions) session.goaway();
    await new Promise((r) => setTimeout(r, 100));
    expect(await rest.send('GET', '/api')).toEqual({ ok: true });
    expect(s.sessions()).toBe(2);
  });

  it('fails a request the server never answers within its timeout', async () => {
    const s = await serve(() => undefined);
    const rest = new Rest(access(s.url), { http2: true });
    await expect(rest.send('GET', '/api/slow', { timeoutMs: 300 })).rejects.toThrow(
      'GET /api/slow: no answer within 300 ms',
    );
  });

  it('asks for fresh credentials once after a 401, as over HTTP/1.1', async () => {
    const counts = { invalidated: 0 };
    let token = 'old';
    const s = await serve((seen, res) =>
      seen.authorization === 'Bearer new'
        ? json(res, 200, { ok: true })
        : json(res, 401, { kind: 'Status', code: 401, reason: 'Unauthorized', message: 'Unauthorized' }),
    );
    const rest = new Rest(
      access(s.url, counts, () => token),
      { http2: true },
    );
    const answer = rest.send('GET', '/api');
    token = 'new';
    expect(await answer).toEqual({ ok: true });
    expect(counts.invalidated).toBe(1);
    expect(s.seen.map((x) => x.authorization)).toEqual(['Bearer old', 'Bearer new']);
  });

  it('stays on HTTP/1.1 when DISABLE_HTTP2 is set, as client-go does', async () => {
    const s = await serve((seen, res) => json(res, 200, { ok: true }));
    // A server that offers h2 and HTTP/1.1 both, as the API server does.
    (server as Http2SecureServer & { allowHTTP1?: boolean }).close();
    server = createSecureServer({ cert: tls.cert, key: tls.key, allowHTTP1: true }, (req, res) => {
      s.seen.push({
        method: req.method,
        url: req.url,
        httpVersion: req.httpVersion,
        authorization: req.headers.authorization,
        body: '',
      });
      json(res, 200, { ok: true });
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    process.env.DISABLE_HTTP2 = '1';
    try {
      const rest = new Rest(access(url));
      expect(rest.http2).toBe(false);
      expect(await rest.send('GET', '/api')).toEqual({ ok: true });
    } finally {
      delete process.env.DISABLE_HTTP2;
    }
    expect(await new Rest(access(url)).send('GET', '/api')).toEqual({ ok: true });
    expect(s.seen.map((x) => x.httpVersion)).toEqual(['1.1', '2.0']);
  });
});
