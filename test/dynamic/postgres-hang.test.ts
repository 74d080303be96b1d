/**
 * A database that hangs (connections open, nothing answers) during a revocation: the revoke
 * call does not wait for it, the lease is unusable in Vault at once, the failure is surfaced
 * (the credential's retry state and the audit) while the database hangs, and the role is
 * dropped once it answers again. Nothing is forgotten.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresEngine } from '../../src/engines/postgres.js';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const available = postgresAvailable();

async function until(what: string, timeoutMs: number, check: () => Promise<boolean> | boolean) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe.skipIf(!available)('dynamic PostgreSQL credentials while the database hangs', () => {
  let db: Postgres;
  let vault: TestVault;

  beforeAll(async () => {
    db = await startPostgres();
    await db.query('CREATE TABLE public.orders (id int)');
    vault = await startTestVault({
      // Queries give up after 2 s here (15 s by default), so the test sees the failures soon.
      engines: { postgres: createPostgresEngine({ queryTimeoutMs: 2_000, connectTimeoutMs: 2_000 }) },
      dynamic: { issueGraceMs: 1000, retryBaseMs: 200, retryMaxMs: 1000, sweepIntervalMs: 1000 },
    });
    const created = await vault.call('POST', '/v1/credentials', {
      body: {
        name: 'orders-db',
        type: 'database-url',
        value: db.adminUrl,
        dynamic: { engine: 'postgres', creationStatements: ['GRANT SELECT ON public.orders TO {{name}}'] },
      },
    });
    expect(created.status, created.text).toBe(201);
  }, 60_000);

  afterAll(async () => {
    db?.thaw();
    await vault?.close();
    await db?.close();
  });

  it('revokes in Vault at once, surfaces the failing removal, and drops the role once the database answers', async () => {
    const res = await vault.call('POST', '/v1/leases', { body: { credentialName: 'orders-db', ttl: '5m' } });
    expect(res.status, res.text).toBe(201);
    const { id, dynamic } = res.body as { id: string; dynamic: { username: string } };

    db.freeze();
    let thawed = false;
    try {
      const revoked = await vault.call('POST', `/v1/leases/${id}/revoke`);
      expect(revoked.status, revoked.text).toBe(200);
      // Still frozen: the call returned without the database (it never answered anything).
      const lease = await vault.call('GET', `/v1/leases/${id}/value`);
      expect(lease.status).toBe(410);

      const failing = () =>
        vault
          .auditLines()
          .filter(
            (r) =>
              r.action === 'lease.dynamic-revoke' && r.resource === `lease/${id}` && r.outcome === 'error',
          );
      await until('a failed removal is audited', 30_000, () => failing().length > 0);
      expect(failing()[0]!.reason).toMatch(/retrying/);
      await until('the credential shows the failing revocation', 30_000, async () => {
        const got = await vault.call('GET', '/v1/credentials/orders-db');
        return (got.body.revocations?.failing ?? 0) >= 1;
      });
      db.thaw();
      thawed = true;

      await until('the role is dropped', 30_000, async () => {
        const found = await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [dynamic.username]);
        return found.rowCount === 0;
      });
      await until('the removal is audited as done', 30_000, () =>
        vault
          .auditLines()
          .some(
            (r) =>
              r.action === 'lease.dynamic-revoke' && r.resource === `lease/${id}` && r.outcome === 'allowed',
          ),
      );
      const after = await vault.call('GET', '/v1/credentials/orders-db');
      expect(after.body.revocations ?? { failing: 0 }).toEqual({ failing: 0 });
    } finally {
      if (!thawed) db.thaw();
    }
  }, 120_000);
});
