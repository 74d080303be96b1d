import { useEffect, useState } from 'preact/hooks';
import { type Api, allActiveLeases, describeError } from '../lib/api.js';
import { applyLeaseEvents, type LeaseMap } from '../lib/leases.js';
import { openEventStream } from '../lib/sse.js';
import type { Lease, LeaseEvent } from '../lib/types.js';

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'stopped';

/**
 * Active leases: a snapshot from GET /v1/leases taken once the event stream is open, then
 * every event applied, batched to one render per animation frame. Reconnects with backoff.
 */
export function useLiveLeases(api: Api) {
  const [leases, setLeases] = useState<LeaseMap>(() => new Map());
  const [stream, setStream] = useState<{ state: StreamState; detail?: string }>({ state: 'connecting' });

  useEffect(() => {
    const controller = new AbortController();
    let pending: LeaseEvent[] = [];
    let frame = 0;
    let attempt = 0;
    // Ids the stream has told about since it (re)opened: newer than any snapshot.
    let seen = new Map<string, Lease | undefined>();

    const flush = () => {
      frame = 0;
      const batch = pending;
      pending = [];
      setLeases((current) => applyLeaseEvents(current, batch));
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
              setLeases(() => {
                const next = new Map<string, Lease>();
                for (const lease of list) if (!seen.has(lease.id)) next.set(lease.id, lease);
                for (const [id, lease] of seen) if (lease) next.set(id, lease);
                return next;
              });
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
          if (!frame) frame = requestAnimationFrame(flush);
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
      if (frame) cancelAnimationFrame(frame);
    };
  }, [api]);

  /** Removes leases the user just revoked, before their events arrive. */
  const forget = (ids: readonly string[]) =>
    setLeases((current) => {
      const next = new Map(current);
      for (const id of ids) next.delete(id);
      return next;
    });

  return { leases, stream, forget };
}
