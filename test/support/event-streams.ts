/**
 * A lease-event stream whose client stops reading once it is live (its response and socket
 * paused), as a stalled or malicious client would: what the server sends piles up behind it.
 * A paused socket does not see its end; count the server's open streams instead
 * (`vault_event_streams_open`).
 */
import { request } from 'node:http';
import type { Socket } from 'node:net';

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
