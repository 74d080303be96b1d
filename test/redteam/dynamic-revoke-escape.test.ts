/**
 * Red team: a PostgreSQL lease holder using only what every role has by default (CONNECT and
 * TEMP on databases, large objects) tries to outlive its revocation, or to stop Vault from
 * revoking or issuing anything. Real `vault dev`, real PostgreSQL, real HTTP.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aclLockKey } from '../../src/engines/postgres-sql.js';
import { loginWorks, type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';
import { devApi, startVaultDev, type VaultDev } from '../support/vault-dev.js';

const run = postgresAvailable() ? describe : describe.skip;

interface Lease {
  id: string;
  value: string;
  dynamic: { username: string };
}

run('red team: a PostgreSQL lease cannot outlive its revocation', () => {
  let db: Postgres;
  let vault: VaultDev;
  const open: pg.Client[] = [];

  const api = (method: string, path: string, body?: unknown) => devApi(vault)(method, path, body);

  const lease = async (credentialName: string): Promise<Lease> => {
    const res = await api('POST', '/leases', { credentialName, ttl: '1h' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as Lease;
  };

  const session = async (url: string, database?: string) => {
    const u = new URL(url);
    if (database) u.pathname = `/${database}`;
    const client = new pg.Client({ connectionString: u.toString() });
    client.on('error', () => {});
    await client.connect();
    open.push(client);
    return client;
  };

  const alive = async (client: pg.Client) =>
    client.query('SELECT 1').then(
      () => true,
      () => false,
    );

  const roleExists = async (username: string) =>
    (await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [username])).rowCount === 1;

  const waitFor = async (what: string, check: () => Promise<boolean>, ms: number) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  beforeAll(async () => {
    db = await startPostgres();
    await db.query('CREATE TABLE public.orders (id int, item text)');
    await db.query('CREATE DATABASE other');
    // Someone made the role revoked leases' objects go to, able to log in, before Vault did.
    await db.query("CREATE ROLE vault_revoked LOGIN CREATEDB PASSWORD 'squatter'");
    vault = await startVaultDev();
    const created = await api('POST', '/credentials', {
      name: 'orders-db',
      type: 'database-url',
      value: db.adminUrl,
      dynamic: {
        engine: 'postgres',
        creationStatements: [
          'GRANT USAGE ON SCHEMA public TO {{name}}',
          'GRANT SELECT ON public.orders TO {{name}}',
        ],
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    // A credential for migrations: its leases may create objects in the public schema.
    const migrations = await api('POST', '/credentials', {
      name: 'migrations-db',
      type: 'database-url',
      value: db.adminUrl,
      dynamic: {
        engine: 'postgres',
        creationStatements: ['GRANT USAGE, CREATE ON SCHEMA public TO {{name}}'],
      },
    });
    expect(migrations.status, JSON.stringify(migrations.body)).toBe(201);
  });

  afterAll(async () => {
    await Promise.all(open.map((client) => client.end().catch(() => {})));
    await vault?.stop();
    await db?.close();
  });

  it('owning a large object in another database does not keep the role (or its session) alive after revoke', async () => {
    const mine = await lease('orders-db');
    // Every role may connect to every database and create large objects there: a dependency
    // that REASSIGN/DROP OWNED in the admin's database does not see, so DROP ROLE fails.
    const elsewhere = await session(mine.value, 'other');
    await elsewhere.query('SELECT lo_create(0)');
    await elsewhere.end();
    const held = await session(mine.value);

    const revoked = await api('POST', `/leases/${mine.id}/revoke`);
    expect(revoked.status).toBe(200);
    await waitFor('the open session ends', async () => !(await alive(held)), 2_000);
    expect(await loginWorks(mine.value)).toBe(false);
    await waitFor('the role is dropped', async () => !(await roleExists(mine.dynamic.username)), 5_000);
    const credential = await api('GET', '/credentials/orders-db');
    expect(credential.body.revocations).toEqual({ failing: 0 });
  });

  it('a temporary table in an open transaction blocks neither its revocation nor other leases', async () => {
    const mine = await lease('orders-db');
    const held = await session(mine.value);
    // REASSIGN OWNED waits for the lock on the session's own temporary table, holding the
    // lock every issue and revoke waits on: one idle session stops the engine.
    await held.query('BEGIN');
    await held.query('CREATE TEMP TABLE mine (x int)');

    const started = Date.now();
    const revoked = await api('POST', `/leases/${mine.id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(5_000);
    await waitFor('the open session ends', async () => !(await alive(held)), 2_000);
    expect(await loginWorks(mine.value)).toBe(false);
    await waitFor('the role is dropped', async () => !(await roleExists(mine.dynamic.username)), 5_000);

    const issuing = Date.now();
    const next = await lease('orders-db');
    expect(Date.now() - issuing).toBeLessThan(5_000);
    expect(await loginWorks(next.value)).toBe(true);
  });

  it('objects a revoked lease owned do not run with the admin privileges afterwards', async () => {
    const first = await lease('migrations-db');
    const author = await session(first.value);
    // Code and views run with their owner's privileges: owned by the admin (a superuser)
    // after revocation, anyone allowed to call them would act as the admin.
    await author.query(
      `CREATE FUNCTION public.owner_is_superuser() RETURNS boolean LANGUAGE sql SECURITY DEFINER
         AS $$ SELECT rolsuper FROM pg_roles WHERE rolname = current_user $$`,
    );
    await author.query('CREATE VIEW public.verifiers AS SELECT rolname, rolpassword FROM pg_authid');
    await author.query('GRANT SELECT ON public.verifiers TO PUBLIC');
    await author.query('CREATE TABLE public.kept (id int)');
    await author.query('INSERT INTO public.kept VALUES (1)');
    await author.end();
    expect((await api('POST', `/leases/${first.id}/revoke`)).status).toBe(200);
    await waitFor('the role is dropped', async () => !(await roleExists(first.dynamic.username)), 5_000);

    const second = await lease('migrations-db');
    const caller = await session(second.value);
    const definer = await caller.query('SELECT public.owner_is_superuser() AS superuser');
    expect(definer.rows[0].superuser).toBe(false);
    await expect(caller.query('SELECT rolpassword FROM public.verifiers')).rejects.toThrow(
      /permission denied/,
    );
    // What the lease created is kept (its data is not lost), owned by a role nobody logs in as.
    const kept = await db.query<{ owner: string; login: boolean; superuser: boolean; n: number }>(
      `SELECT r.rolname AS owner, r.rolcanlogin AS login, r.rolsuper AS superuser,
              (SELECT count(*)::int FROM public.kept) AS n
         FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = 'public.kept'::regclass`,
    );
    expect(kept.rows[0]).toMatchObject({ login: false, superuser: false, n: 1 });
    // Not even the role someone had made under that name beforehand logs in.
    const owner = await db.query<{ rolcanlogin: boolean; rolcreatedb: boolean }>(
      'SELECT rolcanlogin, rolcreatedb FROM pg_roles WHERE rolname = $1',
      [kept.rows[0]!.owner],
    );
    expect(owner.rows[0]).toEqual({ rolcanlogin: false, rolcreatedb: false });
  });

  it('taking the advisory lock the engine serializes privilege changes with stalls neither issue nor revoke', async () => {
    const mine = await lease('orders-db');
    const held = await session(mine.value);
    // Advisory locks are open to every role, and the engine's key is in its source (and in
    // pg_locks whenever it holds it).
    await held.query(`SELECT pg_advisory_lock(${aclLockKey})`);

    const started = Date.now();
    const other = await lease('orders-db');
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(await loginWorks(other.value)).toBe(true);
    const revoked = await api('POST', `/leases/${other.id}/revoke`);
    expect(revoked.status).toBe(200);
    await waitFor(
      'the other role is dropped',
      async () => !(await roleExists(other.dynamic.username)),
      8_000,
    );
    expect(await alive(held)).toBe(true);
  });
});
