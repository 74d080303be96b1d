/**
 * Red team, session 6: Idempotency-Key on a dynamic PostgreSQL lease whose commit's outcome
 * was unknown.
 *
 * PostgreSQL holds a new role in an open transaction until the lease commits, and commits or
 * rolls it back by what the commit said. A commit that timed out (etcd: 503 `outcome_unknown`,
 * "may or may not have been applied") counted as not committed: the role was rolled back, even
 * though the lease had been written. The client then does what the error and the docs tell it
 * to (the SDK does it by itself): retry with the same Idempotency-Key. The retry returned the
 * lease the first attempt wrote, with its value: a database URL of a role that does not exist.
 * The lease stays "active" for its whole TTL while nothing can log in with it.
 *
 * Real parts: a real PostgreSQL, the embedded store; only the store's answer to the one
 * transaction is lost (it is applied, then the call fails as etcd's deadline would), or the
 * transaction is never applied, or it is applied a moment after its caller was told it timed
 * out (etcd applies a proposal that was in flight when the client's deadline passed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresEngine } from '../../src/engines/postgres.js';
import { OutcomeUnknownError } from '../../src/lib/errors.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import type { Store } from '../../src/store/store.js';
import {
  createPostgresCredential,
  leaseRoles,
  loginWorks,
  type Postgres,
  postgresAvailable,
  startPostgres,
  waitForRoles,
} from '../support/postgres.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const available = postgresAvailable();
/** The server's issue grace: how long an account without its lease is kept. */
const GRACE_MS = 3_000;

const post = (vault: TestVault, key: string) =>
  vault.call('POST', '/v1/leases', {
    body: { credentialName: 'orders-db', ttl: '5m' },
    idempotencyKey: key,
  });

describe.skipIf(!available)('a dynamic lease whose commit answered outcome_unknown', () => {
  let db: Postgres;
  let vault: TestVault;
  let store: Store;
  let dataDir: string;
  /** Set to lose the answer of the next transaction that writes a dynamic lease's value. */
  let loseNextLeaseAnswer = false;
  /** Set to fail the next such transaction as unanswered without applying it. */
  let dropNextLease = false;
  /** Set to fail the next such transaction as unanswered and apply it this much later (ms). */
  let applyNextLeaseLate = 0;
  /** The late transaction until it is applied: later writes wait for it, as in etcd's log. */
  let inFlight: Promise<void> | undefined;

  beforeAll(async () => {
    db = await startPostgres();
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    dataDir = await mkdtemp(join(tmpdir(), 'vault-s6-idem-'));
    store = await openEmbeddedStore({ path: dataDir });
    const losing = storeWith(store, (target) => ({
      txn: async (...args: Parameters<Store['txn']>) => {
        const writesLease = args[0].success.some(
          (op) => op.type === 'put' && op.key.includes('/lease-values/'),
        );
        if (dropNextLease && writesLease) {
          dropNextLease = false;
          throw new OutcomeUnknownError('etcd did not answer the transaction within 1000 ms');
        }
        if (applyNextLeaseLate > 0 && writesLease) {
          // In etcd's log before any later write, so applied before them; invisible to
          // reads until then.
          const delay = applyNextLeaseLate;
          applyNextLeaseLate = 0;
          inFlight = new Promise((resolve) => setTimeout(resolve, delay)).then(() =>
            target.txn(...args).then(() => undefined),
          );
          throw new OutcomeUnknownError('etcd did not answer the transaction within 1000 ms');
        }
        await inFlight;
        const result = await target.txn(...args);
        if (loseNextLeaseAnswer && writesLease && result.succeeded) {
          loseNextLeaseAnswer = false;
          throw new OutcomeUnknownError(
            'etcd did not answer the transaction within 1000 ms; it may or may not have been applied: retry with the same Idempotency-Key',
          );
        }
        return result;
      },
    }));
    vault = await startTestVault({
      store: losing,
      engines: { postgres: createPostgresEngine() },
      dynamic: { sweepIntervalMs: 500, issueGraceMs: GRACE_MS },
    });
    await createPostgresCredential(vault, db);
  }, 60_000);

  afterAll(async () => {
    await vault?.close();
    await store?.close();
    await db?.close();
    const { rm } = await import('node:fs/promises');
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('a retry with the same Idempotency-Key never answers with a lease whose role was rolled back', async () => {
    // Control: a lease whose commit answered logs in.
    const normal = await post(vault, 'answered');
    expect(normal.status).toBe(201);
    expect(await loginWorks(normal.body.value!)).toBe(true);

    loseNextLeaseAnswer = true;
    const first = await post(vault, 'lost-answer');
    expect(first.status).toBe(503);
    expect(first.body.error?.code).toBe('outcome_unknown');

    const retry = await post(vault, 'lost-answer');
    expect(retry.status).toBe(201);
    // Whatever the retry answers, an active lease with a value must be one that works.
    if (retry.body.state === 'active' && retry.body.value) {
      expect(await loginWorks(retry.body.value)).toBe(true);
    }
    // And the role of every active lease of the credential exists.
    const leases = await vault.call('GET', '/v1/leases?credentialName=orders-db&state=active');
    for (const lease of leases.body.leases as Array<{ dynamic: { username: string } }>) {
      const role = await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [lease.dynamic.username]);
      expect(role.rowCount, `role ${lease.dynamic.username} of an active lease`).toBe(1);
    }
  }, 30_000);

  it('a lost answer of a transaction that was never applied leaves no role behind', async () => {
    const before = await leaseRoles(db);
    dropNextLease = true;
    const first = await post(vault, 'never-applied');
    expect(first.status).toBe(503);
    // The sweep finds an account without a lease once the issue grace is over (the
    // transaction might still have been applied until then) and drops its role.
    await waitForRoles(db, before, GRACE_MS + 20_000);
    // The retry issues a lease that works.
    const retry = await post(vault, 'never-applied');
    expect(retry.status).toBe(201);
    expect(await loginWorks(retry.body.value!)).toBe(true);
  }, 40_000);

  it('a transaction applied after its answer was lost keeps the role of the lease it wrote', async () => {
    applyNextLeaseLate = 1_000;
    const first = await post(vault, 'applied-late');
    expect(first.status).toBe(503);
    expect(first.body.error?.code).toBe('outcome_unknown');
    // The lease lands a second later; the sweep must not have dropped its role meanwhile,
    // nor drop it once the grace is over (the lease is there by then).
    await new Promise((resolve) => setTimeout(resolve, GRACE_MS * 2));
    const retry = await post(vault, 'applied-late');
    expect(retry.status).toBe(201);
    expect(retry.body.state).toBe('active');
    expect(await loginWorks(retry.body.value!), 'the lease that landed late logs in').toBe(true);
  }, 40_000);
});
