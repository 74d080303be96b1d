import type { Logger } from '../lib/logger.js';
import type { Store, Watcher } from '../store/store.js';
import { parseRecord } from './deps.js';
import { keys } from './keys.js';
import type { LeaseRecord } from './lease-record.js';

/**
 * Tells lease-event streams of every lease write of a tenant through one store watch per
 * tenant that has subscribers, each change parsed once: a bulk revocation of 10,000 leases
 * followed by 150 agents' streams is 10,000 changes read from the store, not 1.5 million
 * (one watch per stream, each reading and parsing every change of the tenant).
 */
export function createLeaseChanges(deps: { store: Pick<Store, 'watch'>; logger: Logger }) {
  const { store, logger } = deps;
  const tenants = new Map<string, TenantChanges>();

  interface Subscriber {
    onLease: (lease: LeaseRecord) => void;
    onError: (err: Error) => void;
  }

  interface TenantChanges {
    subscribers: Set<Subscriber>;
    /** The store watch, once it follows changes. */
    watching: Promise<Watcher>;
    /** Its last subscriber left and closed it. */
    closed: boolean;
  }

  function follow(tenant: string): TenantChanges {
    const subscribers = new Set<Subscriber>();
    const changes: TenantChanges = {
      subscribers,
      closed: false,
      watching: store.watch(
        keys.leases(tenant),
        0,
        (event) => {
          if (event.type !== 'put' || !event.value) return;
          const lease = parseRecord<LeaseRecord>(event.value);
          for (const subscriber of subscribers) subscriber.onLease(lease);
        },
        {
          onError: (err) => {
            // The store could not keep following: every stream of the tenant ends (its client
            // reconnects), and the next subscriber starts a new watch.
            if (tenants.get(tenant) === changes) tenants.delete(tenant);
            logger.warn({ tenant, err: err.message }, 'lease change watch ended');
            for (const subscriber of subscribers) subscriber.onError(err);
            subscribers.clear();
          },
        },
      ),
    };
    changes.watching.catch(() => {
      if (tenants.get(tenant) === changes) tenants.delete(tenant);
    });
    return changes;
  }

  return {
    /**
     * Calls `onLease` with each lease of `tenant` written from now on (once this resolves, no
     * write is missed), and `onError` if the store stops following; resolves to the unsubscribe.
     */
    async subscribe(
      tenant: string,
      onLease: (lease: LeaseRecord) => void,
      onError: (err: Error) => void,
    ): Promise<() => Promise<void>> {
      let changes = tenants.get(tenant);
      if (!changes) {
        changes = follow(tenant);
        tenants.set(tenant, changes);
      }
      const subscriber = { onLease, onError };
      changes.subscribers.add(subscriber);
      const mine = changes;
      try {
        await mine.watching;
      } catch (err) {
        mine.subscribers.delete(subscriber);
        throw err;
      }
      return async () => {
        mine.subscribers.delete(subscriber);
        if (mine.subscribers.size > 0 || mine.closed) return;
        mine.closed = true;
        if (tenants.get(tenant) === mine) tenants.delete(tenant);
        await (await mine.watching).close();
      };
    },
    /** Tenants with a store watch now (for tests). */
    followed: () => [...tenants.keys()],
  };
}

export type LeaseChanges = ReturnType<typeof createLeaseChanges>;
