/**
 * A second cluster on one Vault, installed with the chart: two real control planes. The first
 * runs the whole chart (its bundled etcd and its API server run as processes with the rendered
 * command lines) with `server.remoteClusters` naming the second; the second has the
 * controller-only install of docs/platform/helm.md ("A second cluster"), whose controller and
 * webhook run as processes with their own rendered command lines and ServiceAccounts. A
 * VaultCredential and a VaultLease of the second cluster are served from the shared Vault in
 * tenant `second.<namespace>`, injected agents there lease from it, and the second cluster's
 * controller cannot act in the first cluster's tenants.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { billingWorkload } from '../operator/support.js';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import { documentedBlocks, runDocumented } from './documented.js';
import {
  b64,
  containerEnv,
  freePorts,
  httpsCall,
  injectedAgent,
  type LocalEtcd,
  type LocalProcess,
  startChartEtcd,
  startContainer,
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

// biome-ignore lint/suspicious/noExplicitAny: tests read response JSON of every shape
type Json = Record<string, any>;

const vaultCli = join(repoRoot, 'bin', 'vault.js');
/** The shared Vault's address in the documented install (swapped for a local port). */
const sharedAddress = 'https://vault.example.com:8200';

const workload = billingWorkload('sk_second_0123456789');

/** A kubeconfig (JSON) with one context per control plane, named after it, admin in each. */
function contexts(planes: Record<string, ControlPlane>): string {
  const merged: Json = { apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [] };
  for (const [name, cp] of Object.entries(planes)) {
    const config = JSON.parse(cp.kubeConfig().exportConfig()) as Json;
    const context =
      config.contexts.find((c: Json) => c.name === config['current-context']) ?? config.contexts[0];
    const cluster = config.clusters.find((c: Json) => c.name === context.context.cluster);
    const user = config.users.find((u: Json) => u.name === context.context.user);
    merged.clusters.push({ ...cluster, name });
    merged.users.push({ ...user, name });
    merged.contexts.push({ name, context: { cluster: name, user: name } });
  }
  merged['current-context'] = Object.keys(planes)[0];
  return JSON.stringify(merged);
}

describe('a second cluster with the controller-only chart install, on the first cluster’s Vault', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vault-second-cluster-'));
  let first: ControlPlane;
  let second: ControlPlane;
  let firstObjects: K8sObject[];
  let secondObjects: K8sObject[];
  let secondNotes: string;
  let etcd: LocalEtcd | undefined;
  let apiUrl: string;
  let apiCa: Buffer;
  let controller: LocalProcess;
  const running: LocalProcess[] = [];

  const must = async (cp: ControlPlane, args: string[], input?: string) => {
    const result = await cp.kubectl(args, input ? { input } : {});
    if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout.trim();
  };
  const token = (cp: ControlPlane, namespace: string, name: string, audience?: string) =>
    must(cp, [
      'create',
      'token',
      name,
      '-n',
      namespace,
      '--duration=1h',
      ...(audience ? [`--audience=${audience}`] : []),
    ]);
  /** A kubeconfig file for a ServiceAccount: the identity the pod would run with, never admin. */
  const kubeconfigFor = async (cp: ControlPlane, namespace: string, name: string) => {
    const file = join(dir, `${cp === first ? 'first' : 'second'}-${namespace}-${name}.kubeconfig`);
    writeFileSync(file, cp.kubeConfigForToken(await token(cp, namespace, name)).exportConfig(), {
      mode: 0o600,
    });
    return file;
  };
  const api = async (path: string, options: { token?: string; tenant?: string; body?: unknown } = {}) => {
    const res = await httpsCall(`${apiUrl}${path}`, {
      ca: apiCa,
      servername: 'vault.vault-system.svc',
      ...(options.body === undefined ? {} : { method: 'POST', body: options.body }),
      ...(options.token
        ? {
            headers: {
              authorization: `Bearer ${options.token}`,
              ...(options.tenant ? { 'x-vault-tenant': options.tenant } : {}),
            },
          }
        : {}),
    });
    return { status: res.status, body: (res.text ? JSON.parse(res.text) : {}) as Json };
  };
  const login = (jwt: string, cluster?: string) =>
    api('/v1/auth/kubernetes/login', { body: { jwt, ...(cluster ? { cluster } : {}) } });
  const phase = async (kind: string, name: string) =>
    (await second.kubectl(['get', kind, name, '-n', 'shop', '-o', 'jsonpath={.status.phase}'])).stdout;

  beforeAll(async () => {
    [first, second] = (await Promise.all([startControlPlane(), startControlPlane()])) as [
      ControlPlane,
      ControlPlane,
    ];
    // One kubeconfig with the contexts `first` and `second`, as the documented commands use.
    const kubeconfig = join(dir, 'contexts.kubeconfig');
    writeFileSync(kubeconfig, contexts({ first, second }), { mode: 0o600 });
    // The documented commands' working directory: their files land here, ./charts is the repo's.
    const cwd = join(dir, 'cwd');
    mkdirSync(cwd);
    symlinkSync(join(repoRoot, 'charts'), join(cwd, 'charts'));
    const documented = documentedBlocks('docs/platform/helm.md', '## A second cluster');
    expect(documented).toHaveLength(3);
    const [installSecond, reviewerSecret, upgradeFirst] = documented as [string, string, string];
    const run = async (script: string) => {
      const result = await runDocumented(kubeconfig, script, cwd);
      if (result.code !== 0) throw new Error(`${script}\nfailed: ${result.stderr}`);
      return result.stdout;
    };

    // The first cluster: the whole chart (one etcd member, which runs here as a process).
    await first.createNamespace('vault-system', { 'pod-security.kubernetes.io/enforce': 'restricted' });
    const firstInstall = await first.helm([
      'install',
      'vault',
      chartDir,
      '--namespace',
      'vault-system',
      ...valueFlags({ 'etcd.replicas': 1 }),
    ]);
    if (firstInstall.code !== 0) throw new Error(`helm install (first) failed: ${firstInstall.stderr}`);

    // The second cluster: the controller-only install, as documented.
    expect(installSecond).toContain('--set server.enabled=false');
    secondNotes = await run(installSecond);
    // `shop` imports its Secret (billingWorkload): the second cluster's controller may read
    // Secrets there, and only there (controller.secretImport.namespaces).
    await second.createNamespace('shop');
    const granted = await second.helm([
      'upgrade',
      'vault',
      chartDir,
      '--namespace',
      'vault-system',
      '--reuse-values',
      ...valueFlags({ 'controller.secretImport.namespaces': ['shop'] }),
    ]);
    if (granted.code !== 0) throw new Error(`helm upgrade (second) failed: ${granted.stderr}`);
    secondObjects = parseManifests(
      (await second.helm(['get', 'manifest', 'vault', '-n', 'vault-system'])).stdout,
    );

    // Kubernetes' token controller fills the reviewer's token Secret; this control plane runs
    // none, so a requested token for that ServiceAccount stands in for it.
    const caData = await must(second, [
      'config',
      'view',
      '--minify',
      '--raw',
      '-o',
      'jsonpath={.clusters[0].cluster.certificate-authority-data}',
    ]);
    const reviewerToken = await token(second, 'vault-system', 'vault-token-reviewer');
    await must(second, [
      'patch',
      'secret',
      'vault-token-reviewer',
      '-n',
      'vault-system',
      '-p',
      JSON.stringify({ data: { token: Buffer.from(reviewerToken).toString('base64'), 'ca.crt': caData } }),
    ]);
    await run(reviewerSecret);
    await run(upgradeFirst);
    firstObjects = parseManifests(
      (await first.helm(['get', 'manifest', 'vault', '-n', 'vault-system'])).stdout,
    );
    apiCa = b64(find(firstObjects, 'Secret', 'vault-server-tls').data['ca.crt']);
    // The kubeconfig the API server mounts from the Secret the documented commands created.
    mkdirSync(join(dir, 'clusters', 'second'), { recursive: true });
    writeFileSync(
      join(dir, 'clusters', 'second', 'kubeconfig'),
      b64(
        await must(first, [
          'get',
          'secret',
          'second-reviewer',
          '-n',
          'vault-system',
          '-o',
          'jsonpath={.data.kubeconfig}',
        ]),
      ),
      { mode: 0o600 },
    );

    // The first cluster's etcd and API server, as their pods would run them.
    mkdirSync(join(dir, 'etcd'));
    etcd = await startChartEtcd(firstObjects, join(dir, 'etcd'), 'vault-system');
    mkdirSync(join(dir, 'etcd-client'));
    writeSecretFiles(find(firstObjects, 'Secret', 'vault-etcd-client-tls'), join(dir, 'etcd-client'));
    mkdirSync(join(dir, 'server-tls'));
    writeSecretFiles(find(firstObjects, 'Secret', 'vault-server-tls'), join(dir, 'server-tls'));
    const [port, metricsPort] = await freePorts(2);
    const server = startContainer(firstObjects, 'vault-server', {
      namespace: 'vault-system',
      home: dir,
      replacements: [
        ['https://vault-etcd-0.vault-etcd.vault-system.svc:2379', etcd.clientUrl],
        ['/etc/vault/etcd', join(dir, 'etcd-client')],
        ['0.0.0.0:8200', `127.0.0.1:${port}`],
        ['0.0.0.0:9102', `127.0.0.1:${metricsPort}`],
        ['/etc/vault/tls', join(dir, 'server-tls')],
        ['/etc/vault/clusters', join(dir, 'clusters')],
      ],
      env: { KUBECONFIG: await kubeconfigFor(first, 'vault-system', 'vault-server') },
    });
    running.push(server);
    apiUrl = `https://127.0.0.1:${port}`;
    await waitUntil(
      'the shared API server to be ready',
      async () => (await api('/readyz')).status === 200,
      [server],
      90_000,
    );

    // The second cluster's controller: its rendered command, its ServiceAccount's identity in
    // the second cluster, the token the kubelet would project for it, the CA from the ConfigMap.
    const controllerPod = podTemplate(find(secondObjects, 'Deployment', 'vault-controller')).spec;
    const caVolume = controllerPod.volumes.find((v: { name: string }) => v.name === 'server-ca');
    mkdirSync(join(dir, 'server-ca'));
    writeFileSync(
      join(dir, 'server-ca', 'ca.crt'),
      find(secondObjects, 'ConfigMap', caVolume.configMap.name).data[caVolume.configMap.items[0].key],
    );
    mkdirSync(join(dir, 'controller-token'));
    writeFileSync(
      join(dir, 'controller-token', 'token'),
      await token(second, 'vault-system', 'vault-controller', 'vault'),
      { mode: 0o600 },
    );
    const [controllerPort] = await freePorts(1);
    controller = startContainer(secondObjects, 'vault-controller', {
      namespace: 'vault-system',
      home: dir,
      replacements: [
        [sharedAddress, apiUrl],
        ['/etc/vault/server-ca', join(dir, 'server-ca')],
        ['/var/run/secrets/vault.ghoststack.io/serviceaccount', join(dir, 'controller-token')],
        ['0.0.0.0:8080', `127.0.0.1:${controllerPort}`],
      ],
      env: { KUBECONFIG: await kubeconfigFor(second, 'vault-system', 'vault-controller') },
    });
    running.push(controller);
    await waitUntil(
      'the second cluster’s controller to be ready',
      async () => (await fetch(`http://127.0.0.1:${controllerPort}/readyz`)).ok,
      [controller],
      90_000,
    );
  }, 300_000);

  afterAll(async () => {
    for (const p of running) await p.stop();
    await etcd?.process.stop();
    await Promise.all([first?.stop(), second?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('installs in the second cluster without a root key, store settings or API server, and says what the API servers need', () => {
    expect(
      secondObjects
        .filter((o) => o.kind === 'Secret')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['vault-token-reviewer', 'vault-webhook-tls']);
    expect(JSON.stringify(secondObjects)).not.toMatch(/VAULT_ROOT_KEY|VAULT_ETCD|VAULT_STORE|root-key|etcd/);
    expect(secondNotes).toContain('server.remoteClusters[0].name=second');
    expect(secondNotes).toContain('server.remoteClusters[0].controller=vault-system:vault-controller');
  });

  it('serves a VaultCredential and a VaultLease of the second cluster from the shared Vault in tenant second.shop', async () => {
    await must(second, ['apply', '-n', 'shop', '-f', '-'], workload);
    await waitUntil(
      'the VaultCredential to be Ready',
      async () => (await phase('vaultcredential', 'stripe-api-key')) === 'Ready',
      [controller],
      90_000,
    );
    await waitUntil(
      'the VaultLease to be Active',
      async () => (await phase('vaultlease', 'stripe-for-billing')) === 'Active',
      [controller],
      90_000,
    );
    const message = await must(second, [
      'get',
      'vaultcredential',
      'stripe-api-key',
      '-n',
      'shop',
      '-o',
      'jsonpath={.status.conditions[0].message}',
    ]);
    expect(message).toContain('tenant "second.shop"');
    const leaseId = await must(second, [
      'get',
      'vaultlease',
      'stripe-for-billing',
      '-n',
      'shop',
      '-o',
      'jsonpath={.status.leaseId}',
    ]);
    // The workload of the second cluster reads the value through that lease, from the shared Vault.
    const billing = await login(await token(second, 'shop', 'billing', 'vault'), 'second');
    expect(billing.status, JSON.stringify(billing.body)).toBe(200);
    expect(billing.body.tenant).toBe('second.shop');
    const read = await api(`/v1/leases/${leaseId}/value`, { token: billing.body.token });
    expect(read.status).toBe(200);
    expect(read.body.value).toBe('sk_second_0123456789');
    // The first cluster's namespace of the same name is another tenant: its workload cannot.
    await first.createNamespace('shop');
    await must(first, ['create', 'serviceaccount', 'billing', '-n', 'shop']);
    const neighbour = await login(await token(first, 'shop', 'billing', 'vault'));
    expect(neighbour.status).toBe(200);
    expect(neighbour.body.tenant).toBe('shop');
    expect((await api(`/v1/leases/${leaseId}/value`, { token: neighbour.body.token })).status).toBe(404);
    expect(controller.output()).not.toContain('sk_second_');
  }, 180_000);

  it("refuses the second cluster's controller in the first cluster's tenants", async () => {
    const jwt = await token(second, 'vault-system', 'vault-controller', 'vault');
    const own = await login(jwt, 'second');
    expect(own.status).toBe(200);
    expect(own.body.controllerOf).toEqual({ cluster: 'second' });
    expect(
      (await api('/v1/credentials/stripe-api-key', { token: own.body.token, tenant: 'second.shop' })).status,
    ).toBe(200);
    for (const tenant of ['shop', 'vault-system', 'first.shop']) {
      const refused = await api('/v1/credentials', { token: own.body.token, tenant });
      expect(refused.status, tenant).toBe(403);
      expect(refused.body.error.message).toContain('"second.<namespace>"');
    }
    // Its token presented as one of the first cluster's: that cluster's TokenReview rejects it.
    expect((await login(jwt)).status).toBe(401);
  });

  it("gives injected agents the shared Vault's address, CA and cluster name; an agent leases from it", async () => {
    const [port] = await freePorts(1);
    const webhook = startContainer(secondObjects, 'vault-webhook', {
      namespace: 'vault-system',
      home: dir,
      replacements: [
        ['0.0.0.0:8443', `127.0.0.1:${port}`],
        ['/etc/vault/server-ca', join(dir, 'server-ca')],
      ],
      env: { KUBECONFIG: await kubeconfigFor(second, 'vault-system', 'vault-webhook') },
    });
    running.push(webhook);
    const webhookCa = async () =>
      b64(
        (
          await second.kubectl([
            'get',
            'secret',
            'vault-webhook-tls',
            '-n',
            'vault-system',
            '-o',
            'jsonpath={.data.ca\\.crt}',
          ])
        ).stdout,
      );
    const trusted = { servername: 'vault-webhook.vault-system.svc' };
    await waitUntil(
      'the webhook to serve /healthz over TLS',
      async () =>
        (await httpsCall(`https://127.0.0.1:${port}/healthz`, { ...trusted, ca: await webhookCa() }))
          .status === 200,
      [webhook],
      90_000,
    );
    const agent = await injectedAgent(
      `https://127.0.0.1:${port}/mutate`,
      { ...trusted, ca: await webhookCa() },
      {
        name: 'billing',
        namespace: 'shop',
        annotations: { 'vault.ghoststack.io/credential-stripe': 'stripe-api-key' },
        serviceAccountName: 'billing',
      },
    );
    const agentEnv = containerEnv(agent, secondObjects, {
      'metadata.name': 'billing',
      'metadata.namespace': 'shop',
    });
    expect(agentEnv.VAULT_ADDR).toBe(sharedAddress);
    expect(agentEnv.VAULT_CACERT_PEM?.trim()).toBe(apiCa.toString('utf8').trim());
    expect(agentEnv.VAULT_KUBERNETES_CLUSTER).toBe('second');

    // The agent with exactly that environment, the pod's projected token, and a local address.
    writeFileSync(join(dir, 'billing.token'), await token(second, 'shop', 'billing', 'vault'), {
      mode: 0o600,
    });
    mkdirSync(join(dir, 'billing-secrets'));
    const agentProcess = startProcess(
      process.execPath,
      [
        vaultCli,
        ...agent.args,
        '--once',
        '--token-file',
        join(dir, 'billing.token'),
        '--directory',
        join(dir, 'billing-secrets'),
        '--health-host',
        '127.0.0.1',
        '--health-port',
        '0',
      ],
      { PATH: process.env.PATH, HOME: dir, ...agentEnv, VAULT_ADDR: apiUrl },
    );
    running.push(agentProcess);
    await waitUntil('the agent to exit', async () => agentProcess.child.exitCode !== null, [], 60_000);
    expect(agentProcess.child.exitCode, agentProcess.output()).toBe(0);
    expect(readFileSync(join(dir, 'billing-secrets', 'stripe'), 'utf8')).toBe('sk_second_0123456789');
  }, 120_000);
});
