/**
 * Red team, session 7: stale due keys of a dynamic lease that is still active.
 *
 * The due index may hold extra keys for an account: a walk that decided on a lease read just
 * before a renewal committed writes the key of the old expiry back, a full walk racing a
 * renewal does the same, and replicas each do it. The docs promise an extra key costs one
 * read. But a walk that found two such keys of one active lease wanted the same new key for
 * each and wrote it twice in one transaction, which the store refuses ("may not put ... twice",
 * as etcd does): the whole walk failed, every second, for every tenant, for as long as the
 * lease stayed active (a client renewing it keeps it so for its whole max TTL). Meanwhile no
 * expired lease's account was removed anywhere.
 *
 * Real parts: a real redis-server, the in-process API server on the embedded store, real HTTP.
 * The two stale keys are written directly, as the races above leave them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamicDue } from '../../src/core/dynamic-due.js';
import { createRedisEngine } from '../../src/engines/redis.js';
import { redisCommands } from '../../src/engines/resp.js';
import { createRedisCredential, type Redis, redisAvailable, startRedis } from '../support/redis.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe.skipIf(!redisAvailable)('two stale due keys of an active dynamic lease', () => {
  let redis: Redis;
  let vault: TestVault;

  beforeAll(async () => {
    redis = await startRedis();
    vault = await startTestVault({
      engines: { redis: createRedisEngine() },
      dynamic: { sweepIntervalMs: 200, retryBaseMs: 100, retryMaxMs: 500 },
    });
    await vault.core.tenants.ensure('other');
    for (const tenant of [vault.tenant, 'other']) await createRedisCredential(vault, redis, { tenant });
  }, 30_000);

  afterAll(async () => {
    await vault?.close();
    await redis?.close();
  });

  const users = async () => (await redisCommands(redis.admin, [['ACL', 'USERS']]))[0] as string[];

  it('do not stop the sweep from removing the accounts of other tenants', async () => {
    const long = await vault.call('POST', '/v1/leases', { body: { credentialName: 'cache', ttl: '10m' } });
    expect(long.status, long.text).toBe(201);
    const now = Date.now();
    await vault.store.txn({
      success: [
        { type: 'put', key: dynamicDue.key(vault.tenant, long.body.id, now - 2_000), value: '' },
        { type: 'put', key: dynamicDue.key(vault.tenant, long.body.id, now - 1_000), value: '' },
      ],
    });
    // Another tenant's lease ends: its due key comes after the stale ones.
    const short = await vault.call('POST', '/v1/leases', {
      tenant: 'other',
      body: { credentialName: 'cache', ttl: '1s' },
    });
    expect(short.status, short.text).toBe(201);
    const username = short.body.dynamic.username as string;
    expect(await users()).toContain(username);
    const deadline = Date.parse(short.body.expiresAt) + 5_000;
    while ((await users()).includes(username)) {
      if (Date.now() > deadline) {
        const log = vault.output().match(/dynamic account sweep failed[^"]*/)?.[0];
        throw new Error(
          `the account of the expired lease is still there (${log ?? 'no sweep failure logged'})`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The active lease keeps its account, and one due key at its expiry is left.
    expect(await users()).toContain(long.body.dynamic.username);
    const due = await vault.store.range(dynamicDue.prefix, { limit: 100 });
    const mine = due.kvs.filter((kv) => dynamicDue.parse(kv.key).leaseId === long.body.id);
    expect(mine.map((kv) => dynamicDue.parse(kv.key).at)).toEqual([Date.parse(long.body.expiresAt)]);
  }, 30_000);
});
