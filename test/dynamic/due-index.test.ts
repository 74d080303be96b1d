/**
 * The dynamic sweep reads what is due, not every account: a lease's upstream account is
 * looked at when its lease expires, is revoked (one by one or in bulk), or its removal is due
 * for a retry, through one time-ordered index (`/vault/dynamic-due/`) kept in the lease's own
 * transactions. Hundreds of live accounts cost the sweep nothing between their expiries.
 *
 * Real parts: etcd, redis-server (ACL users), the whole API over HTTP. The store is wrapped
 * only to count which keys the server reads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { createRedisEngine } from '../../src/engines/redis.js';
import { redisCommands } from '../../src/engines/resp.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { createRedisCredential, type Redis, redisAvailable, startRedis } from '../support/redis.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const LIVE = 200;

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

/** Counts the account records the server reads, by range and by key. */
function counting(store: Store) {
  const reads = { accountRanges: 0, accountKeys: 0 };
  const isAccount = (key: string) => key.includes('/dynamic-accounts/');
  const proxy = storeWith(store, (target) => ({
    range: (prefix, options) => {
      if (isAccount(prefix)) reads.accountRanges += 1;
      return target.range(prefix, options);
    },
    get: (key) => {
      if (isAccount(key)) reads.accountKeys += 1;
      return target.get(key);
    },
    getMany: (keys) => {
      reads.accountKeys += keys.filter(isAccount).length;
      return target.getMany!(keys);
    },
  }));
  return { store: proxy, reads };
}

describe.skipIf(!redisAvailable)('the dynamic sweep, driven by what is due', () => {
  let etcd: EtcdProcess;
  let redis: Redis;
  let raw: Store;
  let reads: { accountRanges: number; accountKeys: number };
  let vault: TestVault;

  const users = async () => {
    const [list] = await redisCommands(redis.admin, [['ACL', 'USERS']]);
    return new Set((list as string[]).filter((name) => name.startsWith('vault_')));
  };
  const dueKeys = async () => (await raw.range('/vault/dynamic-due/', { limit: 10_000 })).kvs;
  const lease = async (ttl: string, identity = 'agent-live') => {
    const created = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'cache', ttl, identity: { type: 'agent', name: identity } },
    });
    expect(created.status, created.text).toBe(201);
    return created.body as { id: string; dynamic: { username: string } };
  };

  beforeAll(async () => {
    redis = await startRedis();
    etcd = await startEtcd();
    raw = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 10_000 });
    const counted = counting(raw);
    reads = counted.reads;
    vault = await startTestVault({
      store: counted.store,
      engines: { redis: createRedisEngine() },
      dynamic: { sweepIntervalMs: 200, issueGraceMs: 2_000, retryBaseMs: 200, retryMaxMs: 1_000 },
    });
    await createRedisCredential(vault, redis);
    const ctx = systemContext(vault.tenant, { type: 'human', name: 'root' });
    for (let done = 0; done < LIVE; done += 50)
      await Promise.all(
        Array.from({ length: 50 }, () =>
          vault.core.leases.create(ctx, {
            credentialName: 'cache',
            ttl: '10m',
            renewable: true,
            identity: { type: 'agent', name: 'agent-live' },
          }),
        ),
      );
  }, 120_000);

  afterAll(async () => {
    await vault?.close();
    await raw?.close();
    await etcd?.destroy();
    await redis?.close();
  });

  it('removes accounts as their leases expire, reading only theirs', async () => {
    expect((await users()).size).toBe(LIVE);
    // Every live lease has one due key, at its expiry.
    expect((await dueKeys()).length).toBe(LIVE);
    const short = await Promise.all(Array.from({ length: 5 }, () => lease('2s', 'agent-short')));
    reads.accountRanges = 0;
    reads.accountKeys = 0;
    await waitFor('the expired leases’ users to go', async () => {
      const now = await users();
      return short.every((l) => !now.has(l.dynamic.username));
    });
    // Some idle walks more, to show that they cost nothing.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await users()).size, 'the live leases keep their users').toBe(LIVE);
    expect(reads.accountRanges, 'no walk of every account').toBe(0);
    // Each expired account read a few times (decided, then its outcome built), none of the others.
    expect(reads.accountKeys).toBeLessThanOrEqual(short.length * 4);
    expect((await dueKeys()).length, 'handled keys are deleted').toBe(LIVE);
  }, 60_000);

  it('a renewed lease keeps its account past its first expiry', async () => {
    const renewed = await lease('2s', 'agent-renew');
    const answer = await vault.call('POST', `/v1/leases/${renewed.id}/renew`, { body: { increment: '10m' } });
    expect(answer.status, answer.text).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    expect((await users()).has(renewed.dynamic.username)).toBe(true);
    const revoked = await vault.call('POST', `/v1/leases/${renewed.id}/revoke`);
    expect(revoked.status).toBe(200);
    expect((await users()).has(renewed.dynamic.username)).toBe(false);
  }, 30_000);

  it('a bulk revocation removes its accounts at once, and only its', async () => {
    const doomed = await Promise.all(Array.from({ length: 40 }, () => lease('10m', 'agent-doomed')));
    reads.accountRanges = 0;
    const answer = await vault.call('POST', '/v1/leases/revoke', {
      body: { identity: { type: 'agent', name: 'agent-doomed' } },
    });
    expect(answer.status, answer.text).toBe(200);
    expect(answer.body.revoked).toBe(40);
    await waitFor('the revoked leases’ users to go', async () => {
      const now = await users();
      return doomed.every((l) => !now.has(l.dynamic.username));
    });
    expect((await users()).size).toBe(LIVE);
    expect(reads.accountRanges, 'no walk of every account').toBe(0);
  }, 60_000);

  it('a store without due keys gets them from the walk on start, and its ended accounts go', async () => {
    const ended = await lease('2s', 'agent-old');
    // As a store written before the index: no due keys at all.
    await raw.txn({ success: [{ type: 'deletePrefix', prefix: '/vault/dynamic-due/' }] });
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect((await users()).has(ended.dynamic.username), 'nothing tells the due walk').toBe(true);
    // The sweep starts again (as on a server's start): its walk of every account restores
    // the keys and removes the user.
    await vault.core.dynamic.stop();
    await vault.core.dynamic.start();
    await waitFor('the ended lease’s user to go', async () => !(await users()).has(ended.dynamic.username));
    await waitFor(
      'every live account to have its due key again',
      async () => (await dueKeys()).length === LIVE,
    );
    expect((await users()).size).toBe(LIVE);
  }, 60_000);

  it('counts one credential’s accounts from its own index', async () => {
    await createRedisCredential(vault, redis, { name: 'other-cache' });
    const one = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'other-cache', ttl: '10m' },
    });
    expect(one.status, one.text).toBe(201);
    expect(await vault.core.dynamic.pendingOf(vault.tenant, 'other-cache')).toBe(1);
    expect(await vault.core.dynamic.pendingOf(vault.tenant, 'cache')).toBe(LIVE);
    // Deleting the credential revokes its lease and waits for the account, then succeeds.
    const deleted = await vault.call('DELETE', '/v1/credentials/other-cache');
    expect(deleted.status, deleted.text).toBe(200);
    expect(await vault.core.dynamic.pendingOf(vault.tenant, 'other-cache')).toBe(0);
    expect((await users()).has(one.body.dynamic.username)).toBe(false);
  }, 30_000);
});
