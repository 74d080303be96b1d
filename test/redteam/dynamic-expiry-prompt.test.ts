/**
 * Red team: "the server wakes at each lease's expiry". A lease issued after the sweep last
 * looked (it then sleeps up to 30 s) must still lose its upstream account at its expiry: for
 * Redis that is the only thing that ends it, for PostgreSQL the only thing that ends sessions
 * opened before VALID UNTIL. Real `vault dev`, real PostgreSQL and Redis, real HTTP.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisCommands } from '../../src/engines/resp.js';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';
import { type Redis, redisAvailable, startRedis } from '../support/redis.js';
import { devApi, startVaultDev, type VaultDev } from '../support/vault-dev.js';

const run = postgresAvailable() && redisAvailable ? describe : describe.skip;

run('red team: a dynamic lease ends upstream at its expiry', () => {
  let db: Postgres;
  let redis: Redis;
  let vault: VaultDev;

  const api = (method: string, path: string, body?: unknown) => devApi(vault)(method, path, body);

  const waitUntil = async (what: string, check: () => Promise<boolean>, deadline: number) => {
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`not by the deadline: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  beforeAll(async () => {
    [db, redis] = await Promise.all([startPostgres(), startRedis()]);
    // A fresh server: its first sweep ran at start and the next is 30 s away.
    vault = await startVaultDev();
    for (const body of [
      {
        name: 'cache',
        type: 'database-url',
        value: redis.adminUrl,
        dynamic: { engine: 'redis', aclRules: ['~cache:*', '+get'] },
      },
      {
        name: 'orders-db',
        type: 'database-url',
        value: db.adminUrl,
        dynamic: { engine: 'postgres', creationStatements: ['GRANT USAGE ON SCHEMA public TO {{name}}'] },
      },
    ]) {
      const created = await api('POST', '/credentials', body);
      expect(created.status, created.text).toBe(201);
    }
  });

  afterAll(async () => {
    await vault?.stop();
    await Promise.all([db?.close(), redis?.close()]);
  });

  it('the Redis user and the PostgreSQL session are gone within seconds of the expiry', async () => {
    const [cache, orders] = await Promise.all([
      api('POST', '/leases', { credentialName: 'cache', ttl: '2s' }),
      api('POST', '/leases', { credentialName: 'orders-db', ttl: '2s' }),
    ]);
    expect(cache.status, cache.text).toBe(201);
    expect(orders.status, orders.text).toBe(201);
    const url = new URL(cache.body.value);
    const asLease = {
      host: url.hostname,
      port: Number(url.port),
      username: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    };
    expect(await redisCommands(asLease, [['GET', 'cache:x']])).toEqual([null]);
    const session = new pg.Client({ connectionString: orders.body.value });
    session.on('error', () => {});
    await session.connect();

    const expiry = Math.max(Date.parse(cache.body.expiresAt), Date.parse(orders.body.expiresAt));
    // Well before the next 30 s sweep, with room for a slow machine.
    const deadline = expiry + 10_000;
    await waitUntil(
      'the Redis user is refused',
      () =>
        redisCommands(asLease, [['GET', 'cache:x']]).then(
          () => false,
          (err: Error) => /authentication refused/.test(err.message),
        ),
      deadline,
    );
    await waitUntil(
      'the PostgreSQL session is ended',
      () =>
        session.query('SELECT 1').then(
          () => false,
          () => true,
        ),
      deadline,
    );
    await session.end().catch(() => {});
  }, 60_000);
});
