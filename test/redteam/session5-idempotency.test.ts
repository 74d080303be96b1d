import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisEngine } from '../../src/engines/redis.js';
import { redisCommands } from '../../src/engines/resp.js';
import { type Redis, redisAvailable, startRedis } from '../support/redis.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

// Red team, session 5: Idempotency-Key on POST /v1/leases.

const post = (vault: TestVault, body: unknown, key: string, token?: string) =>
  vault.call('POST', '/v1/leases', { body, idempotencyKey: key, ...(token ? { token } : {}) });

describe('Idempotency-Key: static credentials', () => {
  let vault: TestVault;
  beforeAll(async () => {
    vault = await startTestVault();
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'db', type: 'password', value: 's3cret-value-1' },
    });
    expect(created.status).toBe(201);
  });
  afterAll(() => vault.close());

  it('two creates with the same key at once issue one lease', async () => {
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => post(vault, { credentialName: 'db', ttl: '5m' }, 'same-at-once')),
    );
    const ids = new Set(answers.filter((a) => a.status === 201).map((a) => a.body.id));
    expect(answers.map((a) => a.status)).toEqual(Array(8).fill(201));
    expect(ids.size).toBe(1);
    const list = await vault.call('GET', '/v1/leases?credentialName=db&limit=1000');
    expect(list.body.leases.filter((l: { id: string }) => ids.has(l.id))).toHaveLength(1);
    expect(list.body.leases).toHaveLength(1);
  });

  it('renewable omitted and renewable: true are the same request', async () => {
    const first = await post(vault, { credentialName: 'db', ttl: '5m' }, 'renewable-default');
    const second = await post(
      vault,
      { credentialName: 'db', ttl: '5m', renewable: true },
      'renewable-default',
    );
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body.id).toBe(first.body.id);
  });

  it('label order does not matter; a label value does', async () => {
    const first = await post(vault, { credentialName: 'db', labels: { a: '1', b: '2' } }, 'labels-order');
    const same = await post(vault, { credentialName: 'db', labels: { b: '2', a: '1' } }, 'labels-order');
    const other = await post(vault, { credentialName: 'db', labels: { b: '2', a: '3' } }, 'labels-order');
    expect(same.body.id).toBe(first.body.id);
    expect(other.status).toBe(409);
  });

  it('another caller with the same key gets its own lease', async () => {
    await vault.call('PUT', '/v1/policies/leaser', {
      body: { rules: [{ credentials: ['db'], actions: ['lease', 'reveal', 'read-metadata'] }] },
    });
    const alice = await vault.tokenFor({ type: 'agent', name: 'alice' }, ['leaser']);
    const bob = await vault.tokenFor({ type: 'agent', name: 'bob' }, ['leaser']);
    const a = await post(vault, { credentialName: 'db' }, 'shared-key', alice);
    const b = await post(vault, { credentialName: 'db' }, 'shared-key', bob);
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.body.id).not.toBe(a.body.id);
  });

  it('a retry after the lease was revoked is 410 naming that lease, never a new lease nor a success without a value', async () => {
    const first = await post(vault, { credentialName: 'db' }, 'then-revoked');
    expect((first.body as { value?: string }).value).toBe('s3cret-value-1');
    const revoked = await vault.call('POST', `/v1/leases/${first.body.id}/revoke`, { body: {} });
    expect(revoked.status).toBe(200);
    const before = await vault.call('GET', '/v1/leases?credentialName=db&limit=1000');
    const retry = await post(vault, { credentialName: 'db' }, 'then-revoked');
    expect(retry.status, retry.text).toBe(410);
    expect(retry.body.error.code).toBe('lease_revoked');
    expect(retry.body.error.message).toContain(
      `the lease this Idempotency-Key issued ("${first.body.id}") was revoked`,
    );
    expect(retry.body.error.message).toContain('new Idempotency-Key');
    expect(retry.text).not.toContain('s3cret-value-1');
    const after = await vault.call('GET', '/v1/leases?credentialName=db&limit=1000');
    expect(after.body.leases).toHaveLength(before.body.leases.length);
    const denial = vault
      .auditLines()
      .find((r) => r.resource === `lease/${first.body.id}` && r.outcome === 'denied');
    expect(denial?.action).toBe('lease.create');
    // A new key gets a new lease.
    const fresh = await post(vault, { credentialName: 'db' }, 'after-revoked');
    expect(fresh.status).toBe(201);
    expect(fresh.body.id).not.toBe(first.body.id);
  });

  it('a retry after the lease expired is 410 lease_expired', async () => {
    const first = await post(vault, { credentialName: 'db', ttl: '1s', maxTtl: '1s' }, 'then-expired');
    expect(first.status, first.text).toBe(201);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const retry = await post(vault, { credentialName: 'db', ttl: '1s', maxTtl: '1s' }, 'then-expired');
    expect(retry.status, retry.text).toBe(410);
    expect(retry.body.error.code).toBe('lease_expired');
  });
});

describe.skipIf(!redisAvailable)('Idempotency-Key: dynamic credentials (real redis)', () => {
  let vault: TestVault;
  let redis: Redis;
  beforeAll(async () => {
    redis = await startRedis();
    vault = await startTestVault({ engines: { redis: createRedisEngine() } });
    const created = await vault.call('POST', '/v1/credentials', {
      body: {
        name: 'cache',
        type: 'database-url',
        value: redis.adminUrl,
        dynamic: { engine: 'redis', aclRules: ['~*', '+@read'] },
      },
    });
    expect(created.status, created.text).toBe(201);
  }, 30_000);
  afterAll(async () => {
    await vault?.close();
    await redis?.close();
  });

  it('a retry with the same key returns the first dynamic lease, not a second account', async () => {
    const first = await post(vault, { credentialName: 'cache', ttl: '5m' }, 'dyn-retry');
    const retry = await post(vault, { credentialName: 'cache', ttl: '5m' }, 'dyn-retry');
    expect(first.status).toBe(201);
    expect(retry.status).toBe(201);
    expect(retry.body.id).toBe(first.body.id);
    const list = await vault.call('GET', '/v1/leases?credentialName=cache');
    expect(list.body.leases).toHaveLength(1);
  });

  it('creates with the same key at once issue one dynamic lease', async () => {
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => post(vault, { credentialName: 'cache', ttl: '5m' }, 'dyn-at-once')),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(201));
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
    // The attempts that lost left no account upstream: one ACL user per lease.
    const leases = await vault.call('GET', '/v1/leases?credentialName=cache&state=active');
    const [users] = (await redisCommands(redis.admin, [['ACL', 'USERS']])) as [string[]];
    expect(users.filter((u) => u !== 'admin' && u !== 'default')).toHaveLength(leases.body.leases.length);
  });

  it('a retry after the dynamic lease was revoked is 410, and makes no account', async () => {
    const first = await post(vault, { credentialName: 'cache', ttl: '5m' }, 'dyn-revoked');
    expect(first.status).toBe(201);
    await vault.call('POST', `/v1/leases/${first.body.id}/revoke`, { body: {} });
    const retry = await post(vault, { credentialName: 'cache', ttl: '5m' }, 'dyn-revoked');
    expect(retry.status, retry.text).toBe(410);
    expect(retry.body.error.message).toContain(first.body.id);
    const leases = await vault.call('GET', '/v1/leases?credentialName=cache&state=active');
    expect(leases.body.leases.map((l: { id: string }) => l.id)).not.toContain(first.body.id);
    const [users] = (await redisCommands(redis.admin, [['ACL', 'USERS']])) as [string[]];
    expect(first.body.dynamic.username).toMatch(/\w/);
    expect(users).not.toContain(first.body.dynamic.username);
  });

  it('the same key with another request is 409 for a dynamic credential too', async () => {
    const first = await post(vault, { credentialName: 'cache', ttl: '5m' }, 'dyn-other');
    const other = await post(vault, { credentialName: 'cache', ttl: '6m' }, 'dyn-other');
    expect(first.status).toBe(201);
    expect(other.status).toBe(409);
  });
});
