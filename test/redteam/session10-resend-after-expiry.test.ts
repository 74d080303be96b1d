/**
 * Red team session 10: a group lost to another replica's commit is sent again on the caught-up
 * head WITHOUT being built again (796667b), so what its build decided from the clock is not
 * decided again.
 *
 * Promise (src/core/leases.ts, commitValueAudit: "The commit may come rounds after the
 * decision: a lease that has ended meanwhile is decided again (and refused)"; renew: a lease
 * that is not active "cannot be renewed; request a new lease" (410)).
 *
 * Attack: through replica A, a holder reads (or renews) a lease just before it expires, while
 * the tenant is busy on replica B. A's transaction loses to B's commit on the chain head; by
 * the time A learns it (the failed transaction's answer), the lease has expired. Before
 * 796667b the round was rebuilt and refused (410). Now the same group is sent again: the value
 * of an expired lease is released with an audit record dated after the lease's end, and an
 * expired lease is renewed (brought back to life). The interleaving is made deterministic by
 * holding A's failed transaction's answer until the lease's end has passed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainOf, type Replicas, recordsIn, sleep, startReplicas } from './session10-replicas.js';

describe('session 10: a resent group after the lease it decided on has expired', () => {
  let cluster: Replicas;
  /** A's store: its next matching transaction can be held while B acts. */
  let heldA: NonNullable<Replicas['held']>;

  beforeAll(async () => {
    cluster = await startReplicas(2, {
      holdFirst: true,
    });
    heldA = cluster.held!;
    const b = cluster.replicas[1]!.vault;
    const created = await b.call('POST', '/v1/credentials', {
      body: { name: 'db-pass', type: 'password', value: 'pw_resend_after_expiry_71' },
    });
    expect(created.status, created.text).toBe(201);
  }, 90_000);

  afterAll(async () => {
    await cluster?.close();
  });

  /** A lease through A that ends ~1.5 s from now. */
  async function shortLease() {
    const a = cluster.replicas[0]!.vault;
    const lease = await a.call('POST', '/v1/leases', { body: { credentialName: 'db-pass', ttl: '2s' } });
    expect(lease.status, lease.text).toBe(201);
    return { id: lease.body.id as string, expiresAt: Date.parse(lease.body.expiresAt as string) };
  }

  /** Holds A's next transaction appending `action` on `lease`: B commits first, and its answer waits past `until`. */
  function armRace(action: string, id: string, until: number) {
    const [a, b] = [cluster.replicas[0]!.vault, cluster.replicas[1]!.vault];
    const seen = { lost: false };
    heldA.arm({
      match: (txn) =>
        recordsIn(txn, a.tenant).some((r) => r.action === action && r.resource === `lease/${id}`),
      before: async () => {
        // Another user of the tenant, through B: an audited read moves the chain head.
        const other = await b.call('GET', '/v1/credentials/db-pass');
        expect(other.status).toBe(200);
      },
      after: async (result) => {
        seen.lost = !result.succeeded;
        await sleep(Math.max(0, until - Date.now()) + 100);
      },
    });
    return seen;
  }

  it('does not renew a lease that expired before its renewal committed', async () => {
    const a = cluster.replicas[0]!.vault;
    const { id, expiresAt } = await shortLease();
    // Asked 0.5 s before the end.
    await sleep(Math.max(0, expiresAt - Date.now() - 500));
    const seen = armRace('lease.renew', id, expiresAt);
    const renewed = await a.call('POST', `/v1/leases/${id}/renew`, { body: { increment: '1h' } });
    expect(seen.lost, "A's first transaction lost to B's commit on the head").toBe(true);
    const chain = await chainOf(cluster.replicas[0]!.raw, a.tenant);
    const record = chain.find((r) => r.action === 'lease.renew' && r.resource === `lease/${id}`);
    expect(
      record && Date.parse(record.time) > expiresAt
        ? `renewed at ${record.time}, ended ${new Date(expiresAt).toISOString()}`
        : undefined,
      'an expired lease was renewed (its renewal committed after its end)',
    ).toBeUndefined();
    expect(renewed.status, renewed.text).toBe(410);
    const now = await a.call('GET', `/v1/leases/${id}`);
    expect(now.body.state).toBe('expired');
  }, 30_000);

  it('does not release the value of a lease that expired before its read committed', async () => {
    const a = cluster.replicas[0]!.vault;
    const { id, expiresAt } = await shortLease();
    await sleep(Math.max(0, expiresAt - Date.now() - 500));
    const seen = armRace('lease.read', id, expiresAt);
    const read = await a.call('GET', `/v1/leases/${id}/value`);
    expect(seen.lost, "A's first transaction lost to B's commit on the head").toBe(true);
    const chain = await chainOf(cluster.replicas[0]!.raw, a.tenant);
    const released = chain.filter(
      (r) => r.action === 'lease.read' && r.resource === `lease/${id}` && r.outcome === 'allowed',
    );
    expect(
      released.filter((r) => Date.parse(r.time) > expiresAt).map((r) => `seq ${r.seq} at ${r.time}`),
      `the value was released, audited allowed, after the lease ended at ${new Date(expiresAt).toISOString()}`,
    ).toEqual([]);
    expect(read.text).not.toContain('pw_resend_after_expiry_71');
    expect(read.status, read.text).toBe(410);
  }, 30_000);
});
