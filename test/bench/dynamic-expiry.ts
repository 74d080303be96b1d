/**
 * Dynamic leases ending in the same second (issue 13): how long after their common expiry
 * every upstream account (a Redis ACL user) is gone, with the sweep driven by the due index
 * (`/vault/dynamic-due/`), against the limit run side by side: the same engine deleting the
 * same number of users with the same concurrency, nothing else. Also how many account
 * records the sweep read while those leases were live (it should read none).
 *
 * Real parts: etcd, redis-server (as the `redis` user), the core with its sweep. The leases
 * are issued through the core, each with the TTL that makes it end at the same moment.
 *
 *   npm run bench:dynamic-expiry -- [leases=10000] [rounds=1]
 */
import { loadavg } from 'node:os';
import { systemContext } from '../../src/core/index.js';
import { createRedisEngine } from '../../src/engines/redis.js';
import { redisCommands } from '../../src/engines/resp.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import { startEtcd } from '../support/etcd.js';
import { createRedisCredential, startRedis } from '../support/redis.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault } from '../support/test-vault.js';

const total = Number(process.argv[2] ?? 10_000);
const rounds = Number(process.argv[3] ?? 1);
const CONCURRENCY = 32;
const load = () => loadavg()[0]!.toFixed(1);

async function pool(count: number, one: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await one(next++);
    }),
  );
}

const redis = await startRedis();
const etcd = await startEtcd();
const raw = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 30_000 });
let accountReads = 0;
const store = storeWith(raw, (target) => ({
  getMany: (keys) => {
    accountReads += keys.filter((key) => key.includes('/dynamic-accounts/')).length;
    return target.getMany!(keys);
  },
  range: (prefix, options) => {
    if (prefix.includes('/dynamic-accounts/')) accountReads += options?.limit ?? 1;
    return target.range(prefix, options);
  },
}));
// BENCH_SWEEP_CONCURRENCY: removals the sweep runs at once (the server's default otherwise).
const sweepConcurrency = process.env.BENCH_SWEEP_CONCURRENCY
  ? { dynamic: { sweepConcurrency: Number(process.env.BENCH_SWEEP_CONCURRENCY) } }
  : {};
const vault = await startTestVault({ store, engines: { redis: createRedisEngine() }, ...sweepConcurrency });
const ctx = systemContext(vault.tenant, { type: 'human', name: 'root' });
await createRedisCredential(vault, redis);
const users = async () => {
  const [list] = await redisCommands(redis.admin, [['ACL', 'USERS']]);
  return (list as string[]).filter((name) => name.startsWith('vault_')).length;
};

const results: Array<Record<string, string | number>> = [];
for (let round = 1; round <= rounds; round++) {
  // Issue: every lease ends at `end`, however long issuing takes.
  const issueStarted = Date.now();
  const end = issueStarted + Math.max(30_000, total * 12);
  await pool(total, async () => {
    const ttlMs = end - Date.now();
    if (ttlMs < 2_000) throw new Error('issuing took longer than planned: raise the per-lease budget');
    await vault.core.leases.create(ctx, {
      credentialName: 'cache',
      ttl: `${ttlMs}ms`,
      renewable: false,
      identity: { type: 'agent', name: 'bench' },
    });
  });
  const issued = (Date.now() - issueStarted) / 1000;
  accountReads = 0;
  const loadBefore = load();
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, end - Date.now())));
  const readsWhileLive = accountReads;
  let firstGone: number | undefined;
  for (;;) {
    const left = await users();
    if (firstGone === undefined && left < total) firstGone = Date.now() - end;
    if (left === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const allGone = Date.now() - end;

  // The limit: the engine alone deleting as many users, same concurrency.
  const names = Array.from({ length: total }, (_, i) => `bench_${round}_${i}`);
  const engine = createRedisEngine();
  await pool(total, async (i) => {
    await redisCommands(redis.admin, [['ACL', 'SETUSER', names[i]!, 'on', '>x', '~app:*', '+get']]);
  });
  const baselineStarted = Date.now();
  await pool(total, async (i) => engine.revoke(redis.adminUrl, names[i]!));
  const baseline = Date.now() - baselineStarted;
  results.push({
    round,
    'issued (s)': issued.toFixed(1),
    'first gone after expiry (s)': ((firstGone ?? 0) / 1000).toFixed(1),
    'all gone after expiry (s)': (allGone / 1000).toFixed(1),
    'engine alone (s)': (baseline / 1000).toFixed(1),
    'engine alone / Vault': (baseline / allGone).toFixed(2),
    'account records read while live': readsWhileLive,
    load: `${loadBefore} → ${load()}`,
  });
}
console.log(`${total} dynamic Redis leases ending in the same second, etcd, sweep every 1 s`);
console.table(results);
await vault.close();
await raw.close();
await etcd.destroy();
await redis.close();
process.exit(0);
