/**
 * Red team (issue 13, value reads from caches): expiry exactly at the read. A read decides
 * on a lease record (perhaps from the 1 s cache) and then waits for its audit commit, which
 * under load takes rounds (group commit, other replicas' commits on the chain head). The
 * lease must still be active when the value leaves: never a value in an answer that says
 * the lease has expired (the commit re-checks the lease's end).
 *
 * Real processes: three `vault server` replicas on one etcd behind one address, reads of
 * short leases from many clients straddling their expiry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type Replicas, startReplicas } from '../replicas/harness.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';

let etcd: EtcdProcess;
let replicas: Replicas;
let token: string;
let credentialName: string;

beforeAll(async () => {
  etcd = await startEtcd();
  replicas = await startReplicas({ endpoints: [etcd.endpoint], count: 3, tenant: 'expiry-reads' });
  ({ token, credentialName } = replicas.auth);
}, 120_000);
afterAll(async () => {
  await replicas?.close();
  await etcd?.destroy();
});

describe('a value read at the moment its lease expires', () => {
  it('never returns a value for a lease that has ended', async () => {
    const url = replicas.proxy.url;
    const leases: Array<{ id: string; expiresAt: string }> = [];
    for (let i = 0; i < 6; i++) {
      const res = await call(url, 'POST', '/v1/leases', token, { credentialName, ttl: '2s' });
      expect(res.status).toBe(201);
      leases.push(res.body);
    }
    const end = Math.max(...leases.map((lease) => Date.parse(lease.expiresAt)));
    const answers: Array<{ status: number; body: { state?: string; value?: string; expiresAt?: string } }> =
      [];
    // 24 clients reading the leases round-robin until well past their ends.
    await Promise.all(
      Array.from({ length: 24 }, async (_, client) => {
        for (let n = 0; Date.now() < end + 300; n++) {
          const lease = leases[(client + n) % leases.length]!;
          answers.push(await call(url, 'GET', `/v1/leases/${lease.id}/value`, token));
        }
      }),
    );
    const served = answers.filter((answer) => answer.status === 200);
    expect(served.length).toBeGreaterThan(0);
    expect(answers.some((answer) => answer.status === 410)).toBe(true);
    const late = served.filter((answer) => answer.body.state !== 'active');
    expect(late.length, `values returned with state ${late[0]?.body.state}`).toBe(0);
  }, 60_000);
});
