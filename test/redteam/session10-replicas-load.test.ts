/**
 * Red team session 10: heavy real use of one tenant through three replicas on one etcd (every
 * request round-robin over the replicas, so all three append to the tenant's one chain and
 * lose races to each other all the time), with a second tenant lightly used beside it.
 *
 * HOLDS on 796667b: no 5xx; no 409 "retry the request" from the commit queue (head races are
 * caught up on); the chain has no gap and no repeated seq and verifies through every replica;
 * every lease answered 201 exists and has exactly one `lease.create` record, and no record
 * names a lease that does not exist; every value answered 200 has its audit record (its
 * valueHmac) in the chain; the light tenant is not starved.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/contract/audit.js';
import { keys } from '../../src/core/keys.js';
import { chainOf, type Replicas, sleep, startReplicas } from './session10-replicas.js';

const SECONDS = 6;
const CLIENTS = 24;

describe('session 10: one tenant hammered through three replicas', () => {
  let cluster: Replicas;
  beforeAll(async () => {
    cluster = await startReplicas(3);
    const v = cluster.replicas[0]!.vault;
    expect((await v.call('POST', '/v1/sys/tenants', { body: { id: 'quiet' } })).status).toBeLessThan(300);
    for (const tenant of [v.tenant, 'quiet']) {
      for (const name of ['db-a', 'db-b']) {
        const created = await v.call('POST', '/v1/credentials', {
          tenant,
          body: { name, type: 'password', value: `value-of-${name}-${tenant}` },
        });
        expect(created.status, created.text).toBe(201);
      }
    }
  }, 90_000);

  afterAll(async () => {
    await cluster?.close();
  });

  it('keeps every promise under contention', async () => {
    const busy = cluster.replicas[0]!.vault.tenant;
    const statuses = new Map<string, number>();
    const unexpected: string[] = [];
    const leases = new Map<string, string>(); // id -> tenant
    const values: Array<{ tenant: string; id: string }> = [];
    const quietLatency: number[] = [];
    let turn = 0;
    const next = () => cluster.replicas[turn++ % cluster.replicas.length]!.vault;
    const deadline = Date.now() + SECONDS * 1000;
    const note = (what: string, res: { status: number; text: string }) => {
      const key = `${what} ${res.status}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
      if (res.status >= 500 || (res.status === 409 && /concurrently too many times/.test(res.text)))
        unexpected.push(`${key}: ${res.text.slice(0, 200)}`);
    };

    const client = async (i: number) => {
      const tenant = i === 0 ? 'quiet' : busy;
      const own: string[] = [];
      while (Date.now() < deadline) {
        const started = Date.now();
        const op = i === 0 ? i + turn : Math.floor(Math.random() * 5);
        const credential = Math.random() < 0.5 ? 'db-a' : 'db-b';
        if (op % 5 === 0 || own.length === 0) {
          const res = await next().call('POST', '/v1/leases', {
            tenant,
            body: { credentialName: credential, ttl: '10m' },
          });
          note('lease.create', res);
          if (res.status === 201) {
            leases.set(res.body.id as string, tenant);
            own.push(res.body.id as string);
          }
        } else if (op % 5 === 1) {
          const id = own[Math.floor(Math.random() * own.length)]!;
          const res = await next().call('GET', `/v1/leases/${id}/value`, { tenant });
          note('lease.read', res);
          if (res.status === 200) values.push({ tenant, id });
        } else if (op % 5 === 2) {
          const res = await next().call('GET', `/v1/credentials/${credential}`, { tenant });
          note('credential.get', res);
        } else if (op % 5 === 3) {
          const res = await next().call('PATCH', `/v1/credentials/${credential}`, {
            tenant,
            body: { metadata: { by: String(i), at: String(Date.now()) } },
          });
          note('credential.update', res);
        } else {
          const id = own.shift()!;
          const res = await next().call('POST', `/v1/leases/${id}/renew`, { tenant, body: {} });
          note('lease.renew', res);
        }
        if (tenant === 'quiet') {
          quietLatency.push(Date.now() - started);
          await sleep(20);
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i)));
    const summary = [...statuses].sort().map(([k, n]) => `${k}: ${n}`);
    console.log(summary.join('\n'));
    expect(unexpected, summary.join('; ')).toEqual([]);

    for (const tenant of [busy, 'quiet']) {
      const chain = await chainOf(cluster.replicas[0]!.raw, tenant);
      expect(
        chain.map((r) => r.seq),
        `${tenant}: seq 1..${chain.length}, no gap, no repeat`,
      ).toEqual(chain.map((_, i) => i + 1));
      for (const replica of cluster.replicas) {
        const verify = await replica.vault.call('POST', '/v1/audit/verify', { tenant, body: {} });
        expect(verify.body.ok, verify.text).toBe(true);
      }
      const creates = new Map<string, AuditRecord[]>();
      for (const r of chain.filter((x) => x.action === 'lease.create' && x.outcome === 'allowed')) {
        creates.set(r.resource, [...(creates.get(r.resource) ?? []), r]);
      }
      for (const [id, of] of leases) {
        if (of !== tenant) continue;
        expect(
          await cluster.replicas[1]!.raw.get(keys.lease(tenant, id)),
          `lease ${id} answered 201`,
        ).toBeDefined();
        expect(creates.get(`lease/${id}`)?.length, `one lease.create record for ${id}`).toBe(1);
      }
      for (const resource of creates.keys()) {
        expect(leases.get(resource.slice('lease/'.length)), `${resource} has a record but no 201`).toBe(
          tenant,
        );
      }
      const reads = chain.filter((r) => r.action === 'lease.read' && r.outcome === 'allowed');
      const readCount = values.filter((v) => v.tenant === tenant).length;
      expect(reads.length, `${tenant}: a lease.read record for every value answered`).toBe(readCount);
    }
    quietLatency.sort((x, y) => x - y);
    const p99 = quietLatency[Math.floor(quietLatency.length * 0.99)] ?? 0;
    console.log(`quiet tenant: ${quietLatency.length} requests, p99 ${p99} ms`);
    expect(p99, 'the quiet tenant is not starved by the busy one').toBeLessThan(2_000);
  }, 60_000);
});
