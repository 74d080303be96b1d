/**
 * kill -9 of `vault server` after Redis created a lease's ACL user and before the lease
 * committed. Redis has no transaction to hold the user in, so the engine records the account
 * in the store first; after a restart the sweep finds a record with no lease and removes the
 * user once the issue grace has passed. No orphan user, and no lease.
 *
 * To stop the server exactly there: Redis is paused (SIGSTOP) so the ACL SETUSER waits; once
 * the account record is in etcd, etcd is paused and Redis resumed, so the user is created
 * while the lease commit hangs on etcd; then the server is killed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { redisCommands } from '../../src/engines/resp.js';
import { bootstrap, type ServerProcess, startServer } from '../crash/vault-server.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { type Redis, redisAvailable, startRedis } from '../support/redis.js';

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
};

describe.skipIf(!redisAvailable || !process.env.TEST_ASSET_ETCD)(
  'Redis: kill -9 between creating the ACL user and committing the lease',
  () => {
    let redis: Redis;
    let etcd: EtcdProcess;
    let base: string;
    const servers: ServerProcess[] = [];

    beforeAll(async () => {
      redis = await startRedis();
      etcd = await startEtcd();
      base = mkdtempSync(join(tmpdir(), 'vault-redis-crash-'));
    }, 60_000);

    afterAll(async () => {
      redis?.thaw();
      for (const server of servers) await server.kill();
      await etcd?.destroy();
      await redis?.close();
      rmSync(base, { recursive: true, force: true });
    });

    const leaseUsers = async () => {
      const [users] = await redisCommands(redis.admin, [['ACL', 'USERS']]);
      return (users as string[]).filter((name) => name.startsWith('vault_'));
    };

    it('leaves no orphan user after a restart, and no lease', async () => {
      const rootKeyFile = join(base, 'root.key');
      await generateRootKeyFile(rootKeyFile);
      const storeArgs = [
        '--store',
        'etcd',
        '--etcd-endpoints',
        etcd.endpoint,
        '--root-key-file',
        rootKeyFile,
      ];
      const auth = await bootstrap({ store: 'etcd', etcdEndpoints: [etcd.endpoint], rootKeyFile }, 'crash');
      const args = [...storeArgs, '--audit-log', 'none', '--dynamic-issue-grace', '1s'];
      const first = await startServer(args);
      servers.push(first);
      const call = (url: string, method: string, path: string, body?: unknown) =>
        fetch(`${url}/v1${path}`, {
          method,
          headers: {
            authorization: `Bearer ${auth.token}`,
            'content-type': 'application/json',
            'x-vault-tenant': auth.tenant,
          },
          ...(body !== undefined && { body: JSON.stringify(body) }),
        });
      const created = await call(first.url, 'POST', '/credentials', {
        name: 'cache',
        type: 'database-url',
        value: redis.adminUrl,
        dynamic: { engine: 'redis', aclRules: ['~cache:*', '+get'] },
      });
      expect(created.status, await created.text()).toBe(201);

      const etcdClient = new Etcd3({ hosts: etcd.endpoint });
      try {
        redis.freeze();
        const request = call(first.url, 'POST', '/leases', { credentialName: 'cache', ttl: '10m' }).catch(
          () => undefined,
        );
        await waitFor('the account record to be committed', async () => {
          const found = await etcdClient.getAll().prefix('').keys();
          return found.some((key) => key.includes('/dynamic-accounts/'));
        });
        await etcd.pause();
        redis.thaw();
        await waitFor('the ACL user to be created', async () => (await leaseUsers()).length === 1);
        await first.kill();
        await request;
        await etcd.resume();
      } finally {
        redis.thaw();
        etcdClient.close();
      }
      expect(await leaseUsers()).toHaveLength(1);

      const second = await startServer(args);
      servers.push(second);
      await waitFor(
        'the sweep to remove the orphan user',
        async () => (await leaseUsers()).length === 0,
        30_000,
      );
      const list = await call(second.url, 'GET', '/leases');
      expect(((await list.json()) as { leases: unknown[] }).leases).toEqual([]);
      await second.stop();
    }, 120_000);
  },
);
