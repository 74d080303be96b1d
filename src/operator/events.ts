/**
 * Kubernetes events (events.k8s.io/v1) on the objects the controller manages. A repeat of
 * the same event within a short window is dropped, so a hot loop cannot flood the API
 * server. Notes are written by the reconcilers and never carry a value.
 */
import { randomBytes } from 'node:crypto';
import { type KubeClient, resourceTypes } from '../k8s/api-client.js';
import type { ObjectMeta } from '../k8s/resources.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';

type Regarding = { apiVersion?: string; kind?: string; metadata: ObjectMeta };

export interface EventRecorder {
  record(object: Regarding, type: 'Normal' | 'Warning', reason: string, note: string): Promise<void>;
}

const microTime = (date: Date) => date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export function createEventRecorder(deps: {
  client: Pick<KubeClient, 'create'>;
  controller: string;
  instance: string;
  clock: Clock;
  logger: Logger;
  dedupWindowMs?: number;
}): EventRecorder {
  const recent = new Map<string, number>();
  const windowMs = deps.dedupWindowMs ?? 60_000;
  return {
    async record(object, type, reason, note) {
      const now = deps.clock();
      const key = `${object.metadata.uid}/${reason}/${note}`;
      const last = recent.get(key);
      if (last !== undefined && now.getTime() - last < windowMs) return;
      recent.set(key, now.getTime());
      if (recent.size > 10_000) recent.clear();
      const name = `${object.metadata.name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`;
      try {
        await deps.client.create(resourceTypes.events, object.metadata.namespace, {
          apiVersion: 'events.k8s.io/v1',
          kind: 'Event',
          metadata: { name, namespace: object.metadata.namespace },
          eventTime: microTime(now),
          reportingController: deps.controller,
          reportingInstance: deps.instance,
          action: reason,
          reason,
          type,
          note: note.slice(0, 1024),
          regarding: {
            apiVersion: object.apiVersion,
            kind: object.kind,
            name: object.metadata.name,
            namespace: object.metadata.namespace,
            uid: object.metadata.uid,
            resourceVersion: object.metadata.resourceVersion,
          },
        });
      } catch (err) {
        // An event is best effort: losing one must not fail a reconcile.
        deps.logger.warn({ err: String(err), reason }, 'could not record an event');
      }
    },
  };
}
