/**
 * Shared setup of the operator suites: a real control plane with the CRDs and the
 * operator's RBAC applied, a ServiceAccount token for the controller (TokenRequest), and a
 * Vault core on a real embedded store. Controllers always run with the ServiceAccount's
 * kubeconfig, so a permission missing from deploy/rbac/operator.yaml fails the tests.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeConfig } from '@kubernetes/client-node';
import type { DynamicConfig } from '../../src/core/dynamic-accounts.js';
import { createVaultCore, type VaultCore } from '../../src/core/index.js';
import { sealedPrefixes } from '../../src/core/keys.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { localRootKey } from '../../src/crypto/root-key.js';
import type { EngineRegistry } from '../../src/engines/engine.js';
import { createKubeClient, type KubeClient } from '../../src/k8s/api-client.js';
import { createLogger, type Logger } from '../../src/lib/logger.js';
import { createOperator, type Operator, type OperatorOptions } from '../../src/operator/manager.js';
import { createCorePort } from '../../src/operator/vault-port.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import type { Store } from '../../src/store/store.js';
import { type ControlPlane, startControlPlane } from '../support/control-plane.js';

export const repoFile = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));

export interface OperatorEnv {
  cp: ControlPlane;
  store: Store;
  core: VaultCore;
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
}

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
    await must([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/vaultleases.vault.ghoststack.io',
      'crd/vaultcredentials.vault.ghoststack.io',
    ]);
    await cp.createNamespace('vault-system');
    await must(['apply', '-f', repoFile('deploy/rbac/operator.yaml')]);
    const token = (
      await must(['create', 'token', 'vault-operator', '-n', 'vault-system', '--duration=2h'])
    ).trim();
    const operatorKubeConfig = cp.kubeConfigForToken(token);

    const dataDir = await mkdtemp(join(tmpdir(), 'vault-operator-test-'));
    const store = await openEmbeddedStore({ path: dataDir });
    cleanup.unshift(async () => {
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    });
    let output = '';
    const logger = createLogger({
      level: 'debug',
      destination: {
        write: (line: string) => {
          output += line;
        },
      },
    });
    const keyring = createKeyring({ store, roots: [localRootKey(randomBytes(32))], sealedPrefixes, logger });
    const core = createVaultCore({
      store,
      keyring,
      logger,
      ...(options.engines ? { engines: options.engines } : {}),
      ...(options.dynamic ? { dynamic: options.dynamic } : {}),
    });
    if (options.engines) {
      void core.dynamic.start();
      cleanup.unshift(async () => {
        await core.dynamic.stop();
        await core.dynamic.closeEngines();
      });
    }
    const admin = await createKubeClient(cp.kubeConfig());
    cleanup.unshift(async () => admin.close());
    const operators: Operator[] = [];
    return {
      cp,
      store,
      core,
      operatorKubeConfig,
      admin,
      logger,
      logs: () => output,
      async startOperator(options = {}) {
        const operator = createOperator({
          kubeConfig: operatorKubeConfig,
          vault: createCorePort(core),
          logger,
          leaderElection: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 },
          retry: { baseDelayMs: 100, maxDelayMs: 5_000 },
          ...options,
        });
        operators.push(operator);
        await operator.start();
        return operator;
      },
      async close() {
        for (const operator of operators) await operator.stop().catch(() => {});
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
