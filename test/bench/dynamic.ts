/**
 * Dynamic PostgreSQL lease throughput and p99 (issue + revoke through the core) against a
 * plain CREATE ROLE / DROP ROLE loop from the same client library on the same server — the
 * limit — run side by side, twice: as the issue states it (the password sent in clear, so
 * the server hashes it) and as a careful operator runs it (the same password handling as the
 * engine: a SCRAM-SHA-256 verifier computed client-side, so the password never reaches the
 * server's logs). Two steps between them show where the cost is: the engine's own SQL one
 * lease at a time, and the engine alone (batched, no store, no audit).
 *
 * The machine is shared: every phase runs `rounds` times, interleaved, and the median is
 * reported with the load average around it.
 *
 *   npx tsx test/bench/dynamic.ts [leases=200] [concurrency=8] [rounds=3]
 *   PG_FSYNC=off npx tsx test/bench/dynamic.ts   # PostgreSQL without fsync, as the tests run it
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
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
const rounds = Number(process.argv[4] ?? 3);

const p99 = (ms: number[]) =>
  [...ms].sort((a, b) => a - b)[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))]!;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const load = () => loadavg()[0]!.toFixed(1);

async function run(one: (i: number) => Promise<void>) {
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
  return { perSecond: total / seconds, p99: p99(latencies) };
}

// PostgreSQL as deployed (fsync on), as the Vault store is (synchronous=FULL); the tests run it
// with fsync off for speed. PG_FSYNC=off reproduces that.
const pgFsync = process.env.PG_FSYNC === 'off' ? 'off' : 'on';
const db = await startPostgres({ settings: { fsync: pgFsync } });
const dir = await mkdtemp(join(tmpdir(), 'vault-bench-dyn-'));
const store = await openEmbeddedStore({ path: dir });
try {
  await db.query('CREATE TABLE public.orders (id int)');
  const statement = 'GRANT SELECT ON public.orders TO {{name}}';
  const pool = new pg.Pool({ connectionString: db.adminUrl, max: 4 });
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  const password = () => randomBytes(24).toString('base64url');

  const engine = createPostgresEngine();
  const spec = { engine: 'postgres' as const, creationStatements: [statement] };

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
  // Opt-in: fewer PBKDF2 iterations for the lease verifiers (see docs/guide/dynamic.md).
  const fastIterations = 16;
  await core.credentials.create(ctx as never, {
    name: 'db-fast',
    type: 'database-url',
    value: db.adminUrl,
    dynamic: { engine: 'postgres', creationStatements: [statement], scramIterations: fastIterations },
  });
  const vaultLease = (credentialName: string) => async () => {
    const lease = await core.leases.create(ctx as never, { credentialName, ttl: '5m', renewable: true });
    await core.leases.revoke(ctx as never, lease.id);
  };

  const phases: Array<[string, (i: number) => Promise<void>]> = [
    [
      'plain loop, password in clear',
      async (i) => {
        const role = `plain_${i}_${randomBytes(4).toString('hex')}`;
        await pool.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${password()}' VALID UNTIL 'infinity'`);
        await pool.query(`DROP ROLE "${role}"`);
      },
    ],
    // The same password handling as the engine: the verifier is computed here (one PBKDF2 run),
    // and PostgreSQL still checks it against the empty password (one more, on the server).
    [
      'plain loop, client-side verifier',
      async (i) => {
        const role = `plainv_${i}_${randomBytes(4).toString('hex')}`;
        const verifier = await scramVerifier(password());
        await pool.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${verifier}' VALID UNTIL 'infinity'`);
        await pool.query(`DROP ROLE "${role}"`);
      },
    ],
    [
      'engine SQL, one lease at a time',
      async (i) => {
        const role = `sql_${i}_${randomBytes(4).toString('hex')}`;
        const verifier = await scramVerifier(password());
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
          }, 100);
        try {
          await tx(async () => {
            await client.query('BEGIN');
            await client.query(
              `CREATE ROLE "${role}" LOGIN NOINHERIT PASSWORD '${verifier}' VALID UNTIL 'infinity'`,
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
      },
    ],
    [
      'engine alone (batched, no store)',
      async (i) => {
        const username = `eng_${i}_${randomBytes(4).toString('hex')}`;
        await engine.issue(db.adminUrl, spec, { username, expiresAt: new Date(Date.now() + 300_000) });
        await engine.revoke(db.adminUrl, username);
      },
    ],
    ['vault dynamic lease create+revoke', vaultLease('db')],
    [
      `plain loop, verifier, ${fastIterations} iterations`,
      async (i) => {
        const role = `plainf_${i}_${randomBytes(4).toString('hex')}`;
        const verifier = await scramVerifier(password(), fastIterations);
        await pool.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${verifier}' VALID UNTIL 'infinity'`);
        await pool.query(`DROP ROLE "${role}"`);
      },
    ],
    [`vault, scramIterations ${fastIterations}`, vaultLease('db-fast')],
  ];

  console.log(
    `${total} leases per run, concurrency ${concurrency}, ${rounds} rounds interleaved, PostgreSQL fsync ${pgFsync}; load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} on ${cpus().length} CPUs`,
  );
  const results = new Map<string, Array<{ perSecond: number; p99: number; load: string }>>();
  for (let round = 1; round <= rounds; round++) {
    for (const [label, one] of phases) {
      const before = load();
      const result = await run(one);
      const entry = { ...result, load: `${before}->${load()}` };
      results.set(label, [...(results.get(label) ?? []), entry]);
      console.log(
        `  round ${round} ${label.padEnd(34)} ${result.perSecond.toFixed(1).padStart(7)}/s  p99 ${result.p99.toFixed(0).padStart(5)} ms  load ${entry.load}`,
      );
    }
  }
  const rate = (label: string) => median(results.get(label)!.map((r) => r.perSecond));
  console.log('median of the rounds (issue+revoke per second, p99):');
  for (const [label] of phases)
    console.log(
      `  ${label.padEnd(34)} ${rate(label).toFixed(1).padStart(7)}/s  p99 ${median(results.get(label)!.map((r) => r.p99)).toFixed(0)} ms`,
    );
  const vault = rate('vault dynamic lease create+revoke');
  const clear = rate('plain loop, password in clear');
  const careful = rate('plain loop, client-side verifier');
  const fast = rate(`vault, scramIterations ${fastIterations}`);
  const carefulFast = rate(`plain loop, verifier, ${fastIterations} iterations`);
  console.log(
    `vault (4096 iterations, the default): ${(vault / careful).toFixed(2)}x of the plain loop with the same password handling, ${(vault / clear).toFixed(2)}x of the plain loop sending the password in clear`,
  );
  console.log(
    `vault (scramIterations ${fastIterations}): ${(fast / carefulFast).toFixed(2)}x of the plain loop with the same password handling, ${(fast / careful).toFixed(2)}x of the careful plain loop at 4096, ${(fast / clear).toFixed(2)}x of the plain loop sending the password in clear (goal >= 0.5x)`,
  );
  await pool.end();
  await engine.close();
  await core.dynamic.stop();
  await core.dynamic.closeEngines();
} finally {
  await store.close();
  await rm(dir, { recursive: true, force: true });
  await db.close();
}
