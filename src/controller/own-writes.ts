/**
 * This process's own writes, so that their watch events are not taken for news. A pass that
 * creates a run's snapshots and writes the status already counted both; their events used to
 * queue a second pass after every fire, which read everything again and found nothing to do
 * (bench:scale at the peer's load: 3 passes a fire, a fifth of all the controller allocated).
 *
 * A watch event may come before the answer to the write that made it (another connection), so:
 * - a create is announced before it is sent (its name is known then) and its ADDED event is an
 *   echo whenever it comes, until the create fails;
 * - a status write's resourceVersion is known only from its answer, so an update of the
 *   schedule that comes while the write is in flight is held until it answers: the write's own
 *   version is an echo, any other is news (handed to `onNews`).
 * - a delete is announced before it is sent; the events it causes (the object marked for
 *   deletion while finalizers run, then gone) are echoes: the pass that deleted it already left
 *   it out of its plan and its status counts. It used to make one more pass after every prune
 *   (bench:scale at full size: a third of the passes).
 * Pure bookkeeping on an injected clock; every other event is news.
 */

/** A create's or delete's event lost (a re-list) or never coming: its entry goes after this long. */
export const CREATE_ECHO_MS = 10 * 60_000;
/** At most this many creates (and as many deletes) remembered; the oldest go first. */
export const MAX_CREATES = 50_000;

export type UpdateVerdict = 'echo' | 'held' | 'news';

export class OwnWrites {
  /** `kind/namespace/name` of objects created (or being created), with when, oldest first. */
  private readonly creates = new Map<string, number>();
  /** `kind/namespace/name` of objects this process deletes (or is deleting), with when, oldest first. */
  private readonly deletes = new Map<string, number>();
  /** Schedules (namespace/name) with status writes in flight: how many. */
  private readonly writing = new Map<string, number>();
  /** Their update events that came meanwhile, by resourceVersion. */
  private readonly held = new Map<string, Set<string>>();
  /** The resourceVersion of each schedule's last status write, until its event came. */
  private readonly written = new Map<string, string>();

  private readonly now: () => number;
  private readonly onNews: (key: string) => void;

  constructor(now: () => number, onNews: (key: string) => void) {
    this.now = now;
    this.onNews = onNews;
  }

  /** Before sending a create. */
  creating(kind: string, namespace: string, name: string): void {
    this.remember(this.creates, `${kind}/${namespace}/${name}`);
  }

  /** Before sending a delete. */
  deleting(kind: string, namespace: string, name: string): void {
    this.remember(this.deletes, `${kind}/${namespace}/${name}`);
  }

  /** The delete was refused or found nothing: the object's later events are news. */
  deleteFailed(kind: string, namespace: string, name: string): void {
    this.deletes.delete(`${kind}/${namespace}/${name}`);
  }

  /**
   * An update or delete event of an object this process is deleting: true when it is the
   * delete's doing (marked for deletion, or gone; gone ends it). An update of it that is not
   * marked for deletion is someone else's change, news.
   */
  isDeleteEcho(
    kind: string,
    namespace: string,
    name: string,
    event: 'update' | 'delete',
    markedForDeletion: boolean,
  ): boolean {
    const key = `${kind}/${namespace}/${name}`;
    if (!this.deletes.has(key)) return false;
    if (event === 'delete') return this.deletes.delete(key);
    return markedForDeletion;
  }

  /**
   * A cache event of an object of `kind` (a snapshot or a group): true when it echoes this
   * process's own create (an add) or delete (an update carrying the deletion mark, or the delete).
   */
  isEcho(
    kind: string,
    verb: 'add' | 'update' | 'delete',
    meta: { namespace?: string | undefined; name?: string | undefined; deletionTimestamp?: unknown },
  ): boolean {
    const [namespace, name] = [meta.namespace ?? '', meta.name ?? ''];
    return verb === 'add'
      ? this.isCreateEcho(kind, namespace, name)
      : this.isDeleteEcho(kind, namespace, name, verb, !!meta.deletionTimestamp);
  }

  /** Adds `key` at the back, dropping entries older than CREATE_ECHO_MS or past MAX_CREATES. */
  private remember(entries: Map<string, number>, key: string): void {
    const at = this.now();
    for (const [k, t] of entries) {
      if (at - t <= CREATE_ECHO_MS && entries.size < MAX_CREATES) break;
      entries.delete(k);
    }
    entries.delete(key); // to the back: the order stays the order of time
    entries.set(key, at);
  }

  /** The create failed: an ADDED event of that name is someone else's object, news. */
  createFailed(kind: string, namespace: string, name: string): void {
    this.creates.delete(`${kind}/${namespace}/${name}`);
  }

  /** An ADDED event: true when it is one of this process's creates (answers once). */
  isCreateEcho(kind: string, namespace: string, name: string): boolean {
    return this.creates.delete(`${kind}/${namespace}/${name}`);
  }

  /** Before sending a status write of schedule `key`. */
  writingStatus(key: string): void {
    this.writing.set(key, (this.writing.get(key) ?? 0) + 1);
  }

  /** The status write answered with `resourceVersion`, or failed (undefined). */
  statusWritten(key: string, resourceVersion: string | undefined): void {
    const left = (this.writing.get(key) ?? 1) - 1;
    if (left > 0) this.writing.set(key, left);
    else this.writing.delete(key);
    const held = this.held.get(key);
    if (resourceVersion !== undefined) {
      if (held?.delete(resourceVersion)) this.written.delete(key);
      else this.written.set(key, resourceVersion);
    }
    if (left > 0 || !held) return;
    this.held.delete(key);
    if (held.size > 0) this.onNews(key);
  }

  /** An update event of schedule `key`: echo, held until the write in flight answers, or news. */
  onUpdate(key: string, resourceVersion: string | undefined): UpdateVerdict {
    if (resourceVersion !== undefined && this.written.get(key) === resourceVersion) {
      this.written.delete(key);
      return 'echo';
    }
    if (resourceVersion !== undefined && this.writing.has(key)) {
      let held = this.held.get(key);
      if (!held) this.held.set(key, (held = new Set()));
      held.add(resourceVersion);
      return 'held';
    }
    return 'news';
  }

  /** A schedule deleted: nothing of it is kept. */
  forget(key: string): void {
    this.written.delete(key);
    this.held.delete(key);
  }
}
