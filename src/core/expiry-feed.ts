import type { Logger } from '../lib/logger.js';
import { getMany } from '../store/paged.js';
import type { Store } from '../store/store.js';
import { parseRecord } from './deps.js';
import { keys } from './keys.js';
import { leaseIndex } from './lease-index.js';
import type { LeaseRecord } from './lease-record.js';

/**
 * Tells lease-event streams when leases expire, driven by the expiry index: expiry writes
 * nothing to the store, so no watch sees it. One loop per tenant that has subscribers (not a
 * timer per lease per stream) walks `lease-idx/expiry/` from where it last stopped to now, a
 * page at a time, and hands each lease that is still active and still due at that time to
 * every subscriber. So 10,000 leases ending in the same second cost one walk of 10,000 keys
 * and their records, whatever the number of streams, and a stream opened after a lease was
 * issued still hears of its expiry.
 */
export function createExpiryFeed(deps: {
  store: Pick<Store, 'range' | 'get' | 'getMany'>;
  clock: () => Date;
  logger: Logger;
  /** How often each tenant's index is looked at (ms). */
  intervalMs?: number;
}) {
  const { store, clock, logger } = deps;
  const intervalMs = deps.intervalMs ?? 500;
  const tenants = new Map<string, TenantFeed>();

  interface TenantFeed {
    subscribers: Set<(lease: LeaseRecord) => void>;
    /** Expiries up to and including this time (epoch ms) have been handed out. */
    through: number;
    timer?: NodeJS.Timeout;
  }

  async function walk(tenant: string, feed: TenantFeed) {
    const now = clock().getTime();
    const prefix = leaseIndex.expiry(tenant);
    let after = leaseIndex.expiryAfter(tenant, new Date(feed.through));
    for (;;) {
      const page = await store.range(prefix, { limit: PAGE, startAfter: after });
      const due = page.kvs.filter((kv) => leaseIndex.timeOf(kv.key) <= now);
      const records = await getMany(
        store,
        due.map((kv) => keys.lease(tenant, leaseIndex.idOf(kv.key))),
      );
      for (const [i, record] of records.entries()) {
        if (!record) continue;
        const lease = parseRecord<LeaseRecord>(record.value);
        // Renewed or revoked since the index was read: its new key is found on a later walk.
        if (lease.state !== 'active' || Date.parse(lease.expiresAt) !== leaseIndex.timeOf(due[i]!.key))
          continue;
        for (const subscriber of feed.subscribers) subscriber(lease);
      }
      if (due.length < page.kvs.length || !page.more || page.kvs.length === 0) break;
      after = page.kvs.at(-1)!.key;
    }
    feed.through = now;
  }

  function schedule(tenant: string, feed: TenantFeed) {
    feed.timer = setTimeout(() => {
      walk(tenant, feed)
        .catch((err: unknown) =>
          logger.warn({ tenant, err: (err as Error).message }, 'expiry walk failed; retrying'),
        )
        .finally(() => {
          if (tenants.get(tenant) === feed) schedule(tenant, feed);
        });
    }, intervalMs);
    feed.timer.unref();
  }

  return {
    /** Calls `onExpired` for each lease of `tenant` that expires from now on; returns the unsubscribe. */
    subscribe(tenant: string, onExpired: (lease: LeaseRecord) => void): () => void {
      let feed = tenants.get(tenant);
      if (!feed) {
        feed = { subscribers: new Set(), through: clock().getTime() };
        tenants.set(tenant, feed);
        schedule(tenant, feed);
      }
      feed.subscribers.add(onExpired);
      const mine = feed;
      return () => {
        mine.subscribers.delete(onExpired);
        if (mine.subscribers.size === 0 && tenants.get(tenant) === mine) {
          clearTimeout(mine.timer);
          tenants.delete(tenant);
        }
      };
    },
    /** Tenants being followed now (for tests). */
    followed: () => [...tenants.keys()],
  };
}

export type ExpiryFeed = ReturnType<typeof createExpiryFeed>;

/** Index keys read per request. */
const PAGE = 500;
