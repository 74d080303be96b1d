/**
 * The agent end to end on a real control plane, with the test playing the kubelet: `vault
 * server` (a child process, Kubernetes login through TokenReview on the control plane) and
 * `vault webhook` run as processes; a labelled, annotated pod is created through the webhook;
 * the test mints that pod's token with TokenRequest (bound to the pod, audience vault) and
 * runs `vault agent` with exactly the arguments and environment the webhook put into the
 * stored pod, as the uid and gid of the agent container's securityContext (non-root, no
 * capabilities, as the kubelet runs it), on a tmpfs directory shaped like the emptyDir. The workload's access is a
 * policy on its identity, set through the API (the operator's VaultCredential access rules
 * produce the same records; test/operator covers that translation).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, type V1Container, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { ROOT_POLICY } from '../../src/core/policy-engine.js';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { silentLogger } from '../../src/lib/logger.js';
import { type Lease, UnauthenticatedError, Vault } from '../../src/sdk/index.js';
import { parseServerConfig } from '../../src/server/config.js';
import { openVault } from '../../src/server/vault-process.js';
import { type ServerProcess, startServer } from '../crash/vault-server.js';
import { podVolume } from '../support/as-user.js';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import { repoRoot, vaultBin } from '../support/vault-dev.js';
import { startWebhookProcess, type WebhookProcess } from '../support/webhook-process.js';

const ns = 'payments';
const serviceAccount = 'payments';
const workload = `system:serviceaccount:${ns}:${serviceAccount}`;
const webhookNs = 'vault-system';
const podName = 'payments-api';
const values = {
  'payments-db-url': "postgres://payments:s3cr'et@db.payments:5432/payments",
  'stripe-api-key': 'sk_live_e2e_4f1d9a',
  'signing-key': 'signing-key-e2e-77c2',
};
/** The policy on the workload identity; `signing-key` is dropped later so its lease runs out. */
const accessRules = (withSigningKey: boolean) => ({
  rules: [
    { credentials: ['payments-db-url', 'stripe-api-key'], actions: ['lease' as const], maxTtl: '1h' },
    ...(withSigningKey ? [{ credentials: ['signing-key'], actions: ['lease' as const] }] : []),
  ],
});

let cp: ControlPlane;
let core: CoreV1Api;
let base: string;
let secretsDir: string;
let server: ServerProcess;
let admin: Vault;
let webhook: WebhookProcess | undefined;
let agent: ChildProcess | undefined;
let agentOutput = '';
let stored: V1Pod;
let podToken: string;
let tokenFile: string;

async function until(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
  intervalMs = 50,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}\nagent output:\n${agentOutput.slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A system root token in tenant `payments`, minted in-process before `vault server` opens the store. */
async function bootstrapRootToken(configInput: Record<string, unknown>): Promise<string> {
  const config = parseServerConfig({ listen: '127.0.0.1:0', auditLog: 'none', ...configInput });
  const { store, core: vaultCore } = await openVault(config, silentLogger);
  try {
    const identity = { type: 'human' as const, name: 'e2e-admin' };
    const ctx = systemContext(ns, identity);
    await vaultCore.tenants.ensure(ns, ctx);
    const minted = await vaultCore.tokens.mint(ctx, ns, {
      identity,
      policies: [ROOT_POLICY],
      ttlMs: 3_600_000,
      system: true,
    });
    return minted.token;
  } finally {
    await store.close();
  }
}

function spawnCollecting(
  args: string[],
  env: NodeJS.ProcessEnv,
  onOutput: (chunk: string) => void,
  user: { uid: number; gid: number },
) {
  const child = spawn(process.execPath, [vaultBin, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
    ...user,
  });
  child.stdout?.setEncoding('utf8').on('data', onOutput);
  child.stderr?.setEncoding('utf8').on('data', onOutput);
  return child;
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

const exitOf = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
    : new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once('exit', (code, signal) => resolve({ code, signal })),
      );

const podBody = (): V1Pod => ({
  metadata: {
    name: podName,
    labels: { app: 'payments', 'vault.ghoststack.io/inject': 'true' },
    annotations: {
      'vault.ghoststack.io/credential-db.env': 'payments-db-url',
      'vault.ghoststack.io/format-db.env': 'env',
      'vault.ghoststack.io/env-name-db.env': 'DATABASE_URL',
      'vault.ghoststack.io/ttl-db.env': '6s',
      'vault.ghoststack.io/credential-stripe.json': 'stripe-api-key',
      'vault.ghoststack.io/format-stripe.json': 'json',
      'vault.ghoststack.io/ttl-stripe.json': '1h',
      // Renewals stop at once (max TTL = TTL): the agent leases again while policy allows.
      'vault.ghoststack.io/credential-signing.key': 'signing-key',
      'vault.ghoststack.io/ttl-signing.key': '5s',
      'vault.ghoststack.io/max-ttl-signing.key': '5s',
    },
  },
  spec: {
    serviceAccountName: serviceAccount,
    securityContext: { runAsUser: 1000, runAsGroup: 1000 },
    containers: [{ name: 'api', image: 'registry.invalid/payments:2.1' }],
  },
});

/** The agent container as the webhook stored it, and the process that runs it here. */
function agentContainer(pod: V1Pod): V1Container {
  const container = pod.spec?.initContainers?.find((c) => c.name === 'vault-agent');
  if (!container) throw new Error('the stored pod has no vault-agent init container');
  return container;
}

function agentEnv(pod: V1Pod, container: V1Container): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
  for (const variable of container.env ?? []) {
    const field = variable.valueFrom?.fieldRef?.fieldPath;
    // The kubelet resolves the downward API; here the test does.
    if (field === 'metadata.name') env[variable.name] = pod.metadata?.name;
    else if (field === 'metadata.namespace') env[variable.name] = pod.metadata?.namespace;
    else env[variable.name] = variable.value;
  }
  return env;
}

/** The uid and gid the kubelet would run the agent container as. */
function agentUser(container: V1Container): { uid: number; gid: number } {
  const { runAsUser, runAsGroup, runAsNonRoot, capabilities } = container.securityContext ?? {};
  if (!runAsUser || runAsNonRoot !== true || !capabilities?.drop?.includes('ALL'))
    throw new Error('the agent container is not non-root with every capability dropped');
  return { uid: runAsUser, gid: runAsGroup ?? runAsUser };
}

function startAgent(pod: V1Pod, extraEnv: NodeJS.ProcessEnv = {}): ChildProcess {
  agentOutput = '';
  const container = agentContainer(pod);
  const user = agentUser(container);
  // The kubelet makes the projected token readable by the container's user.
  chownSync(tokenFile, user.uid, user.gid);
  // The container's own arguments; the overrides stand for the kubelet's mounts and ports.
  return spawnCollecting(
    [
      ...(container.args ?? []),
      '--token-file',
      tokenFile,
      '--directory',
      secretsDir,
      '--health-host',
      '127.0.0.1',
      '--health-port',
      '0',
    ],
    { ...agentEnv(pod, container), ...extraEnv },
    (chunk) => {
      agentOutput += chunk;
    },
    user,
  );
}

/** How often the API server has called the injector for CREATE so far (its own metric). */
async function webhookCalls(): Promise<number> {
  const metrics = await cp.kubectl(['get', '--raw', '/metrics']);
  const line = metrics.stdout
    .split('\n')
    .find(
      (l) =>
        l.startsWith('apiserver_admission_webhook_admission_duration_seconds_count{') &&
        l.includes('name="inject.vault.ghoststack.io"') &&
        l.includes('operation="CREATE"') &&
        l.includes('rejected="false"'),
    );
  return Number(line?.split(' ').pop() ?? 0);
}

const healthPort = () => Number(/"healthPort":(\d+)/.exec(agentOutput)?.[1] ?? 0);
const fileIn = (name: string) => join(secretsDir, name);

async function leasesOf(credentialName: string): Promise<Lease[]> {
  return admin.leases.list({ credentialName, identityType: 'workload', identityName: workload, limit: 1000 });
}
async function activeLease(credentialName: string): Promise<Lease | undefined> {
  return (await leasesOf(credentialName)).find((lease) => lease.state === 'active');
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'vault-agent-e2e-'));
  // The agent runs as another uid: it may traverse to its token, nothing more.
  chmodSync(base, 0o711);
  secretsDir = podVolume();
  tokenFile = join(base, 'token');

  cp = await startControlPlane();
  core = cp.kubeConfig().makeApiClient(CoreV1Api);
  await cp.createNamespace(ns);
  await cp.createNamespace(webhookNs);
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: serviceAccount } } });

  const rootKeyFile = join(base, 'root.key');
  await generateRootKeyFile(rootKeyFile);
  const dataDir = join(base, 'data');
  const rootToken = await bootstrapRootToken({ store: 'embedded', dataDir, rootKeyFile });
  server = await startServer([
    '--store',
    'embedded',
    '--data-dir',
    dataDir,
    '--root-key-file',
    rootKeyFile,
    '--audit-log',
    'none',
    '--kubernetes-auth',
    '--kubeconfig',
    cp.kubeconfigPath,
  ]);
  admin = await Vault.connect({ addr: server.url, token: rootToken, tenant: ns });
  for (const [name, value] of Object.entries(values))
    await admin.credentials.create({ name, type: 'generic', value, metadata: { team: 'payments' } });
  await admin.policies.put('payments-app', accessRules(true));
  await admin.identities.put('workload', workload, { policies: ['payments-app'] });

  webhook = await startWebhookProcess({
    kubeconfigPath: cp.kubeconfigPath,
    namespace: webhookNs,
    agentImage: 'ghcr.io/ghoststack/vault:e2e',
    vaultAddr: server.url,
    startTimeoutMs: 90_000,
  });
  await until(
    'the webhook configuration to take effect',
    async () => {
      const probe = await core.createNamespacedPod({ namespace: ns, dryRun: 'All', body: podBody() });
      return probe.metadata?.annotations?.['vault.ghoststack.io/status'] === 'injected';
    },
    60_000,
  );
}, 300_000);

afterAll(async () => {
  await stop(agent);
  await webhook?.stop();
  await server?.stop();
  await cp?.stop();
  if (secretsDir) rmSync(secretsDir, { recursive: true, force: true });
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('the agent the webhook injects, run against the real API server and vault server', () => {
  it('is in the stored pod, and logs in with the pod-bound token to write every file (mode 0400)', async () => {
    const callsBefore = await webhookCalls();
    await core.createNamespacedPod({ namespace: ns, body: podBody() });
    // One call: the patch already holds what the ServiceAccount plugin would add on its second
    // pass (the API token mount), so the API server has no reason to reinvoke the webhook.
    expect((await webhookCalls()) - callsBefore).toBe(1);
    stored = await core.readNamespacedPod({ name: podName, namespace: ns });
    const container = agentContainer(stored);
    expect(container.restartPolicy).toBe('Always');
    const env = agentEnv(stored, container);
    expect(env.VAULT_ADDR).toBe(server.url);
    expect(JSON.parse(env.VAULT_AGENT_CONFIG ?? '{}')).toMatchObject({
      directory: '/vault/secrets',
      namespace: ns,
      files: expect.arrayContaining([
        expect.objectContaining({ name: 'db.env', credential: 'payments-db-url', ttl: '6s' }),
      ]),
    });

    const { status } = await core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace: ns,
      body: {
        spec: {
          audiences: ['vault'],
          expirationSeconds: 600,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: podName, uid: stored.metadata?.uid },
        },
      },
    });
    podToken = status!.token;
    writeFileSync(tokenFile, podToken, { mode: 0o600 });

    agent = startAgent(stored);
    await until(
      'every file to be written',
      () => ['db.env', 'stripe.json', 'signing.key'].every((f) => existsSync(fileIn(f))),
      60_000,
    );
    const mount = readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .find((line) => line.split(' ')[1] === '/dev/shm');
    expect(mount?.split(' ')[2]).toBe('tmpfs');
    expect(readFileSync(fileIn('db.env'), 'utf8')).toBe(
      "DATABASE_URL='postgres://payments:s3cr'\\''et@db.payments:5432/payments'\n",
    );
    expect(JSON.parse(readFileSync(fileIn('stripe.json'), 'utf8'))).toEqual({
      STRIPE_JSON: values['stripe-api-key'],
    });
    expect(readFileSync(fileIn('signing.key'), 'utf8')).toBe(values['signing-key']);
    for (const name of ['db.env', 'stripe.json', 'signing.key']) {
      const stat = statSync(fileIn(name));
      expect(stat.mode & 0o777, name).toBe(0o400);
      // Owned by the pod's runAsUser (the agent runs as it), not by root.
      expect(stat.uid, name).toBe(1000);
    }
    // No temporary file is left next to them.
    expect(readdirSync(secretsDir).sort()).toEqual(['db.env', 'signing.key', 'stripe.json']);

    await until('the health endpoint', () => healthPort() > 0);
    const health = await fetch(`http://127.0.0.1:${healthPort()}/healthz`);
    expect(health.status).toBe(200);
    const lease = await activeLease('payments-db-url');
    expect(lease?.identity).toEqual({ type: 'workload', name: workload });
    // Labelled with its pod (the downward API), for the web console's Kubernetes view.
    expect(lease?.labels).toMatchObject({
      'vault.ghoststack.io/pod': podName,
      'vault.ghoststack.io/namespace': ns,
    });
  }, 120_000);

  it('renews its lease at about two thirds of the TTL, keeping the file', async () => {
    const first = await activeLease('payments-db-url');
    expect(first).toBeDefined();
    // TTL 6 s, renewed at ~4 s: two renewals within ~8 s (generous bound for a busy machine).
    await until(
      'two renewals of the db.env lease',
      async () => ((await admin.leases.get(first!.id)).renewCount ?? 0) >= 2,
      40_000,
      500,
    );
    const renewed = await admin.leases.get(first!.id);
    expect(renewed.state).toBe('active');
    expect(renewed.expiresAt.getTime()).toBeGreaterThan(first!.expiresAt.getTime());
    expect(existsSync(fileIn('db.env'))).toBe(true);
  }, 60_000);

  it('wipes a file within a second of its lease being revoked through the API, and keeps it wiped', async () => {
    const lease = await activeLease('stripe-api-key');
    expect(lease).toBeDefined();
    const start = Date.now();
    await admin.leases.revoke(lease!.id);
    while (existsSync(fileIn('stripe.json'))) {
      if (Date.now() - start > 10_000) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const elapsed = Date.now() - start;
    expect(existsSync(fileIn('stripe.json'))).toBe(false);
    expect(elapsed).toBeLessThan(1_000);
    // A revocation is a decision: the agent does not lease the credential again.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(existsSync(fileIn('stripe.json'))).toBe(false);
    expect(await activeLease('stripe-api-key')).toBeUndefined();
    expect(existsSync(fileIn('db.env'))).toBe(true);
  }, 30_000);

  it('leases again at the max TTL while policy allows, and wipes the file once a lease runs out', async () => {
    // Max TTL 5 s: each lease is replaced (new lease, file rewritten, old lease revoked).
    await until(
      'a lease of signing-key replaced at its max TTL',
      async () => (await leasesOf('signing-key')).some((l) => l.state === 'revoked'),
      40_000,
      250,
    );
    expect(existsSync(fileIn('signing.key'))).toBe(true);

    await admin.policies.put('payments-app', accessRules(false));
    // The current lease may not be renewed (max TTL) nor replaced (policy): it runs out.
    await until('signing.key to be wiped at expiry', () => !existsSync(fileIn('signing.key')), 30_000);
    const leases = await leasesOf('signing-key');
    expect(leases.filter((l) => l.state === 'active')).toEqual([]);
    const expired = leases.filter((l) => l.state === 'expired');
    expect(expired.length).toBeGreaterThanOrEqual(1);
    // The file went no earlier than the lease's end.
    const last = expired.reduce((a, b) => (a.expiresAt > b.expiresAt ? a : b));
    expect(last.expiresAt.getTime()).toBeLessThanOrEqual(Date.now());
    // The agent counts it as an expiry (its timer at expiresAt), not a revocation.
    const metrics = await (await fetch(`http://127.0.0.1:${healthPort()}/metrics`)).text();
    expect(metrics).toMatch(/vault_agent_wipes_total\{reason="expired"\} [1-9]/);
    expect(metrics).toMatch(/vault_agent_renewals_total\{outcome="released"\} [1-9]/);
    expect(existsSync(fileIn('db.env'))).toBe(true);
  }, 90_000);

  it('on SIGTERM wipes every file, revokes its leases in Vault and exits 0', async () => {
    const db = await activeLease('payments-db-url');
    expect(db).toBeDefined();
    const exited = exitOf(agent!);
    agent!.kill('SIGTERM');
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(readdirSync(secretsDir)).toEqual([]);
    expect((await admin.leases.get(db!.id)).state).toBe('revoked');
    for (const credential of Object.keys(values))
      expect(await activeLease(credential), credential).toBeUndefined();
    // Nothing it logged carries a value.
    for (const value of Object.values(values)) expect(agentOutput).not.toContain(value);
  }, 30_000);

  it('shows every step in the audit log, attributed to the ServiceAccount', async () => {
    const all = await admin.audit.query({ limit: 1000 });
    const mine = all.filter((r) => r.actor.name === workload);
    for (const record of mine) {
      expect(record.actor.type).toBe('workload');
      expect(record.actingFor?.name ?? workload).toBe(workload);
    }
    const steps = new Set(mine.map((r) => `${r.action} ${r.outcome}`));
    for (const step of [
      'token.create allowed', // the Kubernetes login
      'lease.create allowed',
      'lease.renew allowed',
      'lease.revoke allowed', // replaced at the max TTL, and on SIGTERM
      'lease.create denied', // signing-key, once the policy no longer allowed it
    ])
      expect(steps, step).toContain(step);

    // Every lease the pod held was created by it, and every renewal and revocation was its
    // own, except the one revocation the admin made through the API.
    const leases = (await Promise.all(Object.keys(values).map((credential) => leasesOf(credential)))).flat();
    expect(leases.length).toBeGreaterThanOrEqual(4);
    for (const lease of leases) {
      const about = all.filter((r) => r.resource === `lease/${lease.id}`);
      const created = about.filter((r) => r.action === 'lease.create');
      expect(
        created.map((r) => r.actor.name),
        lease.id,
      ).toEqual([workload]);
      const changes = about.filter((r) => r.action === 'lease.renew' || r.action === 'lease.revoke');
      for (const record of changes)
        expect(
          record.actor.name === workload ||
            (record.action === 'lease.revoke' && record.actor.name === 'e2e-admin'),
          `${record.action} of ${lease.id} by ${record.actor.name}`,
        ).toBe(true);
    }
    const adminRevokes = all.filter((r) => r.action === 'lease.revoke' && r.actor.name === 'e2e-admin');
    expect(adminRevokes.map((r) => r.actingFor)).toEqual([{ type: 'workload', name: workload }]);
    // The agent did not revoke again what the admin had revoked.
    const revokedByAdmin = adminRevokes[0]!.resource;
    expect(mine.filter((r) => r.resource === revokedByAdmin).map((r) => r.action)).toEqual(['lease.create']);
    // No record carries a value, and the chain verifies.
    for (const value of Object.values(values)) expect(JSON.stringify(all)).not.toContain(value);
    expect((await admin.audit.verify()).ok).toBe(true);
  }, 30_000);

  it('refuses the pod token once the pod is deleted, and the agent then exits 1 saying why', async () => {
    const login = () => Vault.loginKubernetes({ jwt: podToken }, { addr: server.url });
    await expect(login()).resolves.toMatchObject({ identity: { type: 'workload', name: workload } });
    await core.deleteNamespacedPod({ name: podName, namespace: ns });
    // TokenReview results may be cached for a few seconds: poll.
    let refusal: unknown;
    await until(
      'the login to be refused',
      async () => {
        try {
          await login();
          return false;
        } catch (err) {
          refusal = err;
          return true;
        }
      },
      60_000,
    );
    expect(refusal).toBeInstanceOf(UnauthenticatedError);

    agent = startAgent(stored);
    const exit = await exitOf(agent);
    expect(exit.code).toBe(1);
    const fatal = agentOutput
      .trim()
      .split('\n')
      .filter((line) => line.includes('"level":60'));
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatch(/Kubernetes login to Vault at http:\/\/127\.0\.0\.1:\d+ failed/);
    expect(readdirSync(secretsDir)).toEqual([]);
  }, 90_000);
});
