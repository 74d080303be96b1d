import { createTtlCache } from '../lib/ttl-cache.js';
import type { KeyValue, Store } from '../store/store.js';

/**
 * Reads of the records every request needs — token hashes, identities, policies — cached
 * for `ttlMs` (1 s by default). A change made through this process is seen at once (its
 * writer invalidates the key); a change made through another replica within the TTL. A
 * revoked token is the exception: every commit compares the caller's token record
 * (committer.ts), so no replica commits — or returns a value — for a revoked token.
 */
export function createRecordCache(store: Store, ttlMs: number) {
  const cache = createTtlCache<KeyValue | undefined>({ ttlMs, maxEntries: 50_000 });
  let invalidations = 0;
  return {
    ttlMs,
    get: (key: string) => (ttlMs > 0 ? cache.get(key, () => store.get(key)) : store.get(key)),
    invalidate: (key: string) => {
      invalidations++;
      cache.delete(key);
    },
    /**
     * Counts invalidations: an answer derived from cached records (a token's rights) may be
     * kept for `ttlMs` while this has not moved, as the records themselves would be.
     */
    generation: () => invalidations,
    /**
     * Until when (Date.now ms) the cached ones among `keys` are all still served as they are:
     * an answer derived from them is no fresher than the oldest. Keys not cached do not bound it.
     */
    cachedUntil: (keys: string[]) =>
      Math.min(...keys.map((key) => cache.expiresAt(key) ?? Number.POSITIVE_INFINITY)),
  };
}

/**
 * Sealed value records never change once written (a new version is a new key), so they
 * are cached longer; whether the version may still be used is decided from the credential
 * and lease records, which are always read fresh.
 */
export function createSealedCache(store: Store) {
  const cache = createTtlCache<KeyValue | undefined>({ ttlMs: 10 * 60_000, maxEntries: 10_000 });
  return {
    /** `cacheKey` names the record together with what makes it unique (see leases.ts). */
    get: async (cacheKey: string, key: string) => {
      const kv = await cache.get(cacheKey, () => store.get(key));
      if (!kv) cache.delete(cacheKey);
      return kv;
    },
  };
}

export type RecordCache = ReturnType<typeof createRecordCache>;
export type SealedCache = ReturnType<typeof createSealedCache>;
