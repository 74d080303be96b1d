import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The real binaries integration tests run: etcd, etcdctl, kube-apiserver, kubectl and helm. */
export interface Assets {
  etcd: string;
  /** etcd's client, of the same release. */
  etcdctl: string;
  kubeApiserver: string;
  kubectl: string;
  helm: string;
}

const buildScript = fileURLToPath(new URL('../assets/build.sh', import.meta.url));

let cached: Assets | undefined;

/**
 * Finds the binaries: TEST_ASSET_* first, then KUBEBUILDER_ASSETS, then the versioned cache
 * that test/assets/build.sh fills (running it when something is missing).
 */
export function resolveAssets(): Assets {
  if (cached) return cached;
  const fromEnv = (name: string, file: string): string | undefined => {
    const explicit = process.env[name];
    if (explicit) return explicit;
    const dir = process.env.KUBEBUILDER_ASSETS;
    return dir && existsSync(join(dir, file)) ? join(dir, file) : undefined;
  };
  let dir: string | undefined;
  const built = (file: string): string => {
    dir ??= execFileSync('bash', [buildScript], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    }).trim();
    return join(dir, file);
  };
  cached = {
    etcd: fromEnv('TEST_ASSET_ETCD', 'etcd') ?? built('etcd'),
    etcdctl: fromEnv('TEST_ASSET_ETCDCTL', 'etcdctl') ?? built('etcdctl'),
    kubeApiserver: fromEnv('TEST_ASSET_KUBE_APISERVER', 'kube-apiserver') ?? built('kube-apiserver'),
    kubectl: fromEnv('TEST_ASSET_KUBECTL', 'kubectl') ?? built('kubectl'),
    helm: fromEnv('TEST_ASSET_HELM', 'helm') ?? built('helm'),
  };
  return cached;
}
