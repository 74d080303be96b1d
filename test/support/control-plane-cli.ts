/**
 * Starts a throw-away control plane for manual work and keeps it until Ctrl-C:
 *
 *   npx tsx test/support/control-plane-cli.ts [--work-dir DIR]
 *
 * Prints `export KUBECONFIG=...` on stdout (so `eval "$(... | head -1)"` works from another
 * shell); everything else goes to stderr.
 */
import { parseArgs } from 'node:util';
import { startControlPlane } from './control-plane.js';

const { values } = parseArgs({
  options: { 'work-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
});
if (values.help) {
  console.error('usage: control-plane-cli [--work-dir DIR]   (DIR is kept on exit; a temp dir is removed)');
  process.exit(0);
}

const started = Date.now();
const controlPlane = await startControlPlane({ workDir: values['work-dir'] });
const { serverVersion: v } = controlPlane;
console.log(`export KUBECONFIG=${controlPlane.kubeconfigPath}`);
console.error(
  [
    `kube-apiserver ${v.gitVersion} ready at ${controlPlane.server} in ${Date.now() - started} ms`,
    `etcd at ${controlPlane.etcdEndpoint}; files in ${controlPlane.workDir}`,
    'No kubelet and no controllers: pods stay Pending and namespaces get no default ServiceAccount.',
    'Press Ctrl-C to stop and clean up.',
  ].join('\n'),
);

let stopping = false;
const shutdown = async (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  console.error(`\n${signal}: stopping the control plane`);
  await controlPlane.stop();
  process.exit(0);
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
// Keeps the event loop alive until a signal arrives.
setInterval(() => {}, 1 << 30);
