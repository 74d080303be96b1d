/**
 * Red team: a database that accepts connections and never answers (a hung server, a
 * black-holed route). The docs promise a revocation by request waits for it at most a second
 * and then revokes in Vault at once, the removal retried until it succeeds. Real `vault dev`,
 * real PostgreSQL, real HTTP.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HangingProxy, startHangingProxy } from '../support/hanging-proxy.js';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';
import { devApi, startVaultDev, type VaultDev } from '../support/vault-dev.js';

const run = postgresAvailable() ? describe : describe.skip;

run('red team: revoking while the database hangs', () => {
  let db: Postgres;
  let vault: VaultDev;
  let proxy: HangingProxy;
  /** The admin connection through the proxy. */
  let adminUrl: string;

  const api = (method: string, path: string, body?: unknown) => devApi(vault)(method, path, body);

  beforeAll(async () => {
    db = await startPostgres();
    vault = await startVaultDev();
    proxy = await startHangingProxy({ host: db.host, port: db.port });
    adminUrl = proxy.urlThrough(db.adminUrl);
  });

  afterAll(async () => {
    await proxy?.close();
    await vault?.stop();
    await db?.close();
  });

  it('answers within about a second, revoked in Vault; the role goes once the database answers again', async () => {
    const created = await api('POST', '/credentials', {
      name: 'hung-db',
      type: 'database-url',
      value: adminUrl,
      dynamic: { engine: 'postgres', creationStatements: ['GRANT USAGE ON SCHEMA public TO {{name}}'] },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const lease = await api('POST', '/leases', { credentialName: 'hung-db', ttl: '1h' });
    expect(lease.status, lease.text).toBe(201);

    // The database now takes connections and never answers.
    proxy.hang();

    const started = Date.now();
    const revoked = await api('POST', `/leases/${lease.body.id}/revoke`);
    const took = Date.now() - started;
    expect(revoked.status, revoked.text).toBe(200);
    expect(revoked.body.state).toBe('revoked');
    // Had it waited for the database, it would have taken the engine's 5 s connect timeout.
    expect(took).toBeLessThan(4_500);
    expect((await api('GET', `/leases/${lease.body.id}`)).body.state).toBe('revoked');

    // The database answers again: the retry removes the role.
    proxy.resume();
    const deadline = Date.now() + 60_000;
    for (;;) {
      const left = await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [lease.body.dynamic.username]);
      if (left.rowCount === 0) break;
      if (Date.now() > deadline) throw new Error('the role was not removed once the database answered');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const login = new pg.Client({ connectionString: lease.body.value });
    await expect(login.connect()).rejects.toThrow();
    await login.end().catch(() => {});
  }, 90_000);
});
