/**
 * Red team session 7b: an account whose removal outcome cannot be recorded waits (doubling)
 * before it is tried again; the due walk must not spin meanwhile. wakeAt(notBefore) called
 * while a walk runs set `again`, so the walk re-ran at once, found the same due key, asked
 * for the same wake, and so on: store reads in a tight loop until notBefore.
 *
 * Real parts: redis-server, the in-process API on the embedded store, real HTTP.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamicDue } from '../../src/core/dynamic-due.js';
import { keys } from '../../src/core/keys.js';
import { createRedisEngine } from '../../src/engines/redis.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import { createRedisCredential, type Redis, redisAvailable, startRedis } from '../support/redis.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe.skipIf(!redisAvailable)('due walks while an outcome cannot be recorded', () => {
  let redis: Redis;
  let vault: TestVault;
  let dueReads = 0;

  beforeAll(async () => {
    redis = await startRedis();
    const inner = await openEmbeddedStore({ path: await mkdtemp(join(tmpdir(), 'vault-s7b-')) });
    const store = storeWith(inner, (target) => ({
      range: (prefix, options) => {
        if (prefix === dynamicDue.prefix) dueReads += 1;
        return target.range(prefix, options);
      },
    }));
    vault = await startTestVault({
      store,
      engines: { redis: createRedisEngine() },
      // A wait that is not a whole number of walk intervals: a walk comes in the last half
      // second before each retry.
      dynamic: { sweepIntervalMs: 1_000, retryBaseMs: 1_500, retryMaxMs: 1_500 },
    });
    await createRedisCredential(vault, redis);
  }, 30_000);
  afterAll(async () => {
    await vault?.close();
    await redis?.close();
  });

  it('walks the due index about once per interval, not in a loop', async () => {
    const lease = await vault.call('POST', '/v1/leases', { body: { credentialName: 'cache', ttl: '1s' } });
    expect(lease.status, lease.text).toBe(201);
    // The chain head disappears: every later commit of the tenant is refused.
    await vault.store.txn({ success: [{ type: 'delete', key: keys.auditHead(vault.tenant) }] });
    vault.core.committer.forget?.();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const before = dueReads;
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const walks = dueReads - before;
    // A walk a second, and one more per retry: about 10 in five seconds (it spun: thousands).
    expect(walks).toBeLessThanOrEqual(20);
  }, 30_000);
});
