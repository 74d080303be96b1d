/**
 * What a reader of the `sh runnable` pages has before they start, for test/docs/runnable.test.ts:
 *
 * - a machine of their own (test/support/reader-netns.ts): a network namespace whose loopback
 *   has every port free, so a page's `vault server --listen 0.0.0.0:8200` or `--health-port
 *   8099` takes it as written whatever else runs on the CI machine, and an `/etc/hosts` of its
 *   own; every service below is relayed into it at its own port;
 * - a fresh home directory with `~/work` to start in, and `~/.kube/config` for a real
 *   kube-apiserver without nodes (test/support/control-plane.ts: pods stay Pending);
 * - `npm` and `npx` on a local registry (Verdaccio) with this checkout's packages published,
 *   `npm i -g` into `~/.npm-global`, first on `PATH`, then the repository's `bin/`, `kubectl`,
 *   `helm` and `etcdctl`.
 *
 * What a page assumes beyond that is named in the environment, for its hidden `<!-- sh runnable`
 * blocks to turn into what the reader would have:
 *
 * - `VAULT_DOCS_POSTGRES_URL`: a real PostgreSQL's superuser URL;
 * - `VAULT_DOCS_ETCD_ENDPOINT`: a real etcd, plain HTTP on loopback;
 * - `VAULT_DOCS_ETCD_TLS_DIR`: the CA (`ca.crt`) and a client certificate (`client.crt`,
 *   `client.key`; its CN is etcd's root user) of a production-like etcd at `https://etcd-0:2379`
 *   (TLS, client certificates required, auth enabled);
 * - `VAULT_DOCS_CHECKOUT`: a directory with the checkout's `charts/`, `crds/` and `deploy/`.
 */
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { resolveAssets } from '../support/assets.js';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import { type EtcdProcess, freePort, startEtcd } from '../support/etcd.js';
import { type Postgres, startPostgres } from '../support/postgres.js';
import { type ReaderNetns, startReaderNetns } from '../support/reader-netns.js';
import { type LocalRegistry, publishPackages, startRegistry } from '../support/registry.js';
import { repoRoot } from '../support/vault-dev.js';

/** A reader's machine the docs' blocks run on (also the cluster docs test's, test/cluster). */
export interface ReaderMachine {
  home: string;
  /** The directory the first block starts in (a checkout's charts/, crds/ and deploy/). */
  work: string;
  env: Record<string, string>;
  /** Runs a command on the reader's machine (in its namespaces). */
  prefix: string[];
  stop(): Promise<void>;
}

export async function readerMachine(): Promise<ReaderMachine> {
  const home = mkdtempSync(join(tmpdir(), 'vault-docs-home-'));
  let registry: LocalRegistry | undefined;
  let postgres: Postgres | undefined;
  let etcd: EtcdProcess | undefined;
  let productionEtcd: EtcdProcess | undefined;
  let controlPlane: ControlPlane | undefined;
  let netns: ReaderNetns | undefined;
  const stop = async () => {
    await Promise.allSettled([
      registry?.stop(),
      postgres?.close(),
      etcd?.destroy(),
      productionEtcd?.destroy(),
      controlPlane?.stop(),
      netns?.stop(),
    ]);
    rmSync(home, { recursive: true, force: true });
  };
  try {
    // Assigned as each comes up, so stop() ends those that started when another did not.
    await Promise.all([
      startRegistry().then((started) => {
        registry = started;
      }),
      startPostgres().then((started) => {
        postgres = started;
      }),
      startEtcd().then((started) => {
        etcd = started;
      }),
      startEtcd({ tls: true, auth: true, serverNames: ['etcd-0'] }).then((started) => {
        productionEtcd = started;
      }),
      startControlPlane().then((started) => {
        controlPlane = started;
      }),
      startReaderNetns().then((started) => {
        netns = started;
      }),
    ]);
    publishPackages(registry!, ['sdk', 'mcp', 'cli']);

    const urls = [
      ...Object.values(registry!.env).filter((value) => value.startsWith('http://127.0.0.1:')),
      postgres!.adminUrl,
      etcd!.endpoint,
      controlPlane!.server,
    ];
    for (const port of new Set(urls.map((url) => Number(new URL(url).port)))) await netns!.forward(port);
    await netns!.forward(Number(new URL(productionEtcd!.endpoint).port), 2379);
    appendFileSync(netns!.hostsFile, '127.0.0.1 etcd-0\n');
    const etcdTls = join(home, '.vault-docs', 'etcd-0');
    mkdirSync(etcdTls, { recursive: true });
    const tls = productionEtcd!.tls!;
    copyFileSync(tls.caFile, join(etcdTls, 'ca.crt'));
    copyFileSync(tls.certFile, join(etcdTls, 'client.crt'));
    copyFileSync(tls.keyFile, join(etcdTls, 'client.key'));

    const checkout = join(home, '.vault-docs', 'vault');
    mkdirSync(checkout);
    for (const dir of ['charts', 'crds', 'deploy']) symlinkSync(join(repoRoot, dir), join(checkout, dir));
    mkdirSync(join(home, '.kube'));
    copyFileSync(controlPlane!.kubeconfigPath, join(home, '.kube', 'config'));
    const work = join(home, 'work');
    mkdirSync(work);

    const assets = resolveAssets();
    const tools = [
      ...new Set([assets.kubectl, assets.helm, assets.etcdctl].map((binary) => dirname(binary))),
    ];
    const env = {
      PATH: [
        join(home, '.npm-global/bin'),
        join(repoRoot, 'bin'),
        ...tools,
        process.env.PATH ?? '/usr/bin:/bin',
      ].join(':'),
      HOME: home,
      LANG: 'C.UTF-8',
      TERM: 'dumb',
      ...registry!.env,
      npm_config_prefix: join(home, '.npm-global'),
      npm_config_cache: join(homedir(), '.npm'), // tarballs by integrity; the registry is still asked
      // `vault dev` without --port listens here instead of 8200, which the pages' own servers use.
      VAULT_DEV_PORT: String(await freePort()),
      VAULT_DOCS_POSTGRES_URL: postgres!.adminUrl,
      VAULT_DOCS_ETCD_ENDPOINT: etcd!.endpoint,
      VAULT_DOCS_ETCD_TLS_DIR: etcdTls,
      VAULT_DOCS_CHECKOUT: checkout,
    };
    return { home, work, env, prefix: netns!.prefix, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
