/**
 * Shared setup of the operator suites: a real control plane with the CRDs and the
 * operator's RBAC applied, the Vault API on a real embedded store (in-process, real HTTP)
 * with Kubernetes login against that control plane, and the controller as a client of that
 * API: it logs in with its ServiceAccount's token (TokenRequest, audience "vault") and gets
 * the controller role. Controllers always run with the ServiceAccount's kubeconfig, so a
 * permission missing from deploy/rbac/operator.yaml fails the tests. Secrets are readable only
 * in the namespaces a suite names (`secretNamespaces`), bound as the docs say.
 */
import { fileURLToPath } from 'node:url';
import type { KubeConfig } from '@kubernetes/client-node';
import type { DynamicConfig } from '../../src/core/dynamic-accounts.js';
import type { VaultCore } from '../../src/core/index.js';
import type { EngineRegistry } from '../../src/engines/engine.js';
import { createKubeClient, type KubeClient } from '../../src/k8s/api-client.js';
import { systemClock } from '../../src/lib/clock.js';
import { createLogger, type Logger } from '../../src/lib/logger.js';
import { createApiPort } from '../../src/operator/api-port.js';
import { createOperator, type Operator, type OperatorOptions } from '../../src/operator/manager.js';
import type { VaultPort } from '../../src/operator/vault-port.js';
import { openVaultSession, type VaultSession } from '../../src/operator/vault-session.js';
import { kubernetesTokenReviewer } from '../../src/server/token-review.js';
import type { Store } from '../../src/store/store.js';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';
import { reviewerKubeconfig } from '../support/token-reviewer.js';

export const repoFile = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));

export interface OperatorEnv {
  cp: ControlPlane;
  store: Store;
  core: VaultCore;
  /** The Vault API the controller talks to. */
  vault: TestVault;
  /** A port over the API, logged in as the controller (for tests that wrap it); `addr` defaults to the API's. */
  port(addr?: string): Promise<VaultPort>;
  /** The controller's kubeconfig: the vault-operator ServiceAccount's token. */
  operatorKubeConfig: KubeConfig;
  /** An admin client for the test's own reads. */
  admin: KubeClient;
  logger: Logger;
  logs(): string;
  startOperator(options?: Partial<OperatorOptions>): Promise<Operator>;
  close(): Promise<void>;
}

export interface OperatorEnvOptions {
  /** Dynamic secrets engines the Vault core runs (its sweep is started with them). */
  engines?: EngineRegistry;
  dynamic?: Partial<DynamicConfig>;
  /**
   * Namespaces VaultCredentials import Secrets from: created here, each with a RoleBinding of
   * `vault-operator-secret-reader` (the command deploy/rbac/operator.yaml documents), and
   * given to every controller as `secretNamespaces`.
   */
  secretNamespaces?: string[];
}

/** The RoleBinding deploy/rbac/operator.yaml documents, giving the operator a namespace's Secrets. */
export const secretImportBinding = (namespace: string) => [
  '-n',
  namespace,
  'create',
  'rolebinding',
  'vault-operator-secret-import',
  '--clusterrole=vault-operator-secret-reader',
  '--serviceaccount=vault-system:vault-operator',
];

export async function setupOperatorEnv(options: OperatorEnvOptions = {}): Promise<OperatorEnv> {
  const cp = await startControlPlane();
  const cleanup: Array<() => Promise<void>> = [() => cp.stop()];
  try {
    const must = async (args: string[], input?: string) => {
      const result = await cp.kubectl(args, input ? { input } : {});
      if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${result.stderr}`);
      return result.stdout;
    };
    await must(['apply', '-f', repoFile('crds/')]);
    await cp.waitForCrds(['vaultleases.vault.ghoststack.io', 'vaultcredentials.vault.ghoststack.io']);
    await cp.createNamespace('vault-system');
    await must(['apply', '-f', repoFile('deploy/rbac/operator.yaml')]);
    const secretNamespaces = options.secretNamespaces ?? [];
    for (const namespace of secretNamespaces) {
      await cp.createNamespace(namespace);
      await must(secretImportBinding(namespace));
    }
    const token = (
      await must(['create', 'token', 'vault-operator', '-n', 'vault-system', '--duration=2h'])
    ).trim();
    const operatorKubeConfig = cp.kubeConfigForToken(token);

    const vault = await startTestVault({
      kubernetes: {
        reviewer: await kubernetesTokenReviewer({ kubeconfigPath: await reviewerKubeconfig(cp) }),
        controller: 'vault-system:vault-operator',
        audience: 'vault',
        maxTokenTtlMs: 3_600_000,
      },
      // The API server runs the dynamic engines (and their sweep) when a suite passes them.
      ...(options.engines ? { engines: options.engines } : {}),
      ...(options.dynamic ? { dynamic: options.dynamic } : {}),
    });
    cleanup.unshift(() => vault.close());
    const { store, core } = vault;
    const vaultToken = (
      await must([
        'create',
        'token',
        'vault-operator',
        '-n',
        'vault-system',
        '--audience=vault',
        '--duration=2h',
      ])
    ).trim();
    let output = '';
    const logger = createLogger({
      level: 'debug',
      destination: {
        write: (line: string) => {
          output += line;
        },
      },
    });
    const sessions: VaultSession[] = [];
    const port = async (addr = vault.url) => {
      const session = await openVaultSession({
        addr,
        readToken: async () => vaultToken,
        clock: systemClock,
        logger,
      });
      sessions.push(session);
      return createApiPort(session, logger);
    };
    const admin = await createKubeClient(cp.kubeConfig());
    cleanup.unshift(async () => admin.close());
    const operators: Operator[] = [];
    return {
      cp,
      store,
      core,
      vault,
      port,
      operatorKubeConfig,
      admin,
      logger,
      logs: () => output,
      async startOperator(options = {}) {
        const operator = createOperator({
          kubeConfig: operatorKubeConfig,
          vault: options.vault ?? (await port()),
          logger,
          leaderElection: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 },
          retry: { baseDelayMs: 100, maxDelayMs: 5_000 },
          secretNamespaces,
          ...options,
        });
        operators.push(operator);
        await operator.start();
        return operator;
      },
      async close() {
        for (const operator of operators) await operator.stop().catch(() => {});
        for (const session of sessions) session.close();
        for (const step of cleanup) await step().catch(() => {});
      },
    };
  } catch (err) {
    for (const step of cleanup) await step().catch(() => {});
    throw err;
  }
}

/** Polls `check` until it returns a value (not undefined), or fails with the last observation. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

/**
 * A billing app's manifests as an app team applies them in a cluster: a Secret imported as
 * the credential `stripe-api-key` (holding `apiKey`), the app's ServiceAccount, the
 * VaultCredential and a VaultLease for it.
 */
export const billingWorkload = (apiKey: string) => `
apiVersion: v1
kind: Secret
metadata:
  name: stripe
  labels: {vault.ghoststack.io/import: "true"}
  annotations: {vault.ghoststack.io/import-for: stripe-api-key}
stringData:
  api-key: ${apiKey}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: billing}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: stripe-api-key}
spec:
  type: api-key
  source: {secretRef: {name: stripe, key: api-key}}
  access: {serviceAccounts: [billing], defaultTtl: 15m, maxTtl: 1h}
---
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: stripe-for-billing}
spec:
  credentialRef: {name: stripe-api-key}
  serviceAccountName: billing
  ttl: 15m
`;
