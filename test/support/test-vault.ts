import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { AuditRecord } from '../../src/contract/audit.js';
import type { CoreConfig } from '../../src/core/deps.js';
import type { DynamicConfig } from '../../src/core/dynamic-accounts.js';
import {
  createVaultCore,
  jsonLinesAuditSink,
  ROOT_POLICY,
  systemContext,
  type VaultCore,
} from '../../src/core/index.js';
import { sealedPrefixes } from '../../src/core/keys.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { localRootKey } from '../../src/crypto/root-key.js';
import type { EngineRegistry } from '../../src/engines/engine.js';
import type { Clock } from '../../src/lib/clock.js';
import { createLogger } from '../../src/lib/logger.js';
import { type AppConfig, createApp } from '../../src/server/app.js';
import type { KubernetesLoginConfig } from '../../src/server/kubernetes-login.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import type { Store } from '../../src/store/store.js';

export interface TestVault {
  url: string;
  store: Store;
  core: VaultCore;
  /** A system token with the root policy in `tenant`. */
  rootToken: string;
  tenant: string;
  dataDir: string | undefined;
  /** Everything the server logged, and every audit line it streamed. */
  output(): string;
  auditLines(): AuditRecord[];
  /** Calls the API; `token` defaults to the root token. */
  call(
    method: string,
    path: string,
    options?: CallOptions,
    // biome-ignore lint/suspicious/noExplicitAny: tests assert on response JSON of every shape
  ): Promise<{ status: number; body: any; text: string }>;
  /** A token for `identity` in the tenant with the given policies (created by the root token). */
  tokenFor(
    identity: { type: 'human' | 'agent' | 'workload'; name: string },
    policies?: string[],
    tenant?: string,
  ): Promise<string>;
  close(): Promise<void>;
}

export interface CallOptions {
  token?: string | null;
  body?: unknown;
  raw?: string;
  tenant?: string;
  contentType?: string;
  /** Sent as the Idempotency-Key header (lease creation). */
  idempotencyKey?: string;
}

/**
 * The whole API in-process on a real store (embedded in a temp dir unless one is given),
 * listening on 127.0.0.1 with real HTTP. Logs go to a buffer so tests can scan them.
 */
export async function startTestVault(
  options: {
    store?: Store;
    clock?: Clock;
    bodyLimitBytes?: number;
    authFailuresPerMinute?: number;
    trustedProxies?: string[];
    kubernetes?: KubernetesLoginConfig;
    engines?: EngineRegistry;
    dynamic?: Partial<DynamicConfig>;
    /** Settings of the core (e.g. a small audit scan budget). */
    core?: Partial<CoreConfig>;
    /** Further settings of the HTTP app (fair-sharing limits, metrics). */
    app?: Partial<AppConfig>;
    /** A built web console to serve at /ui. */
    uiDir?: string;
    /** The root key (32 bytes; random when not given): another process on the same store. */
    rootKey?: Buffer;
  } = {},
): Promise<TestVault> {
  const dataDir = options.store ? undefined : await mkdtemp(join(tmpdir(), 'vault-test-'));
  const store = options.store ?? (await openEmbeddedStore({ path: dataDir! }));
  const logStream = new PassThrough();
  let output = '';
  logStream.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  const auditStream = new PassThrough();
  let audit = '';
  auditStream.on('data', (chunk: Buffer) => {
    audit += chunk.toString('utf8');
  });
  const logger = createLogger({ level: 'debug', destination: logStream });
  const keyring = createKeyring({
    store,
    roots: [localRootKey(options.rootKey ?? randomBytes(32))],
    sealedPrefixes,
    logger,
  });
  const core = createVaultCore({
    store,
    keyring,
    logger,
    auditSink: jsonLinesAuditSink(auditStream),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.engines ? { engines: options.engines } : {}),
    ...(options.dynamic ? { dynamic: options.dynamic } : {}),
    ...(options.core ? { config: options.core } : {}),
  });
  if (options.engines) void core.dynamic.start();
  const { app } = createApp({
    core,
    keyring,
    logger,
    ...(options.clock ? { clock: options.clock } : {}),
    config: {
      ...(options.kubernetes ? { kubernetes: options.kubernetes } : {}),
      authFailuresPerMinute: options.authFailuresPerMinute ?? 1000,
      ...(options.trustedProxies ? { trustedProxies: options.trustedProxies } : {}),
      ...(options.bodyLimitBytes ? { bodyLimitBytes: options.bodyLimitBytes } : {}),
      ...options.app,
      ...(options.uiDir ? { uiDir: options.uiDir } : {}),
    },
  });
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tenant = 'acme';
  const admin = { type: 'human' as const, name: 'root' };
  await core.tenants.ensure(tenant, systemContext(tenant, admin));
  const root = await core.tokens.mint(systemContext(tenant, admin), tenant, {
    identity: admin,
    policies: [ROOT_POLICY],
    // Long enough for tests that move the clock by days.
    ttlMs: 30 * 24 * 3_600_000,
    system: true,
  });

  const call: TestVault['call'] = async (method, path, callOptions = {}) => {
    const headers: Record<string, string> = {};
    const token = callOptions.token === undefined ? root.token : callOptions.token;
    if (token) headers.authorization = `Bearer ${token}`;
    if (callOptions.tenant) headers['x-vault-tenant'] = callOptions.tenant;
    if (callOptions.idempotencyKey !== undefined) headers['idempotency-key'] = callOptions.idempotencyKey;
    let body: string | undefined;
    if (callOptions.raw !== undefined) body = callOptions.raw;
    else if (callOptions.body !== undefined) body = JSON.stringify(callOptions.body);
    if (body !== undefined) headers['content-type'] = callOptions.contentType ?? 'application/json';
    const response = await fetch(`${url}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, body: parsed, text };
  };

  return {
    url,
    store,
    core,
    rootToken: root.token,
    tenant,
    dataDir,
    output: () => output + audit,
    auditLines: () =>
      audit
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as AuditRecord),
    call,
    async tokenFor(identity, policies = [], inTenant = tenant) {
      const result = await call('POST', '/v1/auth/tokens', {
        body: { identity, policies, ttl: '1h' },
        ...(inTenant !== tenant ? { tenant: inTenant } : {}),
      });
      if (result.status !== 201) throw new Error(`token creation failed: ${result.text}`);
      return result.body.token as string;
    },
    async close() {
      await core.dynamic.stop();
      await core.dynamic.closeEngines();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (!options.store) {
        await store.close();
        await rm(dataDir!, { recursive: true, force: true });
      }
    },
  };
}
