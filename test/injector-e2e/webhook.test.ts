import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type V1EphemeralContainer,
  type V1Pod,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCa } from '../../src/webhook/certs.js';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import { repoRoot } from '../support/vault-dev.js';
import { startWebhookProcess, type WebhookProcess } from '../support/webhook-process.js';

/**
 * The injector end to end on a real kube-apiserver: `vault webhook` runs as a process on
 * 127.0.0.1, installs its MutatingWebhookConfiguration (clientConfig.url) with its own CA, and
 * the API server calls it for labelled pods only. Agents are pointed at an https Vault address
 * and given its CA (`--vault-ca-file`, passed on as VAULT_CACERT_PEM).
 */

const ns = 'shop';
const webhookNs = 'vault-system';

let cp: ControlPlane;
let core: CoreV1Api;
let webhookProcess: WebhookProcess | undefined;
const dir = mkdtempSync(join(tmpdir(), 'vault-webhook-e2e-'));
const vaultCaFile = join(dir, 'vault-ca.crt');
let vaultCaPem: string;
const vaultAddr = 'https://vault.vault-system.svc:8200';

const pod = (name: string, opts: { label?: boolean; annotations?: Record<string, string> } = {}): V1Pod => ({
  metadata: {
    name,
    labels: opts.label === false ? { app: 'shop' } : { app: 'shop', 'vault.ghoststack.io/inject': 'true' },
    annotations: opts.annotations ?? { 'vault.ghoststack.io/credential-db.env': 'db-url' },
  },
  spec: {
    containers: [{ name: 'app', image: 'registry.invalid/shop:1', securityContext: { runAsUser: 1000 } }],
  },
});

async function startWebhook(): Promise<void> {
  webhookProcess = await startWebhookProcess({
    kubeconfigPath: cp.kubeconfigPath,
    namespace: webhookNs,
    vaultAddr,
    extraArgs: ['--vault-ca-file', vaultCaFile],
  });
}

async function stopWebhook(): Promise<void> {
  await webhookProcess?.stop();
}

async function until(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}\n${webhookProcess?.output() ?? ''}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const refusal = async (promise: Promise<unknown>): Promise<string> => {
  try {
    await promise;
  } catch (err) {
    return String((err as { body?: string }).body ?? (err as Error).message);
  }
  throw new Error('the API server admitted the pod');
};

beforeAll(async () => {
  vaultCaPem = (await issueCa(30)).certPem;
  writeFileSync(vaultCaFile, vaultCaPem);
  cp = await startControlPlane();
  core = cp.kubeConfig().makeApiClient(CoreV1Api);
  await cp.createNamespace(ns);
  await cp.createNamespace(webhookNs);
  const crds = readdirSync(join(repoRoot, 'crds')).filter((f) => f.endsWith('.yaml'));
  for (const crd of crds) {
    const applied = await cp.kubectl(['apply', '-f', join(repoRoot, 'crds', crd)]);
    if (applied.code !== 0) throw new Error(`kubectl apply ${crd}: ${applied.stderr}`);
  }
  await cp.waitForCrds(['vaultleases.vault.ghoststack.io']);
  await startWebhook();
  // The API server picks the configuration up from its informer; dry runs show when.
  await until('the configuration to take effect', async () => {
    const probe = await core.createNamespacedPod({ namespace: ns, dryRun: 'All', body: pod('probe') });
    return probe.metadata?.annotations?.['vault.ghoststack.io/status'] === 'injected';
  });
}, 240_000);

afterAll(async () => {
  await stopWebhook();
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the injector on a real API server', () => {
  it('stores a labelled pod with the native sidecar, the volumes and read-only mounts', async () => {
    await core.createNamespacedPod({ namespace: ns, body: pod('injected') });
    const stored = await core.readNamespacedPod({ name: 'injected', namespace: ns });
    const agent = stored.spec?.initContainers?.[0];
    expect(agent?.name).toBe('vault-agent');
    expect(agent?.restartPolicy).toBe('Always');
    expect(agent?.startupProbe?.httpGet?.path).toBe('/healthz');
    expect(agent?.securityContext?.runAsUser).toBe(1000);
    expect(agent?.securityContext?.capabilities?.drop).toEqual(['ALL']);
    const env = Object.fromEntries((agent?.env ?? []).map((e) => [e.name, e.value]));
    expect(env.VAULT_ADDR).toBe(vaultAddr);
    expect(env.VAULT_CACERT_PEM).toBe(vaultCaPem);
    const volumes = Object.fromEntries((stored.spec?.volumes ?? []).map((v) => [v.name, v]));
    expect(volumes['vault-secrets']?.emptyDir?.medium).toBe('Memory');
    const token = volumes['vault-token']?.projected?.sources?.[0]?.serviceAccountToken;
    expect([token?.audience, token?.expirationSeconds]).toEqual(['vault', 600]);
    const app = stored.spec?.containers.find((c) => c.name === 'app');
    expect(app?.volumeMounts).toContainEqual({
      name: 'vault-secrets',
      mountPath: '/vault/secrets',
      readOnly: true,
    });
    expect(stored.metadata?.annotations?.['vault.ghoststack.io/status']).toBe('injected');
  });

  it('reviews ephemeral containers (kubectl debug): none may target the agent or mount its token', async () => {
    await core.createNamespacedPod({ namespace: ns, body: pod('debugged') });
    const withEphemeral = async (container: V1EphemeralContainer) => {
      const current = await core.readNamespacedPod({ name: 'debugged', namespace: ns });
      current.spec!.ephemeralContainers = [...(current.spec!.ephemeralContainers ?? []), container];
      return core.replaceNamespacedPodEphemeralcontainers({ name: 'debugged', namespace: ns, body: current });
    };
    const image = 'registry.example/busybox:1';
    const targeted = await refusal(
      withEphemeral({ name: 'peek', image, targetContainerName: 'vault-agent' }),
    );
    expect(targeted).toContain('targets \\"vault-agent\\"');
    const token = await refusal(
      withEphemeral({ name: 'steal', image, volumeMounts: [{ name: 'vault-token', mountPath: '/t' }] }),
    );
    expect(token).toContain("the agent's alone");
    // An ordinary debug container, beside the app, is admitted.
    const fine = await withEphemeral({ name: 'debug', image, targetContainerName: 'app' });
    expect(fine.spec?.ephemeralContainers?.map((c) => c.name)).toEqual(['debug']);
  });

  it('does not start with a Vault CA file that is missing or not PEM, and says which', async () => {
    const start = (caFile: string) =>
      startWebhookProcess({
        kubeconfigPath: cp.kubeconfigPath,
        namespace: webhookNs,
        vaultAddr,
        extraArgs: ['--vault-ca-file', caFile],
      });
    const missing = join(dir, 'missing.crt');
    await expect(start(missing)).rejects.toThrow(
      `vault webhook: --vault-ca-file: cannot read the CA file ${missing}: no such file`,
    );
    const notPem = join(dir, 'not-pem.crt');
    writeFileSync(notPem, 'not a certificate\n');
    await expect(start(notPem)).rejects.toThrow(
      `vault webhook: --vault-ca-file: the CA file ${notPem} is not a PEM CA bundle`,
    );
  }, 120_000);

  it('refuses a labelled pod with a bad annotation, naming it', async () => {
    const message = await refusal(
      core.createNamespacedPod({
        namespace: ns,
        body: pod('typo', { annotations: { 'vault.ghoststack.io/credentials-db': 'db-url' } }),
      }),
    );
    expect(message).toContain('unknown annotation \\"vault.ghoststack.io/credentials-db\\"');
  });

  it('refuses a pod naming a VaultLease that does not exist or that its ServiceAccount cannot read, and admits it once both hold', async () => {
    const body = () => pod('leased', { annotations: { 'vault.ghoststack.io/lease-tls.key': 'shop-tls' } });
    const message = await refusal(core.createNamespacedPod({ namespace: ns, body: body() }));
    expect(message).toContain('VaultLease \\"shop-tls\\" does not exist');
    await cp
      .kubeConfig()
      .makeApiClient(CustomObjectsApi)
      .createNamespacedCustomObject({
        group: 'vault.ghoststack.io',
        version: 'v1alpha1',
        namespace: ns,
        plural: 'vaultleases',
        body: {
          apiVersion: 'vault.ghoststack.io/v1alpha1',
          kind: 'VaultLease',
          metadata: { name: 'shop-tls' },
          spec: { credentialRef: { name: 'shop-tls' }, serviceAccountName: 'default' },
        },
      });
    // It exists, but the pod's ServiceAccount may not read it (its agent would retry forever).
    const unreadable = await refusal(core.createNamespacedPod({ namespace: ns, body: body() }));
    expect(unreadable).toContain('ServiceAccount \\"default\\" cannot read VaultLease \\"shop-tls\\"');
    const role = await cp.kubectl([
      'create',
      'clusterrole',
      'vault-vaultlease-reader',
      '--verb=get',
      '--resource=vaultleases.vault.ghoststack.io',
    ]);
    expect(role.code, role.stderr).toBe(0);
    const binding = await cp.kubectl([
      'create',
      'rolebinding',
      'default-vaultlease-reader',
      `--namespace=${ns}`,
      '--clusterrole=vault-vaultlease-reader',
      `--serviceaccount=${ns}:default`,
    ]);
    expect(binding.code, binding.stderr).toBe(0);
    const created = await core.createNamespacedPod({ namespace: ns, body: body() });
    expect(created.spec?.initContainers?.[0]?.name).toBe('vault-agent');
  });

  it('keeps its CA in a Secret and in the caBundle of the configuration', async () => {
    const secret = await core.readNamespacedSecret({ name: 'vault-injector-tls', namespace: webhookNs });
    const caPem = Buffer.from(secret.data?.['ca.crt'] ?? '', 'base64').toString('utf8');
    const serving = new X509Certificate(Buffer.from(secret.data?.['tls.crt'] ?? '', 'base64'));
    expect(serving.checkIssued(new X509Certificate(caPem))).toBe(true);
    const config = await cp
      .kubeConfig()
      .makeApiClient(AdmissionregistrationV1Api)
      .readMutatingWebhookConfiguration({ name: 'vault-injector' });
    const hook = config.webhooks?.[0];
    expect(Buffer.from(hook?.clientConfig.caBundle ?? '', 'base64').toString('utf8')).toContain(caPem.trim());
    expect(hook?.objectSelector?.matchLabels).toEqual({ 'vault.ghoststack.io/inject': 'true' });
    expect([hook?.failurePolicy, hook?.reinvocationPolicy, hook?.timeoutSeconds]).toEqual([
      'Fail',
      'IfNeeded',
      10,
    ]);
  });

  it('never sees an unlabelled pod, which is admitted unchanged', async () => {
    const created = await core.createNamespacedPod({ namespace: ns, body: pod('plain', { label: false }) });
    expect(created.spec?.initContainers).toBeUndefined();
    expect(created.metadata?.annotations?.['vault.ghoststack.io/status']).toBeUndefined();
  });

  it('with the webhook down: unlabelled pods are admitted, opted-in pods refused', async () => {
    await stopWebhook();
    const created = await core.createNamespacedPod({
      namespace: ns,
      body: pod('plain-while-down', { label: false }),
    });
    expect(created.metadata?.name).toBe('plain-while-down');
    const message = await refusal(
      core.createNamespacedPod({ namespace: ns, body: pod('opted-in-while-down') }),
    );
    expect(message).toMatch(/failed calling webhook/);
  });

  it('refuses to inject into its own namespace even if a pod there is labelled', async () => {
    // The namespaceSelector keeps such pods from the webhook; mutate() refuses them as well
    // (tested in test/webhook/mutate.test.ts). Here: the pod is admitted untouched.
    const created = await core.createNamespacedPod({ namespace: webhookNs, body: pod('own') });
    expect(created.spec?.initContainers).toBeUndefined();
  });
});
