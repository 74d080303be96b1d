/**
 * Red team (issue 13, "nothing reads a tenant's whole prefix in one request"): a lease list
 * with a small `limit` and a filter that matches little. A page reads at most 10,000 keys,
 * but it read them `limit` at a time: `GET /v1/leases?limit=1` from a token with no policies
 * (which sees none of the tenant's leases) made one etcd round trip per lease record, 10,000
 * of them per request — 54 s for one request at 100,000 leases on the development machine,
 * while a page of 100 took 170 ms. Any token could repeat it at will.
 *
 * Real parts: a real etcd, a real `vault server` child process, 3,000 lease records written
 * through the core's op builder with the server stopped (as test/bench/scale.ts does). The
 * store round trips are counted from etcd's own metrics, not timed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BigTenant, startBigTenant } from './scale-tenant.js';

let big: BigTenant;

beforeAll(async () => {
  big = await startBigTenant({ bulk: 2_000, filler: 1_000 });
}, 300_000);
afterAll(async () => {
  await big?.destroy();
});

/** Range and Txn calls etcd has answered, from its Prometheus metrics. */
async function etcdCalls(): Promise<number> {
  const text = await (await fetch(`${big.etcd.endpoint}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(
    /^grpc_server_handled_total\{grpc_code="OK",grpc_method="(Range|Txn)",[^}]*\} (\d+)/gm,
  )) {
    total += Number(match[2]);
  }
  return total;
}

/** Every page of a walk, following `continue` to the end. */
async function walk(token: string, query: string) {
  const ids: string[] = [];
  let pages = 0;
  let next: string | undefined;
  do {
    const res = await big.call(
      token,
      'GET',
      `/v1/leases?${query}${next ? `&continue=${encodeURIComponent(next)}` : ''}`,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    ids.push(...(res.body.leases as Array<{ id: string }>).map((lease) => lease.id));
    next = res.body.continue;
    pages += 1;
  } while (next && pages < 10_000);
  return { ids, pages };
}

describe('a sparse lease list with a small limit', () => {
  it('costs a few store reads, not one per lease record of the tenant', async () => {
    const before = await etcdCalls();
    const res = await big.call(big.mallory, 'GET', '/v1/leases?limit=1');
    const calls = (await etcdCalls()) - before;
    expect(res.status).toBe(200);
    expect(res.body.leases).toEqual([]);
    // 3,000 records walked: at most a few dozen reads (and the audit commit), whatever the
    // limit; before, one read per record.
    expect(calls).toBeLessThan(200);
  });

  it('costs a few store reads on an index walk with a state that matches none', async () => {
    const before = await etcdCalls();
    const res = await big.call(big.root, 'GET', '/v1/leases?credentialName=bulk&state=revoked&limit=1');
    const calls = (await etcdCalls()) - before;
    expect(res.status).toBe(200);
    expect(res.body.leases).toEqual([]);
    expect(calls).toBeLessThan(200);
  });

  it('still finds every matching lease exactly once, one page at a time', async () => {
    const mine: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await big.call(big.bob, 'POST', '/v1/leases', { credentialName: 'filler', ttl: '10m' });
      expect(res.status).toBe(201);
      mine.push(res.body.id);
    }
    const records = await walk(big.bob, 'limit=1');
    expect(records.ids.sort()).toEqual([...mine].sort());
    const indexed = await walk(big.bob, 'credentialName=filler&state=active&limit=1');
    expect(indexed.ids.sort()).toEqual([...mine].sort());
    // An admin's walk of one credential in pages of 7 sees each of its leases once.
    const all = await walk(big.root, 'credentialName=filler&limit=7');
    expect(new Set(all.ids).size).toBe(all.ids.length);
    expect(all.ids).toEqual(expect.arrayContaining(mine));
    expect(all.ids.length).toBe(1_000 + 1 + 3);
  });
});
