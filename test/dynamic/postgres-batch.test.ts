/**
 * The PostgreSQL engine's group commit against a real server: leases issued or revoked
 * together share one transaction, and one lease that fails in a batch sinks no other.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engines/engine.js';
import { createPostgresEngine } from '../../src/engines/postgres.js';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';

const spec = {
  engine: 'postgres' as const,
  creationStatements: ['GRANT SELECT ON public.orders TO {{name}}'],
};

async function canLogin(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT count(*) FROM public.orders');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

describe.skipIf(!postgresAvailable())('PostgreSQL engine: batches', () => {
  let db: Postgres;
  const engine = createPostgresEngine();
  const expiresAt = () => new Date(Date.now() + 10 * 60_000);

  beforeAll(async () => {
    db = await startPostgres();
    await db.query('CREATE TABLE public.orders (id int)');
  }, 60_000);

  afterAll(async () => {
    await engine.close();
    await db?.close();
  });

  it('issues concurrent leases in shared transactions', async () => {
    const names = Array.from({ length: 16 }, (_, i) => `vault_batch_${i}`);
    const urls = await Promise.all(
      names.map((username) => engine.issue(db.adminUrl, spec, { username, expiresAt: expiresAt() })),
    );
    expect(new Set(urls).size).toBe(names.length);
    for (const url of urls) expect(await canLogin(url)).toBe(true);
    // Roles created in one transaction carry its id (xmin): fewer transactions than leases.
    const xids = await db.query<{ n: number }>(
      "SELECT count(DISTINCT xmin::text)::int AS n FROM pg_authid WHERE rolname LIKE 'vault_batch_%'",
    );
    expect(xids.rows[0]!.n).toBeLessThan(names.length);
  });

  it('holds roles in an open transaction until each lease is settled: only committed leases keep one', async () => {
    // Each lease settles on its own, as the core does once its commit is done.
    const held = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const username = `vault_held_${i}`;
        const h = await engine.issueHeld!(db.adminUrl, spec, { username, expiresAt: expiresAt() });
        // Nobody else sees the role yet: a crash now would leave nothing behind.
        const seen = (await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [username])).rowCount;
        const login = await canLogin(h.value);
        await h.settle(i % 2 === 0);
        return { ...h, seen, login };
      }),
    );
    expect(held.map((h) => [h.seen, h.login])).toEqual(held.map(() => [0, false]));
    const kept = await db.query<{ rolname: string }>(
      "SELECT rolname FROM pg_roles WHERE rolname LIKE 'vault_held_%' ORDER BY rolname",
    );
    expect(kept.rows.map((r) => r.rolname)).toEqual(['vault_held_0', 'vault_held_2', 'vault_held_4']);
    for (const [i, h] of held.entries()) expect(await canLogin(h.value)).toBe(i % 2 === 0);
    // A lease that is never settled is not kept, and keeping it afterwards says so.
    const slow = createPostgresEngine({ holdTimeoutMs: 300 });
    try {
      const late = await slow.issueHeld!(db.adminUrl, spec, {
        username: 'vault_held_late',
        expiresAt: expiresAt(),
      });
      await new Promise((resolve) => setTimeout(resolve, 600));
      await expect(late.settle(true)).rejects.toThrow(/rolled back/);
      expect((await db.query("SELECT 1 FROM pg_roles WHERE rolname = 'vault_held_late'")).rowCount).toBe(0);
    } finally {
      await slow.close();
    }
  });

  it('a lease whose role cannot be created fails alone; the others in its batch are issued', async () => {
    await db.query('CREATE ROLE vault_mixed_taken');
    const names = [...Array.from({ length: 6 }, (_, i) => `vault_mixed_${i}`), 'vault_mixed_taken'];
    const results = await Promise.allSettled(
      names.map((username) => engine.issue(db.adminUrl, spec, { username, expiresAt: expiresAt() })),
    );
    const taken = results.at(-1)!;
    expect(taken.status).toBe('rejected');
    expect((taken as PromiseRejectedResult).reason).toBeInstanceOf(EngineError);
    expect(String((taken as PromiseRejectedResult).reason.message)).toMatch(/already exists/);
    for (const result of results.slice(0, -1)) {
      expect(result.status).toBe('fulfilled');
      expect(await canLogin((result as PromiseFulfilledResult<string>).value)).toBe(true);
    }
    expect(JSON.stringify(results)).not.toContain(db.adminPassword);
  });

  it('revokes concurrent leases together; a role that cannot be dropped fails alone and the rest are gone', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `vault_drop_${i}`);
    const urls = await Promise.all(
      names.map((username) => engine.issue(db.adminUrl, spec, { username, expiresAt: expiresAt() })),
    );
    // A privilege in another database that takes no connections: the engine cannot reach it
    // to drop it, so DROP ROLE fails. (Other databases it reaches: dynamic-revoke-escape.)
    await db.query('CREATE DATABASE elsewhere');
    const other = new pg.Client({ connectionString: db.urlFor('admin', db.adminPassword, 'elsewhere') });
    await other.connect();
    await other.query('CREATE TABLE t (id int)');
    await other.query('GRANT SELECT ON t TO vault_drop_3');
    await other.end();
    await db.query('ALTER DATABASE elsewhere ALLOW_CONNECTIONS false');

    const results = await Promise.allSettled(names.map((username) => engine.revoke(db.adminUrl, username)));
    expect(results.map((r) => r.status)).toEqual(names.map((_, i) => (i === 3 ? 'rejected' : 'fulfilled')));
    expect(String((results[3] as PromiseRejectedResult).reason.message)).toMatch(/vault_drop_3/);
    const left = await db.query<{ rolname: string }>(
      "SELECT rolname FROM pg_roles WHERE rolname LIKE 'vault_drop_%'",
    );
    expect(left.rows.map((r) => r.rolname)).toEqual(['vault_drop_3']);
    // The role left behind is refused at login already (NOLOGIN comes before the drop).
    for (const url of urls) expect(await canLogin(url)).toBe(false);
    // Revoking again once the obstacle is gone succeeds, and revoking a gone role is a no-op.
    await db.query('DROP DATABASE elsewhere');
    await engine.revoke(db.adminUrl, 'vault_drop_3');
    await engine.revoke(db.adminUrl, 'vault_drop_0');
    expect((await db.query("SELECT 1 FROM pg_roles WHERE rolname LIKE 'vault_drop_%'")).rowCount).toBe(0);
  });
});
