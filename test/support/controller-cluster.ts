/**
 * A Vault serving cluster "east" whose controller logs in for real: a kube-apiserver reviews
 * the ServiceAccount tokens (as the production reviewer identity), Vault's store is a real
 * etcd (or the embedded store), and the controller's token comes from `POST /v1/auth/kubernetes/login`. Namespaces
 * `shop` (ServiceAccount `app`) and `vault-system` (`vault-operator`) exist; the controller
 * has reached tenant `east.shop`, so it exists.
 */
import { CoreV1Api } from '@kubernetes/client-node';
import { expect } from 'vitest';
import type { CoreConfig } from '../../src/core/deps.js';
import type { EngineRegistry } from '../../src/engines/engine.js';
import { kubernetesTokenReviewer } from '../../src/server/token-review.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';
import { type EtcdProcess, startEtcd } from './etcd.js';
import { startTestVault, type TestVault } from './test-vault.js';
import { reviewerKubeconfig } from './token-reviewer.js';

export interface ControllerCluster {
  cp: ControlPlane;
  /** The etcd Vault's store lives in (none on the embedded store). */
  etcd: EtcdProcess | undefined;
  store: Store;
  vault: TestVault;
  tenant: string;
  /** The workload of `shop/app`. */
  app: { type: 'workload'; name: string };
  /** The controller's token. */
  controller: string;
  /** A token of ServiceAccount `namespace/name` for audience `vault`. */
  mint(namespace: string, name: string): Promise<string>;
  /** `POST /v1/auth/kubernetes/login`, for cluster east unless `body` says otherwise. */
  login(jwt: string, body?: Record<string, unknown>): ReturnType<TestVault['call']>;
  /** A call in tenant `east.shop` (or `on`) as the controller, or as the root token. */
  asController(method: string, path: string, body?: unknown, on?: string): ReturnType<TestVault['call']>;
  asAdmin(method: string, path: string, body?: unknown): ReturnType<TestVault['call']>;
  close(): Promise<void>;
}

export async function startControllerCluster(
  options: {
    engines?: EngineRegistry;
    /** Vault's store: a real etcd (default) or the embedded store. */
    store?: 'etcd' | 'embedded';
    core?: Partial<CoreConfig>;
  } = {},
): Promise<ControllerCluster> {
  const cp = await startControlPlane();
  const k8s = cp.kubeConfig().makeApiClient(CoreV1Api);
  for (const [namespace, name] of [
    ['shop', 'app'],
    ['vault-system', 'vault-operator'],
  ] as const) {
    await cp.createNamespace(namespace);
    await k8s.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  }
  const etcd = options.store === 'embedded' ? undefined : await startEtcd();
  const vault = await startTestVault({
    ...(etcd ? { store: await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 10_000 }) } : {}),
    ...(options.engines ? { engines: options.engines } : {}),
    ...(options.core ? { core: options.core } : {}),
    kubernetes: {
      clusters: {
        east: {
          reviewer: await kubernetesTokenReviewer({ kubeconfigPath: await reviewerKubeconfig(cp) }),
          controller: 'vault-system:vault-operator',
        },
      },
      audience: 'vault',
      maxTokenTtlMs: 3_600_000,
    },
  });
  const tenant = 'east.shop';
  const mint = async (namespace: string, name: string) => {
    const { status } = await k8s.createNamespacedServiceAccountToken({
      name,
      namespace,
      body: { spec: { audiences: ['vault'], expirationSeconds: 600 } },
    });
    return status!.token;
  };
  const store = vault.store;
  const login = (jwt: string, body: Record<string, unknown> = { cluster: 'east' }) =>
    vault.call('POST', '/v1/auth/kubernetes/login', { token: null, body: { jwt, ...body } });
  const result = await login(await mint('vault-system', 'vault-operator'));
  expect(result.status, result.text).toBe(200);
  expect(result.body.controllerOf).toEqual({ cluster: 'east' });
  const controller = result.body.token as string;
  const as =
    (token: string | undefined) =>
    (method: string, path: string, body?: unknown, on = tenant) =>
      vault.call(method, path, {
        ...(token ? { token } : {}),
        tenant: on,
        ...(body !== undefined ? { body } : {}),
      });
  const cluster: ControllerCluster = {
    cp,
    etcd,
    store,
    vault,
    tenant,
    app: { type: 'workload', name: 'system:serviceaccount:shop:app' },
    controller,
    mint,
    login,
    asController: as(controller),
    asAdmin: as(undefined),
    async close() {
      await vault.close();
      if (etcd) {
        await store.close();
        await etcd.stop();
      }
      await cp.stop();
    },
  };
  // The tenant exists: the controller reaches it first.
  expect((await cluster.asController('GET', '/v1/credentials')).status).toBe(200);
  return cluster;
}
