/**
 * Dynamic PostgreSQL lease throughput and p99 (issue + revoke through the core) against a
 * plain CREATE ROLE / DROP ROLE loop from the same client library on the same server — the
 * limit — run side by side. Prints numbers only; nothing is asserted.
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
import { createPostgresEngine } from '../../src/engines/postgres.js';
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
  const plain = await run('plain CREATE ROLE/DROP ROLE', async (i) => {
    const role = `plain_${i}_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(24).toString('base64url');
    await pool.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${password}' VALID UNTIL 'infinity'`);
    await pool.query(`DROP ROLE "${role}"`);
  });
  await pool.end();

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
  console.log(
    `ratio ${(dynamic / plain).toFixed(2)}x of the plain loop (goal >= 0.5x); ${total} leases, concurrency ${concurrency}`,
  );
  await core.dynamic.stop();
  await core.dynamic.closeEngines();
} finally {
  await store.close();
  await rm(dir, { recursive: true, force: true });
  await db.close();
}
