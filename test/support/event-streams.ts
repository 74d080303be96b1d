/**
 * A lease-event stream whose client stops reading once it is live (its response and socket
 * paused), as a stalled or malicious client would: what the server sends piles up behind it.
 * A paused socket does not see its end; count the server's open streams instead
 * (`vault_event_streams_open`).
 */
import { request } from 'node:http';
import type { Socket } from 'node:net';
import type { LeaseEvent, Vault } from '../../src/sdk/index.js';

export function stalledEventStream(baseUrl: string, token: string): Promise<{ socket: Socket }> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: '/v1/leases/events',
        headers: { authorization: `Bearer ${token}` },
      },
      (res) => {
        if (res.statusCode !== 200) return reject(new Error(`events answered ${res.statusCode}`));
        res.pause();
        res.socket.pause();
        resolve({ socket: res.socket });
      },
    );
    req.on('error', () => undefined);
    req.end();
  });
}

/** The server's open event streams, from its /metrics text. */
export const openEventStreams = (metricsText: string): number =>
  Number(/^vault_event_streams_open (\d+)/m.exec(metricsText)?.[1] ?? Number.NaN);

/** A lease-event stream read through the SDK, as a client follows it. */
export interface LeaseEventFollower {
  /** Every event so far. */
  events: LeaseEvent[];
  /** Resolves once the stream is live (the server follows changes from then on). */
  live: Promise<void>;
  /** How the stream ended without being stopped: 'ended' (the server ended it), or the error. */
  ended: Promise<unknown>;
  /** Stops reading and waits for the stream to be closed. */
  stop(): Promise<void>;
}

export function followLeaseEvents(client: Vault): LeaseEventFollower {
  const controller = new AbortController();
  const events: LeaseEvent[] = [];
  let opened!: () => void;
  const live = new Promise<void>((resolve) => {
    opened = resolve;
  });
  const ended = (async () => {
    try {
      for await (const event of client.leases.events({ signal: controller.signal, onOpen: opened }))
        events.push(event);
      return 'ended';
    } catch (err) {
      return err;
    }
  })();
  return {
    events,
    live,
    ended,
    stop: async () => {
      controller.abort();
      await ended;
    },
  };
}
