/**
 * `lease-<file>` files on a real kube-apiserver: the agent reads its VaultLease with the pod's
 * own ServiceAccount token, so that ServiceAccount needs `get` on it. The chart ships a
 * ClusterRole for that, which a namespace binds to its ServiceAccounts; the webhook asks the
 * API server (SubjectAccessReview) at admission and refuses a pod whose ServiceAccount could
 * not read its VaultLease, saying which RoleBinding to create. A pod that turns the API token
 * off (`automountServiceAccountToken: false`) still gives the agent, and only the agent, one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeClient, isStatus, resourceTypes } from '../../src/k8s/api-client.js';
import { render } from '../chart/support.js';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import { repoRoot } from '../support/vault-dev.js';
import { startWebhookProcess, type WebhookProcess } from '../support/webhook-process.js';

const ns = 'payments';
const otherNs = 'billing';
const sa = 'payments';
const release = { release: 'vault', namespace: 'vault-system' };
const readerRole = 'vault-vault-system-vaultlease-reader';

let cp: ControlPlane;
let core: CoreV1Api;
let webhook: WebhookProcess | undefined;
const dir = mkdtempSync(join(tmpdir(), 'vault-lease-access-'));

const leasePod = (name: string, extra: Partial<V1Pod['spec']> = {}): V1Pod => ({
  metadata: {
    name,
    labels: { 'vault.ghoststack.io/inject': 'true' },
    annotations: { 'vault.ghoststack.io/lease-db.url': 'payments-db' },
  },
  spec: {
    serviceAccountName: sa,
    securityContext: { fsGroup: 2000 },
    containers: [{ name: 'api', image: 'registry.invalid/payments:1', securityContext: { runAsUser: 1000 } }],
    ...extra,
  },
});

async function refusal(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (err) {
    return String((err as { body?: unknown }).body ?? (err as Error).message);
  }
  throw new Error('the pod was admitted');
}

async function vaultLease(namespace: string, name: string) {
  await cp
    .kubeConfig()
    .makeApiClient(CustomObjectsApi)
    .createNamespacedCustomObject({
      group: 'vault.ghoststack.io',
      version: 'v1alpha1',
      namespace,
      plural: 'vaultleases',
      body: {
        apiVersion: 'vault.ghoststack.io/v1alpha1',
        kind: 'VaultLease',
        metadata: { name },
        spec: { credentialRef: { name: 'db-url' }, serviceAccountName: sa },
      },
    });
}

/** A token of the pod's ServiceAccount, bound to the pod, for the API server (what the kubelet mounts). */
async function podToken(podName: string, uid: string | undefined): Promise<string> {
  const { status } = await core.createNamespacedServiceAccountToken({
    name: sa,
    namespace: ns,
    body: {
      spec: {
        audiences: [],
        expirationSeconds: 3607,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: podName, uid },
      },
    },
  });
  return status!.token;
}

beforeAll(async () => {
  cp = await startControlPlane();
  core = cp.kubeConfig().makeApiClient(CoreV1Api);
  const crds = await cp.kubectl(['apply', '-f', join(repoRoot, 'crds/')]);
  if (crds.code !== 0) throw new Error(crds.stderr);
  for (const name of [ns, otherNs, 'vault-system']) await cp.createNamespace(name);
  for (const namespace of [ns, otherNs])
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: sa } } });

  // The chart's RBAC, as `helm install` would create it.
  const objects = await render({}, release);
  const rbac = objects.filter(
    (o) =>
      ['ClusterRole', 'ClusterRoleBinding', 'ServiceAccount'].includes(o.kind) &&
      (o.metadata.name === readerRole || o.metadata.name.includes('webhook')),
  );
  const applied = await cp.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }),
  });
  if (applied.code !== 0) throw new Error(applied.stderr);
  await vaultLease(ns, 'payments-db');
  await vaultLease(otherNs, 'billing-db');

  webhook = await startWebhookProcess({
    kubeconfigPath: cp.kubeconfigPath,
    namespace: 'vault-system',
    extraArgs: [`--lease-reader-role=${readerRole}`],
  });
  // The configuration takes a moment to reach the API server's admission chain.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const probe = await core
      .createNamespacedPod({
        namespace: ns,
        dryRun: 'All',
        body: {
          ...leasePod('probe'),
          metadata: {
            ...leasePod('probe').metadata,
            annotations: { 'vault.ghoststack.io/credential-x': 'x' },
          },
        },
      })
      .catch(() => undefined);
    if (probe?.metadata?.annotations?.['vault.ghoststack.io/status'] === 'injected') break;
    if (Date.now() > deadline) throw new Error(`the webhook never took effect:\n${webhook.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}, 300_000);

afterAll(async () => {
  await webhook?.stop();
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('lease-<file>: the pod ServiceAccount reads its VaultLease', () => {
  it("the chart lets the webhook ask the API server what a pod's ServiceAccount may do", async () => {
    const can = await cp.kubectl([
      'auth',
      'can-i',
      'create',
      'subjectaccessreviews.authorization.k8s.io',
      '--as=system:serviceaccount:vault-system:vault-webhook',
    ]);
    expect(can.stdout.trim()).toBe('yes');
  });

  it('refuses the pod while its ServiceAccount cannot read the VaultLease, naming the RoleBinding to create', async () => {
    const message = await refusal(core.createNamespacedPod({ namespace: ns, body: leasePod('api-1') }));
    expect(message).toContain('ServiceAccount \\"payments\\" cannot read VaultLease \\"payments-db\\"');
    const command = /kubectl create rolebinding [^"\\]+/.exec(message)?.[0];
    expect(command).toBe(
      `kubectl create rolebinding payments-vaultlease-reader --namespace=payments --clusterrole=${readerRole} --serviceaccount=payments:payments`,
    );
    // The command from the message, run as it stands.
    const created = await cp.kubectl(command!.split(' ').slice(1));
    expect(created.code, created.stderr).toBe(0);
  });

  it("admits it once bound; the pod's own token then reads the VaultLease, and nothing more", async () => {
    const pod = await core.createNamespacedPod({ namespace: ns, body: leasePod('api-1') });
    expect(pod.spec?.initContainers?.[0]?.name).toBe('vault-agent');
    const token = await podToken('api-1', pod.metadata?.uid);
    // The agent's look-up, with the pod's credentials (not the test's admin ones).
    const client = await createKubeClient(cp.kubeConfigForToken(token));
    try {
      const lease = await client.get<{ metadata: { name: string } }>(
        resourceTypes.vaultLeases,
        ns,
        'payments-db',
      );
      expect(lease.metadata.name).toBe('payments-db');
      // Least privilege: another namespace's VaultLease, and listing, stay forbidden.
      const other = await client.get(resourceTypes.vaultLeases, otherNs, 'billing-db').catch((err) => err);
      expect(isStatus(other, 403)).toBe(true);
      const secrets = await client.get(resourceTypes.secrets, ns, 'anything').catch((err) => err);
      expect(isStatus(secrets, 403)).toBe(true);
    } finally {
      client.close();
    }
  });

  it('with automountServiceAccountToken: false, gives the agent alone an API token, CA and namespace', async () => {
    const pod = await core.createNamespacedPod({
      namespace: ns,
      body: leasePod('api-2', { automountServiceAccountToken: false }),
    });
    const agent = pod.spec?.initContainers?.find((c) => c.name === 'vault-agent');
    const mount = agent?.volumeMounts?.find(
      (m) => m.mountPath === '/var/run/secrets/kubernetes.io/serviceaccount',
    );
    expect(mount?.readOnly).toBe(true);
    const volume = pod.spec?.volumes?.find((v) => v.name === mount?.name);
    const sources = volume?.projected?.sources ?? [];
    expect(sources.map((s) => Object.keys(s).find((k) => s[k as keyof typeof s] !== undefined))).toEqual([
      'serviceAccountToken',
      'configMap',
      'downwardAPI',
    ]);
    expect(sources[0]?.serviceAccountToken?.path).toBe('token');
    expect(sources[1]?.configMap?.name).toBe('kube-root-ca.crt');
    // The app keeps no API token.
    const api = pod.spec?.containers.find((c) => c.name === 'api');
    expect(api?.volumeMounts?.map((m) => m.mountPath)).toEqual(['/vault/secrets']);
  });

  it('a pod with only credential files needs no Kubernetes API access and no RoleBinding', async () => {
    const body = leasePod('api-3', { serviceAccountName: 'default', automountServiceAccountToken: false });
    body.metadata!.annotations = { 'vault.ghoststack.io/credential-db.url': 'db-url' };
    const pod = await core.createNamespacedPod({ namespace: ns, body });
    const agent = pod.spec?.initContainers?.find((c) => c.name === 'vault-agent');
    expect(agent?.volumeMounts?.map((m) => m.mountPath)).toEqual([
      '/vault/secrets',
      '/var/run/secrets/vault.ghoststack.io',
    ]);
  });
});
