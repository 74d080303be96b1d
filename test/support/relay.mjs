// A byte relay between two stream endpoints, each `unix:PATH` or `tcp:HOST:PORT`:
//   node relay.mjs LISTEN TARGET [PORT_FILE]
// The cluster's network lives in a network namespace of its own; the host reaches its API
// server through a pair of these joined by a Unix socket (path names are not scoped by
// network namespaces): one inside (unix → the API server), one outside (127.0.0.1 → unix).
// With `tcp:127.0.0.1:0` the chosen port is written to PORT_FILE.
import { rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const [listen, target, portFile] = process.argv.slice(2);
if (!listen || !target) {
  process.stderr.write('usage: relay.mjs unix:PATH|tcp:HOST:PORT unix:PATH|tcp:HOST:PORT [PORT_FILE]\n');
  process.exit(2);
}

function endpoint(spec) {
  if (spec.startsWith('unix:')) return { path: spec.slice(5) };
  const match = /^tcp:(.+):(\d+)$/.exec(spec);
  if (!match) throw new Error(`bad endpoint ${spec}: use unix:PATH or tcp:HOST:PORT`);
  return { host: match[1], port: Number(match[2]) };
}

const to = endpoint(target);
const from = endpoint(listen);
const server = createServer((client) => {
  const upstream = connect(to);
  client.pipe(upstream).pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
});
if (from.path) rmSync(from.path, { force: true });
server.listen(from.path ? { path: from.path } : { host: from.host, port: from.port }, () => {
  const address = server.address();
  if (portFile && typeof address === 'object' && address) writeFileSync(portFile, String(address.port));
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
