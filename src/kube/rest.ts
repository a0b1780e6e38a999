/**
 * snapcron's own HTTP transport to the API server, per TLS identity: short requests (`send`)
 * through h1.ts's connection pool, lists and watches (`open`, streamed) through node:https with
 * a keep-alive Agent; the credentials of a ClusterAccess (kubeconfig.ts) on every request, JSON
 * in and out.
 *
 * Why not @kubernetes/client-node: importing it takes a bare Node 24 from 42 to 134 MiB of RSS
 * (its generated models and serializer) and its serializer walks every object of every answer;
 * the controller needs a few verbs on a handful of resources (api.ts). Hook exec still loads it,
 * on the first hook (controller/hooks.ts).
 */
import type { Agent as HttpAgent, ClientRequest, IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { createSecureContext } from 'node:tls';
import { urlToHttpOptions } from 'node:url';
import { H1Pool, headerLine, type H1Target } from './h1.ts';
import type { ClusterAccess } from './kubeconfig.ts';

// node:http by getBuiltinModule, not `import`: an ES import builds the module's namespace, which
// reads its lazy WebSocket/CloseEvent/MessageEvent exports and so loads undici, http2 and web
// streams (9 MiB of RSS in a bare Node; in the controller 5 MiB, 1.4 MiB of it heap), none used.
const { Agent: HttpAgentClass, request: httpRequest } = process.getBuiltinModule('node:http');

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

export function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.once('error', reject);
  });
}

const ignore = (): void => undefined;

/**
 * Requests in flight on one identity's connections at most; more wait in the Agent's queue.
 * Unbounded, a burst of 2,000 creates opened 2,000 TLS connections: 2.6 s of event-loop delay
 * in their handshakes and 340 MiB of RSS (bench:scale at the peer's load). HTTP/1.1 answers one
 * request per connection at a time; 32 keep a local API server busy (client-go multiplexes
 * everything over one HTTP/2 connection).
 */
export const MAX_CONNECTIONS = 32;

interface Agents {
  key: string;
  /** The credential objects the key was computed from: the same objects skip the hash. */
  cert: Buffer | undefined;
  clientKey: Buffer | undefined;
  /** Short requests, MAX_CONNECTIONS at most. */
  requests: HttpAgent;
  /** Watches: each holds its connection for minutes, so they never take the requests' slots. */
  streams: HttpAgent;
  /** `send`'s requests, MAX_CONNECTIONS at most. */
  pool: H1Pool;
}

/**
 * An Agent that serves one API server only (a Rest's): its connection pool needs no name. Node's
 * Agents build one per request from about twenty options (three times a request, with the
 * request's own copy of them), 2 % of everything the controller allocated at the peer's load.
 */
class OneServerHttpAgent extends HttpAgentClass {
  override getName(): string {
    return 'server';
  }
}
class OneServerHttpsAgent extends HttpsAgent {
  override getName(): string {
    return 'server';
  }
}

/** Where requests go: the server URL parsed once (its own path, e.g. a proxy's prefix, kept). */
interface Target {
  secure: boolean;
  /** protocol, hostname (no IPv6 brackets), port and auth, as node:http takes them. */
  options: { protocol: string; hostname: string; port?: number | string; auth?: string };
  basePath: string;
  /** The URL's user and password as an Authorization header (node:http sends it from `auth`). */
  basicAuth: string | undefined;
  /** Host, port and Host header for h1.ts. */
  host: Omit<H1Target, 'tls'>;
}

function targetOf(server: string): Target {
  const url = new URL(server);
  const { protocol, hostname, port, auth } = urlToHttpOptions(url);
  return {
    secure: url.protocol === 'https:',
    options: {
      protocol: protocol ?? url.protocol,
      hostname: hostname ?? '',
      ...(port !== undefined && port !== null && port !== '' ? { port } : {}),
      ...(auth ? { auth } : {}),
    },
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
  private agents: Agents | undefined;
  private target: Target | undefined;

  constructor(access: ClusterAccess, opts: { timeoutMs?: number } = {}) {
    this.access = access;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /**
   * Keep-alive Agents and the h1.ts pool for the server's TLS settings and the client certificate
   * in use: an exec plugin that hands out a new certificate gets new ones (the old Agents' sockets
   * idle out; the old pool is retired, closing its idle connections now).
   */
  private agentsFor(cert: Buffer | undefined, key: Buffer | undefined, target: Target): Agents {
    // Static credentials come back as the same Buffers on every request: no hash on the hot path.
    let agents = this.agents;
    if (!agents || agents.cert !== cert || agents.clientKey !== key) {
      const id = createHash('sha256')
        .update(cert ?? '')
        .update('\0')
        .update(key ?? '')
        .digest('hex');
      const a = this.access;
      const { secure } = target;
      // One TLS context for the identity, not ca/cert/key as Agent options: https.Agent names its
      // connection pool after its options, so every request built a name holding the whole PEM
      // texts (5 KB with a client certificate) and looked the pool up by it, 5 % of everything
      // the controller allocated in bench:scale at the peer's load.
      const secureContext = secure
        ? createSecureContext({
            ...(a.ca ? { ca: a.ca } : {}),
            ...(cert ? { cert } : {}),
            ...(key ? { key } : {}),
          })
        : undefined;
      const make = (maxSockets: number): HttpAgent =>
        secureContext
          ? new OneServerHttpsAgent({
              keepAlive: true,
              maxSockets,
              secureContext,
              ...(a.servername ? { servername: a.servername } : {}),
              rejectUnauthorized: !a.insecure,
            })
          : new OneServerHttpAgent({ keepAlive: true, maxSockets });
      // SNI from the host name, as node's Agent gives it (none for an address).
      const servername = a.servername ?? (isIP(target.host.hostname) ? undefined : target.host.hostname);
      if (agents && agents.key !== id) agents.pool.retire();
      agents =
        agents?.key === id
          ? { ...agents, cert, clientKey: key } // the same identity in new Buffers: keep the connections
          : {
              key: id,
              cert,
              clientKey: key,
              requests: make(MAX_CONNECTIONS),
              streams: make(Infinity),
              pool: new H1Pool(
                {
                  ...target.host,
                  tls: secureContext
                    ? { secureContext, servername, rejectUnauthorized: !a.insecure }
                    : undefined,
                },
                MAX_CONNECTIONS,
              ),
            };
      this.agents = agents;
    }
    return agents;
  }

  /**
   * Sends a request; resolves with the answer of any status, its body unread (watches stream
   * it). `onRequest` hands the caller the request, to destroy it (a stopped watch).
   */
  async open(
    method: string,
    path: string,
    opts: SendOptions & {
      accept?: string;
      /** A watch: its own connections, outside MAX_CONNECTIONS. */
      stream?: boolean;
      onRequest?: (req: ClientRequest) => void;
    } = {},
  ): Promise<IncomingMessage> {
    const target = (this.target ??= targetOf(this.access.server));
    const { secure } = target;
    const creds = await this.access.credentials();
    const headers: Record<string, string> = { accept: opts.accept ?? 'application/json' };
    if (creds.authorization) headers.authorization = creds.authorization;
    let payload: string | undefined;
    if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      headers['content-type'] = opts.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const timeout = opts.timeoutMs ?? this.timeoutMs;
    const send = secure ? httpsRequest : httpRequest;
    const agents = this.agentsFor(creds.cert, creds.key, target);
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(
        {
          ...target.options,
          path: withQuery(target.basePath + path, opts.query),
          method,
          headers,
          agent: opts.stream === true ? agents.streams : agents.requests,
        },
        (res) => {
          req.removeListener('error', reject);
          // From here errors surface on the response (aborted/close), read by the caller.
          req.on('error', ignore);
          res.on('error', ignore);
          req.setTimeout(0);
          resolve(res);
        },
      );
      opts.onRequest?.(req);
      req.setTimeout(timeout, () =>
        req.destroy(new Error(`${method} ${path}: no answer within ${timeout} ms`)),
      );
      req.once('error', reject);
      req.end(payload);
    });
  }

  /**
   * A request whose answer is JSON: resolves with it on 2xx, rejects with ApiError otherwise.
   * A 401 is tried once more with fresh credentials (an expired exec token or rotated file).
   */
  async send<T>(method: string, path: string, opts: SendOptions = {}): Promise<T> {
    const target = (this.target ??= targetOf(this.access.server));
    const fullPath = withQuery(target.basePath + path, opts.query);
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    let headers = 'Accept: application/json\r\n';
    if (payload !== undefined) headers += headerLine('Content-Type', opts.contentType ?? 'application/json');
    for (let attempt = 1; ; attempt++) {
      const creds = await this.access.credentials();
      const authorization = creds.authorization ?? target.basicAuth;
      const { pool } = this.agentsFor(creds.cert, creds.key, target);
      const { status, body } = await pool.request(
        method,
        fullPath,
        authorization === undefined ? headers : headers + headerLine('Authorization', authorization),
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
