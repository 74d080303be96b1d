/**
 * kill -9 of `vault server` after PostgreSQL created a lease's role and before the lease
 * committed: no role survives. The engine holds the role in a transaction left open until
 * the lease is committed in Vault, so the kill aborts it in PostgreSQL; a restart finds
 * nothing to clean up and no lease.
 *
 * To stop the server exactly there: the creation statements wait on an advisory lock the
 * test holds; etcd is paused (SIGSTOP); the lock is released, so the role is created in the
 * still open transaction while the lease commit hangs on etcd; then the server is killed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { bootstrap, type ServerProcess, startServer } from '../crash/vault-server.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

describe.skipIf(!postgresAvailable() || !process.env.TEST_ASSET_ETCD)(
  'kill -9 between role creation and lease commit',
  () => {
    let db: Postgres;
    let etcd: EtcdProcess;
    let base: string;
    const servers: ServerProcess[] = [];

    beforeAll(async () => {
      db = await startPostgres();
      etcd = await startEtcd();
      base = mkdtempSync(join(tmpdir(), 'vault-dyn-crash-'));
    }, 60_000);

    afterAll(async () => {
      for (const server of servers) await server.kill();
      await etcd?.destroy();
      await db?.close();
      rmSync(base, { recursive: true, force: true });
    });

    it('leaves no orphan role, before or after a restart', async () => {
      const rootKeyFile = join(base, 'root.key');
      await generateRootKeyFile(rootKeyFile);
      const storeArgs = [
        '--store',
        'etcd',
        '--etcd-endpoints',
        etcd.endpoint,
        '--root-key-file',
        rootKeyFile,
      ];
      const auth = await bootstrap({ store: 'etcd', etcdEndpoints: [etcd.endpoint], rootKeyFile }, 'crash');
      const args = [...storeArgs, '--audit-log', 'none', '--dynamic-issue-grace', '1s'];
      const first = await startServer(args);
      servers.push(first);
      const call = (url: string, path: string, body: unknown) =>
        fetch(`${url}/v1${path}`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${auth.token}`,
            'content-type': 'application/json',
            'x-vault-tenant': auth.tenant,
          },
          body: JSON.stringify(body),
        });
      const created = await call(first.url, '/credentials', {
        name: 'crash-db',
        type: 'database-url',
        value: db.adminUrl,
        dynamic: { engine: 'postgres', creationStatements: ['SELECT pg_advisory_xact_lock_shared(4242)'] },
      });
      expect(created.status, await created.text()).toBe(201);

      const holder = new pg.Client({ connectionString: db.adminUrl });
      await holder.connect();
      await holder.query('SELECT pg_advisory_lock(4242)');
      const request = call(first.url, '/leases', { credentialName: 'crash-db', ttl: '10m' }).catch(
        () => undefined,
      );
      await waitFor('the issue to wait on the lock', async () => {
        const { rowCount } = await db.query(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = 'vault-dynamic' AND wait_event_type = 'Lock'",
        );
        return (rowCount ?? 0) > 0;
      });
      await etcd.pause();
      await holder.query('SELECT pg_advisory_unlock(4242)');
      await holder.end();
      // The statements ran: the engine's session now waits, in its transaction, for the lease.
      await waitFor('the role to be held open', async () => {
        const { rowCount } = await db.query(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = 'vault-dynamic' AND state = 'idle in transaction'",
        );
        return (rowCount ?? 0) > 0;
      });
      expect((await db.query("SELECT 1 FROM pg_roles WHERE rolname LIKE 'vault_lease_%'")).rowCount).toBe(0);
      await first.kill();
      await request;
      await etcd.resume();
      // PostgreSQL aborts the transaction of the killed server's session: no role, ever.
      await waitFor('the session to end', async () => {
        const { rowCount } = await db.query(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = 'vault-dynamic'",
        );
        return rowCount === 0;
      });
      expect((await db.query("SELECT 1 FROM pg_roles WHERE rolname LIKE 'vault_lease_%'")).rowCount).toBe(0);

      const second = await startServer(args);
      servers.push(second);
      expect((await db.query("SELECT 1 FROM pg_roles WHERE rolname LIKE 'vault_lease_%'")).rowCount).toBe(0);
      // No lease was ever committed for it.
      const list = await fetch(`${second.url}/v1/leases`, {
        headers: { authorization: `Bearer ${auth.token}`, 'x-vault-tenant': auth.tenant },
      });
      expect(((await list.json()) as { leases: unknown[] }).leases).toEqual([]);
      await second.stop();
    }, 120_000);
  },
);
