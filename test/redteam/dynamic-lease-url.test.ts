/**
 * Red team: the lease's URL is built from the admin connection. Whatever the admin URL carries
 * besides its userinfo (a password given as a query parameter) must not
 * reach a lease holder. Real `vault dev`, real PostgreSQL, real HTTP.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';
import { devApi, startVaultDev, type VaultDev } from '../support/vault-dev.js';

const run = postgresAvailable() ? describe : describe.skip;

run('red team: a lease URL carries nothing of the admin connection but where to connect', () => {
  let db: Postgres;
  let vault: VaultDev;

  const api = (method: string, path: string, body?: unknown) => devApi(vault)(method, path, body);

  beforeAll(async () => {
    db = await startPostgres();
    vault = await startVaultDev();
  });

  afterAll(async () => {
    await vault?.stop();
    await db?.close();
  });

  it('an admin password given as a query parameter is not handed to lease holders', async () => {
    // libpq and node-postgres both take the password from the query string too.
    const admin = new URL(db.adminUrl);
    admin.password = '';
    admin.searchParams.set('password', db.adminPassword);
    admin.searchParams.set('sslmode', 'disable');
    const created = await api('POST', '/credentials', {
      name: 'query-db',
      type: 'database-url',
      value: admin.toString(),
      dynamic: { engine: 'postgres', creationStatements: ['GRANT USAGE ON SCHEMA public TO {{name}}'] },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);

    const lease = await api('POST', '/leases', { credentialName: 'query-db', ttl: '5m' });
    expect(lease.status, JSON.stringify(lease.body)).toBe(201);
    const value = lease.body.value as string;
    expect(value).not.toContain(db.adminPassword);
    expect(value).not.toContain(encodeURIComponent(db.adminPassword));
    // Where and how to connect stays.
    expect(new URL(value).searchParams.get('sslmode')).toBe('disable');
    const client = new pg.Client({ connectionString: value });
    await client.connect();
    try {
      const who = await client.query<{ user: string }>('SELECT current_user AS user');
      expect(who.rows[0]?.user).toBe(lease.body.dynamic.username);
    } finally {
      await client.end();
    }
  });

  it('rotating an admin connection whose password is in the query string keeps Vault able to connect', async () => {
    // node-postgres prefers the query's password to the userinfo's: a rotation that changed
    // only the userinfo stored a connection that no longer logs in, locking Vault out.
    const rotated = await api('POST', '/credentials/query-db/rotate', {});
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
    const lease = await api('POST', '/leases', { credentialName: 'query-db', ttl: '5m' });
    expect(lease.status, JSON.stringify(lease.body)).toBe(201);
    const client = new pg.Client({ connectionString: lease.body.value });
    await client.connect();
    await client.end();
    // The old admin password no longer works: it was really rotated.
    const old = new pg.Client({ connectionString: db.adminUrl });
    await expect(old.connect()).rejects.toThrow(/password authentication failed/);
    await old.end().catch(() => {});
  });
});
