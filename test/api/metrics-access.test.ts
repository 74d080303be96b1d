import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/lib/logger.js';
import { parseServerConfig } from '../../src/server/config.js';
import { startVault, type VaultProcess } from '../../src/server/vault-process.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

/** Two tenants with leases, a metrics-reader token in one of them, a policy-less one too. */
async function seed(vault: TestVault) {
  const tokens: Record<string, string> = {};
  for (const tenant of ['tenant-alpha', 'tenant-bravo']) {
    const created = await vault.call('POST', '/v1/sys/tenants', { body: { id: tenant } });
    expect(created.status, created.text).toBe(201);
    const admin = created.body.adminToken.token as string;
    const call = (method: string, path: string, body: unknown) =>
      vault.call(method, path, { token: admin, body });
    await call('POST', '/v1/credentials', { name: 'db', type: 'generic', value: 'v' });
    expect((await call('POST', '/v1/leases', { credentialName: 'db', ttl: '1h' })).status).toBe(201);
    await call('PUT', '/v1/policies/scrape', { rules: [{ actions: ['metrics'] }] });
    const reader = await call('POST', '/v1/auth/tokens', {
      identity: { type: 'workload', name: 'prometheus' },
      policies: ['scrape'],
      ttl: '1h',
    });
    const nobody = await call('POST', '/v1/auth/tokens', {
      identity: { type: 'agent', name: 'nobody' },
      policies: [],
      ttl: '1h',
    });
    tokens[`${tenant}:admin`] = admin;
    tokens[`${tenant}:reader`] = reader.body.token;
    tokens[`${tenant}:nobody`] = nobody.body.token;
  }
  return tokens;
}

describe('/metrics by default', () => {
  let vault: TestVault;
  let tokens: Record<string, string>;
  beforeAll(async () => {
    vault = await startTestVault();
    tokens = await seed(vault);
  });
  afterAll(() => vault.close());

  it('answers 401 without a token and 403 to a token not granted "metrics"', async () => {
    const none = await vault.call('GET', '/metrics', { token: null });
    expect(none.status).toBe(401);
    expect(none.body.error.message).toContain('Bearer');
    expect(none.text).not.toContain('vault_leases');
    const wrong = await vault.call('GET', '/metrics', { token: 'vlt_not-a-real-token' });
    expect(wrong.status).toBe(401);
    const denied = await vault.call('GET', '/metrics', { token: tokens['tenant-alpha:nobody']! });
    expect(denied.status).toBe(403);
    expect(denied.body.error.message).toContain('"metrics"');
    expect(denied.text).not.toContain('vault_leases');
  });

  it('serves a token granted "metrics", an admin and a system token, naming no tenant', async () => {
    for (const token of [tokens['tenant-alpha:reader']!, tokens['tenant-bravo:admin']!, vault.rootToken]) {
      const res = await vault.call('GET', '/metrics', { token });
      expect(res.status).toBe(200);
      expect(res.text).toMatch(/^vault_leases\{state="active"\} 2$/m);
      expect(res.text).toMatch(/^vault_audit_tampered_tenants 0$/m);
      expect(res.text).not.toContain('tenant=');
      expect(res.text).not.toContain('tenant-alpha');
      expect(res.text).not.toContain('tenant-bravo');
      expect(res.text).not.toContain('vault_tenant_leases');
    }
  });
});

describe('/metrics with --metrics-tenant-series', () => {
  let vault: TestVault;
  let tokens: Record<string, string>;
  beforeAll(async () => {
    vault = await startTestVault({ app: { metricsTenantSeries: true } });
    tokens = await seed(vault);
  });
  afterAll(() => vault.close());

  it('shows a system token every tenant and a tenant reader only its own', async () => {
    const all = await vault.call('GET', '/metrics');
    expect(all.text).toMatch(/^vault_tenant_leases\{tenant="tenant-alpha",state="active"\} 1$/m);
    expect(all.text).toMatch(/^vault_tenant_leases\{tenant="tenant-bravo",state="active"\} 1$/m);

    const alpha = await vault.call('GET', '/metrics', { token: tokens['tenant-alpha:reader']! });
    expect(alpha.status).toBe(200);
    expect(alpha.text).toMatch(/^vault_tenant_leases\{tenant="tenant-alpha",state="active"\} 1$/m);
    expect(alpha.text).not.toContain('tenant-bravo');
    expect(alpha.text).toMatch(/^vault_leases\{state="active"\} 2$/m);
  });
});

describe('vault server --metrics-listen', () => {
  let dir: string;
  let vault: VaultProcess;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vault-metrics-'));
    await writeFile(join(dir, 'root.key'), randomBytes(32), { mode: 0o600 });
    const config = parseServerConfig({
      store: 'embedded',
      dataDir: join(dir, 'data'),
      rootKeyFile: join(dir, 'root.key'),
      listen: '127.0.0.1:0',
      metricsListen: '127.0.0.1:0',
      auditLog: 'none',
      ui: false,
    });
    vault = await startVault(config, createLogger({ level: 'silent' }));
  });
  afterAll(async () => {
    await vault?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves /metrics there without a token, and nothing of the API', async () => {
    expect(vault.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(vault.metricsUrl).not.toBe(vault.url);
    const metrics = await fetch(`${vault.metricsUrl}/metrics`);
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toContain('vault_leases');
    expect(text).not.toContain('tenant=');
    const api = await fetch(`${vault.metricsUrl}/v1/leases`);
    expect(api.status).toBe(404);
    // The API listener still wants a token.
    expect((await fetch(`${vault.url}/metrics`)).status).toBe(401);
  });

  it('refuses a configuration whose metrics listener is the API listener', () => {
    expect(() =>
      parseServerConfig({
        store: 'embedded',
        dataDir: dir,
        rootKey: randomBytes(32).toString('base64'),
        listen: '127.0.0.1:8200',
        metricsListen: '127.0.0.1:8200',
      }),
    ).toThrow('--metrics-listen must differ from --listen');
  });
});
