/**
 * The PostgreSQL engine with the least-privileged admin docs/guide/dynamic.md describes, not a
 * superuser: a lease logs in and can do what the statements grant, and revocation ends its
 * sessions and drops its role (even one that created objects of its own).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresEngine } from '../../src/engines/postgres.js';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const available = postgresAvailable();
const adminPassword = 'vault-admin-Pw-1';

async function connectAs(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  await client.connect();
  return client;
}

describe.skipIf(!available)('dynamic PostgreSQL credentials with a least-privileged admin', () => {
  let db: Postgres;
  let vault: TestVault;
  let adminUrl: string;

  beforeAll(async () => {
    db = await startPostgres();
    // Exactly the setup the guide gives, run by a superuser once.
    for (const statement of [
      `CREATE ROLE vault_admin WITH LOGIN CREATEROLE PASSWORD '${adminPassword}'`,
      'GRANT pg_signal_backend TO vault_admin',
      'CREATE TABLE public.orders (id int PRIMARY KEY, item text)',
      "INSERT INTO public.orders VALUES (1, 'book')",
      'GRANT SELECT, INSERT ON public.orders TO vault_admin WITH GRANT OPTION',
      'GRANT USAGE, CREATE ON SCHEMA public TO vault_admin WITH GRANT OPTION',
      'CREATE TABLE public.salaries (name text, amount int)',
    ])
      await db.query(statement);
    adminUrl = db.adminUrl.replace(/\/\/admin:[^@]*@/, `//vault_admin:${adminPassword}@`);
    vault = await startTestVault({
      engines: { postgres: createPostgresEngine() },
      dynamic: { issueGraceMs: 1000, retryBaseMs: 200, retryMaxMs: 1000, sweepIntervalMs: 1000 },
    });
    const created = await vault.call('POST', '/v1/credentials', {
      body: {
        name: 'orders-db',
        type: 'database-url',
        value: adminUrl,
        dynamic: {
          engine: 'postgres',
          creationStatements: [
            'GRANT USAGE, CREATE ON SCHEMA public TO {{name}}',
            'GRANT SELECT, INSERT ON public.orders TO {{name}}',
          ],
        },
      },
    });
    expect(created.status, created.text).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await vault?.close();
    await db?.close();
  });

  it('issues a role that does what the statements grant, and revocation ends it', async () => {
    const res = await vault.call('POST', '/v1/leases', { body: { credentialName: 'orders-db', ttl: '5m' } });
    expect(res.status, res.text).toBe(201);
    const client = await connectAs(res.body.value);
    await client.query("INSERT INTO public.orders VALUES (2, 'pen')");
    await expect(client.query('SELECT * FROM public.salaries')).rejects.toThrow(/permission denied/);
    const renewed = await vault.call('POST', `/v1/leases/${res.body.id}/renew`, {
      body: { increment: '30m' },
    });
    expect(renewed.status, renewed.text).toBe(200);
    const until = await db.query('SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1', [
      res.body.dynamic.username,
    ]);
    expect(until.rows[0]!.rolvaliduntil.toISOString()).toBe(renewed.body.expiresAt);
    // Something of its own, which the revocation has to hand over before it can drop the role.
    await client.query('CREATE TABLE public.scratch (x int)');
    const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));

    const revoked = await vault.call('POST', `/v1/leases/${res.body.id}/revoke`, { body: {} });
    expect(revoked.status, revoked.text).toBe(200);
    await ended;
    const roles = await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [res.body.dynamic.username]);
    expect(roles.rowCount).toBe(0);
    const owner = await db.query("SELECT tableowner FROM pg_tables WHERE tablename = 'scratch'");
    expect(owner.rows[0]?.tableowner).toBe('vault_revoked');
    const failing = await vault.call('GET', '/v1/credentials/orders-db');
    expect(failing.body.revocations ?? { failing: 0 }).toEqual({ failing: 0 });
  }, 60_000);

  it('rotates its own password, and issues with the new one', async () => {
    const rotated = await vault.call('POST', '/v1/credentials/orders-db/rotate', { body: {} });
    expect(rotated.status, rotated.text).toBe(200);
    await expect(connectAs(adminUrl)).rejects.toThrow(/password authentication failed/);
    const res = await vault.call('POST', '/v1/leases', { body: { credentialName: 'orders-db', ttl: '5m' } });
    expect(res.status, res.text).toBe(201);
    const client = await connectAs(res.body.value);
    expect((await client.query('SELECT count(*)::int AS n FROM public.orders')).rows[0].n).toBeGreaterThan(0);
    await client.end();
  }, 60_000);
});
