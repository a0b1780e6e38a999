/**
 * The Reflector's state machine against a small fake API server (plain HTTP, in process):
 * paging, watch events, resume after a normal end or an idle connection, 410 Gone, failures
 * with backoff, truthful `synced` and logs, stop. The real API server is
 * test/integration/reflector.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Rest } from '../../src/kube/rest.ts';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { labelIndexKey, pvcIndexers } from '../../src/kube/index-cache.ts';
import { Reflector, type ReflectorOptions } from '../../src/kube/reflector.ts';
import { restartDelay, type BackoffOptions } from '../../src/kube/backoff.ts';

interface Obj {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
}
type Verb = 'LIST' | 'WATCH';

const PATH = '/api/v1/configmaps';

/** Enough of an API server for one collection: paged LIST, WATCH with history, faults on demand. */
class FakeApi {
  rv = 100;
  /** Watches from a resourceVersion below this get 410 Gone (history compacted). */
  oldest = 0;
  readonly objects = new Map<string, Obj>();
  readonly history: { type: string; object: Obj; rv: number }[] = [];
  readonly requests: { verb: Verb; query: URLSearchParams }[] = [];
  private readonly faults: { verb: Verb; status: number }[] = [];
  private readonly watchers = new Set<ServerResponse>();
  private readonly snapshots = new Map<string, { rv: number; items: Obj[] }>();
  /** Close a watch this many ms after it opens, when set. */
  closeWatchesAfterMs: number | undefined;
  /** A status to fail a LIST page with, decided per request. */
  listFault: ((q: URLSearchParams) => number | undefined) | undefined;
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  rest(): Rest {
    return new Rest({
      server: this.url,
      namespace: 'default',
      source: 'fake API server',
      insecure: true,
      credentials: async () => ({}),
      invalidate: () => undefined,
    });
  }

  count(verb: Verb): number {
    return this.requests.filter((r) => r.verb === verb).length;
  }

  failNext(verb: Verb, status: number, times = 1): void {
    for (let i = 0; i < times; i++) this.faults.push({ verb, status });
  }

  put(name: string, data: Record<string, string> = {}, labels?: Record<string, string>): Obj {
    const key = `default/${name}`;
    const type = this.objects.has(key) ? 'MODIFIED' : 'ADDED';
    const obj: Obj = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name,
        namespace: 'default',
        resourceVersion: String(++this.rv),
        ...(labels ? { labels } : {}),
      },
      data,
    };
    this.objects.set(key, obj);
    this.record(type, obj);
    return obj;
  }

  remove(name: string): void {
    const obj = this.objects.get(`default/${name}`);
    if (!obj) return;
    this.objects.delete(`default/${name}`);
    this.record('DELETED', { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } });
  }

  /** Changes made while no watch can see them, and history forgotten: the next resume gets 410. */
  compact(): void {
    this.oldest = this.rv;
  }

  bookmark(): void {
    this.rv++;
    for (const w of this.watchers)
      w.write(
        JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: String(this.rv) } } }) +
          '\n',
      );
  }

  /** Ends every watch normally (what a server-side timeout looks like). */
  closeWatches(): void {
    for (const w of this.watchers) w.end();
    this.watchers.clear();
  }

  /** Breaks every watch connection (what a crashing server looks like). */
  breakWatches(): void {
    for (const w of this.watchers) w.destroy();
    this.watchers.clear();
  }

  sendError(code: number): void {
    for (const w of this.watchers) {
      w.end(
        JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code, message: `error ${code}` } }) + '\n',
      );
    }
    this.watchers.clear();
  }

  private record(type: string, object: Obj): void {
    const rv = Number(object.metadata.resourceVersion);
    this.history.push({ type, object, rv });
    for (const w of this.watchers) w.write(JSON.stringify({ type, object }) + '\n');
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    if (url.pathname !== PATH) {
      res.writeHead(404).end();
      return;
    }
    const q = url.searchParams;
    const verb: Verb = q.get('watch') === 'true' ? 'WATCH' : 'LIST';
    this.requests.push({ verb, query: q });
    const fault = this.faults.findIndex((f) => f.verb === verb);
    const status =
      fault >= 0
        ? this.faults.splice(fault, 1)[0]?.status
        : verb === 'LIST'
          ? this.listFault?.(q)
          : undefined;
    if (status !== undefined) {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', code: status, message: `injected ${status}` }));
      return;
    }
    if (verb === 'LIST') this.list(q, res);
    else this.watch(q, res);
  }

  private list(q: URLSearchParams, res: ServerResponse): void {
    const limit = Number(q.get('limit') ?? 0) || Infinity;
    const cont = q.get('continue');
    let snap: { rv: number; items: Obj[] };
    let offset = 0;
    if (cont) {
      const [id = '', at = '0'] = cont.split(':');
      snap = this.snapshots.get(id) as typeof snap;
      offset = Number(at);
    } else {
      snap = {
        rv: this.rv,
        items: [...this.objects.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1)),
      };
    }
    const id = cont?.split(':')[0] ?? String(this.snapshots.size);
    this.snapshots.set(id, snap);
    const items = snap.items.slice(offset, offset + limit).map((o) => {
      // LIST items carry no apiVersion/kind, as on a real API server.
      const rest: Partial<Obj> = { ...o };
      delete rest.apiVersion;
      delete rest.kind;
      return rest;
    });
    const next = offset + limit < snap.items.length ? `${id}:${offset + limit}` : undefined;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: 'ConfigMapList',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(snap.rv), ...(next ? { continue: next } : {}) },
        items,
      }),
    );
  }

  private watch(q: URLSearchParams, res: ServerResponse): void {
    const from = Number(q.get('resourceVersion') ?? 0);
    res.writeHead(200, { 'content-type': 'application/json' });
    if (from < this.oldest) {
      res.end(
        JSON.stringify({
          type: 'ERROR',
          object: {
            kind: 'Status',
            code: 410,
            reason: 'Expired',
            message: `too old resource version: ${from}`,
          },
        }) + '\n',
      );
      return;
    }
    res.flushHeaders();
    for (const h of this.history)
      if (h.rv > from) res.write(JSON.stringify({ type: h.type, object: h.object }) + '\n');
    this.watchers.add(res);
    res.on('close', () => this.watchers.delete(res));
    const timeout = Number(q.get('timeoutSeconds') ?? 0) * 1000 || this.closeWatchesAfterMs;
    if (timeout) {
      setTimeout(() => {
        this.watchers.delete(res);
        res.end();
      }, timeout).unref();
    }
  }
}

interface LogLine {
  msg: string;
  level: number;
  [k: string]: unknown;
}

function capture(): { log: Logger; lines: LogLine[]; msgs: () => string[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { log, lines, msgs: () => lines.filter((l) => l.level >= 30).map((l) => l.msg) };
}

const until = async (cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

const FAST: BackoffOptions = { baseMs: 20, capMs: 200, resetAfterMs: 60_000 };
let api: FakeApi;
const running: Reflector<Obj>[] = [];

async function reflector(
  o: Partial<ReflectorOptions<Obj>> = {},
): Promise<{ r: Reflector<Obj>; logs: ReturnType<typeof capture>; sync: boolean[]; resyncs: () => number }> {
  const logs = capture();
  const sync: boolean[] = [];
  let resyncs = 0;
  const r = new Reflector<Obj>({
    rest: api.rest(),
    path: PATH,
    name: 'configmaps',
    log: logs.log,
    backoff: FAST,
    resumeConfirmMs: 50,
    // Tests close watches within milliseconds; the short-watch guard has its own test.
    minWatchMs: 0,
    onSyncChange: (s) => sync.push(s),
    onResynced: () => resyncs++,
    ...o,
  });
  running.push(r);
  return { r, logs, sync, resyncs: () => resyncs };
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  await api?.stop();
});

async function freshApi(objects = 0): Promise<FakeApi> {
  api = new FakeApi();
  await api.start();
  for (let i = 0; i < objects; i++) api.put(`cm-${String(i).padStart(5, '0')}`, { i: String(i) });
  return api;
}

describe('Reflector (fake API server)', () => {
  it('lists in pages, stores every item through the transform, then watches from the list resourceVersion with bookmarks', async () => {
    await freshApi(1200);
    const seen: string[] = [];
    const { r, sync } = await reflector({
      pageSize: 500,
      transform: (raw) => {
        const o = raw as Obj;
        seen.push(o.metadata.name);
        return { metadata: o.metadata }; // drops data
      },
    });
    await r.start();
    expect(r.synced).toBe(true);
    expect(sync).toEqual([true]);
    expect(api.count('LIST')).toBe(3);
    expect(api.requests.filter((q) => q.verb === 'LIST').map((q) => q.query.get('limit'))).toEqual([
      '500',
      '500',
      '500',
    ]);
    expect(r.stats).toMatchObject({ listRequests: 3, lists: 1, watchRequests: 1 });
    expect(r.store.size).toBe(1200);
    expect(seen).toHaveLength(1200);
    expect(r.store.get('default', 'cm-00042')).toEqual({
      metadata: { name: 'cm-00042', namespace: 'default', resourceVersion: expect.any(String) as string },
    });
    const watch = api.requests.find((q) => q.verb === 'WATCH')?.query;
    expect(watch?.get('resourceVersion')).toBe('1300');
    expect(watch?.get('allowWatchBookmarks')).toBe('true');
    api.bookmark();
    await until(() => r.resourceVersion === String(api.rv), 5000, 'bookmark');
  });

  it('watch events reach the store, its indexes and the handlers', async () => {
    await freshApi(2);
    const { r } = await reflector({ indexers: pvcIndexers<Obj>() });
    await r.start();
    const events: string[] = [];
    for (const verb of ['add', 'update', 'delete'] as const)
      r.store.on(verb, (o, old) =>
        events.push(`${verb} ${o.metadata.name} ${old?.metadata.resourceVersion ?? '-'}`),
      );
    api.put('new', {}, { app: 'web' });
    api.put('cm-00000', { changed: 'yes' }, { app: 'web' });
    api.remove('cm-00001');
    await until(() => events.length === 3, 5000, 'events');
    expect(events).toEqual(['add new -', 'update cm-00000 101', 'delete cm-00001 102']);
    expect(r.store.get('default', 'cm-00000')?.data).toEqual({ changed: 'yes' });
    expect(
      r.store
        .byIndex('label', labelIndexKey('default', 'app', 'web'))
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['cm-00000', 'new']);
    expect(r.store.get('default', 'cm-00001')).toBeUndefined();
    expect(api.count('LIST')).toBe(1);
  });

  it('a watch the server ends normally is resumed from the last resourceVersion: no LIST, nothing missed, still synced', async () => {
    await freshApi(3);
    const { r, sync, logs } = await reflector();
    await r.start();
    for (let round = 0; round < 3; round++) {
      api.put(`before-close-${round}`);
      await until(() => r.store.get('default', `before-close-${round}`) !== undefined);
      api.closeWatches();
      // Changed while no watch is open: the resumed watch replays it.
      api.put(`between-${round}`);
      await until(() => r.store.get('default', `between-${round}`) !== undefined, 5000, 'resumed watch');
    }
    expect(api.count('LIST')).toBe(1);
    expect(api.count('WATCH')).toBe(4);
    expect(r.stats.resumes).toBe(3);
    expect(sync).toEqual([true]);
    expect(logs.msgs()).toEqual([]);
    const resumedFrom = api.requests
      .filter((q) => q.verb === 'WATCH')
      .map((q) => Number(q.query.get('resourceVersion')));
    expect(resumedFrom).toEqual([...resumedFrom].sort((a, b) => a - b));
  });

  it('a server-side watch timeout is passed as timeoutSeconds and resumed without a LIST', async () => {
    await freshApi(1);
    const { r } = await reflector({ watchTimeoutSeconds: 1 });
    await r.start();
    await until(() => api.count('WATCH') >= 3, 6000, 'two resumes');
    expect(
      api.requests.filter((q) => q.verb === 'WATCH').every((q) => q.query.get('timeoutSeconds') === '1'),
    ).toBe(true);
    expect(api.count('LIST')).toBe(1);
    expect(r.synced).toBe(true);
  });

  it('an idle watch (no byte, not even a bookmark) is taken as dead and resumed without a LIST', async () => {
    await freshApi(1);
    const { r } = await reflector({ idleTimeoutMs: 200 });
    await r.start();
    await until(() => api.count('WATCH') >= 3, 5000, 'resumes');
    expect(api.count('LIST')).toBe(1);
    expect(r.synced).toBe(true);
    expect(r.stats.resumes).toBeGreaterThanOrEqual(2);
  });

  it('410 Gone (an ERROR event) re-lists: vanished objects are deleted, new ones added, then onResynced', async () => {
    await freshApi(3);
    const { r, sync, logs, resyncs } = await reflector();
    await r.start();
    const events: string[] = [];
    for (const verb of ['add', 'update', 'delete'] as const)
      r.store.on(verb, (o) => events.push(`${verb} ${o.metadata.name}`));
    // The watch ends (server timeout); meanwhile objects change and the history is compacted.
    api.closeWatchesAfterMs = undefined;
    const watchesBefore = api.count('WATCH');
    api.closeWatches();
    api.remove('cm-00000');
    api.put('cm-00001', { changed: 'yes' });
    api.put('brand-new');
    api.compact();
    await until(() => resyncs() === 1, 5000, 'resync');
    expect(api.count('WATCH')).toBeGreaterThan(watchesBefore);
    expect(api.count('LIST')).toBe(2);
    expect(events.sort()).toEqual(['add brand-new', 'delete cm-00000', 'update cm-00001']);
    expect(
      r.store
        .list()
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['brand-new', 'cm-00001', 'cm-00002']);
    expect(r.stats.expired).toBe(1);
    expect(sync).toEqual([true, false, true]);
    expect(logs.msgs()).toEqual([
      'watch expired (410 Gone); cache not trusted; re-listing',
      'watch restarted; cache re-listed',
    ]);
    expect(r.synced).toBe(true);
  });

  it('an HTTP 410 on a resume re-lists as well', async () => {
    await freshApi(1);
    const { r, resyncs } = await reflector();
    await r.start();
    api.failNext('WATCH', 410);
    api.closeWatches();
    await until(() => resyncs() === 1, 5000, 'resync');
    expect(api.count('LIST')).toBe(2);
    expect(r.synced).toBe(true);
  });

  it('a broken watch: cache untrusted, backoff between failed restarts, then resumed without a LIST', async () => {
    await freshApi(2);
    const delays: number[] = [];
    const { r, sync, logs, resyncs } = await reflector({
      random: () => 1,
      sleep: async (ms) => {
        delays.push(ms);
        await new Promise((res) => setTimeout(res, 5));
      },
    });
    await r.start();
    api.failNext('WATCH', 500, 2);
    api.breakWatches();
    api.put('during-outage');
    await until(() => r.synced && r.store.get('default', 'during-outage') !== undefined, 5000, 'recovery');
    expect(delays).toEqual([1, 2, 3].map((n) => restartDelay(n, FAST, () => 1)));
    expect(logs.msgs()).toEqual([
      'watch failed; cache not trusted',
      'restarting watch after backoff',
      'watch restart failed',
      'restarting watch after backoff',
      'watch restart failed',
      'restarting watch after backoff',
      'watch restarted; resumed without re-list',
    ]);
    expect(sync).toEqual([true, false, true]);
    expect(api.count('LIST')).toBe(1);
    expect(resyncs()).toBe(0); // nothing was missed: the watch replayed the outage
    expect(r.restarts).toBe(3);
  });

  it('a resume answered with 410 at once never reports synced on the stale cache', async () => {
    await freshApi(2);
    const { r, sync, resyncs } = await reflector({ resumeConfirmMs: 300 });
    await r.start();
    api.breakWatches();
    api.put('changed-while-away');
    api.compact();
    await until(() => resyncs() === 1, 5000, 'resync');
    expect(sync).toEqual([true, false, true]);
    expect(api.count('LIST')).toBe(2);
  });

  it('a failing first LIST: start waits, retries with backoff, and the success counts as a re-list', async () => {
    await freshApi(2);
    api.failNext('LIST', 403, 2);
    const { r, logs, resyncs, sync } = await reflector();
    await r.start();
    expect(r.synced).toBe(true);
    expect(r.store.size).toBe(2);
    expect(logs.msgs()).toEqual([
      'watch failed; cache not trusted',
      'restarting watch after backoff',
      'watch restart failed',
      'restarting watch after backoff',
      'watch restarted; cache re-listed',
    ]);
    expect(logs.lines.find((l) => l.msg === 'watch failed; cache not trusted')?.err).toMatch(/injected 403/);
    expect(resyncs()).toBe(1);
    expect(sync).toEqual([true]);
  });

  it('a LIST failing half-way through the pages changes nothing in the store', async () => {
    await freshApi(30);
    let release: () => void = () => undefined;
    const { r, logs } = await reflector({
      pageSize: 10,
      sleep: () => new Promise<void>((res) => (release = res)),
    });
    await r.start();
    let deletes = 0;
    r.store.on('delete', () => deletes++);
    // A resume that gets 410, and a re-list whose second page fails.
    api.closeWatches();
    api.remove('cm-00000');
    api.compact();
    api.listFault = (q) => (q.get('continue') ? 500 : undefined);
    await until(() => logs.msgs().includes('watch restart failed'), 5000, 'failed re-list');
    expect(r.store.size).toBe(30);
    expect(deletes).toBe(0);
    expect(r.synced).toBe(false);
    api.listFault = undefined;
    release();
    await until(() => r.synced, 5000, 're-listed');
    expect(r.store.size).toBe(29);
    expect(deletes).toBe(1);
    // 3 pages at start, 2 (the second failed), 3 again.
    expect(api.count('LIST')).toBe(8);
  });

  it('a watch the server closes at once without an event is a failure (backoff), not a hot loop', async () => {
    await freshApi(1);
    api.closeWatchesAfterMs = 1;
    const { r, logs } = await reflector({ minWatchMs: 500 });
    await r.start();
    await until(() => logs.msgs().includes('watch failed; cache not trusted'), 5000, 'failure');
    api.closeWatchesAfterMs = undefined;
    await until(() => r.synced, 5000, 'recovered');
    expect(logs.msgs()).toContain('restarting watch after backoff');
  });

  it('stop() ends a watch and a backoff at once, and start() then resolves', async () => {
    await freshApi(1);
    const { r } = await reflector();
    await r.start();
    const t0 = Date.now();
    await r.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(r.synced).toBe(false);

    api.failNext('LIST', 500, 100);
    const { r: r2 } = await reflector({ backoff: { baseMs: 60_000, capMs: 60_000, resetAfterMs: 1 } });
    const started = r2.start();
    await until(() => api.count('LIST') >= 2, 5000, 'first failure');
    const t1 = Date.now();
    await r2.stop();
    await started;
    expect(Date.now() - t1).toBeLessThan(1000);
  });
});
