/**
 * Kubernetes Events, so `kubectl describe snapsched` tells what happened. Best effort:
 * never fails a pass.
 *
 * Aggregated like client-go's recorder: one Event object per (object, type, reason) whose
 * `count` grows and whose message and `lastTimestamp` follow the latest occurrence, instead
 * of a new object per repeat. The name is derived from that key, so a restarted controller
 * or the next `snapcron tick` bumps the same object. Writes go through the client's rate
 * limit (and the leader fence, when the client has one).
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Kube } from './client.ts';
import { NotLeaderError, statusOf } from './retry.ts';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string | undefined;
}

export type EventType = 'Normal' | 'Warning';

/** The Event object's name for one (object, type, reason): readable prefix, hashed key. */
export function eventName(target: EventTarget, type: EventType, reason: string): string {
  const key = [target.kind, target.namespace, target.name, target.uid ?? '', type, reason].join('\0');
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 16);
  return `${target.name.slice(0, 200).replace(/[^a-z0-9.-]/g, '-')}.${hash}`;
}

/** Events remembered for one-write repeats: a few per schedule at 1,000 schedules, slim. */
const CACHE_LIMIT = 8192;

export class EventRecorder {
  private readonly kube: Kube;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly instance = hostname();
  private readonly pending = new Set<Promise<void>>();
  /** Occurrences not yet written, by Event (namespace/name), folded while a write is on its way. */
  private readonly queued = new Map<
    string,
    { target: EventTarget; type: EventType; reason: string; message: string; repeats: number }
  >();
  private readonly writing = new Set<string>();
  /** Last written version of each event we own, so a repeat is one update, not a read and an update. */
  private readonly known = new Map<string, CoreV1Event>();

  constructor(kube: Kube, log: Logger, now: () => Date = () => new Date()) {
    this.kube = kube;
    this.log = log;
    this.now = now;
  }

  /**
   * Records without making the caller wait: a pass must not hold its schedule while its
   * events queue behind snapshot writes in the write budget. `flush()` waits for them.
   *
   * One write at a time per Event object: repeats that arrive while one is on its way are
   * folded into the next write (count += repeats, the latest message). Without this, two
   * writes of the same Event raced each other into conflicts, each conflict cost a read and
   * another write, and at 1,000 schedules the retries ate the write budget that snapshot
   * creates and deletes need (bench:scale).
   */
  emit(target: EventTarget, type: EventType, reason: string, message: string): void {
    const key = `${target.namespace}/${eventName(target, type, reason)}`;
    const waiting = this.queued.get(key);
    if (waiting) {
      waiting.repeats++;
      waiting.message = message;
      return;
    }
    this.queued.set(key, { target, type, reason, message, repeats: 1 });
    if (this.writing.has(key)) return; // the write on its way picks it up when done
    const p = this.drain(key).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  private async drain(key: string): Promise<void> {
    this.writing.add(key);
    try {
      for (let next = this.queued.get(key); next; next = this.queued.get(key)) {
        this.queued.delete(key);
        await this.record(next.target, next.type, next.reason, next.message, next.repeats);
      }
    } finally {
      this.writing.delete(key);
    }
  }

  /** Waits for every emitted event (before a one-shot process exits). */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Records `repeats` occurrences (count += repeats) and waits for the write. */
  async record(
    target: EventTarget,
    type: EventType,
    reason: string,
    message: string,
    repeats = 1,
  ): Promise<void> {
    const name = eventName(target, type, reason);
    const namespace = target.namespace;
    const now = this.now();
    const text = message.slice(0, 1024);
    try {
      let current = this.known.get(`${namespace}/${name}`);
      for (let attempt = 0; attempt < 3; attempt++) {
        if (!current) {
          try {
            current = await this.kube.write(() =>
              this.kube.core.createNamespacedEvent({
                namespace,
                body: {
                  metadata: { name, namespace },
                  involvedObject: target,
                  type,
                  reason,
                  message: text,
                  firstTimestamp: now,
                  lastTimestamp: now,
                  count: repeats,
                  source: { component: 'snapcron' },
                  reportingComponent: 'snapcron.io/controller',
                  reportingInstance: this.instance,
                },
              }),
            );
            break;
          } catch (err) {
            if (statusOf(err) !== 409) throw err;
            current = await this.kube.read(() => this.kube.core.readNamespacedEvent({ name, namespace }));
          }
        }
        const bumped: CoreV1Event = {
          ...current,
          message: text,
          lastTimestamp: now,
          count: (current.count ?? 1) + repeats,
          reportingInstance: this.instance,
        };
        try {
          current = await this.kube.write(() =>
            this.kube.core.replaceNamespacedEvent({ name, namespace, body: bumped }),
          );
          break;
        } catch (err) {
          // Expired (events have a TTL) or changed by another writer: start again from the server's view.
          if (statusOf(err) !== 404 && statusOf(err) !== 409) throw err;
          current = undefined;
          if (statusOf(err) === 409)
            current = await this.kube.read(() => this.kube.core.readNamespacedEvent({ name, namespace }));
        }
      }
      if (current) this.remember(`${namespace}/${name}`, current);
    } catch (err) {
      this.known.delete(`${namespace}/${name}`);
      if (err instanceof NotLeaderError) return;
      this.log.warn({ err, reason, object: `${namespace}/${target.name}` }, 'could not record event');
    }
  }

  private remember(key: string, event: CoreV1Event): void {
    this.known.delete(key);
    if (this.known.size >= CACHE_LIMIT) this.known.delete(this.known.keys().next().value as string);
    // What a replace needs, without managedFields and the rest of the server's answer.
    const { metadata, involvedObject, type, reason, message, firstTimestamp, lastTimestamp, count } = event;
    this.known.set(key, {
      metadata: {
        name: metadata.name,
        namespace: metadata.namespace,
        resourceVersion: metadata.resourceVersion,
      },
      involvedObject,
      type,
      reason,
      message,
      firstTimestamp,
      lastTimestamp,
      count,
      source: event.source,
      reportingComponent: event.reportingComponent,
      reportingInstance: event.reportingInstance,
    });
  }
}
