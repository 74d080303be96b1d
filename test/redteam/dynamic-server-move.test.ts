/**
 * Red team: a new version of a dynamic credential (its admin connection) that points at
 * another server. Accounts are removed through the current version, so every role still on
 * the old server would be "removed" from the new one (where it never existed) and keep
 * working on the old one until VALID UNTIL: revocation silently a no-op. Real `vault dev`,
 * two real PostgreSQL servers, real HTTP.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';
import { devApi, startVaultDev, type VaultDev } from '../support/vault-dev.js';

const run = postgresAvailable() ? describe : describe.skip;

run('red team: moving a dynamic credential to another server', () => {
  let first: Postgres;
  let second: Postgres;
  let vault: VaultDev;

  const api = (method: string, path: string, body?: unknown) => devApi(vault)(method, path, body);

  const loginWorks = async (url: string) => {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      return true;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  };

  beforeAll(async () => {
    [first, second] = await Promise.all([startPostgres(), startPostgres()]);
    vault = await startVaultDev();
  });

  afterAll(async () => {
    await vault?.stop();
    await Promise.all([first?.close(), second?.close()]);
  });

  it('is refused while accounts live on the current server, and allowed once they are gone', async () => {
    const created = await api('POST', '/credentials', {
      name: 'moving-db',
      type: 'database-url',
      value: first.adminUrl,
      dynamic: { engine: 'postgres', creationStatements: ['GRANT USAGE ON SCHEMA public TO {{name}}'] },
    });
    expect(created.status, created.text).toBe(201);
    const lease = await api('POST', '/leases', { credentialName: 'moving-db', ttl: '1h' });
    expect(lease.status, lease.text).toBe(201);

    const moved = await api('POST', '/credentials/moving-db/versions', { value: second.adminUrl });
    expect(moved.status, moved.text).toBe(409);
    expect(moved.body.error.message).toMatch(/1 upstream account/);
    expect(moved.text).not.toContain(second.adminPassword);
    expect((await api('GET', '/credentials/moving-db')).body.currentVersion).toBe(1);

    // The lease's role is really removed, from the server it is on.
    expect((await api('POST', `/leases/${lease.body.id}/revoke`)).status).toBe(200);
    expect(await loginWorks(lease.body.value)).toBe(false);
    const gone = await first.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [
      lease.body.dynamic.username,
    ]);
    expect(gone.rowCount).toBe(0);

    // Nothing left on the old server: the move goes through, and new leases come from the new one.
    const again = await api('POST', '/credentials/moving-db/versions', { value: second.adminUrl });
    expect(again.status, again.text).toBe(201);
    const next = await api('POST', '/leases', { credentialName: 'moving-db', ttl: '1h' });
    expect(next.status, next.text).toBe(201);
    expect(new URL(next.body.value).port).toBe(String(second.port));
    expect(await loginWorks(next.body.value)).toBe(true);
  });
});
