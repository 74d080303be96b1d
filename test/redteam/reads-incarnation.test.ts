/**
 * Red team (issue 13, value reads from caches): a credential deleted and created again under
 * the same name. Deleting a credential commits first (record and sealed values gone) and
 * marks its leases revoked afterwards, page by page; a replica killed part way leaves some
 * of them `active` in their records. A lease of the deleted credential must never give the
 * value of the credential created later under its name (the sealed cache is keyed by
 * incarnation; the version number alone is reused by the new credential).
 *
 * Real processes: two `vault server` replicas on one etcd; the one deleting is SIGKILLed as
 * soon as the credential record is gone, and the other re-creates it and is asked for the
 * old leases' values.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { leaseIndex, parseEntry } from '../../src/core/lease-index.js';
import type { LeaseRecord } from '../../src/core/lease-record.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import { scanPrefix } from '../../src/store/paged.js';
import type { Store } from '../../src/store/store.js';
import { call, type Replicas, sleep, startReplicas } from '../replicas/harness.js';
import { writeLeases } from '../support/bulk-leases.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';

const TENANT = 'reborn';
const NAME = 'reborn-key';
const OLD = 'old-incarnation-value-5d1e';
const NEW = 'new-incarnation-value-9b2f';
const BULK = 2_000;

let etcd: EtcdProcess;
let replicas: Replicas;
let store: Store;
let token: string;

beforeAll(async () => {
  etcd = await startEtcd();
  replicas = await startReplicas({ endpoints: [etcd.endpoint], count: 2, tenant: TENANT });
  ({ token } = replicas.auth);
  store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 30_000 });
}, 120_000);
afterAll(async () => {
  await replicas?.close();
  await store?.close();
  await etcd?.destroy();
});

async function activeLeases(credential: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const kv of scanPrefix(store, leaseIndex.byCredential(TENANT, credential))) {
    if (parseEntry(kv.value).s === 'active') ids.push(leaseIndex.idOf(kv.key));
  }
  return ids;
}

describe('a credential deleted and created again under the same name', () => {
  it("never gives an old lease the new credential's value", async () => {
    const [a, b] = replicas.servers.map((server) => server.url) as [string, string];
    const created = await call(a, 'POST', '/v1/credentials', token, {
      name: NAME,
      type: 'generic',
      value: OLD,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const issued = await call(a, 'POST', '/v1/leases', token, { credentialName: NAME, ttl: '1h' });
    expect(issued.status).toBe(201);
    // Read through A: its record and sealed caches now hold the old incarnation.
    const first = await call(a, 'GET', `/v1/leases/${issued.body.id}/value`, token);
    expect(first.body.value).toBe(OLD);
    const template = JSON.parse((await store.get(keys.lease(TENANT, issued.body.id)))!.value) as LeaseRecord;
    await writeLeases(store, TENANT, template, NAME, BULK);

    // B deletes it and dies once the credential record is gone, before every lease is marked.
    const deleting = call(b, 'DELETE', `/v1/credentials/${NAME}`, token).catch(() => undefined);
    const deadline = Date.now() + 30_000;
    while (await store.get(keys.credential(TENANT, NAME))) {
      if (Date.now() > deadline) throw new Error('the delete did not commit');
      await sleep(2);
    }
    await replicas.servers[1]!.kill();
    await deleting;
    const leftover = await activeLeases(NAME);
    expect(leftover.length, 'the delete finished before the kill: raise BULK').toBeGreaterThan(0);

    // Created again through A, under the same name, with another value.
    const again = await call(a, 'POST', '/v1/credentials', token, {
      name: NAME,
      type: 'generic',
      value: NEW,
    });
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    const fresh = await call(a, 'POST', '/v1/leases', token, { credentialName: NAME, ttl: '1h' });
    expect(fresh.body.value).toBe(NEW);

    const sample = [issued.body.id as string, ...leftover.slice(0, 5), ...leftover.slice(-5)];
    for (const id of sample) {
      for (const path of [`/v1/leases/${id}/value`, `/v1/leases/${id}/reveal`]) {
        const res = await call(a, path.endsWith('reveal') ? 'POST' : 'GET', path, token);
        expect(JSON.stringify(res.body)).not.toContain(NEW);
        expect(JSON.stringify(res.body)).not.toContain(OLD);
        expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(410);
      }
    }
    // The new incarnation's own lease still reads.
    const own = await call(a, 'GET', `/v1/leases/${fresh.body.id}/value`, token);
    expect(own.status).toBe(200);
    expect(own.body.value).toBe(NEW);
  }, 120_000);
});
