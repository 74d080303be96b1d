// `node shared-port.mjs N server ARGS...`: N `vault server` processes sharing one listening
// port through node:cluster (the primary accepts each connection and hands it to the next
// worker), so replicas can be measured with no proxy process in the path. Benchmark only.
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';

const [count, ...args] = process.argv.slice(2);
cluster.setupPrimary({ exec: fileURLToPath(new URL('../../bin/vault.js', import.meta.url)), args });
for (let i = 0; i < Number(count); i++) cluster.fork();
const stop = () => {
  for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  cluster.disconnect(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
