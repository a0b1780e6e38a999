/**
 * snapcron's HTTP/1.1 client for the API server, without node:http: short requests (a create, a
 * status write, a GET) through a pool of kept-alive connections (`H1Pool`), and each
 * reflector's lists and watches, streamed, on a connection of its own (`H1Channel`).
 *
 * Why our own: at the controller's pace (20 creates at once every 0.6 s) node's HTTP client cost
 * 0.35–0.37 ms of CPU per create and this one 0.155–0.159 ms (a probe against the local API
 * server; bench:scale measures both in each run, BENCHMARKS.md). undici measured no better than node:http. What
 * the API server answers is a small part of HTTP/1.1: a status line, headers, and a body framed
 * by Content-Length, by chunks, or by the connection's close. The request is one write we build.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type SecureContext } from 'node:tls';

export interface H1Target {
  /** Host name or address, no IPv6 brackets. */
  hostname: string;
  port: number;
  /** The Host header: `host:port`, brackets kept, the scheme's default port left out. */
  hostHeader: string;
  /** TLS settings; plain TCP when absent. */
  tls?:
    | { secureContext: SecureContext; servername?: string | undefined; rejectUnauthorized: boolean }
    | undefined;
}

export interface H1Answer {
  status: number;
  body: string;
}

/** A request that failed without an answer: a lost connection, a deadline, a bad answer. No numeric `code`: retry.ts counts it transient. */
export class H1Error extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'H1Error';
  }
}

/** Most bytes of a status line and headers; more is not an API server. */
const MAX_HEAD = 64 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');
/** Characters node:http refuses in a request path (control characters, spaces, beyond latin-1). */
const BAD_PATH = /[^\u0021-\u00ff]/;
const BAD_HEADER_VALUE = /[\r\n\0]/;

/** Where a ResponseReader is in an answer. */
const Framing = {
  Head: 0,
  Length: 1,
  ChunkSize: 2,
  ChunkData: 3,
  ChunkEnd: 4,
  Trailers: 5,
  UntilClose: 6,
  Done: 7,
} as const;
type Framing = (typeof Framing)[keyof typeof Framing];

/**
 * Reads one response at a time from a connection's bytes. `feed` takes each chunk as it comes;
 * the answer is complete when `framing` is Done.
 */
export class ResponseReader {
  framing: Framing = Framing.Head;
  status = 0;
  keepAlive = true;
  /** Bytes of the answer seen so far (a connection closed before any is safe to retry). */
  seen = 0;
  /** The head so far, or a chunk-size or trailer line split across reads. */
  private carry: Buffer | undefined;
  private remaining = 0;
  private parts: Buffer[] = [];
  private size = 0;
  /** A streamed answer: body bytes go here as they come instead of being kept for `body()`. */
  sink: ((b: Buffer) => void) | undefined;

  private readonly method: string;

  /** `method`: a HEAD's answer has no body, whatever its headers say. */
  constructor(method: string) {
    this.method = method;
  }

  /** Consumes `chunk`; returns how many bytes of it belong to this answer. Throws H1Error on what is not HTTP/1.1. */
  feed(chunk: Buffer): number {
    this.seen += chunk.length;
    let at = 0;
    while (at < chunk.length && this.framing !== Framing.Done) {
      switch (this.framing) {
        case Framing.Head:
          at = this.readHead(chunk, at);
          break;
        case Framing.Length:
        case Framing.ChunkData: {
          const take = Math.min(this.remaining, chunk.length - at);
          this.push(chunk.subarray(at, at + take));
          at += take;
          this.remaining -= take;
          if (this.remaining === 0) {
            if (this.framing === Framing.Length) this.framing = Framing.Done;
            else {
              this.framing = Framing.ChunkEnd;
              this.remaining = 2;
            }
          }
          break;
        }
        case Framing.ChunkEnd: {
          // The CRLF after a chunk's data, possibly split across reads.
          const take = Math.min(this.remaining, chunk.length - at);
          for (let i = 0; i < take; i++) {
            const want = this.remaining - i === 2 ? 0x0d : 0x0a;
            if (chunk[at + i] !== want) throw new H1Error('a chunk of the answer does not end with CRLF');
          }
          at += take;
          this.remaining -= take;
          if (this.remaining === 0) this.framing = Framing.ChunkSize;
          break;
        }
        case Framing.ChunkSize:
        case Framing.Trailers: {
          const line = this.readLine(chunk, at);
          if (line === undefined) return chunk.length;
          at = line.next;
          if (this.framing === Framing.Trailers) {
            if (line.text === '') this.framing = Framing.Done;
            break;
          }
          const hex = line.text.split(';', 1)[0]!.trim();
          if (!/^[0-9a-fA-F]{1,12}$/.test(hex))
            throw new H1Error(
              `a chunk size that is not hexadecimal: ${JSON.stringify(line.text.slice(0, 40))}`,
            );
          const n = parseInt(hex, 16);
          if (n === 0) this.framing = Framing.Trailers;
          else {
            this.framing = Framing.ChunkData;
            this.remaining = n;
          }
          break;
        }
        case Framing.UntilClose:
          this.push(chunk.subarray(at));
          at = chunk.length;
          break;
      }
    }
    return at;
  }

  /** The connection closed: an answer framed by the close is complete, any other is cut short. */
  end(): boolean {
    if (this.framing === Framing.UntilClose) this.framing = Framing.Done;
    return this.framing === Framing.Done;
  }

  body(): string {
    if (this.parts.length === 1) return this.parts[0]!.toString('utf8');
    return Buffer.concat(this.parts, this.size).toString('utf8');
  }

  private push(b: Buffer): void {
    if (b.length === 0) return;
    if (this.sink) return this.sink(b);
    this.parts.push(b);
    this.size += b.length;
  }

  private readLine(chunk: Buffer, at: number): { text: string; next: number } | undefined {
    const end = chunk.indexOf(0x0a, at);
    if (end < 0) {
      const rest = chunk.subarray(at);
      this.carry = this.carry ? Buffer.concat([this.carry, rest]) : Buffer.from(rest);
      if (this.carry.length > MAX_HEAD) throw new H1Error('a chunk-size or trailer line longer than 64 KiB');
      return undefined;
    }
    let line = chunk.subarray(at, end);
    if (this.carry) {
      line = Buffer.concat([this.carry, line]);
      this.carry = undefined;
    }
    const text = line.toString('latin1');
    return { text: text.endsWith('\r') ? text.slice(0, -1) : text, next: end + 1 };
  }

  private readHead(chunk: Buffer, at: number): number {
    let buf = chunk;
    let from = at;
    let searchFrom = at;
    if (this.carry) {
      // Search again from just before the old end: the CRLFCRLF may straddle the two reads.
      searchFrom = Math.max(0, this.carry.length - 3);
      buf = Buffer.concat([this.carry, chunk.subarray(at)]);
      from = 0;
    }
    const end = buf.indexOf(CRLFCRLF, searchFrom);
    if (end < 0) {
      this.carry = this.carry ? buf : Buffer.from(chunk.subarray(at));
      if (this.carry.length > MAX_HEAD) throw new H1Error('an answer whose head is longer than 64 KiB');
      return chunk.length;
    }
    const consumed = this.carry ? end + 4 - this.carry.length + at : end + 4;
    this.carry = undefined;
    this.parseHead(buf.toString('latin1', from, end));
    return consumed;
  }

  private parseHead(head: string): void {
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0]!);
    if (!m) throw new H1Error(`an answer that is not HTTP/1.1: ${JSON.stringify(lines[0]!.slice(0, 60))}`);
    const status = Number(m[2]);
    let length: number | undefined;
    let chunked = false;
    let connection = '';
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i]!;
      const colon = l.indexOf(':');
      if (colon <= 0) throw new H1Error(`a header line without a name: ${JSON.stringify(l.slice(0, 60))}`);
      const name = l.slice(0, colon).trim().toLowerCase();
      const value = l.slice(colon + 1).trim();
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== undefined && length !== Number(value)))
          throw new H1Error(`an answer with a bad Content-Length: ${JSON.stringify(value)}`);
        length = Number(value);
      } else if (name === 'transfer-encoding') {
        chunked = value
          .toLowerCase()
          .split(',')
          .some((v) => v.trim() === 'chunked');
        if (!chunked) throw new H1Error(`an answer in a transfer coding this client does not read: ${value}`);
      } else if (name === 'connection') connection += `${value.toLowerCase()},`;
    }
    if (status >= 100 && status < 200) {
      if (status === 101) throw new H1Error('an answer that switches protocols, which was not asked for');
      return; // 100 Continue, 103 Early Hints: the answer follows
    }
    this.status = status;
    this.keepAlive =
      m[1] === '1' ? !/(^|,)\s*close\s*,/.test(connection) : /(^|,)\s*keep-alive\s*,/.test(connection);
    if (this.method === 'HEAD' || status === 204 || status === 304) this.framing = Framing.Done;
    else if (chunked) this.framing = Framing.ChunkSize;
    else if (length !== undefined) {
      this.remaining = length;
      this.framing = length === 0 ? Framing.Done : Framing.Length;
    } else {
      this.framing = Framing.UntilClose;
      this.keepAlive = false;
    }
  }
}

interface Job {
  method: string;
  /** The whole request as one write: request line, headers, body. */
  data: string;
  /** `METHOD path`, for errors. */
  what: string;
  timeoutMs: number;
  /** Sent once more on a fresh connection when a kept-alive one closed before any answer. */
  retryable: boolean;
  resolve: (a: H1Answer) => void;
  reject: (e: Error) => void;
  /** A streamed answer: its head opens the stream, its body goes to the stream. */
  stream?: H1Stream | undefined;
}

/** Methods safe to send again when a kept-alive connection closed before answering (RFC 9110 idempotent ones). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

/** The request as one write: request line, Host, `headers` (each `Name: value\r\n`), body. */
function requestText(
  target: H1Target,
  method: string,
  path: string,
  headers: string,
  body: string | undefined,
): string {
  const length = body === undefined ? '' : `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  return `${method} ${path} HTTP/1.1\r\nHost: ${target.hostHeader}\r\n${headers}${length}\r\n${body ?? ''}`;
}

/** What a connection answers to: a pool or a channel. */
interface Owner {
  /** The answer is in and the connection may be kept. */
  release(c: Connection): void;
  /** The connection is gone. */
  forget(c: Connection): void;
  /** Send `job` (again): `fresh`, on a new connection. */
  enqueue(job: Job, fresh: boolean): void;
}

/** One connection: one request at a time, its answer read by a ResponseReader. */
class Connection {
  readonly socket: Socket;
  readonly target: H1Target;
  job: Job | undefined;
  reader: ResponseReader | undefined;
  /** It has answered a request before: the server may have closed it while it sat idle. */
  reused = false;
  idleSince = 0;
  closed = false;
  private timer: NodeJS.Timeout | undefined;
  private timerMs = 0;
  /** How long it may sit idle: the last request's timeout (the API server closes after 90 s). */
  private idleMs = 0;
  /** Whether the head has come: the deadline then watches for a stalled body instead. */
  private answered = false;

  private readonly owner: Owner;

  constructor(owner: Owner, target: H1Target) {
    this.owner = owner;
    this.target = target;
    const common = {
      host: target.hostname,
      port: target.port,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: 1000,
    };
    this.socket = target.tls
      ? tlsConnect({
          ...common,
          secureContext: target.tls.secureContext,
          rejectUnauthorized: target.tls.rejectUnauthorized,
          ALPNProtocols: ['http/1.1'],
          ...(target.tls.servername ? { servername: target.tls.servername } : {}),
        })
      : netConnect(common);
    this.socket.on('data', (c: Buffer) => this.onData(c));
    this.socket.on('error', (e: Error) => this.fail(e));
    this.socket.on('close', () => this.fail(undefined));
  }

  start(job: Job): void {
    this.job = job;
    const reader = new ResponseReader(job.method);
    const stream = job.stream;
    if (stream) reader.sink = (b) => stream.push(b);
    this.reader = reader;
    this.answered = false;
    this.idleMs = job.timeoutMs;
    this.socket.ref();
    this.deadline(job.timeoutMs);
    this.socket.write(job.data, 'utf8');
  }

  /** The deadline, from now: for the head, then for each read of the body (an idle connection: its close). */
  deadline(ms: number): void {
    if (this.timer === undefined || this.timerMs !== ms) {
      clearTimeout(this.timer);
      this.timerMs = ms;
      this.timer = setTimeout(() => this.onTimeout(), ms);
      this.timer.unref();
    } else this.timer.refresh();
  }

  private onTimeout(): void {
    const job = this.job;
    if (!job) {
      // Idle this long: close it before the server does, so no request races its close.
      if (Date.now() - this.idleSince >= this.timerMs) this.destroy();
      else this.timer?.refresh();
      return;
    }
    const onIdle = this.answered ? job.stream?.onIdle : undefined;
    if (onIdle) {
      this.timer?.refresh();
      onIdle(); // the stream's reader decides (a watch ends, to be resumed)
      return;
    }
    const e = this.answered
      ? new H1Error(`${job.what}: the answer stopped for ${this.timerMs} ms`)
      : new H1Error(`${job.what}: no answer within ${this.timerMs} ms`);
    this.fail(e);
  }

  private onData(chunk: Buffer): void {
    const reader = this.reader;
    const job = this.job;
    if (!reader || !job) {
      this.fail(new H1Error('the API server sent bytes nobody asked for'));
      return;
    }
    this.timer?.refresh();
    let used: number;
    try {
      used = reader.feed(chunk);
    } catch (e) {
      // The reader says what was wrong; the request it answered is named here.
      this.fail(new H1Error(`${job.what}: ${(e as Error).message}`, { cause: e }));
      return;
    }
    if (reader.status !== 0 && !this.answered) {
      this.answered = true;
      if (job.stream) job.stream.open(reader.status, this);
    }
    if (reader.framing !== Framing.Done) return;
    if (used < chunk.length) {
      // Bytes beyond the answer: nothing is pipelined, so the connection is out of step.
      reader.keepAlive = false;
    }
    this.finish();
  }

  private finish(): void {
    const job = this.job!;
    const reader = this.reader!;
    this.job = undefined;
    this.reader = undefined;
    if (job.stream) {
      this.keepOrClose(reader.keepAlive);
      job.stream.end(undefined);
      return;
    }
    let answer: H1Answer;
    try {
      answer = { status: reader.status, body: reader.body() };
    } catch (e) {
      // An answer too large for one string: the request fails, named; the connection goes.
      this.destroy();
      job.reject(new H1Error(`${job.what}: ${(e as Error).message}`, { cause: e }));
      return;
    }
    this.keepOrClose(reader.keepAlive);
    job.resolve(answer);
  }

  private keepOrClose(keepAlive: boolean): void {
    if (keepAlive) {
      this.reused = true;
      this.owner.release(this);
    } else this.destroy();
  }

  /** The connection is lost (`e` undefined: closed). A request in flight fails, or goes again once. */
  fail(e: Error | undefined): void {
    const job = this.job;
    const reader = this.reader;
    if (job && reader && e === undefined && reader.end()) {
      this.finish(); // an answer framed by the close
      return;
    }
    this.job = undefined;
    this.reader = undefined;
    this.destroy();
    if (!job) return;
    const err =
      e instanceof H1Error
        ? e
        : new H1Error(`${job.what}: ${e ? e.message : 'the connection closed before the answer'}`, {
            cause: e,
          });
    if (job.stream && this.answered) {
      job.stream.end(err); // its head was given out: the stream's reader hears of the loss
      return;
    }
    if (
      this.reused &&
      job.retryable &&
      reader !== undefined &&
      reader.seen === 0 &&
      !(e instanceof H1Error)
    ) {
      job.retryable = false;
      this.owner.enqueue(job, true);
      return;
    }
    job.reject(err);
  }

  destroy(): void {
    clearTimeout(this.timer);
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.owner.forget(this);
  }

  idle(): void {
    this.idleSince = Date.now();
    this.deadline(this.idleMs); // not a watch's longer idle timeout
    this.socket.unref(); // an idle connection never keeps the process alive
  }
}

/**
 * An answer read as it comes (a watch's events, a list's page): `read` takes the body's bytes
 * and its end. Bytes that come before `read` is called wait for it.
 */
export class H1Stream {
  status = 0;
  /** Called when the body stalls for the time `setIdleTimeout` gave (instead of failing it). */
  onIdle: (() => void) | undefined;
  private conn: Connection | undefined;
  private waiting: Buffer[] = [];
  private onData: ((b: Buffer) => void) | undefined;
  private onEnd: ((e: Error | undefined) => void) | undefined;
  private ended = false;
  private endError: Error | undefined;
  private destroyed = false;
  private readonly opened: (s: H1Stream) => void;

  /** `opened`: called with the stream once the answer's head is in. */
  constructor(opened: (s: H1Stream) => void) {
    this.opened = opened;
  }

  /** The head is in (Connection). */
  open(status: number, conn: Connection): void {
    this.status = status;
    this.conn = conn;
    this.opened(this);
  }

  /** Body bytes (Connection). */
  push(b: Buffer): void {
    if (this.destroyed) return;
    if (this.onData) this.onData(b);
    else this.waiting.push(b);
  }

  /** The answer is complete (`e` undefined) or lost (Connection). */
  end(e: Error | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = e;
    this.conn = undefined;
    this.onEnd?.(e);
  }

  /** Takes the body: `onData` for each read, then `onEnd` once (an Error: the answer was cut short). */
  read(onData: (b: Buffer) => void, onEnd: (e: Error | undefined) => void): void {
    this.onData = onData;
    this.onEnd = onEnd;
    const waiting = this.waiting;
    this.waiting = [];
    for (const b of waiting) {
      if (this.destroyed) break;
      onData(b);
    }
    if (this.ended) onEnd(this.endError);
  }

  /** The whole body as text. */
  text(): Promise<string> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      this.read(
        (b) => parts.push(b),
        (e) => (e ? reject(e) : resolve(Buffer.concat(parts).toString('utf8'))),
      );
    });
  }

  /** From now on, a body silent for `ms` calls `onIdle` (again every `ms` while it stays silent). */
  setIdleTimeout(ms: number, onIdle: () => void): void {
    this.onIdle = onIdle;
    this.conn?.deadline(ms);
  }

  /** Stops reading: the connection closes and `onEnd` hears `e` (if the answer was not complete). */
  destroy(e?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.conn?.fail(e ?? new H1Error('the stream was destroyed'));
  }
}

/**
 * Connections to one server with one TLS identity, `max` at most; requests beyond wait in order.
 * The most recently used idle connection goes first, so a quiet controller keeps few open.
 */
export class H1Pool implements Owner {
  private readonly idleConns: Connection[] = [];
  private readonly busy = new Set<Connection>();
  private readonly queue: Job[] = [];
  private queueHead = 0;
  private retired = false;
  private readonly target: H1Target;
  private readonly max: number;

  constructor(target: H1Target, max: number) {
    this.target = target;
    this.max = max;
  }

  /** Sends `METHOD path` with `headers` (each `Name: value\r\n`, validated here) and `body`. */
  request(
    method: string,
    path: string,
    headers: string,
    body: string | undefined,
    timeoutMs: number,
    what = `${method} ${path}`,
  ): Promise<H1Answer> {
    if (BAD_PATH.test(path))
      return Promise.reject(new H1Error(`${what}: the path has characters a request line cannot carry`));
    const data = requestText(this.target, method, path, headers, body);
    return new Promise<H1Answer>((resolve, reject) => {
      this.enqueue(
        { method, data, what, timeoutMs, retryable: IDEMPOTENT.has(method), resolve, reject },
        false,
      );
    });
  }

  /** A connection for `job` now, or a place in the queue. `fresh`: not on an idle one (a retry). */
  enqueue(job: Job, fresh: boolean): void {
    const idle = fresh ? undefined : this.idleConns.pop();
    if (idle) return this.run(idle, job);
    if (this.busy.size + this.idleConns.length < this.max)
      return this.run(new Connection(this, this.target), job);
    if (fresh && this.idleConns.length > 0) {
      this.idleConns.shift()!.destroy(); // make room for a new connection
      return this.run(new Connection(this, this.target), job);
    }
    this.queue.push(job);
  }

  private run(c: Connection, job: Job): void {
    this.busy.add(c);
    c.start(job);
  }

  /** A connection has answered and may be kept: the next waiting request, or the idle list. */
  release(c: Connection): void {
    this.busy.delete(c);
    if (this.retired) return c.destroy();
    const next = this.dequeue();
    if (next) return this.run(c, next);
    c.idle();
    this.idleConns.push(c);
  }

  /** A connection is gone: its slot goes to the next waiting request. */
  forget(c: Connection): void {
    this.busy.delete(c);
    const i = this.idleConns.indexOf(c);
    if (i >= 0) this.idleConns.splice(i, 1);
    if (this.busy.size + this.idleConns.length < this.max) {
      const next = this.dequeue();
      if (next) this.run(new Connection(this, this.target), next);
    }
  }

  private dequeue(): Job | undefined {
    if (this.queueHead >= this.queue.length) return undefined;
    const job = this.queue[this.queueHead]!;
    this.queue[this.queueHead++] = undefined as unknown as Job;
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    return job;
  }

  /** Connections open now (idle and busy). */
  get connections(): number {
    return this.busy.size + this.idleConns.length;
  }

  /** No new connections: idle ones close now, busy ones when their answer is in. Waiting requests still run. */
  retire(): void {
    this.retired = true;
    for (const c of [...this.idleConns]) c.destroy();
  }
}

/**
 * One connection for one reader's requests in turn (a reflector's list pages, then its watch,
 * then the watch resumed), kept alive between them and outside any pool: a watch holds its
 * connection for minutes and must never take a short request's place. A new target (a new
 * client certificate) or a request while one is in flight closes the connection in use.
 */
export class H1Channel implements Owner {
  private conn: Connection | undefined;
  private target: H1Target | undefined;

  /** Sends a body-less `METHOD path`; resolves with the stream once the answer's head is in. */
  open(
    target: H1Target,
    method: string,
    path: string,
    headers: string,
    timeoutMs: number,
    what = `${method} ${path}`,
  ): Promise<H1Stream> {
    if (BAD_PATH.test(path))
      return Promise.reject(new H1Error(`${what}: the path has characters a request line cannot carry`));
    this.target = target;
    const data = requestText(target, method, path, headers, undefined);
    return new Promise<H1Stream>((resolve, reject) => {
      const job: Job = {
        method,
        data,
        what,
        timeoutMs,
        retryable: IDEMPOTENT.has(method),
        resolve: () => undefined,
        reject,
        stream: new H1Stream(resolve),
      };
      this.enqueue(job, false);
    });
  }

  enqueue(job: Job, fresh: boolean): void {
    const c = this.conn;
    if (c && (fresh || c.job !== undefined || c.target !== this.target))
      c.fail(new H1Error(`${c.job?.what ?? 'a request'}: replaced by ${job.what}`));
    this.conn ??= new Connection(this, this.target!);
    this.conn.start(job);
  }

  release(c: Connection): void {
    c.idle();
  }

  forget(c: Connection): void {
    if (this.conn === c) this.conn = undefined;
  }

  /** Closes the connection; a request or stream in flight ends with `e`. */
  close(e?: Error): void {
    this.conn?.fail(e ?? new H1Error('the channel was closed'));
  }
}

/** A header line, refusing values that would end the line (a token with a newline, say). */
export function headerLine(name: string, value: string): string {
  if (BAD_HEADER_VALUE.test(value))
    throw new H1Error(`the ${name} header has a line break or NUL in its value`);
  return `${name}: ${value}\r\n`;
}
