/** Kubernetes Events, so `kubectl describe snapsched` tells what happened. Best effort: never fails a pass. */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Kube } from './client.ts';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string | undefined;
}

export type EventType = 'Normal' | 'Warning';

export class EventRecorder {
  private readonly kube: Kube;
  private readonly log: Logger;
  private readonly instance = hostname();
  constructor(kube: Kube, log: Logger) {
    this.kube = kube;
    this.log = log;
  }

  async record(target: EventTarget, type: EventType, reason: string, message: string): Promise<void> {
    const now = new Date();
    try {
      await this.kube.core.createNamespacedEvent({
        namespace: target.namespace,
        body: {
          metadata: { generateName: `${target.name.slice(0, 200)}.`, namespace: target.namespace },
          involvedObject: target,
          type,
          reason,
          message: message.slice(0, 1024),
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
          source: { component: 'snapcron' },
          reportingComponent: 'snapcron.io/controller',
          reportingInstance: this.instance,
        },
      });
    } catch (err) {
      this.log.warn({ err, reason, object: `${target.namespace}/${target.name}` }, 'could not record event');
    }
  }
}
