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

const CACHE_LIMIT = 4096;

export class EventRecorder {
  private readonly kube: Kube;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly instance = hostname();
  private readonly pending = new Set<Promise<void>>();
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
   */
  emit(target: EventTarget, type: EventType, reason: string, message: string): void {
    const p = this.record(target, type, reason, message).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Waits for every emitted event (before a one-shot process exits). */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  async record(target: EventTarget, type: EventType, reason: string, message: string): Promise<void> {
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
                  count: 1,
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
          count: (current.count ?? 1) + 1,
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
    this.known.set(key, event);
  }
}
