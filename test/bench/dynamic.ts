/**
 * Dynamic PostgreSQL lease throughput and p99 (issue + revoke through the core) against a
 * plain CREATE ROLE / DROP ROLE loop from the same client library on the same server — the
 * limit — run side by side, with two steps between them so the cost shows where it is:
 * the engine's own SQL one lease at a time (CREATE ROLE + GRANT, then REASSIGN/DROP OWNED/
 * DROP ROLE), and the engine alone (batched, no store, no audit). Prints numbers only.
 *
 *   npx tsx test/bench/dynamic.ts [leases=200] [concurrency=8]
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createVaultCore, ROOT_POLICY, systemContext } from '../../src/core/index.js';
import { sealedPrefixes } from '../../src/core/keys.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { localRootKey } from '../../src/crypto/root-key.js';
import { scramVerifier } from '../../src/engines/password.js';
import { createPostgresEngine } from '../../src/engines/postgres.js';
import { retryConcurrent } from '../../src/engines/postgres-sql.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import { startPostgres } from '../support/postgres.js';

const total = Number(process.argv[2] ?? 200);
const concurrency = Number(process.argv[3] ?? 8);

const p99 = (ms: number[]) =>
  [...ms].sort((a, b) => a - b)[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))]!;

async function run(label: string, one: (i: number) => Promise<void>) {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const t = performance.now();
        await one(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const perSecond = total / seconds;
  console.log(
    `${label.padEnd(34)} ${perSecond.toFixed(1).padStart(7)} issue+revoke/s   p99 ${p99(latencies).toFixed(1)} ms`,
  );
  return perSecond;
}

const db = await startPostgres();
const dir = await mkdtemp(join(tmpdir(), 'vault-bench-dyn-'));
const store = await openEmbeddedStore({ path: dir });
try {
  await db.query('CREATE TABLE public.orders (id int)');
  const statement = 'GRANT SELECT ON public.orders TO {{name}}';
  const pool = new pg.Pool({ connectionString: db.adminUrl, max: 4 });
  pool.on('error', () => {});
  const plain = await run('plain CREATE ROLE/DROP ROLE', async (i) => {
    const role = `plain_${i}_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(24).toString('base64url');
    await pool.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${password}' VALID UNTIL 'infinity'`);
    await pool.query(`DROP ROLE "${role}"`);
  });
  // PostgreSQL checks every new SCRAM verifier against the empty password (one PBKDF2 run on
  // the server, as for a plaintext password); the engine computes the verifier itself so the
  // plaintext never reaches the server's logs: one more PBKDF2, here on the same two cores.
  const plainVerifier = await run('plain loop, client-side verifier', async (i) => {
    const role = `plainv_${i}_${randomBytes(4).toString('hex')}`;
    const verifier = await scramVerifier(randomBytes(24).toString('base64url'));
    await pool.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${verifier}' VALID UNTIL 'infinity'`);
    await pool.query(`DROP ROLE "${role}"`);
  });
  const engineSql = await run('engine SQL, one lease at a time', async (i) => {
    const role = `sql_${i}_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(24).toString('base64url');
    const client = await pool.connect();
    // Concurrent GRANTs on one table race on its catalog row: retried, as the engine does.
    const tx = async (run: () => Promise<unknown>) =>
      retryConcurrent(async () => {
        try {
          await run();
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {});
          throw err;
        }
      });
    try {
      await tx(async () => {
        await client.query('BEGIN');
        await client.query(
          `CREATE ROLE "${role}" LOGIN NOINHERIT PASSWORD '${password}' VALID UNTIL 'infinity'`,
        );
        await client.query(`GRANT SELECT ON public.orders TO "${role}"`);
        await client.query('COMMIT');
      });
      await tx(() =>
        client.query(
          `BEGIN; REASSIGN OWNED BY "${role}" TO CURRENT_USER; DROP OWNED BY "${role}"; DROP ROLE "${role}"; COMMIT`,
        ),
      );
    } finally {
      client.release();
    }
  });
  await pool.end();

  const engine = createPostgresEngine();
  const spec = { engine: 'postgres' as const, creationStatements: [statement] };
  const engineOnly = await run('engine alone (batched, no store)', async (i) => {
    const username = `eng_${i}_${randomBytes(4).toString('hex')}`;
    await engine.issue(db.adminUrl, spec, { username, expiresAt: new Date(Date.now() + 300_000) });
    await engine.revoke(db.adminUrl, username);
  });
  await engine.close();

  const keyring = createKeyring({ store, roots: [localRootKey(randomBytes(32))], sealedPrefixes });
  const core = createVaultCore({ store, keyring, engines: { postgres: createPostgresEngine() } });
  const admin = { type: 'human' as const, name: 'bench' };
  const ctx = {
    ...systemContext('bench', admin),
    principal: { identity: admin, policies: [ROOT_POLICY], system: true },
  };
  await core.tenants.ensure('bench', systemContext('bench', admin));
  await core.credentials.create(ctx as never, {
    name: 'db',
    type: 'database-url',
    value: db.adminUrl,
    dynamic: { engine: 'postgres', creationStatements: [statement] },
  });
  const dynamic = await run('vault dynamic lease create+revoke', async () => {
    const lease = await core.leases.create(ctx as never, {
      credentialName: 'db',
      ttl: '5m',
      renewable: true,
    });
    await core.leases.revoke(ctx as never, lease.id);
  });
  const ratio = (x: number) => `${(x / plain).toFixed(2)}x`;
  console.log(
    `of the plain loop: client-side verifier ${ratio(plainVerifier)}, engine SQL ${ratio(engineSql)}, engine alone ${ratio(engineOnly)}, vault ${ratio(dynamic)} (goal >= 0.5x); ${total} leases, concurrency ${concurrency}`,
  );
  await core.dynamic.stop();
  await core.dynamic.closeEngines();
} finally {
  await store.close();
  await rm(dir, { recursive: true, force: true });
  await db.close();
}
