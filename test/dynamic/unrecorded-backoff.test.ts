/**
 * A tenant whose writes fail (its audit chain found tampered stops them, by design) while a
 * dynamic lease of it ends: the account's removal is tried, its outcome cannot be recorded,
 * and it is tried again with a doubling wait, not at every walk of the due index (each a
 * call to the upstream server and a warning, forever).
 *
 * Real parts: redis-server, the in-process API on the embedded store, real HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { createRedisEngine } from '../../src/engines/redis.js';
import { createRedisCredential, type Redis, redisAvailable, startRedis } from '../support/redis.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe.skipIf(!redisAvailable)('a dynamic lease ending in a tenant whose writes fail', () => {
  let redis: Redis;
  let vault: TestVault;

  beforeAll(async () => {
    redis = await startRedis();
    vault = await startTestVault({
      engines: { redis: createRedisEngine() },
      dynamic: { sweepIntervalMs: 200, retryBaseMs: 500, retryMaxMs: 4_000 },
    });
    await createRedisCredential(vault, redis);
  }, 30_000);
  afterAll(async () => {
    await vault?.close();
    await redis?.close();
  });

  it('is retried with a doubling wait', async () => {
    const lease = await vault.call('POST', '/v1/leases', { body: { credentialName: 'cache', ttl: '1s' } });
    expect(lease.status, lease.text).toBe(201);
    // The chain head disappears: every later commit of the tenant is refused.
    await vault.store.txn({ success: [{ type: 'delete', key: keys.auditHead(vault.tenant) }] });
    vault.core.committer.forget?.();
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    const attempts = vault
      .output()
      .split('\n')
      .filter((line) => line.includes('recording a revocation failed'));
    // 0.5 + 1 + 2 + 4 s: about four in eight seconds (a walk every 200 ms would make 35).
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts.length).toBeLessThanOrEqual(6);
  }, 30_000);
});
