import type { Clock } from '../lib/clock.js';

/**
 * A fixed-window counter per key: after `limit` failures within `windowMs`, `blocked`
 * answers with the seconds to wait. Bounded in memory.
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

/** The part of a presented token that is counted on its own (`vlt_` and a few characters). */
export const tokenPrefix = (token: string | undefined) => (token ? token.slice(0, 12) : '(none)');

/**
 * Failed authentications, counted by source address and by source and token prefix. It only
 * ever refuses a request whose token is also wrong: a valid token is always served, so a flood
 * of bad tokens from one address (127.0.0.1 is every local client) locks nobody out; it only
 * slows the flood itself down.
 */
export function createAuthLimiter(options: { limit: number; windowMs: number; clock: Clock }) {
  const bySource = createFailureLimiter({ ...options, limit: options.limit * 5 });
  const bySourceAndPrefix = createFailureLimiter(options);
  const keyOf = (source: string, token: string | undefined) => `${source}\u0000${tokenPrefix(token)}`;
  return {
    fail(source: string, token: string | undefined) {
      bySource.fail(source);
      bySourceAndPrefix.fail(keyOf(source, token));
    },
    /** Seconds a failed attempt from here with this token must wait, else undefined. */
    blocked(source: string, token: string | undefined): number | undefined {
      return bySourceAndPrefix.blocked(keyOf(source, token)) ?? bySource.blocked(source);
    },
  };
}

export type AuthLimiter = ReturnType<typeof createAuthLimiter>;
