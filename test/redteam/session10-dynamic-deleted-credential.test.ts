/**
 * Red team session 10: a group lost to another replica's commit is sent again on the caught-up
 * head WITHOUT being built again (796667b).
 *
 * Promise (src/core/leases.ts, createDynamic: "The credential must still exist: a lease of a
 * deleted credential would outlive it"; src/core/credentials.ts, delete: "A lease committed
 * before the delete is found here; one after it cannot exist"). A dynamic lease's commit does
 * not compare the credential record: its build checks that the credential exists, and a
 * deletion committed meanwhile moved the chain head, which used to make the build run again.
 *
 * Attack: a PostgreSQL lease is requested through replica A while an admin deletes the
 * credential through replica B. A's role is created upstream (held in an open transaction),
 * its lease built; B's deletion (no lease, no account recorded yet: nothing to wait for)
 * commits. A's transaction loses on the head, catches up, and the same group is sent again:
 * a lease (with a working database login) of a credential that no longer exists commits, and
 * its role can never be removed (the admin connection went with the credential). The
 * interleaving is made deterministic by holding A's lease transaction until B's deletion has
 * been answered.
 *
 * Real parts: a real PostgreSQL, a real etcd, two API replicas with real HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { createPostgresEngine } from '../../src/engines/postgres.js';
import {
  createPostgresCredential,
  leaseRoles,
  loginWorks,
  type Postgres,
  postgresAvailable,
  startPostgres,
} from '../support/postgres.js';
import { type Replicas, recordsIn, sleep, startReplicas } from './session10-replicas.js';

describe.skipIf(!postgresAvailable())(
  'session 10: a dynamic lease racing its credential deletion on another replica',
  () => {
    let db: Postgres;
    let cluster: Replicas;
    /** A's store: its next matching transaction can be held while B acts. */
    let heldA: NonNullable<Replicas['held']>;

    beforeAll(async () => {
      db = await startPostgres();
      cluster = await startReplicas(2, {
        engines: () => ({ postgres: createPostgresEngine() }),
        dynamic: { sweepIntervalMs: 200, retryBaseMs: 100, retryMaxMs: 500 },
        holdFirst: true,
      });
      heldA = cluster.held!;
    }, 120_000);

    afterAll(async () => {
      await cluster?.close();
      await db?.close();
    });

    it('refuses the lease (404), leaving no lease and no role, when the credential was deleted first', async () => {
      const [a, b] = [cluster.replicas[0]!.vault, cluster.replicas[1]!.vault];
      await createPostgresCredential(b, db, 'orders-db');
      const rolesBefore = await leaseRoles(db);
      let deleted = 0;
      heldA.arm({
        match: (txn) => recordsIn(txn, a.tenant).some((r) => r.action === 'lease.create'),
        before: async () => {
          const del = await b.call('DELETE', '/v1/credentials/orders-db');
          deleted = del.status;
        },
      });
      const lease = await a.call('POST', '/v1/leases', { body: { credentialName: 'orders-db', ttl: '5m' } });
      expect(deleted, 'B deleted the credential while A held its lease transaction').toBeGreaterThanOrEqual(
        200,
      );
      expect(deleted).toBeLessThan(300);
      expect(await b.call('GET', '/v1/credentials/orders-db').then((r) => r.status)).toBe(404);

      const url = lease.body?.value as string | undefined;
      const stored = lease.body?.id
        ? await cluster.replicas[0]!.raw.get(keys.lease(a.tenant, lease.body.id as string))
        : undefined;
      const login = url ? await loginWorks(url) : false;
      expect(
        stored
          ? `lease ${lease.body.id} (answer ${lease.status}) of the deleted credential committed; its database login works: ${login}`
          : undefined,
        'a dynamic lease of a credential deleted before it committed',
      ).toBeUndefined();
      expect(lease.status, lease.text).toBe(404);
      // Nothing left upstream once the dust settles.
      await sleep(2_000);
      expect(await leaseRoles(db), 'a database role outlives its credential').toEqual(rolesBefore);
    }, 60_000);
  },
);
