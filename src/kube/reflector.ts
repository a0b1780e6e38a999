/**
 * A reflector: keeps an IndexedStore (index-cache.ts) equal to one collection on the API
 * server, and says truthfully whether it can be trusted (`synced`).
 *
 * - LIST in pages (`limit`, `continue`), so 100,000 objects never come as one body; each item
 *   goes through `transform` (slim.ts) before it is stored. Items whose resourceVersion is
 *   already stored are kept as they are (not parsed into new copies).
 * - WATCH from the list's resourceVersion with bookmarks (the API server sends one about every
 *   minute), so the resourceVersion to resume from stays fresh on a quiet collection.
 * - A watch the server ends normally (its timeout), or one idle for longer than
 *   `idleTimeoutMs` (a dead connection: bookmarks would have come), is resumed from the last
 *   resourceVersion: no LIST, and the cache stays trusted.
 * - 410 Gone (an HTTP 410 or an ERROR event with code 410: the resourceVersion is older than
 *   the server's history) re-lists at once. After a re-list, the store emits add/update for
 *   what is new or changed and delete for what vanished, then `onResynced` runs.
 * - Any other failure (a LIST or WATCH refused, a broken connection, a watch the server ends
 *   at once) makes the cache untrusted and restarts after an exponential, jittered backoff
 *   (`restartDelay`/`DEFAULT_BACKOFF`, as SupervisedInformer). A restart first resumes the
 *   watch from the last resourceVersion (nothing is missed: the server replays every change
 *   since then); when the server answers 410 it re-lists. The attempt count is reset only
 *   once the watch has stayed up for `resetAfterMs`, so a flapping server keeps long delays.
 *
 * Log messages are those of SupervisedInformer ('watch failed; cache not trusted',
 * 'restarting watch after backoff', 'watch restart failed', 'watch restarted; cache
 * re-listed'), plus 'watch restarted; resumed without re-list' when a resume needed no LIST,
 * and 'watch expired (410 Gone); cache not trusted; re-listing'.
 *
 * `synced` is true once listed and watching, false from a failure (or 410) until a restart
 * has listed or resumed and is watching again. A resumed watch counts as watching once it
 * has delivered an event or stayed open `resumeConfirmMs` without an error, so a resume the
 * server answers with 410 right away never flips `synced` to true on a stale cache.
 */
import type { Logger } from 'pino';
import { IndexedStore, type IndexFunc, type Keyed } from './index-cache.ts';
import { errorMessage } from './retry.ts';
import { DEFAULT_BACKOFF, restartDelay, type BackoffOptions } from './backoff.ts';
import { ApiError, H1Channel, statusError, type H1Stream, type Query, type Rest } from './rest.ts';

export { collectionPath } from './paths.ts';

class StoppedError extends Error {
  constructor() {
    super('reflector stopped');
    this.name = 'StoppedError';
  }
}

const isGone = (err: unknown): boolean => err instanceof ApiError && err.code === 410;

export interface ReflectorStats {
  /** LIST requests (pages) sent. */
  listRequests: number;
  /** Complete LISTs (all pages) applied to the store. */
  lists: number;
  /** WATCH requests sent. */
  watchRequests: number;
  /** Watches resumed from a resourceVersion after a normal end or an idle timeout. */
  resumes: number;
  /** 410 Gone answers (each led to a re-list). */
  expired: number;
  /** Restart attempts after failures. */
  restarts: number;
}

export interface ReflectorOptions<T extends Keyed> {
  rest: Rest;
  /** The collection's path (collectionPath), e.g. `/api/v1/persistentvolumeclaims`. */
  path: string;
  /** For logs (`informer` field); default the path. */
  name?: string | undefined;
  log: Logger;
  /** Applied to every object from LIST and WATCH before it is stored (e.g. slimSnapshot). */
  transform?: (raw: unknown) => T;
  /** Indexes of the store the reflector creates (ignored when `store` is given). */
  indexers?: Record<string, IndexFunc<T>>;
  /** A store to fill instead of a new one. */
  store?: IndexedStore<T> | undefined;
  labelSelector?: string | undefined;
  fieldSelector?: string | undefined;
  /** LIST page size (default 500). */
  pageSize?: number;
  /**
   * The server-side watch timeout. Default: unset, the API server picks (30 to 60 minutes
   * with its default --min-request-timeout), so a quiet collection costs one WATCH request
   * per half hour or so. A function is asked before each watch.
   */
  watchTimeoutSeconds?: number | (() => number | undefined) | undefined;
  /**
   * No byte on a watch for this long: the connection is taken as dead and the watch resumed
   * (default 90 s; the API server sends a bookmark about every 60 s).
   */
  idleTimeoutMs?: number;
  /** Connect/answer deadline of each request, and the idle deadline of a LIST page (default 60 s). */
  requestTimeoutMs?: number;
  /** See the module comment (default 500 ms). */
  resumeConfirmMs?: number;
  /** A watch the server closes sooner than this with no event is a failure (default 1 s). */
  minWatchMs?: number;
  backoff?: BackoffOptions;
  /** Called after a re-list that follows a failure or a 410 (not after the first list). */
  onResynced?: () => void;
  /** Called whenever `synced` changes. */
  onSyncChange?: (synced: boolean) => void;
  now?: () => number;
  /** Replaces the backoff wait (tests); the default wait ends early on stop(). */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

type WatchEnd =
  | { kind: 'stopped' }
  | { kind: 'gone'; err: unknown; events: number }
  | { kind: 'error'; err: unknown; confirmed: boolean }
  | { kind: 'closed'; idle: boolean; events: number; ms: number; confirmed: boolean };

export class Reflector<T extends Keyed> {
  readonly store: IndexedStore<T>;
  readonly stats: ReflectorStats = {
    listRequests: 0,
    lists: 0,
    watchRequests: 0,
    resumes: 0,
    expired: 0,
    restarts: 0,
  };
  private readonly o: ReflectorOptions<T>;
  private readonly name: string;
  private readonly transform: (raw: unknown) => T;
  private readonly backoff: BackoffOptions;
  private readonly now: () => number;
  private rv = '';
  private ok = false;
  private stopped = false;
  /** From the first failure (or 410) until the cache is trusted again. */
  private restarting = false;
  private attempts = 0;
  /** A LIST was applied since the cache stopped being trusted (so a resync is due). */
  private relisted = false;
  private healthySince = 0;
  private down: number | undefined;
  private loop: Promise<void> | undefined;
  /** The connection of this reflector's lists and watches, one at a time; stop() closes it. */
  private readonly channel = new H1Channel();
  private wake: (() => void) | undefined;
  private readonly waiters: (() => void)[] = [];

  constructor(o: ReflectorOptions<T>) {
    this.o = o;
    this.name = o.name ?? o.path;
    this.transform = o.transform ?? ((raw) => raw as T);
    this.backoff = o.backoff ?? DEFAULT_BACKOFF;
    this.now = o.now ?? Date.now;
    this.store =
      o.store ??
      new IndexedStore<T>({
        indexers: o.indexers ?? {},
        onHandlerError: (err, verb, obj) =>
          o.log.error(
            {
              informer: this.name,
              verb,
              object: `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`,
              err: errorMessage(err),
            },
            'cache event handler failed',
          ),
      });
  }

  /** Listed and watching: the store can be trusted. */
  get synced(): boolean {
    return this.ok;
  }

  /** The resourceVersion the next watch resumes from. */
  get resourceVersion(): string {
    return this.rv;
  }

  /** Restart attempts so far (as SupervisedInformer.restarts). */
  get restarts(): number {
    return this.stats.restarts;
  }

  /** Starts listing and watching; keeps retrying in the background. Resolves once synced or stopped. */
  async start(): Promise<void> {
    this.loop ??= this.run().catch((err: unknown) => {
      this.o.log.error({ informer: this.name, err: errorMessage(err) }, 'reflector loop crashed');
      this.setOk(false);
    });
    if (this.ok || this.stopped) return;
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.channel.close(new StoppedError());
    this.wake?.();
    this.setOk(false);
    for (const w of this.waiters.splice(0)) w();
    await this.loop;
  }

  private setOk(ok: boolean): void {
    if (ok === this.ok) return;
    this.ok = ok;
    if (ok) for (const w of this.waiters.splice(0)) w();
    const cb = this.o.onSyncChange;
    if (cb) this.callback('onSyncChange', () => cb(ok));
  }

  /** Runs a caller's callback; its failure is logged, never allowed to stop the reflector. */
  private callback(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.o.log.error({ informer: this.name, err: errorMessage(err) }, `${what} callback failed`);
    }
  }

  private async run(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      let fromList = false;
      if (needList) {
        try {
          await this.list();
        } catch (err) {
          if (this.stopped) return;
          await this.failed(err);
          continue;
        }
        needList = false;
        fromList = true;
      }
      const end = await this.watch(fromList);
      if (this.stopped || end.kind === 'stopped') return;
      if (end.kind === 'gone') {
        needList = true;
        this.stats.expired++;
        // Right after a fresh LIST a 410 is not progress: back off before listing again.
        if (fromList && end.events === 0) await this.failed(end.err);
        else this.expired(end.err);
      } else if (end.kind === 'error') {
        await this.failed(end.err);
      } else if (!end.confirmed || (!end.idle && end.events === 0 && end.ms < (this.o.minWatchMs ?? 1000))) {
        await this.failed(new Error(`watch closed by the server after ${end.ms} ms without an event`));
      } else {
        this.stats.resumes++;
        this.o.log.debug(
          { informer: this.name, resourceVersion: this.rv, idle: end.idle, events: end.events },
          'watch ended; resuming from resourceVersion',
        );
      }
    }
  }

  /** A failure: cache untrusted, then wait out the backoff before the next attempt. */
  private async failed(err: unknown): Promise<void> {
    if (this.ok) {
      if (this.now() - this.healthySince >= this.backoff.resetAfterMs) this.attempts = 0;
    }
    if (!this.restarting) {
      this.restarting = true;
      this.down ??= this.now();
      this.setOk(false);
      this.o.log.warn({ informer: this.name, err: errorMessage(err) }, 'watch failed; cache not trusted');
    } else {
      this.setOk(false);
      this.o.log.warn(
        { informer: this.name, attempt: this.attempts, err: errorMessage(err) },
        'watch restart failed',
      );
    }
    this.attempts++;
    const delayMs = restartDelay(this.attempts, this.backoff, this.o.random);
    this.o.log.info(
      { informer: this.name, attempt: this.attempts, delayMs },
      'restarting watch after backoff',
    );
    await this.pause(delayMs);
    if (!this.stopped) this.stats.restarts++;
  }

  /** 410 Gone while watching: the server's history no longer reaches our resourceVersion. */
  private expired(err: unknown): void {
    if (this.ok && this.now() - this.healthySince >= this.backoff.resetAfterMs) this.attempts = 0;
    this.down ??= this.now();
    this.restarting = true;
    this.setOk(false);
    this.o.log.info(
      { informer: this.name, resourceVersion: this.rv, err: errorMessage(err) },
      'watch expired (410 Gone); cache not trusted; re-listing',
    );
  }

  /** The watch is up (after a list, or a confirmed resume). */
  private healthy(relisted: boolean): void {
    // Up since the cache became trusted: resumes after normal watch ends do not restart the clock.
    if (!this.ok) this.healthySince = this.now();
    const wasRestarting = this.restarting;
    const resynced = relisted || this.relisted;
    this.restarting = false;
    this.relisted = false;
    this.setOk(true);
    if (!wasRestarting) return;
    const fields = {
      informer: this.name,
      attempts: this.attempts,
      downMs: this.down === undefined ? 0 : this.now() - this.down,
    };
    this.down = undefined;
    if (resynced) {
      this.o.log.info(fields, 'watch restarted; cache re-listed');
      const cb = this.o.onResynced;
      if (cb) this.callback('onResynced', cb);
    } else {
      this.o.log.info({ ...fields, resourceVersion: this.rv }, 'watch restarted; resumed without re-list');
    }
  }

  /** Waits out a backoff; stop() ends the wait at once. */
  private async pause(ms: number): Promise<void> {
    if (this.stopped) return;
    let timer: NodeJS.Timeout | undefined;
    const woken = new Promise<void>((resolve) => (this.wake = resolve));
    const slept = this.o.sleep
      ? this.o.sleep(ms)
      : new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
    try {
      await Promise.race([slept, woken]);
    } finally {
      clearTimeout(timer);
      this.wake = undefined;
    }
  }

  // ---- LIST ---------------------------------------------------------------------------

  private async list(): Promise<void> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      this.stats.listRequests++;
      const page = (await this.getJson({
        limit: this.o.pageSize ?? 500,
        continue: cont,
        labelSelector: this.o.labelSelector,
        fieldSelector: this.o.fieldSelector,
      })) as {
        metadata?: { resourceVersion?: string; continue?: string };
        items?: unknown[];
      };
      for (const raw of page.items ?? []) items.push(this.reuseOrTransform(raw));
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion ?? rv;
    } while (cont !== undefined && !this.stopped);
    if (this.stopped) throw new StoppedError();
    this.stats.lists++;
    this.rv = rv;
    if (this.restarting) this.relisted = true;
    const r = this.store.replace(items);
    this.o.log.debug({ informer: this.name, resourceVersion: rv, ...r }, 'listed');
  }

  /** The stored object when its resourceVersion is unchanged (no new copy), else the transform. */
  private reuseOrTransform(raw: unknown): T {
    const m = (raw as Keyed | null)?.metadata;
    if (m?.name !== undefined && m.resourceVersion !== undefined) {
      const have = this.store.get(m.namespace ?? '', m.name);
      if (have && have.metadata?.resourceVersion === m.resourceVersion) return have;
    }
    return this.transform(raw);
  }

  private async getJson(query: Query): Promise<unknown> {
    const res = await this.open(query);
    const body = await res.text();
    if (res.status !== 200) throw statusError(res.status, body);
    return JSON.parse(body);
  }

  // ---- WATCH --------------------------------------------------------------------------

  private watchTimeout(): number | undefined {
    const t = this.o.watchTimeoutSeconds;
    return typeof t === 'function' ? t() : t;
  }

  private async watch(fromList: boolean): Promise<WatchEnd> {
    const started = this.now();
    let res: H1Stream;
    try {
      this.stats.watchRequests++;
      res = await this.open({
        watch: 'true',
        resourceVersion: this.rv,
        allowWatchBookmarks: 'true',
        timeoutSeconds: this.watchTimeout(),
        labelSelector: this.o.labelSelector,
        fieldSelector: this.o.fieldSelector,
      });
    } catch (err) {
      if (this.stopped) return { kind: 'stopped' };
      return { kind: 'error', err, confirmed: false };
    }
    if (res.status !== 200) {
      const body = await res.text().catch(() => '');
      const err = statusError(res.status, body);
      if (this.stopped) return { kind: 'stopped' };
      return isGone(err) ? { kind: 'gone', err, events: 0 } : { kind: 'error', err, confirmed: false };
    }
    return new Promise<WatchEnd>((resolve) => {
      let events = 0;
      let confirmed = false;
      let idle = false;
      let ended = false;
      let gone: unknown;
      let failure: unknown;
      /** A line's start, split across reads. */
      let carry: Buffer[] = [];
      const confirm = (): void => {
        if (confirmed || ended) return;
        confirmed = true;
        clearTimeout(confirmTimer);
        this.healthy(fromList);
      };
      const confirmMs = this.o.resumeConfirmMs ?? 500;
      const confirmTimer = fromList || confirmMs <= 0 ? undefined : setTimeout(confirm, confirmMs);
      const finish = (err?: unknown): void => {
        if (ended) return;
        ended = true;
        clearTimeout(confirmTimer);
        res.destroy(); // a watch that ended by itself has given its connection back already
        const ms = this.now() - started;
        if (this.stopped) resolve({ kind: 'stopped' });
        else if (gone !== undefined) resolve({ kind: 'gone', err: gone, events });
        else if (failure !== undefined) resolve({ kind: 'error', err: failure, confirmed });
        else if (err !== undefined && !idle) resolve({ kind: 'error', err, confirmed });
        else resolve({ kind: 'closed', idle, events, ms, confirmed });
      };
      const onEvent = (line: string): void => {
        let ev: { type?: string; object?: Record<string, unknown> };
        try {
          ev = JSON.parse(line) as typeof ev;
        } catch {
          failure = new Error(`watch ${this.o.path}: unreadable event: ${line.slice(0, 200)}`);
          finish();
          return;
        }
        const o = ev.object ?? {};
        if (ev.type === 'ERROR') {
          const code = typeof o.code === 'number' ? o.code : 0;
          const message = typeof o.message === 'string' ? o.message : 'watch error';
          const err = new ApiError(code, message, typeof o.reason === 'string' ? o.reason : undefined);
          if (code === 410) gone = err;
          else failure = err;
          finish();
          return;
        }
        events++;
        const rv = (o.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
        try {
          if (ev.type === 'ADDED' || ev.type === 'MODIFIED') {
            this.store.upsert(this.transform(o));
          } else if (ev.type === 'DELETED') {
            const last = this.transform(o);
            this.store.remove(last.metadata?.namespace ?? '', last.metadata?.name ?? '', last);
          }
        } catch (err) {
          // A transform, or a handler of a caller-supplied store, threw: a failure. The
          // resourceVersion is not advanced, so the resumed watch delivers this event again.
          failure = err;
          finish();
          return;
        }
        // BOOKMARK: only its resourceVersion.
        if (rv) this.rv = rv;
        confirm();
      };
      if (fromList) confirm();
      const idleMs = this.o.idleTimeoutMs ?? 90_000;
      res.setIdleTimeout(idleMs, () => {
        idle = true;
        finish(new Error(`watch idle for ${idleMs} ms`));
      });
      // One event per line; lines are cut at newline bytes, so a character split across reads
      // is whole again before it is decoded.
      res.read(
        (chunk) => {
          let from = 0;
          for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, from)) {
            let line: string;
            if (carry.length > 0) {
              carry.push(chunk.subarray(from, nl));
              line = Buffer.concat(carry).toString('utf8');
              carry = [];
            } else line = chunk.toString('utf8', from, nl);
            from = nl + 1;
            if (line.trim() !== '') onEvent(line);
            if (ended) return;
          }
          if (from < chunk.length) carry.push(chunk.subarray(from));
        },
        (err) => finish(err), // none: the server ended the watch (its timeout)
      );
    });
  }

  // ---- HTTP ---------------------------------------------------------------------------

  /** Sends a GET for the collection with `query`; resolves with the answer (any status), its body unread. */
  private async open(query: Query): Promise<H1Stream> {
    if (this.stopped) throw new StoppedError();
    const res = await this.o.rest.stream(this.channel, this.o.path, {
      query,
      timeoutMs: this.o.requestTimeoutMs ?? 60_000,
    });
    // An expired exec token or rotated token file: fresh credentials for the restart.
    if (res.status === 401) this.o.rest.access.invalidate();
    if (this.stopped) {
      res.destroy();
      throw new StoppedError();
    }
    return res;
  }
}
