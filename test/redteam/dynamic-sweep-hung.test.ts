/**
 * Red team: many leases end while their database hangs (accepts connections, never answers).
 * Each removal attempt then waits out the engine's connect timeout; if the sweep tried them one
 * after another, the last one's first attempt (and every other credential's expiries) would
 * wait for all the others. Real `vault dev`, real PostgreSQL, real HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HangingProxy, startHangingProxy } from '../support/hanging-proxy.js';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';
import { devApi, startVaultDev, type VaultDev } from '../support/vault-dev.js';

const run = postgresAvailable() ? describe : describe.skip;

run('red team: expiries while the database hangs', () => {
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

  it('every ended lease gets its removal attempted (and its failure surfaced) without waiting for the others', async () => {
    const created = await api('POST', '/credentials', {
      name: 'hung-sweep',
      type: 'database-url',
      value: adminUrl,
      dynamic: { engine: 'postgres', creationStatements: ['GRANT USAGE ON SCHEMA public TO {{name}}'] },
    });
    expect(created.status, created.text).toBe(201);
    const count = 8;
    const leases = await Promise.all(
      Array.from({ length: count }, () =>
        api('POST', '/leases', { credentialName: 'hung-sweep', ttl: '2s' }),
      ),
    );
    for (const lease of leases) expect(lease.status, lease.text).toBe(201);

    proxy.hang();

    // One after another, the eighth first attempt would come after 7 connect timeouts (35 s).
    const expired = Math.max(...leases.map((lease) => Date.parse(lease.body.expiresAt)));
    const deadline = expired + 20_000;
    let failing = 0;
    while (Date.now() < deadline) {
      failing = (await api('GET', '/credentials/hung-sweep')).body.revocations.failing;
      if (failing === count) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(failing).toBe(count);
  }, 60_000);
});
