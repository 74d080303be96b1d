import { useEffect, useState } from 'preact/hooks';

/** The current time, refreshed every `everyMs` (the TTL bars run down with it). */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}

const listeners = new Set<(now: number) => void>();
let ticker: ReturnType<typeof setInterval> | undefined;

/**
 * One shared one-second clock for many subscribers (every TTL bar), so a thousand rows cost
 * one timer and one render pass, not a thousand. Returns the unsubscribe function.
 */
export function onSecond(listener: (now: number) => void): () => void {
  listeners.add(listener);
  ticker ??= setInterval(() => {
    const now = Date.now();
    for (const l of listeners) l(now);
  }, 1000);
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0 && ticker !== undefined) {
      clearInterval(ticker);
      ticker = undefined;
    }
  };
}

/**
 * A timestamp that changes when the earliest of `times` (epoch ms) has passed, and not every
 * second: what a view needs to drop expired entries without re-rendering on each tick.
 */
export function useExpiryClock(times: Iterable<number>): number {
  const [now, setNow] = useState(Date.now);
  let earliest = Number.POSITIVE_INFINITY;
  for (const t of times) if (t > now && t < earliest) earliest = t;
  useEffect(() => {
    if (!Number.isFinite(earliest)) return;
    // Timers past ~24.8 days overflow; a day is plenty, it re-arms.
    const timer = setTimeout(() => setNow(Date.now()), Math.min(86_400_000, earliest - Date.now() + 5));
    return () => clearTimeout(timer);
  }, [earliest]);
  return now;
}
