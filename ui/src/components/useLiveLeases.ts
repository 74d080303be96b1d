import { useEffect, useMemo, useState } from 'preact/hooks';
import { type Api, allActiveLeases, describeError } from '../lib/api.js';
import { type GroupBy, LeaseIndex } from '../lib/lease-index.js';
import { openEventStream } from '../lib/sse.js';
import type { Lease, LeaseEvent } from '../lib/types.js';

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'stopped';

/**
 * A busy stream re-renders the list at most this often: every update costs a render, layout
 * and paint, and on a loaded machine fewer, larger batches keep frames short. An event still
 * shows within about a tenth of a second.
 */
const MIN_FLUSH_MS = 100;

/**
 * Active leases: a snapshot from GET /v1/leases taken once the event stream is open, then
 * every event applied. Events are applied in batches on an animation frame (at most one batch
 * per MIN_FLUSH_MS), each batch one render; a lease leaves when it expires (one timer, at the
 * soonest expiry).
 * Reconnects with backoff. `version` changes whenever `index` does.
 */
export function useLiveLeases(api: Api, groupBy: GroupBy = 'identity') {
  const index = useMemo(() => new LeaseIndex(groupBy), [api]);
  const [version, setVersion] = useState(index.version);
  const [stream, setStream] = useState<{ state: StreamState; detail?: string }>({ state: 'connecting' });

  if (index.groupBy !== groupBy) index.setGroupBy(groupBy);

  useEffect(() => {
    const controller = new AbortController();
    let pending: LeaseEvent[] = [];
    let frame = 0;
    let wait: ReturnType<typeof setTimeout> | undefined;
    let flushedAt = 0;
    let attempt = 0;
    let expiryTimer: ReturnType<typeof setTimeout> | undefined;
    let expiryAt: number | undefined;
    // Ids the stream has told about since it (re)opened: newer than any snapshot.
    let seen = new Map<string, Lease | undefined>();

    const changed = () => {
      const next = index.earliestExpiry();
      if (next !== expiryAt) {
        clearTimeout(expiryTimer);
        expiryAt = next;
        // Timers past ~24.8 days overflow; a day is plenty, it re-arms.
        if (next !== undefined) {
          expiryTimer = setTimeout(
            () => {
              expiryAt = undefined;
              index.expire(Date.now());
              changed();
            },
            Math.min(86_400_000, Math.max(0, next - Date.now() + 5)),
          );
        }
      }
      setVersion(index.version);
    };

    const flush = (now: number) => {
      frame = 0;
      if (now - flushedAt < MIN_FLUSH_MS) {
        wait = setTimeout(
          () => {
            wait = undefined;
            frame = requestAnimationFrame(flush);
          },
          MIN_FLUSH_MS - (now - flushedAt),
        );
        return;
      }
      flushedAt = now;
      const batch = pending;
      pending = [];
      if (index.apply(batch)) changed();
    };

    const connect = () => {
      seen = new Map();
      void openEventStream('/v1/leases/events', api.headers(), controller.signal, {
        onOpen() {
          attempt = 0;
          setStream({ state: 'live' });
          allActiveLeases(api).then(
            (list) => {
              if (controller.signal.aborted) return;
              const merged = list.filter((lease) => !seen.has(lease.id));
              for (const lease of seen.values()) if (lease) merged.push(lease);
              // Every event not yet applied is in `seen`, so in `merged`.
              pending = [];
              index.replaceAll(merged);
              changed();
            },
            (err: unknown) =>
              setStream({ state: 'live', detail: `could not list leases: ${describeError(err)}` }),
          );
        },
        onMessage(message) {
          if (message.event === 'end') return;
          let event: LeaseEvent;
          try {
            event = JSON.parse(message.data) as LeaseEvent;
          } catch {
            return;
          }
          seen.set(
            event.lease.id,
            event.type === 'issued' || event.type === 'renewed' ? event.lease : undefined,
          );
          pending.push(event);
          if (!frame && !wait) frame = requestAnimationFrame(flush);
        },
        onClose(reason, retry) {
          if (controller.signal.aborted) return;
          if (!retry) {
            setStream({ state: 'stopped', detail: reason });
            return;
          }
          attempt += 1;
          const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
          setStream({ state: 'reconnecting', detail: reason });
          setTimeout(() => controller.signal.aborted || connect(), delay);
        },
      });
    };
    connect();
    return () => {
      controller.abort();
      clearTimeout(expiryTimer);
      clearTimeout(wait);
      if (frame) cancelAnimationFrame(frame);
    };
  }, [index]);

  /** Removes leases the user just revoked, before their events arrive. */
  const forget = (ids: readonly string[]) => {
    if (index.remove(ids)) setVersion(index.version);
  };

  return { index, version, stream, forget };
}
