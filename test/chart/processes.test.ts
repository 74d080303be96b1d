/**
 * The chart's own command lines, run: after `helm install` on the real control plane, the
 * API server, the controller and the webhook are started as local processes with exactly
 * the args and env their Deployments render (names, ports and mount paths swapped for local
 * ones), on the bundled etcd run the same way, each talking to Kubernetes with a token of
 * its chart ServiceAccount. A flag the binary does not take, a missing permission or a
 * certificate that does not fit fails here rather than in someone's cluster.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import {
  b64,
  containerEnv,
  freePorts,
  type LocalEtcd,
  type LocalProcess,
  localize,
  startChartEtcd,
  startProcess,
  waitUntil,
  writeSecretFiles,
} from './local-run.js';
import {
  chartDir,
  find,
  type K8sObject,
  parseManifests,
  podTemplate,
  repoRoot,
  valueFlags,
} from './support.js';

const ns = 'vault';
const vaultCli = join(repoRoot, 'bin', 'vault.js');

describe('the chart command lines, run as local processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vault-chart-run-'));
  let cp: ControlPlane;
  let core: CoreV1Api;
  let objects: K8sObject[];
  let etcd: LocalEtcd | undefined;
  const running: LocalProcess[] = [];

  const tokenFor = async (namespace: string, serviceAccount: string, audiences: string[] = []) => {
    const response = await core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace,
      body: { spec: { expirationSeconds: 3600, audiences } },
    });
    return response.status!.token;
  };
  /** A kubeconfig file for the chart ServiceAccount `name`. */
  const kubeconfigFor = async (name: string) => {
    const file = join(dir, `${name}.kubeconfig`);
    writeFileSync(file, cp.kubeConfigForToken(await tokenFor(ns, name)).exportConfig(), { mode: 0o600 });
    return file;
  };
  /** Starts a Deployment's container with its rendered args and env. */
  const run = async (
    deployment: string,
    replacements: Array<[string, string]>,
    extraEnv: Record<string, string>,
  ) => {
    const container = podTemplate(find(objects, 'Deployment', deployment)).spec.containers[0];
    const args = localize(container.args, replacements);
    const env = {
      PATH: process.env.PATH,
      HOME: dir,
      ...containerEnv(container, objects, { 'metadata.name': `${deployment}-0`, 'metadata.namespace': ns }),
      ...extraEnv,
    };
    const started = startProcess(process.execPath, [vaultCli, ...args], env);
    running.push(started);
    return started;
  };

  beforeAll(async () => {
    cp = await startControlPlane();
    core = cp.kubeConfig().makeApiClient(CoreV1Api);
    await cp.createNamespace(ns, { 'pod-security.kubernetes.io/enforce': 'restricted' });
    const installed = await cp.helm([
      'install',
      'vault',
      chartDir,
      '--namespace',
      ns,
      ...valueFlags({ 'etcd.replicas': 1 }),
    ]);
    if (installed.code !== 0) throw new Error(`helm install failed: ${installed.stderr}`);
    // The manifest as installed: with the root key and certificates that now exist.
    const manifest = await cp.helm(['get', 'manifest', 'vault', '--namespace', ns]);
    objects = parseManifests(manifest.stdout);
    mkdirSync(join(dir, 'etcd'));
    etcd = await startChartEtcd(objects, join(dir, 'etcd'));
    mkdirSync(join(dir, 'etcd-client'));
    writeSecretFiles(find(objects, 'Secret', 'vault-etcd-client-tls'), join(dir, 'etcd-client'));
  }, 180_000);

  afterAll(async () => {
    for (const p of running) await p.stop();
    await etcd?.process.stop();
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const storeReplacements = (): Array<[string, string]> => [
    ['https://vault-etcd-0.vault-etcd.vault.svc:2379', etcd!.clientUrl],
    ['/etc/vault/etcd', join(dir, 'etcd-client')],
  ];

  it('vault server starts, is ready, and logs in a workload through TokenReview', async () => {
    const [port] = await freePorts(1);
    const server = await run(
      'vault-server',
      [...storeReplacements(), ['0.0.0.0:8200', `127.0.0.1:${port}`]],
      {
        KUBECONFIG: await kubeconfigFor('vault-server'),
      },
    );
    const url = `http://127.0.0.1:${port}`;
    await waitUntil(
      'the API server to be ready',
      async () => (await fetch(`${url}/readyz`)).ok,
      [server],
      90_000,
    );
    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    await cp.createNamespace('apps');
    const jwt = await tokenFor('apps', 'default', ['vault']);
    const login = await fetch(`${url}/v1/auth/kubernetes/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jwt }),
    });
    expect(login.status, await login.clone().text()).toBe(200);
  }, 120_000);

  it('vault operator run starts, leads, and reconciles as the chart ServiceAccount', async () => {
    const [port] = await freePorts(1);
    const controller = await run(
      'vault-controller',
      [...storeReplacements(), ['0.0.0.0:8080', `127.0.0.1:${port}`]],
      { KUBECONFIG: await kubeconfigFor('vault-controller') },
    );
    await waitUntil(
      'the controller to be ready',
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok,
      [controller],
      90_000,
    );
    await waitUntil('the controller to hold the leader Lease', async () => {
      const lease = await cp.kubectl([
        'get',
        'lease',
        'vault-controller',
        '-n',
        ns,
        '-o',
        'jsonpath={.spec.holderIdentity}',
      ]);
      return lease.stdout.startsWith('vault-controller-0');
    }, [controller]);
    const applied = await cp.kubectl(['apply', '-n', 'apps', '-f', '-'], {
      input: [
        'apiVersion: vault.ghoststack.io/v1alpha1',
        'kind: VaultCredential',
        'metadata: {name: token}',
        'spec: {type: api-key, source: {generate: {length: 40}}, access: {serviceAccounts: [default]}}',
      ].join('\n'),
    });
    expect(applied.code, applied.stderr).toBe(0);
    await waitUntil('the VaultCredential to be Ready', async () => {
      const got = await cp.kubectl([
        'get',
        'vaultcredential',
        'token',
        '-n',
        'apps',
        '-o',
        'jsonpath={.status.phase}',
      ]);
      return got.stdout === 'Ready';
    }, [controller]);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^# HELP /m);
  }, 120_000);

  it('vault webhook starts with the seeded certificate and serves it', async () => {
    const [port] = await freePorts(1);
    const webhook = await run('vault-webhook', [['0.0.0.0:8443', `127.0.0.1:${port}`]], {
      KUBECONFIG: await kubeconfigFor('vault-webhook'),
    });
    const ca = b64(find(objects, 'Secret', 'vault-webhook-tls').data['ca.crt']);
    const healthz = () =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/healthz',
            ca,
            servername: 'vault-webhook.vault.svc',
            timeout: 5_000,
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
    await waitUntil(
      'the webhook to serve /healthz over TLS',
      async () => (await healthz()) === 200,
      [webhook],
      90_000,
    );
  }, 120_000);
});
