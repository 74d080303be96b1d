/**
 * The end of dynamic leases across three `vault server` replicas (real Redis, real etcd):
 * every replica removes ended leases' upstream accounts, so each removal must be done and
 * audited exactly once — not once per replica — and a replica killed right after issuing
 * leases must not leave their accounts behind: the others remove them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisCommands } from '../../src/engines/resp.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { type Redis, redisAvailable, startRedis } from '../support/redis.js';
import { allAuditRecords, call, type Replicas, sleep, startReplicas } from './harness.js';

let etcd: EtcdProcess;
let redis: Redis;
let replicas: Replicas;

const aclUsers = async () => ((await redisCommands(redis.admin, [['ACL', 'USERS']])) as string[][])[0]!;

beforeAll(async () => {
  if (!redisAvailable) return;
  etcd = await startEtcd();
  redis = await startRedis();
  replicas = await startReplicas({ endpoints: [etcd.endpoint], count: 3, tenant: 'expiry' });
  const created = await call(replicas.servers[0]!.url, 'POST', '/v1/credentials', replicas.auth.token, {
    name: 'cache',
    type: 'database-url',
    value: redis.adminUrl,
    dynamic: { engine: 'redis', aclRules: ['~app:*', '+get'] },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
}, 120_000);
afterAll(async () => {
  await replicas?.close();
  await redis?.close();
  await etcd?.destroy();
});

describe.skipIf(!redisAvailable)('dynamic lease expiry across replicas', () => {
  it('removes each ended account once, also those a killed replica issued', async () => {
    const { token } = replicas.auth;
    const ids: string[] = [];
    // Two leases through each replica; the first replica is then killed before they end.
    for (const server of replicas.servers) {
      for (let i = 0; i < 2; i++) {
        const res = await call(server.url, 'POST', '/v1/leases', token, {
          credentialName: 'cache',
          ttl: '3s',
        });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        ids.push(res.body.id);
      }
    }
    expect((await aclUsers()).filter((user) => user.startsWith('vault_'))).toHaveLength(6);
    await replicas.servers[0]!.kill();
    const survivor = replicas.servers[1]!.url;

    // A replica that did not issue a lease learns of its account at its next sweep (every 30 s
    // at the latest), so a killed issuer delays the removal by at most that.
    const deadline = Date.now() + 60_000;
    while ((await aclUsers()).some((user) => user.startsWith('vault_')) && Date.now() < deadline)
      await sleep(250);
    expect((await aclUsers()).filter((user) => user.startsWith('vault_'))).toEqual([]);

    // Let every surviving replica's timers and sweeps fire for the same leases.
    await sleep(3_000);
    const removals = (await allAuditRecords(survivor, token)).filter(
      (record) => record.action === 'lease.dynamic-revoke',
    );
    for (const id of ids) {
      const mine = removals.filter((record) => record.resource === `lease/${id}`);
      expect(
        mine.map((record) => record.outcome),
        `lease ${id}`,
      ).toEqual(['allowed']);
    }
    const verify = await call(survivor, 'GET', '/v1/audit/verify', token);
    expect(verify.body).toMatchObject({ ok: true });
  }, 120_000);
});
