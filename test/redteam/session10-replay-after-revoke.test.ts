/**
 * Red team session 10: a group lost to another replica's commit is sent again on the caught-up
 * head WITHOUT being built again (796667b). Builds that decided on records they do not compare
 * relied on the rebuild that used to follow a head race.
 *
 * Promise (src/core/leases.ts, create/replay; docs/api "Idempotency-Key"): a retry with the
 * same Idempotency-Key gets the lease its first attempt issued, "410 when it has ended since";
 * and docs/platform/storage.md: "A lease revoked through one replica gives no value through any
 * other on the next request".
 *
 * Attack: a lease holder retries its lease creation (same Idempotency-Key) through replica A
 * while an operator revokes that lease through replica B. The replay's build reads the lease
 * (active) and its value, but its commit compares only the Idempotency-Key record, which a
 * revocation does not touch. B's revocation moves the chain head, so A's transaction loses;
 * A catches up on B's records and sends the SAME group again: it commits, and the value of a
 * lease the operator was told is revoked leaves through A, audited `lease.create allowed`
 * after `lease.revoke`. (The interleaving is made deterministic by holding A's transaction
 * until B's revocation has been answered: a slow network between A and etcd.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainOf, type Replicas, recordsIn, startReplicas } from './session10-replicas.js';

describe('session 10: an idempotent lease replay racing a revocation on another replica', () => {
  let cluster: Replicas;
  /** A's store: its next matching transaction can be held while B acts. */
  let heldA: NonNullable<Replicas['held']>;

  beforeAll(async () => {
    cluster = await startReplicas(2, {
      holdFirst: true,
    });
    heldA = cluster.held!;
  }, 90_000);

  afterAll(async () => {
    await cluster?.close();
  });

  it('answers 410, not the value, when the lease was revoked through another replica', async () => {
    const [a, b] = cluster.replicas.map((r) => r.vault) as [
      (typeof cluster.replicas)[0]['vault'],
      (typeof cluster.replicas)[0]['vault'],
    ];
    const tenant = a.tenant;
    const value = 'sk_live_replay_after_revoke_9f8e7d';
    const created = await b.call('POST', '/v1/credentials', {
      body: { name: 'stripe-key', type: 'api-key', value },
    });
    expect(created.status, created.text).toBe(201);
    const first = await a.call('POST', '/v1/leases', {
      body: { credentialName: 'stripe-key', ttl: '10m' },
      idempotencyKey: 'deploy-42',
    });
    expect(first.status, first.text).toBe(201);
    expect(first.body.value).toBe(value);
    const id = first.body.id as string;

    let revokedStatus = 0;
    heldA.arm({
      match: (txn) =>
        recordsIn(txn, tenant).some((r) => r.action === 'lease.create' && /replayed/.test(r.reason ?? '')),
      before: async () => {
        // The operator revokes the lease through B, and is told it is revoked.
        const revoked = await b.call('POST', `/v1/leases/${id}/revoke`);
        revokedStatus = revoked.status;
      },
    });
    const retry = await a.call('POST', '/v1/leases', {
      body: { credentialName: 'stripe-key', ttl: '10m' },
      idempotencyKey: 'deploy-42',
    });
    expect(heldA.state.held, 'the replay transaction was held while B revoked').toBe(1);
    expect(revokedStatus).toBe(200);

    expect(
      retry.text,
      'the revoked lease value left through replica A (after B answered the revocation)',
    ).not.toContain(value);
    expect(retry.status, retry.text).toBe(410);

    const chain = await chainOf(cluster.replicas[0]!.raw, tenant);
    const revokeAt = chain.findIndex((r) => r.action === 'lease.revoke' && r.resource === `lease/${id}`);
    expect(revokeAt).toBeGreaterThan(0);
    const releasedAfter = chain
      .slice(revokeAt + 1)
      .filter((r) => r.resource === `lease/${id}` && r.action === 'lease.create' && r.outcome === 'allowed');
    expect(
      releasedAfter.map((r) => `${r.seq} ${r.action} ${r.reason}`),
      'the chain records the lease handed out (allowed) after its revocation',
    ).toEqual([]);

    const verify = await a.call('POST', '/v1/audit/verify', { body: {} });
    expect(verify.status, verify.text).toBe(200);
    expect(verify.body.ok, verify.text).toBe(true);
  }, 60_000);
});
