/**
 * Red team session 10: what a resent group (796667b: sent again on the caught-up head without
 * being built again) must still refuse, because its commit compares it. Each test holds
 * replica A's transaction while replica B changes what A decided on (a slow network between A
 * and etcd, made deterministic), then lets A's transaction lose on the chain head, catch up
 * and go again. B also commits once more while A's first answer is on its way, so A's resend
 * loses on the head a second time before its own compare is the only thing left failing.
 *
 * These promises HOLD on 796667b: the compares of the token (whileTokenLives), the lease, the
 * credential record and its revision make the resend fail, and the change is rebuilt on fresh
 * records.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/contract/audit.js';
import { keys } from '../../src/core/keys.js';
import { chainOf, type Replicas, recordsIn, startReplicas } from './session10-replicas.js';

describe('session 10: a resent group whose own compares changed through another replica', () => {
  let cluster: Replicas;
  let hold: NonNullable<Replicas['held']>;
  const a = () => cluster.replicas[0]!.vault;
  const b = () => cluster.replicas[1]!.vault;

  beforeAll(async () => {
    cluster = await startReplicas(2, {
      holdFirst: true,
    });
    hold = cluster.held!;
    expect(
      (
        await b().call('POST', '/v1/credentials', {
          body: { name: 'db-pass', type: 'password', value: 'pw-1' },
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await b().call('PUT', '/v1/policies/reader', {
          body: { rules: [{ credentials: ['*'], actions: ['list', 'read-metadata', 'lease', 'reveal'] }] },
        })
      ).status,
    ).toBe(200);
  }, 90_000);

  afterAll(async () => {
    await cluster?.close();
  });

  /** Holds A's next transaction appending a record that `pick` accepts; B acts before it and once more after. */
  function race(pick: (r: AuditRecord) => boolean, onB: () => Promise<void>) {
    const tenant = a().tenant;
    const held = hold.state.held;
    hold.arm({
      match: (txn) => recordsIn(txn, tenant).some(pick),
      before: onB,
      after: async () => {
        // Another user of the tenant keeps B busy: the resend loses on the head once more.
        expect((await b().call('GET', '/v1/credentials/db-pass')).status).toBe(200);
      },
    });
    // Held once, and that transaction lost (on the head B moved), bringing back the new head.
    return () => {
      expect(hold.state.lastResult?.succeeded, "A's held transaction lost").toBe(false);
      expect(hold.state.lastResult?.reads?.[0]?.kvs.length).toBe(1);
      return hold.state.held - held;
    };
  }

  it('a token revoked through B: the request through A answers 401 and commits nothing after the revocation', async () => {
    const token = await b().tokenFor({ type: 'human', name: 'alice' }, ['reader']);
    const who = await a().call('GET', '/v1/auth/whoami', { token });
    expect(who.status, who.text).toBe(200);
    const accessor = who.body.accessor as string;
    // A has authenticated alice (and cached her token record).
    expect((await a().call('GET', '/v1/credentials/db-pass', { token })).status).toBe(200);
    const held = race(
      (r) => r.actor.name === 'alice' && r.action === 'credential.read-metadata',
      async () => {
        expect((await b().call('DELETE', `/v1/auth/tokens/${accessor}`)).status).toBeLessThan(300);
      },
    );
    const answer = await a().call('GET', '/v1/credentials/db-pass', { token });
    expect(held()).toBe(1);
    expect(answer.status, answer.text).toBe(401);
    const chain = await chainOf(cluster.replicas[0]!.raw, a().tenant);
    const revokedAt = chain.findIndex((r) => r.action === 'token.revoke' && r.resource.endsWith(accessor));
    expect(revokedAt).toBeGreaterThan(0);
    expect(chain.slice(revokedAt + 1).filter((r) => r.actor.name === 'alice')).toEqual([]);
  }, 30_000);

  it('a lease revoked through B: its value read through A answers 410', async () => {
    const lease = await a().call('POST', '/v1/leases', { body: { credentialName: 'db-pass', ttl: '10m' } });
    expect(lease.status, lease.text).toBe(201);
    const id = lease.body.id as string;
    // Cached on A.
    expect((await a().call('GET', `/v1/leases/${id}`)).status).toBe(200);
    const held = race(
      (r) => r.action === 'lease.read' && r.resource === `lease/${id}`,
      async () => {
        expect((await b().call('POST', `/v1/leases/${id}/revoke`)).status).toBe(200);
      },
    );
    const read = await a().call('GET', `/v1/leases/${id}/value`);
    expect(held()).toBe(1);
    expect(read.text).not.toContain('pw-1');
    expect(read.status, read.text).toBe(410);
  }, 30_000);

  it('a lease revoked through B: its renewal through A answers 410 and the lease stays revoked', async () => {
    const lease = await a().call('POST', '/v1/leases', { body: { credentialName: 'db-pass', ttl: '10m' } });
    const id = lease.body.id as string;
    const held = race(
      (r) => r.action === 'lease.renew' && r.resource === `lease/${id}`,
      async () => {
        expect((await b().call('POST', `/v1/leases/${id}/revoke`)).status).toBe(200);
      },
    );
    const renewed = await a().call('POST', `/v1/leases/${id}/renew`, { body: {} });
    expect(held()).toBe(1);
    expect(renewed.status, renewed.text).toBe(410);
    expect((await b().call('GET', `/v1/leases/${id}`)).body.state).toBe('revoked');
  }, 30_000);

  it('a credential updated through B: the update through A answers 409 and B’s change stays', async () => {
    const held = race(
      (r) =>
        r.action === 'credential.update' && r.actor.name === 'root' && r.resource === 'credential/db-pass',
      async () => {
        const other = await b().call('PATCH', '/v1/credentials/db-pass', {
          body: { metadata: { owner: 'b' } },
        });
        expect(other.status, other.text).toBe(200);
      },
    );
    const mine = await a().call('PATCH', '/v1/credentials/db-pass', { body: { metadata: { owner: 'a' } } });
    expect(held()).toBe(1);
    expect(mine.status, mine.text).toBe(409);
    const now = await b().call('GET', '/v1/credentials/db-pass');
    expect(now.body.metadata).toEqual({ owner: 'b' });
  }, 30_000);

  it('a credential deleted through B: a static lease through A answers 404 and no lease is stored', async () => {
    expect(
      (
        await b().call('POST', '/v1/credentials', {
          body: { name: 'doomed', type: 'password', value: 'pw-doomed' },
        })
      ).status,
    ).toBe(201);
    // A has the credential cached.
    expect((await a().call('GET', '/v1/credentials/doomed')).status).toBe(200);
    const held = race(
      (r) => r.action === 'lease.create' && (r.reason ?? '').startsWith('doomed '),
      async () => {
        expect((await b().call('DELETE', '/v1/credentials/doomed')).status).toBeLessThan(300);
      },
    );
    const lease = await a().call('POST', '/v1/leases', { body: { credentialName: 'doomed', ttl: '10m' } });
    expect(held()).toBe(1);
    expect(lease.text).not.toContain('pw-doomed');
    expect(lease.status, lease.text).toBe(404);
    const leases = await cluster.replicas[0]!.raw.range(keys.leases(a().tenant));
    expect(leases.kvs.filter((kv) => kv.value.includes('"credentialName":"doomed"'))).toEqual([]);
  }, 30_000);

  it('after all of it, the chain verifies with no gap and no repeated seq', async () => {
    const chain = await chainOf(cluster.replicas[0]!.raw, a().tenant);
    expect(chain.map((r) => r.seq)).toEqual(chain.map((_, i) => i + 1));
    for (const replica of cluster.replicas) {
      const verify = await replica.vault.call('POST', '/v1/audit/verify', { body: {} });
      expect(verify.body.ok, verify.text).toBe(true);
    }
  }, 30_000);
});
