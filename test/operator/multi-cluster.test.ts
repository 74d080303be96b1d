/**
 * One Vault for many clusters, as processes: two real control planes (each a kube-apiserver
 * on its own etcd, with its own ServiceAccount signing key), one `vault server` process that
 * reviews logins with both, and in each cluster a `vault operator run` process that has no
 * root key and no store configuration, only the API address, its cluster name and a projected
 * ServiceAccount token. The same namespace name in both clusters maps to two tenants, each
 * controller works only there, and a stolen controller token cannot reach the other cluster.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts, type LocalProcess, startProcess, waitUntil } from '../chart/local-run.js';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import { reviewerKubeconfig } from '../support/token-reviewer.js';
import { billingWorkload, eventually, repoFile, secretImportBinding } from './support.js';

const vaultCli = repoFile('bin/vault.js');
const clusters = ['east', 'west'] as const;
type Cluster = (typeof clusters)[number];

// biome-ignore lint/suspicious/noExplicitAny: tests read response JSON of every shape
type Json = Record<string, any>;

const workload = (cluster: Cluster) =>
  billingWorkload(`sk_${cluster}_${cluster === 'east' ? 'e' : 'w'}0123456789`);

describe('one Vault for two clusters, each with its own controller', { timeout: 180_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vault-multi-cluster-'));
  const planes = {} as Record<Cluster, ControlPlane>;
  const reviewers = {} as Record<Cluster, string>;
  const controllers = {} as Record<Cluster, LocalProcess>;
  const running: LocalProcess[] = [];
  let addr: string;

  const must = async (cp: ControlPlane, args: string[], input?: string) => {
    const result = await cp.kubectl(args, input ? { input } : {});
    if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout.trim();
  };
  /** A ServiceAccount token with Vault's audience, as the kubelet projects it. */
  const vaultJwt = (cluster: Cluster, namespace: string, name: string) =>
    must(planes[cluster], ['create', 'token', name, '-n', namespace, '--audience=vault', '--duration=1h']);
  const login = async (cluster: string, jwt: string) => {
    const response = await fetch(`${addr}/v1/auth/kubernetes/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jwt, cluster }),
    });
    return { status: response.status, body: (await response.json()) as Json };
  };
  const call = async (token: string, path: string, tenant?: string) => {
    const response = await fetch(`${addr}${path}`, {
      headers: { authorization: `Bearer ${token}`, ...(tenant ? { 'x-vault-tenant': tenant } : {}) },
    });
    return { status: response.status, body: (await response.json()) as Json };
  };
  const phase = async (cluster: Cluster, kind: string, name: string) =>
    (await planes[cluster].kubectl(['get', kind, name, '-n', 'shop', '-o', 'jsonpath={.status.phase}']))
      .stdout;

  beforeAll(async () => {
    const [east, west] = await Promise.all([startControlPlane(), startControlPlane()]);
    planes.east = east!;
    planes.west = west!;
    for (const cluster of clusters) {
      const cp = planes[cluster];
      await must(cp, ['apply', '-f', repoFile('crds/')]);
      await cp.waitForCrds(['vaultleases.vault.ghoststack.io', 'vaultcredentials.vault.ghoststack.io']);
      await cp.createNamespace('vault-system');
      await cp.createNamespace('shop');
      await must(cp, ['apply', '-f', repoFile('deploy/rbac/operator.yaml')]);
      // `shop` imports its Secret: the operator may read Secrets there, and only there.
      await must(cp, secretImportBinding('shop'));
      writeFileSync(join(dir, `${cluster}-admin.kubeconfig`), cp.kubeConfig().exportConfig(), {
        mode: 0o600,
      });
      // The server's own identity in each cluster: TokenReview and nothing else.
      reviewers[cluster] = await reviewerKubeconfig(cp);
    }

    // The API server: the only process with the root key and the store.
    writeFileSync(join(dir, 'root.key'), randomBytes(32).toString('hex'), { mode: 0o600 });
    const [port] = await freePorts(1);
    addr = `http://127.0.0.1:${port}`;
    const server = startProcess(
      process.execPath,
      [
        vaultCli,
        'server',
        '--store=embedded',
        `--data-dir=${join(dir, 'data')}`,
        `--root-key-file=${join(dir, 'root.key')}`,
        `--listen=127.0.0.1:${port}`,
        '--audit-log=none',
        ...clusters.map((c) => `--kubernetes-cluster=${c}=${reviewers[c]}`),
        ...clusters.map((c) => `--kubernetes-controller=${c}=vault-system:vault-operator`),
      ],
      { PATH: process.env.PATH, HOME: dir },
    );
    running.push(server);
    await waitUntil(
      'the API server to be ready',
      async () => (await fetch(`${addr}/readyz`)).ok,
      [server],
      90_000,
    );

    // Each controller: its cluster's kubeconfig (its ServiceAccount), a token file, an address.
    for (const cluster of clusters) {
      const cp = planes[cluster];
      const kubeToken = await must(cp, [
        'create',
        'token',
        'vault-operator',
        '-n',
        'vault-system',
        '--duration=1h',
      ]);
      writeFileSync(
        join(dir, `${cluster}-operator.kubeconfig`),
        cp.kubeConfigForToken(kubeToken).exportConfig(),
        {
          mode: 0o600,
        },
      );
      writeFileSync(
        join(dir, `${cluster}-vault.token`),
        await vaultJwt(cluster, 'vault-system', 'vault-operator'),
        {
          mode: 0o600,
        },
      );
      const [metrics] = await freePorts(1);
      // Nothing of the store reaches it: not a flag, not a variable.
      const controller = startProcess(
        process.execPath,
        [
          vaultCli,
          'operator',
          'run',
          `--vault-addr=${addr}`,
          `--cluster=${cluster}`,
          `--token-file=${join(dir, `${cluster}-vault.token`)}`,
          `--kubeconfig=${join(dir, `${cluster}-operator.kubeconfig`)}`,
          '--no-leader-elect',
          '--secret-namespaces=shop',
          `--metrics-listen=127.0.0.1:${metrics}`,
        ],
        { PATH: process.env.PATH, HOME: dir },
      );
      running.push(controller);
      controllers[cluster] = controller;
      await waitUntil(
        `the ${cluster} controller to be ready`,
        async () => (await fetch(`http://127.0.0.1:${metrics}/readyz`)).ok,
        [controller],
        90_000,
      );
    }
  }, 240_000);

  afterAll(async () => {
    for (const p of running) await p.stop();
    await Promise.all(Object.values(planes).map((cp) => cp.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start a controller given store or root-key settings: it takes none', async () => {
    const attempt = startProcess(
      process.execPath,
      [vaultCli, 'operator', 'run', `--vault-addr=${addr}`, `--root-key-file=${join(dir, 'root.key')}`],
      { PATH: process.env.PATH, HOME: dir },
    );
    running.push(attempt);
    await waitUntil('the process to exit', async () => attempt.child.exitCode !== null);
    expect(attempt.child.exitCode).not.toBe(0);
    expect(attempt.output()).toContain("unknown option '--root-key-file=");
  });

  it('refuses to start with a --secret-namespaces entry that is not a namespace name, saying which', async () => {
    const attempt = startProcess(
      process.execPath,
      [vaultCli, 'operator', 'run', `--vault-addr=${addr}`, '--secret-namespaces=shop,Billing_NS'],
      { PATH: process.env.PATH, HOME: dir },
    );
    running.push(attempt);
    await waitUntil('the process to exit', async () => attempt.child.exitCode !== null);
    expect(attempt.child.exitCode).toBe(2);
    expect(attempt.output()).toContain(
      '--secret-namespaces: "Billing_NS": a namespace is 1-63 lowercase letters',
    );
  });

  it('makes the same namespace of each cluster its own tenant, each reconciled by its own controller', async () => {
    for (const cluster of clusters)
      await must(planes[cluster], ['apply', '-n', 'shop', '-f', '-'], workload(cluster));
    for (const cluster of clusters) {
      await eventually(`${cluster}: the VaultCredential Ready`, async () =>
        (await phase(cluster, 'vaultcredential', 'stripe-api-key')) === 'Ready' ? true : undefined,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${controllers[cluster].output().slice(-3000)}`);
      });
      await eventually(`${cluster}: the VaultLease Active`, async () =>
        (await phase(cluster, 'vaultlease', 'stripe-for-billing')) === 'Active' ? true : undefined,
      );
    }
    for (const cluster of clusters) {
      const message = await must(planes[cluster], [
        'get',
        'vaultcredential',
        'stripe-api-key',
        '-n',
        'shop',
        '-o',
        'jsonpath={.status.conditions[0].message}',
      ]);
      expect(message).toContain(`tenant "${cluster}.shop"`);
      // The workload reads its own cluster's value through the lease its controller issued.
      const leaseId = await must(planes[cluster], [
        'get',
        'vaultlease',
        'stripe-for-billing',
        '-n',
        'shop',
        '-o',
        'jsonpath={.status.leaseId}',
      ]);
      const billing = await login(cluster, await vaultJwt(cluster, 'shop', 'billing'));
      expect(billing.status).toBe(200);
      expect(billing.body.tenant).toBe(`${cluster}.shop`);
      const read = await call(billing.body.token, `/v1/leases/${leaseId}/value`);
      expect(read.status).toBe(200);
      expect(read.body.value).toBe(`sk_${cluster}_${cluster === 'east' ? 'e' : 'w'}0123456789`);
      // The other cluster's workload of the same name cannot read it (another tenant).
      const other: Cluster = cluster === 'east' ? 'west' : 'east';
      const stranger = await login(other, await vaultJwt(other, 'shop', 'billing'));
      expect((await call(stranger.body.token, `/v1/leases/${leaseId}/value`)).status).toBe(404);
    }
    // Neither controller ever logged a value.
    for (const cluster of clusters) expect(controllers[cluster].output()).not.toMatch(/sk_(east|west)_/);
  });

  it("answers 403 to cluster east's controller token in cluster west's tenants, and 401 to its JWT as west's", async () => {
    const east = await login('east', await vaultJwt('east', 'vault-system', 'vault-operator'));
    expect(east.status).toBe(200);
    expect(east.body.controllerOf).toEqual({ cluster: 'east' });
    expect((await call(east.body.token, '/v1/credentials/stripe-api-key', 'east.shop')).status).toBe(200);
    for (const tenant of ['west.shop', 'west.vault-system', 'shop']) {
      const stolen = await call(east.body.token, '/v1/credentials/stripe-api-key', tenant);
      expect(stolen.status, tenant).toBe(403);
      expect(stolen.body.error.message).toContain('"east.<namespace>"');
    }
    // East's ServiceAccount token presented as west's: west's API server does not know it.
    const forged = await login('west', await vaultJwt('east', 'vault-system', 'vault-operator'));
    expect(forged.status).toBe(401);
    // And even its own tenants' values stay out of its reach.
    const leaseId = await must(planes.east, [
      'get',
      'vaultlease',
      'stripe-for-billing',
      '-n',
      'shop',
      '-o',
      'jsonpath={.status.leaseId}',
    ]);
    expect((await call(east.body.token, `/v1/leases/${leaseId}/value`, 'east.shop')).status).toBe(403);
  });

  it("lets an injected agent log in naming its cluster and write its own cluster's value", async () => {
    const files = join(dir, 'agent-files');
    mkdirSync(files, { mode: 0o700 });
    writeFileSync(join(dir, 'billing.token'), await vaultJwt('east', 'shop', 'billing'), { mode: 0o600 });
    // The environment the webhook gives an agent in cluster east (--cluster-name east).
    const agent = startProcess(process.execPath, [vaultCli, 'agent', '--once'], {
      PATH: process.env.PATH,
      HOME: dir,
      VAULT_ADDR: addr,
      VAULT_KUBERNETES_CLUSTER: 'east',
      KUBECONFIG: join(dir, 'east-admin.kubeconfig'),
      VAULT_AGENT_CONFIG: JSON.stringify({
        files: [{ name: 'stripe', lease: 'stripe-for-billing' }],
        directory: files,
        tokenPath: join(dir, 'billing.token'),
        namespace: 'shop',
        healthPort: 0,
      }),
    });
    running.push(agent);
    await waitUntil('the agent to exit', async () => agent.child.exitCode !== null, [], 60_000);
    expect(agent.child.exitCode, agent.output()).toBe(0);
    expect(readFileSync(join(files, 'stripe'), 'utf8')).toBe('sk_east_e0123456789');
  });

  it('revokes in Vault when a VaultLease is deleted in its cluster, leaving the other cluster alone', async () => {
    const ids = {} as Record<Cluster, string>;
    for (const cluster of clusters) {
      ids[cluster] = await must(planes[cluster], [
        'get',
        'vaultlease',
        'stripe-for-billing',
        '-n',
        'shop',
        '-o',
        'jsonpath={.status.leaseId}',
      ]);
    }
    await must(planes.west, ['delete', 'vaultlease', 'stripe-for-billing', '-n', 'shop']);
    const west = await login('west', await vaultJwt('west', 'shop', 'billing'));
    await eventually('the west lease revoked', async () =>
      (await call(west.body.token, `/v1/leases/${ids.west}`)).body.state === 'revoked' ? true : undefined,
    );
    const east = await login('east', await vaultJwt('east', 'shop', 'billing'));
    expect((await call(east.body.token, `/v1/leases/${ids.east}`)).body.state).toBe('active');
  });
});
