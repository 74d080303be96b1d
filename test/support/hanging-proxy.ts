/**
 * A TCP proxy on 127.0.0.1 in front of a real server that can be made to hang: `hang()` cuts
 * every open connection and then accepts new ones without ever answering (as a hung server
 * or a black-holed route does); `resume()` forwards again. The server behind it stays the
 * same, so a credential pointing at the proxy keeps naming one server throughout. `freeze()`
 * drops every byte both ways while keeping the connections open (a route that black-holes
 * packets: no reset, no error, only silence). `stallBodies()` lets each answer's status line and
 * headers through and then nothing more on that connection (a reply cut off mid-way).
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
  /**
   * Cuts every open connection; answers on those opened from now on stop after their headers,
   * until `unstallBodies()`.
   */
  stallBodies(): void;
  /** New connections forward whole answers again; stalled ones stay stalled. */
  unstallBodies(): void;
  /** Answers arrive `ms` late (0: at once again); requests still reach the server at once. */
  delayAnswers(ms: number): void;
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
  let stalling = false;
  let delayMs = 0;
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
    // Bytes of this connection's answers still to pass before its first header block ends
    // (stalled connections only); once through, nothing more passes.
    let head = stalling ? Buffer.alloc(0) : undefined;
    let stalled = false;
    const headersOnly = (chunk: Buffer): Buffer | undefined => {
      if (!head) return chunk;
      if (stalled) return undefined;
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return chunk;
      stalled = true;
      return chunk.subarray(0, Math.max(0, chunk.length - (head.length - (end + 4))));
    };
    const forward = (from: Socket, to: Socket, answers: boolean) =>
      from
        .on('data', (chunk: Buffer) => {
          if (frozen || (answers && muted)) return;
          const passing = answers ? headersOnly(chunk) : chunk;
          if (!passing || passing.length === 0) return;
          if (answers && delayMs > 0) setTimeout(() => to.write(passing), delayMs);
          else to.write(passing);
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
    stallBodies() {
      stalling = true;
      cut();
    },
    unstallBodies() {
      stalling = false;
    },
    delayAnswers(ms) {
      delayMs = ms;
    },
    resume() {
      hung = false;
      frozen = false;
      muted = false;
      stalling = false;
      delayMs = 0;
      cut();
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
