import type { Clock } from '../lib/clock.js';

/**
 * A fixed-window counter per key (source address): after `limit` failures within
 * `windowMs`, `blocked` answers with the seconds to wait. Bounded in memory.
 */
export function createFailureLimiter(options: {
  limit: number;
  windowMs: number;
  clock: Clock;
  maxKeys?: number;
}) {
  const windows = new Map<string, { start: number; count: number }>();
  const maxKeys = options.maxKeys ?? 10_000;
  const current = (key: string) => {
    const now = options.clock().getTime();
    const entry = windows.get(key);
    if (!entry || now - entry.start >= options.windowMs) return { start: now, count: 0 };
    return entry;
  };
  return {
    fail(key: string) {
      const entry = current(key);
      entry.count += 1;
      if (windows.size >= maxKeys && !windows.has(key)) windows.delete(windows.keys().next().value as string);
      windows.set(key, entry);
    },
    /** Seconds to wait when the key is over its limit, else undefined. */
    blocked(key: string): number | undefined {
      const entry = current(key);
      if (entry.count < options.limit) return undefined;
      return Math.max(1, Math.ceil((entry.start + options.windowMs - options.clock().getTime()) / 1000));
    },
  };
}

export type FailureLimiter = ReturnType<typeof createFailureLimiter>;
