import type { Clock } from '../lib/clock.js';

/**
 * Unwrapped tenant keys, so that opening a value does not call the root key (perhaps a KMS)
 * every time. Bounded (least recently used out first) and short-lived: a tenant key version
 * never changes, but another replica may shred it, and this cache forgets it within `ttlMs`.
 */
export interface KeyCache {
  get(tenant: string, version: number): Buffer | undefined;
  set(tenant: string, version: number, key: Buffer): void;
  forgetTenant(tenant: string): void;
}

export function createKeyCache(options: { clock: Clock; maxEntries: number; ttlMs: number }): KeyCache {
  const entries = new Map<string, { tenant: string; key: Buffer; expiresAt: number }>();
  const id = (tenant: string, version: number) => `${tenant}\u0000${version}`;

  return {
    get(tenant, version) {
      const name = id(tenant, version);
      const entry = entries.get(name);
      if (!entry) return undefined;
      entries.delete(name);
      if (entry.expiresAt <= options.clock().getTime()) return undefined;
      entries.set(name, entry);
      return entry.key;
    },
    set(tenant, version, key) {
      if (options.maxEntries <= 0 || options.ttlMs <= 0) return;
      const name = id(tenant, version);
      entries.delete(name);
      entries.set(name, { tenant, key, expiresAt: options.clock().getTime() + options.ttlMs });
      while (entries.size > options.maxEntries) {
        const oldest = entries.keys().next().value as string;
        entries.delete(oldest);
      }
    },
    forgetTenant(tenant) {
      for (const [name, entry] of entries) if (entry.tenant === tenant) entries.delete(name);
    },
  };
}
