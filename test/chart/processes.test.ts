/**
 * The chart's own command lines, run: after `helm install` on the real control plane, the
 * API server, the controller and the webhook are started as local processes with exactly
 * the args and env their Deployments render (names, ports and mount paths swapped for local
 * ones), on the bundled etcd run the same way, each talking to Kubernetes with a token of
 * its chart ServiceAccount. A flag the binary does not take, a missing permission or a
 * certificate that does not fit fails here rather than in someone's cluster. The controller
 * imports Secrets from `apps` (controller.secretImport.namespaces) and, holding its own
 * token, cannot read the root key or the etcd certificates in the release namespace.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/store.js';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import {
  b64,
  containerEnv,
  freePorts,
  httpsCall,
  injectedAgent,
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
/** The value of the Secret the controller imports in `apps` (checked in the agent's file). */
const importedValue = 'sk_chart_imported_0123456789';
const vaultCli = join(repoRoot, 'bin', 'vault.js');

/** `tenant/seq` of each audit record line in a process's output (logs are JSON lines too). */
function auditLines(output: string): string[] {
  const found: string[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{"')) continue;
    try {
      const parsed = JSON.parse(line) as { tenant?: unknown; seq?: unknown; prevHash?: unknown };
      if (typeof parsed.seq === 'number' && typeof parsed.prevHash === 'string')
        found.push(`${parsed.tenant}/${parsed.seq}`);
    } catch {
      // a partial line
    }
  }
  return found;
}

/** `tenant/seq` of every audit record in the store. */
async function storedAuditRecords(store: Store): Promise<string[]> {
  const tenants = (await store.range(keys.tenants())).kvs.map((kv) => kv.key.slice(keys.tenants().length));
  const all: string[] = [];
  for (const tenant of tenants) {
    const page = await store.range(keys.auditRecords(tenant));
    all.push(...page.kvs.map((kv) => `${tenant}/${JSON.parse(kv.value).seq}`));
  }
  return all;
}

describe('the chart command lines, run as local processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vault-chart-run-'));
  let cp: ControlPlane;
  let core: CoreV1Api;
  let objects: K8sObject[];
  let etcd: LocalEtcd | undefined;
  let apiUrl: string | undefined;
  let firstServer: LocalProcess | undefined;
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
    /** Another command run with the container's environment (e.g. `operator root-token`). */
    command?: string[],
  ) => {
    const container = podTemplate(find(objects, 'Deployment', deployment)).spec.containers[0];
    const args = command ?? localize(container.args, replacements);
    // Store settings (endpoints, certificate paths) come as environment variables.
    const rendered = containerEnv(container, objects, {
      'metadata.name': `${deployment}-0`,
      'metadata.namespace': ns,
    });
    const env = {
      PATH: process.env.PATH,
      HOME: dir,
      ...Object.fromEntries(
        Object.entries(rendered).map(([name, value]) => [name, localize([value], replacements)[0] as string]),
      ),
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
    // The application namespace: it exists before the install binds the controller there.
    await cp.createNamespace('apps');
    const installed = await cp.helm([
      'install',
      'vault',
      chartDir,
      '--namespace',
      ns,
      ...valueFlags({ 'etcd.replicas': 1, 'controller.secretImport.namespaces': ['apps'] }),
    ]);
    if (installed.code !== 0) throw new Error(`helm install failed: ${installed.stderr}`);
    // The manifest as installed: with the root key and certificates that now exist.
    const manifest = await cp.helm(['get', 'manifest', 'vault', '--namespace', ns]);
    objects = parseManifests(manifest.stdout);
    mkdirSync(join(dir, 'etcd'));
    etcd = await startChartEtcd(objects, join(dir, 'etcd'));
    mkdirSync(join(dir, 'etcd-client'));
    writeSecretFiles(find(objects, 'Secret', 'vault-etcd-client-tls'), join(dir, 'etcd-client'));
    // The API's certificate as the server mounts it, and its CA alone as the webhook does.
    const serverTls = find(objects, 'Secret', 'vault-server-tls');
    mkdirSync(join(dir, 'server-tls'));
    writeSecretFiles(serverTls, join(dir, 'server-tls'));
    mkdirSync(join(dir, 'server-ca'));
    writeFileSync(join(dir, 'server-ca', 'ca.crt'), b64(serverTls.data['ca.crt']));
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

  it("the controller's ServiceAccount token gets 403 on the root key and the etcd certificates; Secrets only in apps", async () => {
    // What someone holding the controller's token (a compromised controller pod) can reach.
    const stolen = cp.kubeConfigForToken(await tokenFor(ns, 'vault-controller')).makeApiClient(CoreV1Api);
    const status = (call: Promise<unknown>) =>
      call.then(
        () => 200,
        (err: { code?: number }) => err.code,
      );
    const released = objects.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name);
    // The root key and the etcd client certificate together decrypt the whole store offline.
    expect(released).toEqual(expect.arrayContaining(['vault-root-key', 'vault-etcd-client-tls']));
    const reachable: string[] = [];
    for (const name of released) {
      if ((await status(stolen.readNamespacedSecret({ name, namespace: ns }))) !== 403) reachable.push(name);
    }
    expect(reachable, 'Secrets of the release namespace the controller can read').toEqual([]);
    expect(await status(stolen.listNamespacedSecret({ namespace: ns }))).toBe(403);
    expect(await status(stolen.listSecretForAllNamespaces())).toBe(403);
    expect(await status(stolen.listNamespacedSecret({ namespace: 'apps' }))).toBe(200);
  });

  it('vault server starts on HTTPS with the generated certificate, is ready, and logs in a workload through TokenReview', async () => {
    const [port, metricsPort] = await freePorts(2);
    const server = await run(
      'vault-server',
      [
        ...storeReplacements(),
        ['0.0.0.0:8200', `127.0.0.1:${port}`],
        ['0.0.0.0:9102', `127.0.0.1:${metricsPort}`],
        ['/etc/vault/tls', join(dir, 'server-tls')],
      ],
      {
        KUBECONFIG: await kubeconfigFor('vault-server'),
      },
    );
    // No VAULT_ALLOW_PLAINTEXT: on 0.0.0.0 in the pod, the server would refuse to start without TLS.
    const serverEnv = podTemplate(find(objects, 'Deployment', 'vault-server')).spec.containers[0].env;
    expect(serverEnv.map((e: { name: string }) => e.name)).not.toContain('VAULT_ALLOW_PLAINTEXT');
    const url = `https://127.0.0.1:${port}`;
    const ca = b64(find(objects, 'Secret', 'vault-server-tls').data['ca.crt']);
    // The name injected agents use (the webhook's --vault-addr).
    const trusted = { ca, servername: 'vault.vault.svc' };
    await waitUntil(
      'the API server to be ready over HTTPS',
      async () => (await httpsCall(`${url}/readyz`, trusted).catch(() => ({ status: 0 }))).status === 200,
      [server],
      90_000,
    );
    expect((await httpsCall(`${url}/healthz`, trusted)).status).toBe(200);
    // Plain HTTP is not served, and the certificate fits only the Service's names.
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    await expect(httpsCall(`${url}/healthz`, { ca, servername: 'vault.elsewhere.svc' })).rejects.toThrow(
      /does not match|altnames/i,
    );
    apiUrl = url;
    firstServer = server;

    const jwt = await tokenFor('apps', 'default', ['vault']);
    const login = await httpsCall(`${url}/v1/auth/kubernetes/login`, {
      ...trusted,
      method: 'POST',
      body: { jwt },
    });
    expect(login.status, login.text).toBe(200);
  }, 120_000);

  it('streams every audit record to stdout of one replica at a time; kill -9 of the writer, or of all, loses none', async () => {
    expect(firstServer, 'the first API server runs').toBeDefined();
    const ca = b64(find(objects, 'Secret', 'vault-server-tls').data['ca.crt']);
    const trusted = { ca, servername: 'vault.vault.svc' };
    const replica = async () => {
      const [port, metricsPort] = await freePorts(2);
      const server = await run(
        'vault-server',
        [
          ...storeReplacements(),
          ['0.0.0.0:8200', `127.0.0.1:${port}`],
          ['0.0.0.0:9102', `127.0.0.1:${metricsPort}`],
          ['/etc/vault/tls', join(dir, 'server-tls')],
        ],
        { KUBECONFIG: await kubeconfigFor('vault-server') },
      );
      const url = `https://127.0.0.1:${port}`;
      await waitUntil(
        'an API replica to be ready',
        async () => (await httpsCall(`${url}/readyz`, trusted)).status === 200,
        [server],
        90_000,
      );
      return { server, url };
    };
    const login = async (url: string) => {
      const jwt = await tokenFor('apps', 'default', ['vault']);
      const res = await httpsCall(`${url}/v1/auth/kubernetes/login`, {
        ...trusted,
        method: 'POST',
        body: { jwt },
      });
      expect(res.status, res.text).toBe(200);
    };
    const kill = async (p: LocalProcess) => {
      p.child.kill('SIGKILL');
      if (p.child.exitCode === null && p.child.signalCode === null)
        await new Promise((done) => p.child.once('exit', done));
    };
    const store = await openStore({
      kind: 'etcd',
      endpoints: [etcd!.clientUrl],
      tls: {
        ca: join(dir, 'etcd-client', 'ca.crt'),
        cert: join(dir, 'etcd-client', 'tls.crt'),
        key: join(dir, 'etcd-client', 'tls.key'),
      },
    });
    try {
      const first = firstServer!;
      const seen: LocalProcess[] = [first];
      const missing = async () => {
        const have = new Set(seen.flatMap((p) => auditLines(p.output())));
        return (await storedAuditRecords(store)).filter((record) => !have.has(record));
      };
      const second = await replica();
      seen.push(second.server);
      // A record committed through the writer: it streams it, the other replica writes nothing.
      await login(apiUrl!);
      await waitUntil(
        'the stored records in the first replica stdout',
        async () => (await missing()).length === 0,
        [first],
      );
      await new Promise((done) => setTimeout(done, 3000));
      expect(auditLines(first.output()).length).toBeGreaterThan(0);
      expect(auditLines(second.server.output()), 'the standby replica wrote audit lines').toEqual([]);

      // kill -9 of the writer: the other takes over (after server.audit.streamTtl) from the cursor in etcd.
      await kill(first);
      await login(second.url);
      await waitUntil(
        'every stored record in a replica stdout after kill -9 of the writer',
        async () => (await missing()).length === 0 && auditLines(second.server.output()).length > 0,
        [second.server],
        60_000,
      );

      // Every replica gone; an operator mints a token meanwhile; the next replica to start streams it.
      await kill(second.server);
      const minted = await run('vault-server', storeReplacements(), {}, [
        'operator',
        'root-token',
        '--tenant',
        'chart-offline',
      ]);
      await new Promise((done) =>
        minted.child.exitCode !== null ? done(undefined) : minted.child.once('exit', done),
      );
      expect(minted.child.exitCode, minted.output()).toBe(0);
      const third = await replica();
      seen.push(third.server);
      await waitUntil(
        'the records written while no replica ran in the restarted replica stdout',
        async () => (await missing()).length === 0,
        [third.server],
        60_000,
      );
      expect(auditLines(third.server.output()).some((record) => record.startsWith('chart-offline/'))).toBe(
        true,
      );
      // The later tests talk to the API through the replica that is left.
      apiUrl = third.url;
    } finally {
      await store.close();
    }
  }, 300_000);

  it('vault operator run starts as a client of the API, leads, and reconciles as the chart ServiceAccount', async () => {
    if (!apiUrl) throw new Error('the server test did not start the API');
    const [port] = await freePorts(1);
    // The token the kubelet projects for it (audience vault); nothing of the store.
    mkdirSync(join(dir, 'controller-token'));
    writeFileSync(join(dir, 'controller-token', 'token'), await tokenFor(ns, 'vault-controller', ['vault']), {
      mode: 0o600,
    });
    const container = podTemplate(find(objects, 'Deployment', 'vault-controller')).spec.containers[0];
    expect(JSON.stringify(container)).not.toMatch(/VAULT_ROOT_KEY|VAULT_ETCD|VAULT_STORE|etcd/);
    const controller = await run(
      'vault-controller',
      [
        ['https://vault.vault.svc:8200', apiUrl],
        ['/etc/vault/server-ca', join(dir, 'server-ca')],
        ['/var/run/secrets/vault.ghoststack.io/serviceaccount', join(dir, 'controller-token')],
        ['0.0.0.0:8080', `127.0.0.1:${port}`],
      ],
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

    // Imported from a consenting Secret of `apps`, the namespace the chart gave it.
    const secretAndCredential = (name: string) =>
      [
        'apiVersion: v1',
        'kind: Secret',
        'metadata:',
        '  name: stripe',
        '  labels: {vault.ghoststack.io/import: "true"}',
        '  annotations: {vault.ghoststack.io/import-for: stripe-api-key}',
        `stringData: {api-key: ${name}}`,
        '---',
        'apiVersion: vault.ghoststack.io/v1alpha1',
        'kind: VaultCredential',
        'metadata: {name: stripe-api-key}',
        'spec: {type: api-key, source: {secretRef: {name: stripe, key: api-key}}, access: {serviceAccounts: [default]}}',
      ].join('\n');
    const imported = await cp.kubectl(['apply', '-n', 'apps', '-f', '-'], {
      input: secretAndCredential(importedValue),
    });
    expect(imported.code, imported.stderr).toBe(0);
    const phaseIn = async (namespace: string) =>
      (
        await cp.kubectl([
          'get',
          'vaultcredential',
          'stripe-api-key',
          '-n',
          namespace,
          '-o',
          'jsonpath={.status.phase}/{.status.conditions[0].reason}/{.status.conditions[0].message}',
        ])
      ).stdout;
    await waitUntil(
      'the imported VaultCredential to be Ready',
      async () => (await phaseIn('apps')).startsWith('Ready/'),
      [controller],
    );
    // The same in a namespace the chart did not give it: refused, saying which value to set.
    await cp.createNamespace('elsewhere');
    const elsewhere = await cp.kubectl(['apply', '-n', 'elsewhere', '-f', '-'], {
      input: secretAndCredential('sk_elsewhere_never_imported'),
    });
    expect(elsewhere.code, elsewhere.stderr).toBe(0);
    await waitUntil(
      'the VaultCredential outside the granted namespaces to be refused',
      async () => (await phaseIn('elsewhere')).startsWith('Failed/SecretNamespaceNotGranted/'),
      [controller],
    );
    expect(await phaseIn('elsewhere')).toContain('controller.secretImport.namespaces');
  }, 120_000);

  it('vault webhook starts with the seeded certificate and the API CA, and serves it', async () => {
    const [port] = await freePorts(1);
    const webhook = await run(
      'vault-webhook',
      [
        ['0.0.0.0:8443', `127.0.0.1:${port}`],
        ['/etc/vault/server-ca', join(dir, 'server-ca')],
      ],
      {
        KUBECONFIG: await kubeconfigFor('vault-webhook'),
      },
    );
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

    // An opted-in pod in `apps` (whose default ServiceAccount may lease `token`, from the
    // controller test): the agent the webhook builds gets the https address and the API CA,
    // and with exactly that environment leases over HTTPS from the chart's server.
    const agent = await injectedAgent(
      `https://127.0.0.1:${port}/mutate`,
      { ca, servername: 'vault-webhook.vault.svc' },
      {
        name: 'app',
        namespace: 'apps',
        annotations: {
          'vault.ghoststack.io/credential-token': 'token',
          'vault.ghoststack.io/credential-stripe': 'stripe-api-key',
        },
      },
    );
    const agentEnv = containerEnv(agent, objects, { 'metadata.name': 'app', 'metadata.namespace': 'apps' });
    expect(agentEnv.VAULT_ADDR).toBe('https://vault.vault.svc:8200');
    expect(agentEnv.VAULT_CACERT_PEM?.trim()).toBe(
      b64(find(objects, 'Secret', 'vault-server-tls').data['ca.crt'])
        .toString('utf8')
        .trim(),
    );

    if (!apiUrl) throw new Error('the server test did not start the API');
    const tokenFile = join(dir, 'app-token');
    writeFileSync(tokenFile, await tokenFor('apps', 'default', ['vault']), { mode: 0o600 });
    mkdirSync(join(dir, 'app-secrets'));
    const agentProcess = startProcess(
      process.execPath,
      [
        vaultCli,
        ...agent.args,
        '--once',
        '--token-file',
        tokenFile,
        '--directory',
        join(dir, 'app-secrets'),
        '--health-host',
        '127.0.0.1',
        '--health-port',
        '0',
      ],
      // Only the address is local; the certificate is checked against 127.0.0.1, which it names.
      { PATH: process.env.PATH, HOME: dir, ...agentEnv, VAULT_ADDR: apiUrl },
    );
    running.push(agentProcess);
    const code = await new Promise<number | null>((resolve) => {
      if (agentProcess.child.exitCode !== null) resolve(agentProcess.child.exitCode);
      else agentProcess.child.once('exit', (exitCode) => resolve(exitCode));
    });
    expect(code, agentProcess.output()).toBe(0);
    expect(readFileSync(join(dir, 'app-secrets', 'token'), 'utf8')).toHaveLength(40);
    // Secret → controller → Vault → the pod's file.
    expect(readFileSync(join(dir, 'app-secrets', 'stripe'), 'utf8')).toBe(importedValue);
  }, 120_000);
});
