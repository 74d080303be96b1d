/**
 * What a reader of the cluster pages has before they start, provided for
 * test/cluster/docs-blocks.test.ts:
 *
 * - a machine of their own: a network namespace with its own loopback, so the docs'
 *   `kubectl port-forward svc/vault 8200:8200` and `... 2379:2379` take those ports as written
 *   whatever else runs on the CI machine (the cluster's API server is relayed to
 *   127.0.0.1:6443 in it, through the cluster's Unix socket);
 * - a kubeconfig in `~/.kube/config` for that address, and `kubectl`, `helm`, `etcdctl` and
 *   this repository's `vault` on `PATH`;
 * - a working directory with the repository's `charts/`, `crds/` and `deploy/` (a checkout);
 * - the images in their registry: the node has the image built from the Dockerfile as
 *   `registry.example.com/vault:0.1.0`, the chart's etcd image under its default name, the
 *   `busybox:1.36` a page runs, and `registry.example/my-app:1.0`, an app that reads its
 *   credential file at start and says how many bytes it read.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { ReaderMachine } from '../docs/reader-machine.js';
import { resolveAssets } from '../support/assets.js';
import type { Cluster } from '../support/cluster.js';
import { runCommand } from '../support/control-plane.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const relay = fileURLToPath(new URL('../support/relay.mjs', import.meta.url));

/** The image names the docs use, as a reader's registry would serve them. */
export function documentedImages(): Record<string, string[]> {
  const values = parse(readFileSync(join(repoRoot, 'charts/vault/values.yaml'), 'utf8'));
  return {
    'ghcr.io/ghoststack/vault:e2e': ['registry.example.com/vault:0.1.0'],
    'docker.io/local/etcd:3.6': [`${values.etcd.image.repository}:${values.etcd.image.tag}`],
    'docker.io/local/busybox:1': ['docker.io/library/busybox:1.36'],
  };
}

export const appImage = 'registry.example/my-app:1.0';
const appCommand =
  'echo "my-app: read $(wc -c < /vault/secrets/db-password) bytes of /vault/secrets/db-password"; exec sleep 1000000000';

async function bash(script: string, timeoutMs = 5 * 60_000): Promise<string> {
  const result = await runCommand('bash', ['-euo', 'pipefail', '-c', script], {
    timeoutMs,
    env: process.env,
  });
  if (result.code !== 0) throw new Error(`${script.split('\n')[0]}: ${result.stderr.slice(-3000)}`);
  return result.stdout;
}

/** Tags the documented image names in the node and builds the app image into it. */
export async function provideImages(cluster: Cluster): Promise<void> {
  for (const [image, names] of Object.entries(documentedImages())) await cluster.tagImage(image, names);
  const out = mkdtempSync(join(tmpdir(), 'vault-docs-app-image-'));
  try {
    // The app: busybox's files (the largest blob of its one-layer image) and a command of its own.
    await bash(`
      . '${repoRoot}/test/assets/oci-image.sh'
      busybox=$(bash '${repoRoot}/test/assets/build-node.sh')/images/busybox
      mkdir '${out}/rootfs'
      tar -xf "$(ls -S "$busybox"/blobs/sha256/* | head -n 1)" -C '${out}/rootfs'
      oci_image '${appImage}' '${out}/rootfs' '${out}/image' '${JSON.stringify(['/bin/sh', '-c', appCommand]).replace(/'/g, `'\\''`)}'
    `);
    await cluster.importImage(join(out, 'image'));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

export type { ReaderMachine };

export async function readerMachine(cluster: Cluster): Promise<ReaderMachine> {
  const home = mkdtempSync(join(tmpdir(), 'vault-docs-reader-'));
  const work = join(home, 'vault');
  mkdirSync(work);
  for (const dir of ['charts', 'crds', 'deploy']) symlinkSync(join(repoRoot, dir), join(work, dir));

  const holder = spawn('unshare', ['--net', '--', 'sleep', 'infinity'], { detached: true, stdio: 'ignore' });
  const processes: ChildProcess[] = [holder];
  const stop = async () => {
    for (const child of processes.reverse()) child.kill('SIGKILL');
    rmSync(home, { recursive: true, force: true });
  };
  try {
    const netns = `/proc/${holder.pid}/ns/net`;
    await bash(
      `for i in $(seq 1 50); do [ "$(readlink ${netns})" != "$(readlink /proc/self/ns/net)" ] && exit 0; sleep 0.1; done; exit 1`,
    );
    await bash(`nsenter --net=${netns} ip link set lo up`);
    const apiRelay = spawn(
      'nsenter',
      [
        `--net=${netns}`,
        process.execPath,
        relay,
        'tcp:127.0.0.1:6443',
        `unix:${join(cluster.runDir, 'api.sock')}`,
      ],
      { stdio: 'ignore' },
    );
    processes.push(apiRelay);

    mkdirSync(join(home, '.kube'));
    const kubeconfig = readFileSync(cluster.kubeconfigPath, 'utf8').replace(
      /server: "https:\/\/127\.0\.0\.1:\d+"/,
      'server: "https://127.0.0.1:6443"',
    );
    if (!kubeconfig.includes('127.0.0.1:6443'))
      throw new Error(`unexpected kubeconfig ${cluster.kubeconfigPath}`);
    writeFileSync(join(home, '.kube', 'config'), kubeconfig, { mode: 0o600 });

    const assets = resolveAssets();
    const tools = [
      ...new Set([assets.kubectl, assets.helm, assets.etcdctl].map((binary) => dirname(binary))),
    ];
    const env = {
      PATH: [...tools, join(repoRoot, 'bin'), process.env.PATH ?? '/usr/bin:/bin'].join(':'),
      HOME: home,
      LANG: 'C.UTF-8',
      TERM: 'dumb',
    };
    const prefix = ['nsenter', `--net=${netns}`];
    await bash(
      `for i in $(seq 1 100); do ${prefix.join(' ')} env HOME='${home}' '${assets.kubectl}' get --raw /readyz >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1`,
    );
    return { home, work, env, prefix, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
