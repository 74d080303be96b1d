/**
 * Red team, session 7: a PostgreSQL lease whose commit answered `outcome_unknown` while the
 * store stayed unreachable a moment longer.
 *
 * The held engine keeps the role when the lease's commit may have applied (a retry with the
 * same Idempotency-Key must get a lease that works), and records its account right after so
 * that the sweep drops it once the issue grace has passed if the lease was never written.
 * That one write was tried once and its failure ignored. A store that does not answer the
 * lease's commit usually does not answer the next write either: the account was never
 * recorded, no due key pointed at it, and the role (with a password nobody has) stayed in the
 * database forever, through every sweep and restart.
 *
 * Real parts: a real PostgreSQL, the embedded store, real HTTP; the store fails the lease's
 * transaction as unanswered without applying it, then fails the next write (the store is
 * unreachable for a moment), then recovers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresEngine } from '../../src/engines/postgres.js';
import { OutcomeUnknownError, StoreUnavailableError } from '../../src/lib/errors.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import type { Store } from '../../src/store/store.js';
import {
  createPostgresCredential,
  leaseRoles,
  type Postgres,
  postgresAvailable,
  startPostgres,
  waitForRoles,
} from '../support/postgres.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const available = postgresAvailable();
const GRACE_MS = 2_000;

describe.skipIf(!available)('a dynamic lease whose commit was lost while the store was down', () => {
  let db: Postgres;
  let vault: TestVault;
  let store: Store;
  let dataDir: string;
  /** Transactions to fail, unapplied, from the next one that writes a dynamic lease's value. */
  let failing = 0;
  let armed = false;

  beforeAll(async () => {
    db = await startPostgres();
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    dataDir = await mkdtemp(join(tmpdir(), 'vault-s7-lost-'));
    store = await openEmbeddedStore({ path: dataDir });
    const flaky = storeWith(store, (target) => ({
      txn: async (...args: Parameters<Store['txn']>) => {
        const writesLease = args[0].success.some(
          (op) => op.type === 'put' && op.key.includes('/lease-values/'),
        );
        if (armed && writesLease) {
          armed = false;
          throw new OutcomeUnknownError('etcd did not answer the transaction within 1000 ms');
        }
        if (failing > 0 && !armed) {
          failing -= 1;
          throw new StoreUnavailableError('etcd at http://127.0.0.1:2379 is unavailable');
        }
        return target.txn(...args);
      },
    }));
    vault = await startTestVault({
      store: flaky,
      engines: { postgres: createPostgresEngine() },
      dynamic: { sweepIntervalMs: 300, issueGraceMs: GRACE_MS, retryBaseMs: 100, retryMaxMs: 500 },
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

  it('drops the role once the store is back and the grace is over', async () => {
    const before = await leaseRoles(db);
    armed = true;
    failing = 1;
    const first = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'orders-db', ttl: '5m' },
      idempotencyKey: 'store-down',
    });
    expect(first.status).toBe(503);
    expect(first.body.error?.code).toBe('outcome_unknown');
    expect(failing, 'the store failed the write right after the lost commit').toBe(0);
    await waitForRoles(db, before, GRACE_MS + 10_000);
    // A retry then issues a lease that works.
    const retry = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'orders-db', ttl: '5m' },
      idempotencyKey: 'store-down',
    });
    expect(retry.status, retry.text).toBe(201);
  }, 30_000);
});
