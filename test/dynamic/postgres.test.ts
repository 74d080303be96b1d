/**
 * Dynamic PostgreSQL credentials against a real PostgreSQL server (Debian's packages, started
 * by the test as the unprivileged `postgres` user on 127.0.0.1): each lease logs in as its own
 * role, can do what the creation statements grant and nothing else, and stops working when
 * the lease ends — by revocation, by the database's own VALID UNTIL, and after an outage.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { createPostgresEngine } from '../../src/engines/postgres.js';
import { type Postgres, postgresAvailable, postgresBinDir, startPostgres } from '../support/postgres.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const available = postgresAvailable();

async function connectAs(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** The error a login gets, or undefined when it succeeds. */
async function loginError(url: string): Promise<string | undefined> {
  try {
    const client = await connectAs(url);
    await client.end();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

describe.skipIf(!available)('dynamic PostgreSQL credentials', () => {
  let db: Postgres;
  let vault: TestVault;

  beforeAll(async () => {
    db = await startPostgres();
    await db.query('CREATE TABLE public.orders (id int PRIMARY KEY, item text)');
    await db.query("INSERT INTO public.orders VALUES (1, 'book')");
    await db.query('CREATE TABLE public.salaries (name text, amount int)');
    vault = await startTestVault({
      engines: { postgres: createPostgresEngine() },
      dynamic: { issueGraceMs: 1000, retryBaseMs: 200, retryMaxMs: 1000, sweepIntervalMs: 1000 },
    });
    const created = await vault.call('POST', '/v1/credentials', {
      body: {
        name: 'orders-db',
        type: 'database-url',
        value: db.adminUrl,
        metadata: { service: 'orders' },
        dynamic: {
          engine: 'postgres',
          creationStatements: ['GRANT SELECT ON public.orders TO {{name}}'],
        },
      },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.text).not.toContain(db.adminPassword);
  }, 60_000);

  afterAll(async () => {
    await vault?.close();
    await db?.close();
  });

  const lease = async (body: Record<string, unknown> = {}) => {
    const res = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'orders-db', ttl: '5m', ...body },
    });
    expect(res.status, res.text).toBe(201);
    return res.body as { id: string; value: string; dynamic: { username: string }; expiresAt: string };
  };

  it('gives each lease its own role that can do what the statements grant, and nothing else', async () => {
    const a = await lease();
    const b = await lease({ identity: { type: 'agent', name: 'claude-code' } });
    expect(a.value).not.toBe(b.value);
    expect(a.dynamic.username).toBe(`vault_${a.id}`);
    expect(a.value).not.toContain(db.adminPassword);
    const client = await connectAs(a.value);
    try {
      const who = await client.query('SELECT current_user AS user');
      expect(who.rows[0].user).toBe(`vault_${a.id}`);
      expect((await client.query('SELECT item FROM public.orders')).rows).toEqual([{ item: 'book' }]);
      await expect(client.query("INSERT INTO public.orders VALUES (2, 'pen')")).rejects.toThrow(
        /permission denied/,
      );
      await expect(client.query('SELECT * FROM public.salaries')).rejects.toThrow(/permission denied/);
      await expect(client.query('CREATE ROLE intruder')).rejects.toThrow(/permission denied/);
    } finally {
      await client.end();
    }
    // The database enforces the lease's end itself.
    const role = await db.query<{ rolvaliduntil: Date }>(
      'SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1',
      [a.dynamic.username],
    );
    expect(role.rows[0]!.rolvaliduntil.toISOString()).toBe(a.expiresAt);
    // Reading the lease gives the same value back; the credential's admin connection never.
    const read = await vault.call('GET', `/v1/leases/${a.id}/value`);
    expect(read.status, read.text).toBe(200);
    expect(read.body.value).toBe(a.value);
  });

  it('renew extends VALID UNTIL', async () => {
    const a = await lease({ ttl: '1m', maxTtl: '1h' });
    const renewed = await vault.call('POST', `/v1/leases/${a.id}/renew`, { body: { increment: '30m' } });
    expect(renewed.status, renewed.text).toBe(200);
    const role = await db.query<{ rolvaliduntil: Date }>(
      'SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1',
      [a.dynamic.username],
    );
    expect(role.rows[0]!.rolvaliduntil.toISOString()).toBe(renewed.body.expiresAt);
    expect(Date.parse(renewed.body.expiresAt)).toBeGreaterThan(Date.parse(a.expiresAt));
  });

  it('after revoke: login refused and open sessions gone within 1 s', async () => {
    const a = await lease();
    const session = await connectAs(a.value);
    const ended = new Promise<void>((resolve) => session.once('end', () => resolve()));
    const started = Date.now();
    const revoked = await vault.call('POST', `/v1/leases/${a.id}/revoke`);
    expect(revoked.status, revoked.text).toBe(200);
    await ended;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await loginError(a.value)).toMatch(/password authentication failed/);
    const left = await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [a.dynamic.username]);
    expect(left.rowCount).toBe(0);
    const audit = vault
      .auditLines()
      .filter((r) => r.action === 'lease.dynamic-revoke' && r.resource === `lease/${a.id}`);
    expect(audit.map((r) => r.outcome)).toEqual(['allowed']);
    expect(audit[0]!.reason).toContain(a.dynamic.username);
    // The lease's own value is gone with it.
    expect((await vault.call('GET', `/v1/leases/${a.id}/value`)).status).toBe(410);
  });

  it('after expiry with no revocation running, the database itself refuses the login', async () => {
    // A server that is not running: the engine issues directly, as the API would, and nothing
    // ever revokes; VALID UNTIL alone must end the role.
    const engine = createPostgresEngine();
    try {
      const expiresAt = new Date(Date.now() + 1500);
      const url = await engine.issue(
        db.adminUrl,
        { engine: 'postgres', creationStatements: ['GRANT SELECT ON public.orders TO {{name}}'] },
        { username: 'vault_lease_expiry_probe', expiresAt },
      );
      expect(await loginError(url)).toBeUndefined();
      await new Promise((resolve) => setTimeout(resolve, expiresAt.getTime() - Date.now() + 200));
      expect(await loginError(url)).toMatch(/password authentication failed/);
      await engine.revoke(db.adminUrl, 'vault_lease_expiry_probe');
    } finally {
      await engine.close();
    }
  });

  it('removes the role when the lease expires (the sweep at expiry)', async () => {
    const a = await lease({ ttl: '1s' });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const left = await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [a.dynamic.username]);
      if (left.rowCount === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [a.dynamic.username])).rowCount).toBe(
      0,
    );
    const audit = vault
      .auditLines()
      .filter((r) => r.action === 'lease.dynamic-revoke' && r.resource === `lease/${a.id}`);
    expect(audit.at(-1)?.reason).toContain('lease expired');
  });

  it('database down during revoke: retried with backoff until it is back, audited, nothing forgotten', async () => {
    const a = await lease();
    await db.stop();
    const revoked = await vault.call('POST', `/v1/leases/${a.id}/revoke`);
    // The lease is revoked in Vault at once; the upstream account waits for the database.
    expect(revoked.status, revoked.text).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const failures = vault
      .auditLines()
      .filter(
        (r) => r.action === 'lease.dynamic-revoke' && r.resource === `lease/${a.id}` && r.outcome === 'error',
      );
    expect(failures.length).toBeGreaterThanOrEqual(2);
    expect(failures[0]!.reason).toMatch(/attempt 1, retrying/);
    await db.start();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const done = vault
        .auditLines()
        .some(
          (r) =>
            r.action === 'lease.dynamic-revoke' && r.resource === `lease/${a.id}` && r.outcome === 'allowed',
        );
      if (done) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [a.dynamic.username])).rowCount).toBe(
      0,
    );
    expect(await loginError(a.value)).toMatch(/password authentication failed/);
    expect(await vault.store.get(keys.dynamicAccount(vault.tenant, a.id))).toBeUndefined();
  }, 30_000);

  it('SQL injection through names, metadata, identities and statements is refused or inert', async () => {
    const before = (await db.query('SELECT count(*)::int AS n FROM pg_roles')).rows[0]!.n as number;
    // Identity names, labels and metadata never reach SQL: the role name is the lease id.
    const evil = `x"; DROP TABLE public.orders; --`;
    const a = await lease({
      identity: { type: 'agent', name: 'robert-tables' },
      labels: { note: "'); DROP TABLE public.orders; --" },
    });
    expect(a.dynamic.username).toMatch(/^vault_lease_[A-Za-z0-9_-]+$/);
    // A credential name cannot carry SQL (the API refuses it)...
    const badName = await vault.call('POST', '/v1/credentials', {
      body: {
        name: evil,
        type: 'database-url',
        value: db.adminUrl,
        dynamic: { engine: 'postgres', creationStatements: ['SELECT 1'] },
      },
    });
    expect(badName.status).toBe(400);
    // ...metadata can, and it stays inert.
    const withMeta = await vault.call('POST', '/v1/credentials', {
      body: {
        name: 'meta-db',
        type: 'database-url',
        value: db.adminUrl,
        metadata: { owner: evil },
        dynamic: { engine: 'postgres', creationStatements: ['GRANT SELECT ON public.orders TO {{name}}'] },
      },
    });
    expect(withMeta.status, withMeta.text).toBe(201);
    const m = await vault.call('POST', '/v1/leases', { body: { credentialName: 'meta-db', ttl: '1m' } });
    expect(m.status, m.text).toBe(201);
    // Placeholders other than {{name}} are refused, so nothing else can be spliced in.
    const otherPlaceholder = await vault.call('POST', '/v1/credentials', {
      body: {
        name: 'tpl-db',
        type: 'database-url',
        value: db.adminUrl,
        dynamic: {
          engine: 'postgres',
          creationStatements: ['GRANT SELECT ON public.orders TO {{identity}}'],
        },
      },
    });
    expect(otherPlaceholder.status).toBe(400);
    // A statement that smuggles a second one fails as a whole (one statement each), and its
    // half-created role is rolled back with it.
    await vault.call('POST', '/v1/credentials', {
      body: {
        name: 'two-statements',
        type: 'database-url',
        value: db.adminUrl,
        dynamic: {
          engine: 'postgres',
          creationStatements: ['GRANT SELECT ON public.orders TO {{name}}; DROP TABLE public.orders'],
        },
      },
    });
    const refused = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'two-statements', ttl: '1m' },
    });
    expect(refused.status).toBe(502);
    expect(refused.text).toMatch(/multiple commands|cannot insert multiple commands/);
    expect(refused.text).not.toContain(db.adminPassword);
    expect((await db.query('SELECT count(*)::int AS n FROM public.orders')).rows[0]!.n).toBe(1);
    const after = (await db.query('SELECT count(*)::int AS n FROM pg_roles')).rows[0]!.n as number;
    expect(after).toBe(before + 2);
    // A connection that is not PostgreSQL is refused at create (not at each lease), without echoing it.
    const notPg = await vault.call('POST', '/v1/credentials', {
      body: {
        name: 'not-pg',
        type: 'database-url',
        value: 'mysql://root:hunter2-secret@x/y',
        dynamic: { engine: 'postgres', creationStatements: ['SELECT 1'] },
      },
    });
    expect(notPg.status).toBe(400);
    expect(notPg.text).toMatch(/postgres:\/\//);
    expect(notPg.text).not.toContain('hunter2-secret');
    expect(vault.output()).not.toContain(db.adminPassword);
    expect(vault.output()).not.toContain('hunter2-secret');
    expect(JSON.stringify(vault.auditLines())).not.toContain(db.adminPassword);
  });

  it('scramIterations: fewer PBKDF2 iterations, and node-postgres and psql (libpq) still log in', async () => {
    const created = await vault.call('POST', '/v1/credentials', {
      body: {
        name: 'orders-db-fast',
        type: 'database-url',
        value: db.adminUrl,
        dynamic: {
          engine: 'postgres',
          creationStatements: ['GRANT SELECT ON public.orders TO {{name}}'],
          scramIterations: 1,
        },
      },
    });
    expect(created.status, created.text).toBe(201);
    const res = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'orders-db-fast', ttl: '5m' },
    });
    expect(res.status, res.text).toBe(201);
    const { value, dynamic } = res.body as { value: string; dynamic: { username: string } };
    const stored = await db.query<{ rolpassword: string }>(
      'SELECT rolpassword FROM pg_authid WHERE rolname = $1',
      [dynamic.username],
    );
    expect(stored.rows[0]!.rolpassword).toMatch(/^SCRAM-SHA-256\$1:/);
    const client = await connectAs(value);
    expect((await client.query('SELECT current_user AS user')).rows[0].user).toBe(dynamic.username);
    await client.end();
    const url = new URL(value);
    const psql = spawnSync(
      join(postgresBinDir()!, 'psql'),
      [
        '-h',
        url.hostname,
        '-p',
        url.port,
        '-U',
        dynamic.username,
        '-d',
        'postgres',
        '-tAc',
        'SELECT current_user',
      ],
      {
        env: { PGPASSWORD: decodeURIComponent(url.password), PATH: process.env.PATH ?? '' },
        encoding: 'utf8',
      },
    );
    expect(psql.stderr).toBe('');
    expect(psql.stdout.trim()).toBe(dynamic.username);
    // The default stays PostgreSQL's own 4096, which every client accepts.
    const plain = await lease();
    const verifier = await db.query<{ rolpassword: string }>(
      'SELECT rolpassword FROM pg_authid WHERE rolname = $1',
      [plain.dynamic.username],
    );
    expect(verifier.rows[0]!.rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
  });

  it('PATCH replaces the statements for new leases (same engine only); GET shows the retry state', async () => {
    const path = '/v1/credentials/orders-db-fast';
    const statements = ['GRANT SELECT, INSERT ON public.orders TO {{name}}'];
    const wrongEngine = await vault.call('PATCH', path, {
      body: { dynamic: { engine: 'redis', aclRules: ['+get'] } },
    });
    expect(wrongEngine.status).toBe(400);
    expect(wrongEngine.text).toMatch(/postgres engine, which cannot change/);
    const notDynamic = await vault.call('POST', '/v1/credentials', {
      body: { name: 'plain-secret', type: 'generic', value: 'x' },
    });
    expect(notDynamic.status).toBe(201);
    const made = await vault.call('PATCH', '/v1/credentials/plain-secret', {
      body: { dynamic: { engine: 'postgres', creationStatements: statements } },
    });
    expect(made.status).toBe(400);
    expect(made.text).toMatch(/is not dynamic/);
    const patched = await vault.call('PATCH', path, {
      body: { dynamic: { engine: 'postgres', creationStatements: statements, scramIterations: 1 } },
    });
    expect(patched.status, patched.text).toBe(200);
    const got = await vault.call('GET', path);
    expect(got.body.dynamic.creationStatements).toEqual(statements);
    expect(got.body.revocations).toEqual({ failing: 0 });
    const res = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'orders-db-fast', ttl: '5m' },
    });
    expect(res.status, res.text).toBe(201);
    const client = await connectAs(res.body.value);
    await client.query("INSERT INTO public.orders VALUES (42, 'new statements')");
    await client.end();
  });

  it('rotating the credential rotates the admin password upstream, in one call; new leases keep working', async () => {
    const rotated = await vault.call('POST', '/v1/credentials/orders-db/rotate', { body: {} });
    expect(rotated.status, rotated.text).toBe(200);
    expect(rotated.body.currentVersion).toBe(2);
    expect(await loginError(db.adminUrl)).toMatch(/password authentication failed/);
    const a = await lease();
    expect(await loginError(a.value)).toBeUndefined();
    const revoked = await vault.call('POST', `/v1/leases/${a.id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(await loginError(a.value)).toMatch(/password authentication failed/);
    // Put the known admin password back for the rest of the file (a new version from a value).
    const lease2 = await vault.call('POST', '/v1/credentials/orders-db/versions', {
      body: { value: db.adminUrl },
    });
    expect(lease2.status).toBe(201);
    expect(JSON.stringify(vault.auditLines())).not.toMatch(/SCRAM-SHA-256\$/);
  });
});
