import { randomBytes, randomInt } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const encodings = (value: string) => [
  value,
  Buffer.from(value).toString('base64'),
  Buffer.from(value).toString('base64url'),
  Buffer.from(value).toString('hex'),
  encodeURIComponent(value),
];

async function filesUnder(dir: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(await readFile(join(entry.parentPath, entry.name)));
  }
  return out;
}

describe('a canary secret never leaks', () => {
  let vault: TestVault;
  const canary = `CANARY-${randomBytes(12).toString('hex')}`;
  const responses: string[] = [];

  beforeAll(async () => {
    vault = await startTestVault();
    const record = async (...args: Parameters<TestVault['call']>) => {
      const result = await vault.call(...args);
      responses.push(result.text);
      return result;
    };
    await record('POST', '/v1/credentials', { body: { name: 'canary', type: 'password', value: canary } });
    // Errors caused by requests that carry the value.
    await record('POST', '/v1/credentials', { body: { name: 'canary', type: 'password', value: canary } });
    await record('POST', '/v1/credentials', {
      body: { name: 'other', type: 'password', value: canary, extra: canary },
    });
    await record('POST', '/v1/credentials', { raw: `{"name":"x","value":"${canary}"` });
    await record('POST', '/v1/credentials/canary/versions', { body: { value: canary }, token: 'vlt_bad' });
    await record('POST', '/v1/audit/lookup', { body: { value: canary } });
    const agent = await vault.tokenFor({ type: 'agent', name: 'bot' });
    await record('POST', '/v1/leases', { token: agent, body: { credentialName: 'canary', ttl: '1m' } });
    // An agent that may lease but not reveal: its handle, its denied read and reveal.
    await vault.call('PUT', '/v1/policies/canary-use', {
      body: { rules: [{ credentials: ['canary'], actions: ['lease'] }] },
    });
    const user = await vault.tokenFor({ type: 'agent', name: 'canary-user' }, ['canary-use']);
    const handle = await record('POST', '/v1/leases', {
      token: user,
      body: { credentialName: 'canary', ttl: '1m' },
    });
    expect(handle.status).toBe(201);
    await record('GET', `/v1/leases/${handle.body.id}/value`, { token: user });
    await record('POST', `/v1/leases/${handle.body.id}/reveal`, { token: user });
    await record('POST', `/v1/leases/${handle.body.id}/use`, {
      token: user,
      body: { purpose: 'x', method: 'get' },
    });
    const lease = await vault.call('POST', '/v1/leases', { body: { credentialName: 'canary', ttl: '5m' } });
    expect(lease.body.value).toBe(canary);
    await vault.call('GET', `/v1/leases/${lease.body.id}/value`);
    await vault.call('POST', `/v1/leases/${lease.body.id}/renew`, { body: {} });
    await vault.call('POST', `/v1/leases/${lease.body.id}/revoke`);
    await record('GET', `/v1/leases/${lease.body.id}/value`);
    await record('GET', '/v1/credentials/canary');
    await record('GET', '/v1/audit?limit=1000');
    await record('GET', '/metrics');
    await vault.call('POST', '/v1/credentials/canary/rotate', { body: { value: `${canary}-v2` } });
  });
  afterAll(() => vault.close());

  it('is not in the store, in any encoding (raw scan of the database files)', async () => {
    const files = await filesUnder(vault.dataDir!);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      for (const encoded of encodings(canary)) expect(file.includes(encoded)).toBe(false);
    }
  });

  it('is not in logs or audit records, yet the audit trail is there', () => {
    const output = vault.output();
    expect(output).toContain('lease.create');
    for (const encoded of encodings(canary)) expect(output).not.toContain(encoded);
  });

  it('is not in error responses, listings, metadata, audit queries or metrics', () => {
    expect(responses.length).toBeGreaterThan(8);
    for (const text of responses) {
      for (const encoded of encodings(canary)) expect(text).not.toContain(encoded);
    }
  });

  it('was issued, as the HMAC lookup proves without storing it', async () => {
    const lookup = await vault.call('POST', '/v1/audit/lookup', { body: { value: canary } });
    expect(lookup.body.issued).toBe(true);
    expect(lookup.body.records.map((r: { action: string }) => r.action)).toContain('lease.create');
    expect(lookup.body.matches).toBe(lookup.body.records.length);
    expect(lookup.body.truncated).toBe(false);
    const never = await vault.call('POST', '/v1/audit/lookup', { body: { value: 'never-issued' } });
    expect(never.body.issued).toBe(false);
  });

  it('the logger redacts secret-bearing fields even if code logs them', async () => {
    const { createLogger } = await import('../../src/lib/logger.js');
    const { PassThrough } = await import('node:stream');
    const stream = new PassThrough();
    let text = '';
    stream.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    const logger = createLogger({ destination: stream });
    logger.info(
      { value: canary, body: { value: canary }, req: { headers: { authorization: `Bearer ${canary}` } } },
      'x',
    );
    logger.info({ lease: { value: canary, token: canary } }, 'y');
    await new Promise((resolve) => setImmediate(resolve));
    expect(text).toContain('[redacted]');
    expect(text).not.toContain(canary);
  });
});

describe('tenants are isolated', () => {
  let vault: TestVault;
  const tenants = ['red', 'green', 'blue'] as const;
  const state: Record<string, { token: string; values: string[]; leaseIds: string[] }> = {};

  beforeAll(async () => {
    vault = await startTestVault();
    for (const tenant of tenants) {
      const created = await vault.call('POST', '/v1/sys/tenants', { body: { id: tenant } });
      expect(created.status).toBe(201);
      const token = created.body.adminToken.token as string;
      state[tenant] = { token, values: [], leaseIds: [] };
      for (const name of ['shared', `${tenant}-only`]) {
        const value = `${tenant}-${name}-${randomBytes(6).toString('hex')}`;
        await vault.call('POST', '/v1/credentials', { token, body: { name, type: 'generic', value } });
        state[tenant].values.push(value);
        const lease = await vault.call('POST', '/v1/leases', {
          token,
          body: { credentialName: name, ttl: '10m' },
        });
        state[tenant].leaseIds.push(lease.body.id);
      }
    }
  });
  afterAll(() => vault.close());

  it('a tenant admin token cannot name another tenant', async () => {
    const result = await vault.call('GET', '/v1/credentials', { token: state.red!.token, tenant: 'green' });
    expect(result.status).toBe(403);
    expect(result.body.error.message).toContain('belongs to tenant "red"');
  });

  it('random requests from one tenant never see another tenant’s values or leases', async () => {
    const pick = <T>(items: readonly T[]) => items[randomInt(items.length)]!;
    for (let i = 0; i < 200; i++) {
      const self = pick(tenants);
      const other = pick(tenants.filter((t) => t !== self));
      const { token } = state[self]!;
      const foreign = state[other]!;
      const operation = randomInt(6);
      let result: Awaited<ReturnType<TestVault['call']>>;
      const asked = pick(foreign.leaseIds);
      if (operation === 0) result = await vault.call('GET', `/v1/leases/${asked}/value`, { token });
      else if (operation === 1) result = await vault.call('POST', `/v1/leases/${asked}/revoke`, { token });
      else if (operation === 2) result = await vault.call('GET', `/v1/credentials/${other}-only`, { token });
      else if (operation === 3) {
        result = await vault.call('POST', '/v1/leases', {
          token,
          body: { credentialName: pick(['shared', `${other}-only`]) },
        });
      } else if (operation === 4) result = await vault.call('GET', '/v1/leases', { token });
      else result = await vault.call('GET', '/v1/credentials', { token, tenant: other });
      for (const value of foreign.values) expect(result.text).not.toContain(value);
      // Only the id the caller sent may come back (in the 404 message), no other of that tenant.
      for (const id of foreign.leaseIds)
        if (operation > 1 || id !== asked) expect(result.text).not.toContain(id);
      if (operation <= 2) expect(result.status).toBe(404);
      if (operation === 5) expect(result.status).toBe(403);
    }
    // Nothing was revoked across tenants.
    for (const tenant of tenants) {
      for (const id of state[tenant]!.leaseIds) {
        const lease = await vault.call('GET', `/v1/leases/${id}`, { token: state[tenant]!.token });
        expect(lease.body.state).toBe('active');
      }
    }
  });
});
