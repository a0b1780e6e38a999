/**
 * h1.ts, the HTTP/1.1 client of the controller's short requests: the answer reader against every
 * way an answer can be cut into reads (fast-check), and the connection pool against a raw TCP
 * server that writes exactly the bytes a test gives it (kept-alive connections, a close framing
 * the body, a server closing an idle connection, a stall). rest.test.ts covers what rest.ts
 * builds on it (credentials, TLS, errors); integration/ runs every controller test through it.
 */
import { execFile } from 'node:child_process';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  H1Channel,
  H1Error,
  H1Pool,
  ResponseReader,
  headerLine,
  type H1Stream,
  type H1Target,
} from '../../src/kube/h1.ts';
import { isTransient, statusOf } from '../../src/kube/retry.ts';

/** Feeds `raw` to a reader in the pieces `cuts` makes; the answer, or how far it got. */
function readInPieces(
  raw: Buffer,
  cuts: number[],
  method = 'GET',
): { done: boolean; status: number; body: string; used: number } {
  const r = new ResponseReader(method);
  const at = [
    0,
    ...[...new Set(cuts)].sort((a, b) => a - b).filter((c) => c > 0 && c < raw.length),
    raw.length,
  ];
  let used = 0;
  for (let i = 0; i + 1 < at.length; i++) {
    used += r.feed(raw.subarray(at[i], at[i + 1]));
    if (r.framing === 7) break;
  }
  const done = r.framing === 7;
  return { done, status: r.status, body: done ? r.body() : '', used };
}

const chunked = (parts: string[], extras = ''): string =>
  parts.map((p) => `${Buffer.byteLength(p).toString(16)}${extras}\r\n${p}\r\n`).join('') + '0\r\n';

describe('ResponseReader: an answer read from any cut of its bytes', () => {
  const text = fc.string({
    unit: fc.constantFrom('a', 'ü', '€', '😀', '{', '"', '\r', '\n', '0'),
    maxLength: 60,
  });

  it('Content-Length and chunked answers give the same status and body however the reads fall', () => {
    fc.assert(
      fc.property(
        fc.array(text, { minLength: 1, maxLength: 5 }),
        fc.boolean(),
        fc.array(fc.nat(400), { maxLength: 30 }),
        fc.constantFrom(200, 201, 404, 409, 500),
        (parts, useChunks, cuts, status) => {
          const body = parts.join('');
          const head = useChunks
            ? `HTTP/1.1 ${status} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`
            : `HTTP/1.1 ${status} X\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`;
          const raw = Buffer.from(
            head +
              (useChunks
                ? `${chunked(
                    parts.filter((p) => p !== ''),
                    ';ext=1',
                  )}Trailer-A: b\r\n\r\n`
                : body),
          );
          const got = readInPieces(raw, cuts);
          expect(got).toEqual({ done: true, status, body, used: raw.length });
        },
      ),
      { numRuns: 400 },
    );
  });

  it('skips 100 Continue, reads nothing after HEAD, 204 and 304, and stops at the answer’s end', () => {
    const after = Buffer.from(
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200',
    );
    expect(readInPieces(after, [5, 30])).toEqual({
      done: true,
      status: 200,
      body: '{}',
      used: after.length - 12,
    });
    expect(readInPieces(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n'), [], 'HEAD').done).toBe(
      true,
    );
    expect(readInPieces(Buffer.from('HTTP/1.1 204 No Content\r\n\r\n'), []).status).toBe(204);
  });

  it('an answer without length or chunks is framed by the close, and is not kept alive', () => {
    const r = new ResponseReader('GET');
    r.feed(Buffer.from('HTTP/1.1 200 OK\r\n\r\n{"a":'));
    r.feed(Buffer.from('1}'));
    expect(r.keepAlive).toBe(false);
    expect(r.end()).toBe(true);
    expect(r.body()).toBe('{"a":1}');
    const cut = new ResponseReader('GET');
    cut.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}'));
    expect(cut.end()).toBe(false);
  });

  it('Connection: close and HTTP/1.0 without keep-alive end the connection after the answer', () => {
    const close = new ResponseReader('GET');
    close.feed(Buffer.from('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'));
    expect(close.keepAlive).toBe(false);
    const old = new ResponseReader('GET');
    old.feed(Buffer.from('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n'));
    expect(old.keepAlive).toBe(false);
    const kept = new ResponseReader('GET');
    kept.feed(Buffer.from('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n'));
    expect(kept.keepAlive).toBe(true);
  });

  it('refuses what is not an HTTP/1.1 answer, naming it', () => {
    const bad = (raw: string): string => {
      try {
        new ResponseReader('GET').feed(Buffer.from(raw));
        return 'accepted';
      } catch (e) {
        expect(e).toBeInstanceOf(H1Error);
        return (e as Error).message;
      }
    };
    expect(bad('SSH-2.0-OpenSSH\r\n\r\n')).toMatch(/not HTTP\/1\.1: "SSH-2\.0/);
    expect(bad('HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n')).toMatch(/bad Content-Length/);
    expect(bad('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n')).toMatch(
      /bad Content-Length/,
    );
    expect(bad('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n')).toMatch(/transfer coding/);
    expect(bad('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')).toMatch(/not hexadecimal/);
    expect(bad('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XY')).toMatch(/CRLF/);
    expect(bad('HTTP/1.1 101 Switching Protocols\r\n\r\n')).toMatch(/switches protocols/);
    expect(bad(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(70_000)}`)).toMatch(/longer than 64 KiB/);
  });

  it('a header value with a line break is refused before anything is sent', () => {
    expect(() => headerLine('Authorization', 'Bearer a\r\nX-Evil: 1')).toThrow(
      /Authorization header has a line break/,
    );
    expect(headerLine('Authorization', 'Bearer t')).toBe('Authorization: Bearer t\r\n');
  });
});

// ---- the pool, against a server that writes the bytes a test gives it -------------------

let server: Server | undefined;
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

interface Raw {
  port: number;
  /** Requests as received (request line and headers), in order. */
  requests: string[];
  connections: () => number;
}

/** A TCP server: on each request head (and body, by Content-Length) calls `answer` with the socket. */
async function rawServer(answer: (req: string, socket: Socket, n: number) => void): Promise<Raw> {
  const requests: string[] = [];
  let connections = 0;
  server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    let buf = '';
    socket.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.slice(0, end);
        const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        requests.push(head + '\r\n\r\n' + buf.slice(end + 4, end + 4 + len));
        buf = buf.slice(end + 4 + len);
        answer(head, socket, requests.length);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { port, requests, connections: () => connections };
}

const pool = (port: number, max = 4): H1Pool =>
  new H1Pool({ hostname: '127.0.0.1', port, hostHeader: `127.0.0.1:${port}` }, max);
const ok = (body: string): string =>
  `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

describe('H1Pool: kept-alive connections to one server', () => {
  it('sends one request line, Host, the given headers and the body with its length; reuses the connection', async () => {
    const s = await rawServer((_req, socket) => socket.write(ok('{"n":1}')));
    const p = pool(s.port);
    const a = await p.request(
      'POST',
      '/api/v1/namespaces/a/events',
      'Accept: application/json\r\n',
      '{"x":"ü"}',
      5000,
    );
    const b = await p.request('GET', '/api', '', undefined, 5000);
    expect(a).toEqual({ status: 200, body: '{"n":1}' });
    expect(b.status).toBe(200);
    expect(s.requests[0]).toBe(
      `POST /api/v1/namespaces/a/events HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nAccept: application/json\r\nContent-Length: 10\r\n\r\n{"x":"ü"}`.replace(
        'ü',
        Buffer.from('ü').toString('latin1'),
      ),
    );
    expect(s.requests[1]).toBe(`GET /api HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\n\r\n`);
    expect(s.connections()).toBe(1);
  });

  it('at most `max` connections; the rest wait their turn and all are answered in order of asking', async () => {
    let open = 0;
    const s = await rawServer((req, socket) =>
      setTimeout(() => socket.write(ok(JSON.stringify(req.split(' ')[1]))), 5),
    );
    const p = pool(s.port, 3);
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => {
        open = Math.max(open, p.connections);
        return p.request('GET', `/r/${i}`, '', undefined, 5000);
      }),
    );
    expect(answers.map((a) => JSON.parse(a.body) as string)).toEqual(
      Array.from({ length: 30 }, (_, i) => `/r/${i}`),
    );
    expect(s.connections()).toBe(3);
    expect(open).toBeLessThanOrEqual(3);
    expect(s.requests.map((r) => r.split(' ')[1])).toEqual(Array.from({ length: 30 }, (_, i) => `/r/${i}`));
  });

  it('an answer framed by the close is complete; Connection: close gets a new connection next time', async () => {
    const s = await rawServer((req, socket) => {
      if (req.startsWith('GET /close-framed')) socket.end('HTTP/1.1 200 OK\r\n\r\n{"by":"close"}');
      else socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}');
    });
    const p = pool(s.port);
    expect(await p.request('GET', '/close-framed', '', undefined, 5000)).toEqual({
      status: 200,
      body: '{"by":"close"}',
    });
    expect(await p.request('GET', '/x', '', undefined, 5000)).toEqual({ status: 200, body: '{}' });
    expect(await p.request('GET', '/y', '', undefined, 5000)).toEqual({ status: 200, body: '{}' });
    expect(s.connections()).toBe(3);
  });

  it('a kept-alive connection the server closed: a GET goes again on a new one, a POST fails as transient', async () => {
    // The server answers, then closes the connection without saying so (as an idle timeout does),
    // but only after the client has taken it for the next request.
    const s = await rawServer((_req, socket, n) => {
      if (n % 2 === 1) socket.write(ok('{}'));
      else socket.destroy();
    });
    const p = pool(s.port, 1);
    await p.request('GET', '/first', '', undefined, 5000);
    expect(await p.request('GET', '/again', '', undefined, 5000)).toEqual({ status: 200, body: '{}' });
    expect(s.requests.map((r) => r.split(' ')[1])).toEqual(['/first', '/again', '/again']);
    const err = await p.request('POST', '/create', '', '{}', 5000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(H1Error);
    expect(String(err)).toMatch(/POST \/create: (the connection closed before the answer|read ECONNRESET)/);
    expect(isTransient(err)).toBe(true);
    expect(statusOf(err)).toBeUndefined();
  });

  it.each([
    ['PUT', 'goes again'],
    ['DELETE', 'goes again'],
    ['PATCH', 'fails as transient'],
  ] as const)('the same for a %s: it %s (README "Connecting to the API server")', async (method, outcome) => {
    const s = await rawServer((_req, socket, n) => {
      if (n % 2 === 1) socket.write(ok('{}'));
      else socket.destroy();
    });
    const p = pool(s.port, 1);
    await p.request('GET', '/first', '', undefined, 5000);
    const result = await p.request(method, '/x', '', '{}', 5000).catch((e: unknown) => e);
    if (outcome === 'goes again') {
      expect(result).toEqual({ status: 200, body: '{}' });
      expect(s.requests.map((r) => r.split(' ').slice(0, 2).join(' '))).toEqual([
        'GET /first',
        `${method} /x`,
        `${method} /x`,
      ]);
    } else {
      expect(result).toBeInstanceOf(H1Error);
      expect(isTransient(result)).toBe(true);
      expect(s.requests).toHaveLength(2);
    }
  });

  it('no answer, or an answer that stops, within the deadline fails naming the request; the pool goes on', async () => {
    const s = await rawServer((req, socket) => {
      if (req.startsWith('GET /silent')) return;
      if (req.startsWith('GET /stalls')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"a"');
      else socket.write(ok('{}'));
    });
    const p = pool(s.port, 1);
    await expect(p.request('GET', '/silent', '', undefined, 100, 'GET pods')).rejects.toThrow(
      'GET pods: no answer within 100 ms',
    );
    await expect(p.request('GET', '/stalls', '', undefined, 100)).rejects.toThrow(
      'GET /stalls: the answer stopped for 100 ms',
    );
    expect(await p.request('GET', '/fine', '', undefined, 100)).toEqual({ status: 200, body: '{}' });
  });

  it('an idle connection is closed after the request timeout, before the API server’s own idle close (90 s)', async () => {
    let closed = 0;
    const s = await rawServer((_req, socket) => socket.write(ok('{}')));
    server?.on('connection', (c: Socket) => c.on('close', () => closed++));
    const p = pool(s.port, 2);
    await p.request('GET', '/a', '', undefined, 150);
    await new Promise((r) => setTimeout(r, 60));
    await p.request('GET', '/b', '', undefined, 150); // still open: reused
    expect(s.connections()).toBe(1);
    await new Promise((r) => setTimeout(r, 400));
    expect(closed).toBe(1);
    expect(p.connections).toBe(0);
    await p.request('GET', '/c', '', undefined, 150);
    expect(s.connections()).toBe(2);
  });

  it('bytes nobody asked for end the connection; a path a request line cannot carry is refused', async () => {
    const s = await rawServer((_req, socket) => socket.write(ok('{}') + 'HTTP/1.1 200 OK\r\n'));
    const p = pool(s.port, 1);
    await p.request('GET', '/a', '', undefined, 5000);
    await p.request('GET', '/b', '', undefined, 5000);
    expect(s.connections()).toBe(2);
    await expect(p.request('GET', '/a b', '', undefined, 5000)).rejects.toThrow(
      /GET \/a b: the path has characters/,
    );
  });

  it('an answer that is not HTTP/1.1 fails the request naming it, and is not sent again', async () => {
    const s = await rawServer((_req, socket) => socket.write('SSH-2.0-OpenSSH_9.6\r\n\r\n'));
    const err = await pool(s.port)
      .request('GET', '/api', '', undefined, 5000)
      .catch((e: unknown) => e);
    expect(String(err)).toMatch(/GET \/api: an answer that is not HTTP\/1\.1: "SSH-2\.0/);
    expect(isTransient(err)).toBe(true);
    expect(s.requests).toHaveLength(1);
  });

  it('a connection that cannot be made fails the request as transient, naming it', async () => {
    const s = await rawServer(() => undefined);
    const port = s.port;
    await new Promise<void>((r) => server?.close(() => r()));
    server = undefined;
    const err = await pool(port)
      .request('GET', '/api', '', undefined, 5000)
      .catch((e: unknown) => e);
    expect(String(err)).toMatch(/GET \/api: connect ECONNREFUSED/);
    expect(isTransient(err)).toBe(true);
  });

  it('idle connections do not keep the process alive (a CronJob’s pass exits when it is done)', async () => {
    const s = await rawServer((_req, socket) => socket.write(ok('{"done":true}')));
    const h1 = fileURLToPath(new URL('../../src/kube/h1.ts', import.meta.url));
    const child = `
      const { H1Pool } = await import(${JSON.stringify(h1)});
      const p = new H1Pool({ hostname: '127.0.0.1', port: ${s.port}, hostHeader: 'x' }, 2);
      const a = await p.request('GET', '/', '', undefined, 60000);
      process.stdout.write(a.body);
    `;
    const started = Date.now();
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ['--input-type=module', '-e', child],
        { timeout: 20_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
      ),
    );
    expect(out).toBe('{"done":true}');
    expect(Date.now() - started).toBeLessThan(10_000); // the connection is still open on the server's side
    expect(s.connections()).toBe(1);
  });
});

const target = (port: number): H1Target => ({ hostname: '127.0.0.1', port, hostHeader: `127.0.0.1:${port}` });

/** The body of `s` as it comes: each read, then how it ended. */
function collect(s: H1Stream): { reads: string[]; ended: Promise<Error | undefined> } {
  const reads: string[] = [];
  const ended = new Promise<Error | undefined>((resolve) =>
    s.read((b) => reads.push(b.toString('utf8')), resolve),
  );
  return { reads, ended };
}

describe('H1Channel: a reflector’s lists and watches, streamed, on one connection of its own', () => {
  it('list pages and the watch after them share one kept-alive connection; a body sent with the head waits for read()', async () => {
    const s = await rawServer((req, socket) => {
      if (req.includes('watch=true'))
        socket.write(
          'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + chunked(['{"type":"ADDED"}\n']) + '\r\n',
        );
      else socket.write(ok('{"items":[]}')); // head and body in one write
    });
    const ch = new H1Channel();
    const t = target(s.port);
    const page1 = await ch.open(t, 'GET', '/pods?limit=2', 'Accept: application/json\r\n', 5000);
    expect(page1.status).toBe(200);
    expect(await page1.text()).toBe('{"items":[]}');
    const page2 = await ch.open(t, 'GET', '/pods?limit=2&continue=x', '', 5000);
    expect(await page2.text()).toBe('{"items":[]}');
    const watch = await ch.open(t, 'GET', '/pods?watch=true', '', 5000);
    const { reads, ended } = collect(watch);
    expect(await ended).toBeUndefined(); // the server ended it: a complete answer
    expect(reads.join('')).toBe('{"type":"ADDED"}\n');
    expect(s.connections()).toBe(1);
    expect(s.requests.map((r) => r.split(' ')[1])).toEqual([
      '/pods?limit=2',
      '/pods?limit=2&continue=x',
      '/pods?watch=true',
    ]);
    ch.close();
  });

  it('a watch’s events reach the reader as they come, long before the answer ends; a lost connection ends it with an error', async () => {
    let held: Socket | undefined;
    const s = await rawServer((_req, socket) => {
      held = socket;
      socket.write(
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + chunked(['{"n":1}\n']).slice(0, -3),
      );
    });
    const ch = new H1Channel();
    const t = target(s.port);
    const watch = await ch.open(t, 'GET', '/w', '', 5000);
    const { reads, ended } = collect(watch);
    await new Promise((r) => setTimeout(r, 20));
    expect(reads.join('')).toBe('{"n":1}\n');
    held?.write(chunked(['{"n":2}\n']).slice(0, -3));
    await new Promise((r) => setTimeout(r, 20));
    expect(reads.join('')).toBe('{"n":1}\n{"n":2}\n');
    held?.destroy();
    const err = await ended;
    expect(err).toBeInstanceOf(H1Error);
    expect(String(err)).toMatch(/GET \/w: (the connection closed before the answer|read ECONNRESET)/);
  });

  it('a silent body calls onIdle after setIdleTimeout’s time, not the request deadline; destroy ends the stream and the connection', async () => {
    const s = await rawServer((_req, socket) =>
      socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
    );
    const ch = new H1Channel();
    const t = target(s.port);
    const watch = await ch.open(t, 'GET', '/w', '', 60);
    const started = Date.now();
    const idle = new Promise<number>((resolve) =>
      watch.setIdleTimeout(200, () => resolve(Date.now() - started)),
    );
    const { ended } = collect(watch);
    expect(await idle).toBeGreaterThanOrEqual(150);
    watch.destroy(new Error('idle'));
    expect(String(await ended)).toMatch(/idle/);
    await new Promise((r) => setTimeout(r, 20));
    const again = await ch.open(t, 'GET', '/w2', '', 60);
    again.destroy();
    expect(s.connections()).toBe(2); // the destroyed stream's connection was not reused
  });

  it('close() before the head rejects the request; a new target (a new certificate) gets a new connection', async () => {
    const s = await rawServer((req, socket) => {
      if (!req.startsWith('GET /silent')) socket.write(ok('{}'));
    });
    const ch = new H1Channel();
    const t = target(s.port);
    const pending = ch.open(t, 'GET', '/silent', '', 5000);
    await new Promise((r) => setTimeout(r, 20));
    ch.close(new Error('reflector stopped'));
    await expect(pending).rejects.toThrow('GET /silent: reflector stopped');
    expect(await (await ch.open(t, 'GET', '/a', '', 5000)).text()).toBe('{}');
    expect(await (await ch.open(t, 'GET', '/b', '', 5000)).text()).toBe('{}');
    expect(s.connections()).toBe(2);
    expect(await (await ch.open(target(s.port), 'GET', '/c', '', 5000)).text()).toBe('{}'); // an equal but new target
    expect(s.connections()).toBe(3);
    ch.close();
  });
});

describe('H1Channel: a kept-alive connection the server closed while it sat idle', () => {
  it('the next GET (a watch resumed after a backoff) goes again on a new connection, once', async () => {
    const s = await rawServer((_req, socket, n) => {
      if (n === 2)
        socket.destroy(); // closed without a word, as an idle close races a request
      else socket.write(ok('{"items":[]}'));
    });
    const ch = new H1Channel();
    const t = target(s.port);
    expect(await (await ch.open(t, 'GET', '/pods?limit=500', '', 5000)).text()).toBe('{"items":[]}');
    const again = await ch.open(t, 'GET', '/pods?watch=true', '', 5000);
    expect(again.status).toBe(200);
    expect(s.requests.map((r) => r.split(' ')[1])).toEqual([
      '/pods?limit=500',
      '/pods?watch=true',
      '/pods?watch=true',
    ]);
    expect(s.connections()).toBe(2);
    ch.close();
  });
});
