/**
 * A 3-member etcd cluster on loopback under two `vault server` replicas (every member in
 * --etcd-endpoints, one address in front): a member killed with SIGKILL, and the leader moved
 * and then killed, while 16 clients create leases for 10 s. Every lease a client was answered
 * 201 for exists afterwards; the only refusals are 503 (store unavailable / outcome unknown)
 * or 409 "retry", and retrying with the same Idempotency-Key succeeds without a second lease.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdCluster, startEtcdCluster } from '../support/etcd-cluster.js';
import { allAuditRecords, allLeases, call, type Replicas, startReplicas } from './harness.js';
import { createLeasesUnderLoad, type LoadOutcome } from './load.js';

const CLIENTS = 16;
const LOAD_MS = 10_000;

let cluster: EtcdCluster;
let replicas: Replicas;

beforeAll(async () => {
  cluster = await startEtcdCluster({ size: 3 });
  replicas = await startReplicas({ endpoints: cluster.endpoints, count: 2, tenant: 'members' });
});
afterAll(async () => {
  await replicas?.close();
  await cluster?.destroy();
});

/** What must hold after any fault: nothing acknowledged lost, nothing issued twice, chain intact. */
async function checkConsistent(load: LoadOutcome, before: Set<string>) {
  const { url } = replicas.proxy;
  const { token } = replicas.auth;
  expect(load.unexpected).toEqual([]);
  expect(load.unanswered, 'every retried key was answered in the end').toEqual([]);
  expect(load.acknowledged.size).toBeGreaterThan(0);
  const ids = [...load.acknowledged.values()];
  expect(new Set(ids).size, 'two keys were answered with the same lease').toBe(ids.length);
  for (const id of ids) {
    const res = await call(url, 'GET', `/v1/leases/${id}`, token);
    expect(res.status, `lease ${id} was acknowledged but is gone`).toBe(200);
    expect(res.body.state).toBe('active');
  }
  // Every lease the tenant holds now that was not there before is one a client was answered
  // with: a retried key whose first attempt did commit was answered with that lease.
  const added = (await allLeases(url, token)).map((lease) => lease.id).filter((id) => !before.has(id));
  expect(added.sort()).toEqual([...ids].sort());
  const records = await allAuditRecords(url, token);
  const issued = records.filter(
    (r) => r.action === 'lease.create' && r.outcome === 'allowed' && !/replayed/.test(r.reason ?? ''),
  );
  expect(new Set(issued.map((r) => r.resource)).size).toBe(issued.length);
  for (const id of ids) expect(issued.map((r) => r.resource)).toContain(`lease/${id}`);
  const verify = await call(url, 'GET', '/v1/audit/verify', token);
  expect(verify.body).toMatchObject({ ok: true });
}

const existing = async () =>
  new Set((await allLeases(replicas.proxy.url, replicas.auth.token)).map((lease) => lease.id));

describe('a 3-member etcd under lease creations', () => {
  it('loses nothing and issues nothing twice when a member is killed (SIGKILL)', async () => {
    const before = await existing();
    const leader = await cluster.leader();
    const victim = cluster.members.find((member) => member !== leader)!;
    const load = await createLeasesUnderLoad({
      url: replicas.proxy.url,
      token: replicas.auth.token,
      credentialName: replicas.auth.credentialName,
      clients: CLIENTS,
      durationMs: LOAD_MS,
      at: [{ afterMs: 3_000, run: () => victim.kill() }],
    });
    console.info(
      `member killed: ${load.acknowledged.size} leases, ${load.retried} retried keys, errors ${JSON.stringify(load.errors)}`,
    );
    await checkConsistent(load, before);
    await victim.restart();
  }, 180_000);

  it('loses nothing and issues nothing twice across leader changes (moved, then killed)', async () => {
    const before = await existing();
    const first = await cluster.leader();
    const next = cluster.members.find((member) => member !== first)!;
    const load = await createLeasesUnderLoad({
      url: replicas.proxy.url,
      token: replicas.auth.token,
      credentialName: replicas.auth.credentialName,
      clients: CLIENTS,
      durationMs: LOAD_MS,
      at: [
        { afterMs: 2_000, run: () => cluster.moveLeader(next) },
        { afterMs: 5_000, run: () => next.kill() },
      ],
    });
    const after = await cluster.leader();
    expect(after).not.toBe(next);
    console.info(
      `leader ${first.name} → ${next.name} (moved) → ${after.name} (elected after kill): ${load.acknowledged.size} leases, ${load.retried} retried keys, errors ${JSON.stringify(load.errors)}`,
    );
    await checkConsistent(load, before);
    await next.restart();
  }, 180_000);
});
