/**
 * A TCP proxy on 127.0.0.1 in front of a real server that can be made to hang: `hang()` cuts
 * every open connection and then accepts new ones without ever answering (as a hung server
 * or a black-holed route does); `resume()` forwards again. The server behind it stays the
 * same, so a credential pointing at the proxy keeps naming one server throughout. `freeze()`
 * drops every byte both ways while keeping the connections open (a route that black-holes
 * packets: no reset, no error, only silence).
 */
import { connect, createServer, type Socket } from 'node:net';

export interface HangingProxy {
  port: number;
  /** `url` (e.g. the database's admin URL) pointed at the proxy instead of the server. */
  urlThrough(url: string): string;
  hang(): void;
  freeze(): void;
  /** Requests still reach the server; its answers are dropped (a reply lost on the way back). */
  muteAnswers(): void;
  /** Answers get through again; the connections stay as they are (an answer dropped stays lost). */
  unmuteAnswers(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startHangingProxy(
  target: { host: string; port: number },
  options: { port?: number } = {},
): Promise<HangingProxy> {
  let hung = false;
  let frozen = false;
  let muted = false;
  const open = new Set<Socket>();
  const track = (socket: Socket) => {
    open.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => open.delete(socket));
  };
  const server = createServer((client) => {
    track(client);
    if (hung) return; // accepted, never answered
    const upstream = connect(target);
    track(upstream);
    const forward = (from: Socket, to: Socket, answers: boolean) =>
      from
        .on('data', (chunk: Buffer) => {
          if (!frozen && !(answers && muted)) to.write(chunk);
        })
        .on('end', () => to.end());
    forward(client, upstream, false);
    forward(upstream, client, true);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const cut = () => {
    for (const socket of open) socket.destroy();
  };
  const port = (server.address() as { port: number }).port;
  return {
    port,
    urlThrough(url) {
      const through = new URL(url);
      through.hostname = '127.0.0.1';
      through.port = String(port);
      return through.toString();
    },
    hang() {
      hung = true;
      cut();
    },
    freeze() {
      frozen = true;
    },
    muteAnswers() {
      muted = true;
    },
    unmuteAnswers() {
      muted = false;
    },
    resume() {
      hung = false;
      frozen = false;
      muted = false;
      cut();
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
