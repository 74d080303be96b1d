/**
 * A small bounded cache whose entries live `ttlMs`, with concurrent loads of one key
 * shared. Used for records read on every request (tokens, policies); the TTL bounds how
 * stale another replica's change can look.
 */
export function createTtlCache<V>(options: { ttlMs: number; maxEntries: number; now?: () => number }) {
  const now = options.now ?? Date.now;
  const entries = new Map<string, { value: V; expires: number }>();
  const loading = new Map<string, Promise<V>>();
  let generation = 0;

  return {
    async get(key: string, load: () => Promise<V>): Promise<V> {
      const hit = entries.get(key);
      if (hit && hit.expires > now()) return hit.value;
      const pending = loading.get(key);
      if (pending) return pending;
      const started = generation;
      const promise = load().then(
        (value) => {
          loading.delete(key);
          // An invalidation while loading means the value may predate a local write.
          if (started === generation) {
            if (entries.size >= options.maxEntries) entries.delete(entries.keys().next().value as string);
            entries.set(key, { value, expires: now() + options.ttlMs });
          }
          return value;
        },
        (err: unknown) => {
          loading.delete(key);
          throw err;
        },
      );
      loading.set(key, promise);
      return promise;
    },
    /** When the entry of `key` expires (on the cache's clock), or undefined when there is none. */
    expiresAt(key: string): number | undefined {
      return entries.get(key)?.expires;
    },
    delete(key: string) {
      generation += 1;
      entries.delete(key);
      loading.delete(key);
    },
    clear() {
      generation += 1;
      entries.clear();
      loading.clear();
    },
  };
}

export type TtlCache<V> = ReturnType<typeof createTtlCache<V>>;
