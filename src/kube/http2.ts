/**
 * Short requests to the API server over one HTTP/2 session per TLS identity, as client-go sends
 * everything. Node's HTTP/1.1 client spends more CPU per request (its request and response
 * objects, the agent's socket bookkeeping, one parser per connection): a probe of 2,000
 * VolumeSnapshot creates, 32 at a time against a local API server, used 233–269 µs of client CPU
 * per create over 32 keep-alive connections and 160 µs over one session (BENCHMARKS.md).
 *
 * rest.ts uses it for `send` on https servers; watches and LIST pages stay on HTTP/1.1 (their
 * long answers are read as streams by the reflector). A server whose TLS does not offer h2
 * (ALPN) is remembered, and every later request goes over HTTP/1.1.
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';

/**
 * Streams in flight at most; more wait here. The same bound as rest.ts' MAX_CONNECTIONS: a burst
 * of 2,000 creates would otherwise send all 2,000 at once and hold their buffers while the API
 * server works through them.
 */
export const MAX_STREAMS = 32;

/** Flow-control windows: what the server may send before we read it, per stream and in all. */
const STREAM_WINDOW = 4 * 2 ** 20;
const SESSION_WINDOW = 32 * 2 ** 20;

/** After a stream's timeout, the session must answer a PING within this or it is replaced. */
const PING_TIMEOUT_MS = 10_000;

export interface TlsIdentity {
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
  servername?: string | undefined;
  insecure: boolean;
}

export interface Http2Answer {
  status: number;
  text: string;
}

/** The server's TLS did not choose h2: use HTTP/1.1 for this request and every later one. */
export class Http2Refused extends Error {
  constructor(server: string, alpn: string | false | undefined) {
    super(`${server} did not offer HTTP/2 (ALPN: ${alpn || 'none'})`);
    this.name = 'Http2Refused';
  }
}

interface Live {
  session: ClientHttp2Session;
  cert: Buffer | undefined;
  key: Buffer | undefined;
  /** Resolves once the TLS handshake chose h2; rejects with Http2Refused or the connect error. */
  ready: Promise<void>;
  streams: number;
}

export class Http2Client {
  private readonly server: string;
  private readonly tls: Omit<TlsIdentity, 'cert' | 'key'>;
  private live: Live | undefined;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(server: string, tls: Omit<TlsIdentity, 'cert' | 'key'>) {
    this.server = server;
    this.tls = tls;
  }

  /**
   * One request; resolves with the status and the body's text whatever the status. Rejects with
   * Http2Refused when the server does not speak h2 (nothing was sent), else with the stream's or
   * the session's error (the request may have reached the server, as with a reset connection).
   */
  async request(
    method: string,
    path: string,
    headers: Record<string, string>,
    payload: string | undefined,
    timeoutMs: number,
    identity: { cert?: Buffer | undefined; key?: Buffer | undefined },
  ): Promise<Http2Answer> {
    await this.slot();
    try {
      const live = this.sessionFor(identity.cert, identity.key);
      await live.ready;
      return await this.exchange(live, method, path, headers, payload, timeoutMs);
    } finally {
      this.release();
    }
  }

  /** Closes the session; requests in flight finish first. */
  close(): void {
    this.live?.session.close();
    this.live = undefined;
  }

  private async slot(): Promise<void> {
    if (this.inFlight < MAX_STREAMS) {
      this.inFlight++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.inFlight--;
  }

  /** The live session for this identity; a new one after GOAWAY, an error, or new credentials. */
  private sessionFor(cert: Buffer | undefined, key: Buffer | undefined): Live {
    const live = this.live;
    if (live && !live.session.closed && !live.session.destroyed) {
      if (live.cert === cert && live.key === key) return live;
      live.session.close(); // an exec plugin's new certificate: finish the old streams, then go
    }
    const session = connect(this.server, {
      ...(this.tls.ca ? { ca: this.tls.ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      ...(this.tls.servername ? { servername: this.tls.servername } : {}),
      rejectUnauthorized: !this.tls.insecure,
      // node's default of 64 KiB a stream would cost a round trip per 64 KiB of a large LIST
      // from a distant API server; client-go's transport allows 4 MiB.
      settings: { initialWindowSize: STREAM_WINDOW },
    });
    const ready = new Promise<void>((resolve, reject) => {
      session.once('connect', () => {
        session.setLocalWindowSize(SESSION_WINDOW);
        resolve();
      });
      session.once('error', (err: Error & { code?: string }) => {
        // A server that speaks only HTTP/1.1 either refuses the handshake (TLS alert 120, as Go's
        // and node's servers do when the client offers only h2) or completes it choosing nothing.
        const alpn = (session.socket as { alpnProtocol?: string | false | null } | undefined)?.alpnProtocol;
        const refused =
          err.code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL' ||
          alpn === false ||
          (typeof alpn === 'string' && alpn !== 'h2');
        reject(refused ? new Http2Refused(this.server, alpn ?? undefined) : err);
      });
    });
    ready.catch(() => undefined); // read by the requests that wait on it
    const fresh: Live = { session, cert, key, ready, streams: 0 };
    const forget = (): void => {
      if (this.live === fresh) this.live = undefined;
    };
    // A GOAWAY (an API server shutting down, or its --goaway-chance) lets the streams in flight
    // finish; new requests open a new session, possibly to another server behind the address.
    session.on('goaway', forget);
    session.on('close', forget);
    session.on('error', forget);
    this.live = fresh;
    return fresh;
  }

  private exchange(
    live: Live,
    method: string,
    path: string,
    headers: Record<string, string>,
    payload: string | undefined,
    timeoutMs: number,
  ): Promise<Http2Answer> {
    return new Promise<Http2Answer>((resolve, reject) => {
      let stream: ClientHttp2Stream;
      try {
        stream = live.session.request(
          { ':method': method, ':path': path, ...headers },
          { endStream: payload === undefined },
        );
      } catch (err) {
        // The session closed between the check and the request (GOAWAY): nothing was sent.
        if (this.live === live) this.live = undefined;
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      // Referenced while a stream is open, so a CLI command waits for its answer; idle, the
      // session does not keep the process alive, as node's idle keep-alive sockets do not.
      if (live.streams++ === 0) live.session.ref();
      let status = 0;
      const chunks: Buffer[] = [];
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve({ status, text: Buffer.concat(chunks).toString('utf8') }));
      stream.on('error', reject);
      stream.on('close', () => {
        if (--live.streams === 0) live.session.unref();
        // A stream reset before its answer ended (no 'end', no 'error'): say so.
        reject(
          new Error(
            `${method} ${path}: HTTP/2 stream closed (code ${stream.rstCode}) before the answer ended`,
          ),
        );
      });
      stream.setTimeout(timeoutMs, () => {
        stream.close(constants.NGHTTP2_CANCEL);
        reject(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`));
        this.checkAlive(live);
      });
      stream.end(payload);
    });
  }

  /** A stream timed out: a dead connection answers no PING either, and then it is replaced. */
  private checkAlive(live: Live): void {
    const timer = setTimeout(() => live.session.destroy(), PING_TIMEOUT_MS);
    timer.unref();
    const sent = live.session.ping((err) => {
      clearTimeout(timer);
      if (err) live.session.destroy();
    });
    if (!sent) {
      clearTimeout(timer);
      live.session.destroy();
    }
  }
}
