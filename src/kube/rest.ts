/**
 * snapcron's own HTTP transport to the API server, per TLS identity, on h1.ts: short requests
 * (`send`) through a pool of kept-alive connections, lists and watches (`stream`) on a
 * connection of the caller's (a reflector's `H1Channel`); the credentials of a ClusterAccess
 * (kubeconfig.ts) on every request, JSON in and out. node:http is not loaded for it.
 *
 * Why not @kubernetes/client-node: importing it takes a bare Node 24 from 42 to 134 MiB of RSS
 * (its generated models and serializer) and its serializer walks every object of every answer;
 * the controller needs a few verbs on a handful of resources (api.ts). Hook exec still loads it,
 * on the first hook (controller/hooks.ts).
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { urlToHttpOptions } from 'node:url';
import { H1Channel, H1Pool, headerLine, type H1Stream, type H1Target } from './h1.ts';
import type { ClusterAccess } from './kubeconfig.ts';

export { H1Channel, type H1Stream };

/** An API server answer that is not a success: `code` is the HTTP status (statusOf reads it), `body` the answer's text (a Status, as JSON). */
export class ApiError extends Error {
  readonly code: number;
  readonly reason: string | undefined;
  readonly body: unknown;
  constructor(code: number, message: string, reason?: string, body?: unknown) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.reason = reason;
    this.body = body;
  }
}

/** An ApiError from a non-2xx answer, with the Status message when the body is one. */
export function statusError(code: number, body: string, what = ''): ApiError {
  const prefix = what ? `${what}: ` : '';
  try {
    const s = JSON.parse(body) as { message?: string; reason?: string; code?: number };
    const status = typeof s.code === 'number' ? s.code : code;
    return new ApiError(status, s.message ?? `${prefix}HTTP ${code}`, s.reason, body);
  } catch {
    return new ApiError(code, `${prefix}HTTP ${code}: ${body.slice(0, 200)}`, undefined, body);
  }
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface SendOptions {
  query?: Query | undefined;
  /** Sent as JSON. */
  body?: unknown;
  /** Default application/json; merge patches say application/merge-patch+json. */
  contentType?: string | undefined;
  /** No answer (headers) within this: the request is destroyed. Default 60 s. */
  timeoutMs?: number | undefined;
}

/**
 * Requests in flight on one identity's pooled connections at most; more wait in order.
 * Unbounded, a burst of 2,000 creates opened 2,000 TLS connections: 2.6 s of event-loop delay
 * in their handshakes and 340 MiB of RSS (bench:scale at the peer's load). HTTP/1.1 answers one
 * request per connection at a time; 32 keep a local API server busy (client-go multiplexes
 * everything over one HTTP/2 connection). Lists and watches are on their channels, outside it.
 */
export const MAX_CONNECTIONS = 32;

interface Identity {
  key: string;
  /** The credential objects the key was computed from: the same objects skip the hash. */
  cert: Buffer | undefined;
  clientKey: Buffer | undefined;
  /** Where h1.ts connects, with the identity's TLS context. */
  target: H1Target;
  /** `send`'s requests, MAX_CONNECTIONS at most. */
  pool: H1Pool;
}

/** Where requests go: the server URL parsed once (its own path, e.g. a proxy's prefix, kept). */
interface Target {
  secure: boolean;
  basePath: string;
  /** The URL's user and password as an Authorization header. */
  basicAuth: string | undefined;
  /** Host, port and Host header for h1.ts. */
  host: Omit<H1Target, 'tls'>;
}

function targetOf(server: string): Target {
  const url = new URL(server);
  const { hostname, port, auth } = urlToHttpOptions(url);
  return {
    secure: url.protocol === 'https:',
    basePath: url.pathname.replace(/\/+$/, ''),
    basicAuth: auth ? `Basic ${Buffer.from(auth).toString('base64')}` : undefined,
    host: {
      hostname: hostname ?? '',
      port:
        port !== undefined && port !== null && port !== ''
          ? Number(port)
          : url.protocol === 'https:'
            ? 443
            : 80,
      hostHeader: url.host,
    },
  };
}

/** `path?query` with the query's empty and undefined values left out, encoded as URLSearchParams encodes them. */
function withQuery(path: string, query: Query | undefined): string {
  if (!query) return path;
  let params: URLSearchParams | undefined;
  for (const k in query) {
    const v = query[k];
    if (v !== undefined && v !== '') (params ??= new URLSearchParams()).set(k, String(v));
  }
  return params ? `${path}${path.includes('?') ? '&' : '?'}${params.toString()}` : path;
}

export class Rest {
  readonly access: ClusterAccess;
  private readonly timeoutMs: number;
  private identity: Identity | undefined;
  private target: Target | undefined;

  constructor(access: ClusterAccess, opts: { timeoutMs?: number } = {}) {
    this.access = access;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /**
   * The h1.ts target and pool for the server's TLS settings and the client certificate in use:
   * an exec plugin that hands out a new certificate gets new ones (the old pool is retired,
   * closing its idle connections now; a channel moves to the new target on its next request).
   */
  private identityFor(cert: Buffer | undefined, key: Buffer | undefined, target: Target): Identity {
    // Static credentials come back as the same Buffers on every request: no hash on the hot path.
    let identity = this.identity;
    if (!identity || identity.cert !== cert || identity.clientKey !== key) {
      const id = createHash('sha256')
        .update(cert ?? '')
        .update('\0')
        .update(key ?? '')
        .digest('hex');
      if (identity?.key === id)
        identity = { ...identity, cert, clientKey: key }; // the same identity in new Buffers
      else {
        identity?.pool.retire();
        const a = this.access;
        // One TLS context for the identity, built once: not per connection.
        const secureContext = target.secure
          ? createSecureContext({
              ...(a.ca ? { ca: a.ca } : {}),
              ...(cert ? { cert } : {}),
              ...(key ? { key } : {}),
            })
          : undefined;
        // SNI from the host name, as node's https gives it (none for an address).
        const servername = a.servername ?? (isIP(target.host.hostname) ? undefined : target.host.hostname);
        const h1: H1Target = {
          ...target.host,
          tls: secureContext ? { secureContext, servername, rejectUnauthorized: !a.insecure } : undefined,
        };
        identity = { key: id, cert, clientKey: key, target: h1, pool: new H1Pool(h1, MAX_CONNECTIONS) };
      }
      this.identity = identity;
    }
    return identity;
  }

  /** The headers every request carries: Accept, and the credentials in use. */
  private async headers(target: Target): Promise<{ headers: string; identity: Identity }> {
    const creds = await this.access.credentials();
    const authorization = creds.authorization ?? target.basicAuth;
    const headers = 'Accept: application/json\r\n';
    return {
      headers: authorization === undefined ? headers : headers + headerLine('Authorization', authorization),
      identity: this.identityFor(creds.cert, creds.key, target),
    };
  }

  /**
   * A GET on `channel` whose answer is read as it comes (a list page, a watch's events):
   * resolves with the stream once the answer's head is in, whatever its status. `timeoutMs`:
   * for the head, then for each read of the body (a watch sets its own with setIdleTimeout).
   */
  async stream(
    channel: H1Channel,
    path: string,
    opts: Pick<SendOptions, 'query' | 'timeoutMs'> = {},
  ): Promise<H1Stream> {
    const target = (this.target ??= targetOf(this.access.server));
    const { headers, identity } = await this.headers(target);
    return channel.open(
      identity.target,
      'GET',
      withQuery(target.basePath + path, opts.query),
      headers,
      opts.timeoutMs ?? this.timeoutMs,
      `GET ${path}`,
    );
  }

  /**
   * A request whose answer is JSON: resolves with it on 2xx, rejects with ApiError otherwise.
   * A 401 is tried once more with fresh credentials (an expired exec token or rotated file).
   */
  async send<T>(method: string, path: string, opts: SendOptions = {}): Promise<T> {
    const target = (this.target ??= targetOf(this.access.server));
    const fullPath = withQuery(target.basePath + path, opts.query);
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const contentType =
      payload === undefined ? '' : headerLine('Content-Type', opts.contentType ?? 'application/json');
    for (let attempt = 1; ; attempt++) {
      const { headers, identity } = await this.headers(target);
      const { status, body } = await identity.pool.request(
        method,
        fullPath,
        headers + contentType,
        payload,
        opts.timeoutMs ?? this.timeoutMs,
        `${method} ${path}`,
      );
      if (status >= 200 && status < 300) return (body === '' ? {} : JSON.parse(body)) as T;
      if (status === 401 && attempt === 1) {
        this.access.invalidate();
        continue;
      }
      throw statusError(status, body, `${method} ${path}`);
    }
  }
}
