/**
 * The real single-node cluster of the end-to-end tests (test/cluster/cluster.sh): a kubelet
 * that runs real containers, kube-proxy, CoreDNS, in namespaces of its own. A suite starts
 * it once, builds the project's image from the Dockerfile into it, and drives it the way a
 * platform team does: kubectl and helm with an admin kubeconfig, `kubectl exec` into pods,
 * `kubectl port-forward` to reach Services from the host.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveAssets } from './assets.js';
import { type CommandOptions, type CommandResult, runCommand } from './control-plane.js';

const script = fileURLToPath(new URL('../cluster/cluster.sh', import.meta.url));

/** Why the cluster cannot run here, or undefined when it can. */
export function clusterUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'the real-node cluster needs Linux';
  if (process.getuid?.() !== 0) return 'the real-node cluster needs root (namespaces, cgroups)';
  if (!existsSync('/sys/fs/cgroup/memory')) return 'the real-node cluster needs cgroup v1 memory controller';
  return undefined;
}

export interface PortForward {
  readonly port: number;
  close(): void;
}

export interface Cluster {
  readonly runDir: string;
  readonly kubeconfigPath: string;
  kubectl(args: string[], options?: CommandOptions): Promise<CommandResult>;
  /** kubectl that throws with its stderr on a non-zero exit, and returns stdout. */
  k(args: string[], options?: CommandOptions): Promise<string>;
  helm(args: string[], options?: CommandOptions): Promise<CommandResult>;
  /** `kubectl port-forward` to a local port; resolves once it forwards. */
  portForward(namespace: string, target: string, remotePort: number): Promise<PortForward>;
  /** Imports an OCI layout directory or a Docker archive into the node's containerd. */
  importImage(src: string): Promise<void>;
  /** Gives an image of the node more names, as if the node had pulled it under each. */
  tagImage(image: string, names: string[]): Promise<void>;
  /** The last lines of a component's log (kubelet, containerd, kube-apiserver, ...). */
  log(component: string, lines?: number): string;
  stop(): Promise<void>;
}

async function sh(args: string[], timeoutMs: number): Promise<void> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined),
  );
  const result = await runCommand('bash', [script, ...args], { timeoutMs, env });
  if (result.code !== 0) {
    throw new Error(`cluster.sh ${args.join(' ')} failed (${result.code}):\n${result.stderr.slice(-6000)}`);
  }
}

/** Starts the cluster and imports the image built from the Dockerfile. */
export async function startCluster(): Promise<Cluster> {
  const runDir = await mkdtemp(join(tmpdir(), 'vault-cluster-'));
  // up builds whatever is missing from the cache first; a cold build takes many minutes.
  try {
    await sh(['up', runDir], 60 * 60_000);
    await sh(['image', runDir], 30 * 60_000);
  } catch (err) {
    await sh(['down', runDir], 120_000).catch(() => {});
    throw err;
  }
  const kubeconfigPath = join(runDir, 'admin.kubeconfig');
  const assets = resolveAssets();
  const helmHome = join(runDir, 'helm-home');
  const env = (extra?: Record<string, string>) => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: helmHome,
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_DATA_HOME: join(helmHome, 'data'),
    KUBECONFIG: kubeconfigPath,
    ...extra,
  });
  const forwards = new Set<ChildProcess>();
  const kubectl = (args: string[], options: CommandOptions = {}) =>
    runCommand(assets.kubectl, args, { ...options, env: env(options.env) });

  return {
    runDir,
    kubeconfigPath,
    kubectl,
    async k(args, options) {
      const result = await kubectl(args, options);
      if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr.trim()}`);
      return result.stdout;
    },
    helm: (args, options = {}) => runCommand(assets.helm, args, { ...options, env: env(options.env) }),
    portForward(namespace, target, remotePort) {
      return new Promise((resolve, reject) => {
        const child = spawn(
          assets.kubectl,
          ['-n', namespace, 'port-forward', '--address', '127.0.0.1', target, `:${remotePort}`],
          { env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
        );
        forwards.add(child);
        let out = '';
        const timer = setTimeout(() => {
          child.kill();
          reject(new Error(`port-forward ${target}: no port after 30 s: ${out}`));
        }, 30_000);
        const onData = (chunk: Buffer) => {
          out += chunk.toString();
          const match = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
          if (match) {
            clearTimeout(timer);
            resolve({
              port: Number(match[1]),
              close: () => {
                child.kill();
                forwards.delete(child);
              },
            });
          }
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        child.on('exit', (code) => {
          clearTimeout(timer);
          forwards.delete(child);
          reject(new Error(`port-forward ${target} exited ${code}: ${out}`));
        });
      });
    },
    importImage: (src) => sh(['import', runDir, src], 5 * 60_000),
    tagImage: (image, names) => sh(['tag', runDir, image, ...names], 60_000),
    log(component, lines = 60) {
      const file = join(runDir, 'logs', `${component}.log`);
      if (!existsSync(file)) return `(no ${file})`;
      return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
    },
    async stop() {
      for (const child of forwards) child.kill();
      await sh(['down', runDir], 300_000);
    },
  };
}
