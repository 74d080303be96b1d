import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault } from '../../src/sdk/index.js';
import type { LeaseEvent } from '../../src/sdk/types.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

// Red team, session 8b: a lease-event stream decides whether its token may see others' leases
// once per record-cache TTL, from cached records. Those records may already be nearly a TTL
// old when it decides, and the decision was then kept a full TTL more: a token demoted through
// another replica still saw others' leases for up to twice the TTL, where every other answer
// of the replica (and the stream before) follows the change within one TTL.

const TTL_MS = 3_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('lease events: a token demoted through another replica', () => {
  let etcd: EtcdProcess;
  const stores: Store[] = [];
  let a: TestVault;
  let b: TestVault;

  beforeAll(async () => {
    etcd = await startEtcd();
    const rootKey = randomBytes(32);
    for (let i = 0; i < 2; i++)
      stores.push(await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 10_000 }));
    a = await startTestVault({ store: stores[0]!, rootKey, core: { recordCacheTtlMs: TTL_MS } });
    b = await startTestVault({ store: stores[1]!, rootKey, core: { recordCacheTtlMs: TTL_MS } });
    expect(
      (await a.call('POST', '/v1/credentials', { body: { name: 'db', type: 'password', value: 'v-1' } }))
        .status,
    ).toBe(201);
    expect(
      (await a.call('PUT', '/v1/policies/boss', { body: { rules: [{ actions: ['admin'] }] } })).status,
    ).toBe(200);
    expect((await a.call('PUT', '/v1/identities/human/alice', { body: { policies: ['boss'] } })).status).toBe(
      200,
    );
  }, 120_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    for (const store of stores) await store.close();
    await etcd?.destroy();
  });

  it("stops showing others' leases within one TTL of the demotion", async () => {
    const alice = await a.tokenFor({ type: 'human', name: 'alice' });
    const sdk = await Vault.connect({ addr: a.url, token: alice, tenant: a.tenant });
    const seen: LeaseEvent[] = [];
    const abort = new AbortController();
    let opened!: () => void;
    const open = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const reading = (async () => {
      for await (const event of sdk.leases.events({ signal: abort.signal, onOpen: opened })) seen.push(event);
    })().catch(() => {});
    await open;
    // A has just read alice's token, identity and policy (the stream's own authentication).
    const start = Date.now();
    // B demotes alice: A's cached identity record shows it within one TTL.
    expect((await b.call('PUT', '/v1/identities/human/alice', { body: { policies: [] } })).status).toBe(200);
    // Late in A's TTL, an admin's lease: alice (still admin in A's cache) sees it.
    await sleep(start + TTL_MS * 0.8 - Date.now());
    const before = (await b.call('POST', '/v1/leases', { body: { credentialName: 'db', ttl: '5m' } })).body
      .id;
    // Well past one TTL after the demotion: another admin lease must no longer be shown.
    await sleep(start + TTL_MS * 1.4 - Date.now());
    const after = (await b.call('POST', '/v1/leases', { body: { credentialName: 'db', ttl: '5m' } })).body.id;
    await sleep(1_000);
    abort.abort();
    await reading;
    const ids = seen.map((event) => event.lease.id);
    expect(ids).toContain(before);
    expect(ids).not.toContain(after);
  }, 60_000);

  it('(held) ends the stream of a token revoked through another replica within one TTL', async () => {
    expect((await a.call('PUT', '/v1/identities/human/bob', { body: { policies: ['boss'] } })).status).toBe(
      200,
    );
    const minted = await a.call('POST', '/v1/auth/tokens', {
      body: { identity: { type: 'human', name: 'bob' }, policies: [], ttl: '1h' },
    });
    expect(minted.status).toBe(201);
    const sdk = await Vault.connect({ addr: a.url, token: minted.body.token, tenant: a.tenant });
    const seen: LeaseEvent[] = [];
    let opened!: () => void;
    const open = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const reading = (async () => {
      for await (const event of sdk.leases.events({ onOpen: opened })) seen.push(event);
      return 'ended';
    })().catch((err: unknown) => err);
    await open;
    const start = Date.now();
    expect((await b.call('DELETE', `/v1/auth/tokens/${minted.body.accessor}`)).status).toBe(200);
    await sleep(start + TTL_MS * 0.8 - Date.now());
    const before = (await b.call('POST', '/v1/leases', { body: { credentialName: 'db', ttl: '5m' } })).body
      .id;
    await sleep(start + TTL_MS * 1.4 - Date.now());
    const after = (await b.call('POST', '/v1/leases', { body: { credentialName: 'db', ttl: '5m' } })).body.id;
    const outcome = await Promise.race([reading, sleep(5_000).then(() => 'still open')]);
    expect(outcome).toBe('ended');
    const ids = seen.map((event) => event.lease.id);
    expect(ids).toContain(before);
    expect(ids).not.toContain(after);
  }, 60_000);
});
