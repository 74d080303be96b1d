/**
 * Several API replicas behind one address, as a Kubernetes Service puts them: a TCP proxy on
 * 127.0.0.1 that hands each new connection to the next backend in turn (keep-alive clients
 * stay on the replica their connection landed on). A backend that refuses the connection is
 * skipped for that connection, as a Service drops an endpoint that is not ready; a client
 * whose connection was on a replica that died sees the connection end, and reconnects.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface RoundRobinProxy {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** How many connections each backend was given. */
  counts(): number[];
  close(): Promise<void>;
}

export async function startRoundRobinProxy(backends: string[]): Promise<RoundRobinProxy> {
  const targets = backends.map((backend) => {
    const url = new URL(backend);
    return { host: url.hostname, port: Number(url.port) };
  });
  const counts = targets.map(() => 0);
  const sockets = new Set<Socket>();
  let next = 0;

  const pipeTo = (client: Socket, tried: number) => {
    if (tried >= targets.length) return void client.destroy();
    const index = next++ % targets.length;
    const upstream = connect(targets[index]!);
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      counts[index]! += 1;
      client.pipe(upstream).pipe(client);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
      client.resume();
    });
    upstream.once('error', () => {
      if (!connected) pipeTo(client, tried + 1);
      else client.destroy();
    });
  };

  const server: Server = createServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    client.pause();
    pipeTo(client, 0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the proxy has no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    counts: () => [...counts],
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
