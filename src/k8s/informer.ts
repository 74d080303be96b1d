/**
 * A list-watch cache that keeps going. client-node's informer stops for good on most watch
 * errors; this one relists on `410 Gone` (the resourceVersion fell out of etcd's window),
 * re-watches from the last seen resourceVersion when a stream ends or the API server
 * restarts, backs off exponentially (with jitter) on failures, and replays the cache to its
 * handlers on a resync period so that missed timers and external state get another look.
 */

import { interruptibleSleep } from '../lib/interruptible-sleep.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import { isStatus, type KubeClient, type ResourceType } from './api-client.js';
import type { KubeObject } from './resources.js';

export interface InformerHandlers<T> {
  onAdd?(object: T): void;
  onUpdate?(object: T, old: T): void;
  onDelete?(object: T): void;
  /** Every cached object, once per resync period. */
  onResync?(object: T): void;
}

export interface InformerOptions {
  client: KubeClient;
  type: ResourceType;
  namespace?: string;
  labelSelector?: string;
  /** Replay the cache to onResync this often; 0 disables (default 10 min). */
  resyncMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  logger?: Logger;
  /** Called when a list or watch fails (for metrics). */
  onError?(err: unknown): void;
}

export interface Informer<T> {
  /** Starts listing and watching; resolves once the first list is in the cache. */
  start(): Promise<void>;
  stop(): Promise<void>;
  get(namespace: string, name: string): T | undefined;
  list(namespace?: string): T[];
  addHandlers(handlers: InformerHandlers<T>): void;
  readonly synced: boolean;
}

const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

export function createInformer<T extends KubeObject>(options: InformerOptions): Informer<T> {
  const { client, type } = options;
  const logger = (options.logger ?? silentLogger).child({ informer: type.plural });
  const backoff = options.backoff ?? { initialMs: 200, maxMs: 30_000 };
  const resyncMs = options.resyncMs ?? 600_000;
  const cache = new Map<string, T>();
  const handlers: InformerHandlers<T>[] = [];
  let stopped = false;
  let synced = false;
  let resourceVersion = '';
  let abortWatch: (() => void) | undefined;
  let resyncTimer: NodeJS.Timeout | undefined;
  let loop: Promise<void> | undefined;
  let resolveSynced: () => void = () => {};
  const syncedOnce = new Promise<void>((resolve) => {
    resolveSynced = resolve;
  });

  const emit = (fn: (h: InformerHandlers<T>) => void) => {
    for (const h of handlers) {
      try {
        fn(h);
      } catch (err) {
        logger.error({ err }, 'informer handler failed');
      }
    }
  };

  function upsert(object: T) {
    const key = keyOf(object);
    const old = cache.get(key);
    if (old && old.metadata.resourceVersion === object.metadata.resourceVersion) return;
    cache.set(key, object);
    if (old) emit((h) => h.onUpdate?.(object, old));
    else emit((h) => h.onAdd?.(object));
  }

  function remove(object: T) {
    const key = keyOf(object);
    const old = cache.get(key);
    if (!old) return;
    cache.delete(key);
    emit((h) => h.onDelete?.(old));
  }

  /** Replaces the cache with a fresh list, emitting what changed since the last one. */
  function replace(items: T[]) {
    const seen = new Set<string>();
    for (const item of items) {
      seen.add(keyOf(item));
      upsert(item);
    }
    for (const [key, old] of cache) if (!seen.has(key)) remove(old);
  }

  const { sleep, wake } = interruptibleSleep();

  async function run() {
    let needList = true;
    let failures = 0;
    while (!stopped) {
      try {
        if (needList) {
          const listed = await client.list<T>(type, {
            namespace: options.namespace,
            labelSelector: options.labelSelector,
          });
          if (stopped) return;
          replace(listed.items);
          resourceVersion = listed.resourceVersion;
          needList = false;
          if (!synced) {
            synced = true;
            resolveSynced();
          }
        }
        let gone = false;
        const handle = await client.watch<T>(
          type,
          {
            namespace: options.namespace,
            labelSelector: options.labelSelector,
            resourceVersion,
            // The server ends the stream after this; a jitter keeps replicas from relisting in step.
            timeoutSeconds: 240 + Math.floor(Math.random() * 120),
          },
          (event) => {
            if (event.type === 'ERROR') {
              const status = event.object as unknown as { code?: number; message?: string };
              if (status.code === 410) gone = true;
              else logger.warn({ code: status.code, message: status.message }, 'watch error event');
              abortWatch?.();
              return;
            }
            const rv = event.object.metadata?.resourceVersion;
            if (rv) resourceVersion = rv;
            if (event.type === 'ADDED' || event.type === 'MODIFIED') upsert(event.object);
            else if (event.type === 'DELETED') remove(event.object);
          },
        );
        abortWatch = handle.abort;
        if (stopped) handle.abort();
        failures = 0;
        const err = await handle.done;
        abortWatch = undefined;
        if (gone) {
          logger.info('watch expired (410 Gone); relisting');
          needList = true;
        } else if (err && !stopped) {
          throw err;
        }
      } catch (err) {
        if (stopped) return;
        if (isStatus(err, 410)) {
          needList = true;
          continue;
        }
        failures++;
        options.onError?.(err);
        const delay = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(failures - 1, 16));
        const jittered = delay / 2 + Math.random() * (delay / 2);
        logger.warn({ err: String(err), retryInMs: Math.round(jittered) }, 'list/watch failed; retrying');
        await sleep(jittered);
      }
    }
  }

  return {
    get synced() {
      return synced;
    },
    async start() {
      stopped = false;
      loop = run();
      if (resyncMs > 0) {
        resyncTimer = setInterval(() => {
          for (const object of cache.values()) emit((h) => h.onResync?.(object));
        }, resyncMs);
      }
      await Promise.race([syncedOnce, loop]);
    },
    async stop() {
      stopped = true;
      if (resyncTimer) clearInterval(resyncTimer);
      abortWatch?.();
      wake();
      await loop;
    },
    get: (namespace, name) => cache.get(`${namespace}/${name}`),
    list: (namespace) =>
      [...cache.values()].filter((o) => namespace === undefined || o.metadata.namespace === namespace),
    addHandlers(h) {
      handlers.push(h);
    },
  };
}
