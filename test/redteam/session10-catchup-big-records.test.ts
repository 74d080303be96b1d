/**
 * Red team session 10: the catch-up read (cc3dd7e). A replica's transaction reads back, in its
 * failure branch, up to 256 audit records written after the head it knew, whatever their size.
 * etcd answers at most 4 MiB to a client (the limit src/core/credentials.ts sizes its own reads
 * for), and one audit record can be ~17 KB: `token.create` names up to 64 policies of up to 253
 * characters in its reason.
 *
 * Promise (docs/platform/storage.md, Audit chain): a transaction lost to another replica's
 * commit learns the new head "with no extra read" and goes again; "more than 256 of them sends
 * it to a full read of the head". Nothing says the losing request fails.
 *
 * Attack (a tenant admin, or any user holding 64 long-named policies, minting tokens for
 * itself): ~256 token creations through replica B while replica A serves nothing of the tenant.
 * A's next write in the tenant loses on the head as usual, but the failure branch's answer
 * (256 records, > 4 MiB) is refused by the client: the whole group fails with a store error
 * (answered 5xx) instead of catching up or falling back to a full read of the head. The
 * embedded store has no such limit, so the two stores differ.
 *
 * Found on the way (pre-existing, not from the change): the audit readers page 1000 records per
 * etcd read, so the same records make `audit verify` and the audit listing fail (503) for good.
 *
 * Fixed by clipping a record's reason and resource by bytes when it is chained (records stay
 * under about 27 KB) and reading chains 128 records at a time (readers, stream, catch-up).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { chainOf, type Replicas, startReplicas } from './session10-replicas.js';

describe('session 10: catching up on large audit records', () => {
  let cluster: Replicas;
  const a = () => cluster.replicas[0]!.vault;
  const b = () => cluster.replicas[1]!.vault;

  beforeAll(async () => {
    cluster = await startReplicas(2);
  }, 90_000);

  afterAll(async () => {
    await cluster?.close();
  });

  it('a write through a replica 256 large records behind succeeds (no 5xx)', async () => {
    expect(
      (await a().call('POST', '/v1/credentials', { body: { name: 'c', type: 'password', value: 'v' } }))
        .status,
    ).toBe(201);
    // Long policy names, as an organisation naming policies after paths might use.
    const policies = Array.from({ length: 64 }, (_, i) => `${String(i).padStart(3, '0')}-${'x'.repeat(249)}`);
    let minted = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (minted < 260) {
          minted += 1;
          const res = await b().call('POST', '/v1/auth/tokens', {
            body: { identity: { type: 'human', name: 'root' }, policies, ttl: '1h' },
          });
          expect(res.status, res.text).toBe(201);
        }
      }),
    );
    const chain = await chainOf(cluster.replicas[0]!.raw, a().tenant);
    const big = chain.filter((r) => r.action === 'token.create');
    // The fix: a record's reason and resource are clipped (20,000 and 1,024 bytes of JSON), so a
    // record stays under about 27 KB, and chains are read 128 records at a time (readers, the
    // stream, a catch-up): under etcd's 4 MiB answer. This reason is not even clipped.
    expect(big.length).toBeGreaterThanOrEqual(260);
    const largest = Math.max(...big.map((r) => Buffer.byteLength(JSON.stringify(r))));
    expect(largest, 'a token.create record naming 64 long policies').toBeLessThan(27 * 1024);
    expect(big.at(-1)!.reason).not.toMatch(/more characters\)$/);
    expect(128 * largest).toBeLessThan(4 * 1024 * 1024);
    expect(
      (await cluster.replicas[0]!.raw.get(keys.auditHead(a().tenant)))?.value,
      'B moved the head',
    ).toContain(`"seq":${chain.length}`);

    const write = await a().call('PATCH', '/v1/credentials/c', { body: { metadata: { k: 'v' } } });
    expect(write.status, `A's write failed instead of catching up: ${write.text.slice(0, 300)}`).toBe(200);
  }, 60_000);

  // Pre-existing, found on the way (the same records): the audit readers page 1000 records
  // at a time (src/core/audit-service.ts, PAGE), 17 MB of such records.
  it('the chain of those records can still be verified and listed (no 5xx)', async () => {
    const verify = await b().call('POST', '/v1/audit/verify', { body: {} });
    expect(verify.status, `verify: ${verify.text.slice(0, 300)}`).toBe(200);
    expect(verify.body.ok).toBe(true);
    const list = await b().call('GET', '/v1/audit?limit=10');
    expect(list.status, `list: ${list.text.slice(0, 300)}`).toBe(200);
  }, 60_000);
});
