/**
 * Red team: rotating a dynamic credential's admin password twice at once (two operators, a
 * retrying script, two controllers). Each rotation changes the password upstream and stores
 * it as the next version; if both are stored, the current version holds one password while
 * the database has the other, and Vault is locked out of its own database. Real `vault dev`,
 * real PostgreSQL, real HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';
import { devApi, startVaultDev, type VaultDev } from '../support/vault-dev.js';

const run = postgresAvailable() ? describe : describe.skip;

run('red team: concurrent admin password rotations', () => {
  let db: Postgres;
  let vault: VaultDev;

  const api = (method: string, path: string, body?: unknown) => devApi(vault)(method, path, body);

  beforeAll(async () => {
    db = await startPostgres();
    vault = await startVaultDev();
    const created = await api('POST', '/credentials', {
      name: 'rotating-db',
      type: 'database-url',
      value: db.adminUrl,
      dynamic: { engine: 'postgres', creationStatements: ['GRANT USAGE ON SCHEMA public TO {{name}}'] },
    });
    expect(created.status, created.text).toBe(201);
  });

  afterAll(async () => {
    await vault?.stop();
    await db?.close();
  });

  it('at most one of them is stored, and Vault can always still log in', async () => {
    for (let round = 0; round < 4; round++) {
      const before = (await api('GET', '/credentials/rotating-db')).body.currentVersion as number;
      const results = await Promise.all(
        Array.from({ length: 3 }, () => api('POST', '/credentials/rotating-db/rotate', {})),
      );
      const stored = results.filter((r) => r.status === 200).length;
      expect(stored).toBeLessThanOrEqual(1);
      // The others are refused as conflicts (or the database's own refusal), never half-done.
      for (const r of results) expect([200, 409, 502], r.text).toContain(r.status);
      const after = (await api('GET', '/credentials/rotating-db')).body.currentVersion as number;
      expect(after - before).toBe(stored);
      const lease = await api('POST', '/leases', { credentialName: 'rotating-db', ttl: '1m' });
      expect(lease.status, `round ${round}: ${lease.text}`).toBe(201);
    }
  }, 60_000);
});
