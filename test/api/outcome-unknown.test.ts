import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault } from '../../src/sdk/index.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * etcd stalled (SIGSTOP) in the middle of a lease creation: the write was sent and no answer
 * came. The server says so (503 `outcome_unknown`, not "nothing was written"), and a retry
 * with the same Idempotency-Key returns the lease the first attempt issued, if it did.
 */
describe('a lease creation whose store write timed out', () => {
  let etcd: EtcdProcess;
  let store: Store;
  let vault: TestVault;
  /** Set to stall etcd (SIGSTOP) just as the next transaction is sent: after every read. */
  let stallNextTxn = false;

  beforeAll(async () => {
    etcd = await startEtcd();
    // Short enough that a stalled write answers outcome_unknown soon; long enough that the
    // setup's reads do not time out on a machine busy with the rest of the suite.
    store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 3_000 });
    const stalling: Store = {
      ...store,
      kind: store.kind,
      get: (key) => store.get(key),
      range: (prefix, options) => store.range(prefix, options),
      count: (prefix, options) => store.count(prefix, options),
      watch: (prefix, from, onEvent, options) => store.watch(prefix, from, onEvent, options),
      ping: () => store.ping(),
      close: () => store.close(),
      async txn(txn) {
        if (stallNextTxn) {
          stallNextTxn = false;
          await etcd.pause();
        }
        return store.txn(txn);
      },
    };
    vault = await startTestVault({ store: stalling });
    await vault.call('POST', '/v1/credentials', { body: { name: 'stall', type: 'generic', value: 'v' } });
  }, 60_000);
  afterAll(async () => {
    await etcd?.resume();
    await vault?.close();
    await store?.close();
    await etcd?.destroy();
  });

  const leasesOf = async (name: string) =>
    (await vault.call('GET', `/v1/leases?credentialName=${name}&limit=1000`)).body.leases as Array<{
      id: string;
    }>;

  it('answers outcome_unknown, and a retry with the same Idempotency-Key never issues twice', async () => {
    const create = (key: string) =>
      vault.call('POST', '/v1/leases', {
        body: { credentialName: 'stall', ttl: '5m' },
        idempotencyKey: key,
      });
    expect((await create('warm')).status).toBe(201);
    expect((await create('warm')).status).toBe(201);

    stallNextTxn = true;
    const stalled = await create('stalled-1');
    const body = stalled.body as { error: { code: string; message: string } };
    expect(stalled.status).toBe(503);
    expect(body.error.code).toBe('outcome_unknown');
    expect(body.error.message).toMatch(/may or may not have been applied/);
    await etcd.resume();

    let retried: Awaited<ReturnType<typeof create>> | undefined;
    for (let i = 0; i < 20; i++) {
      retried = await create('stalled-1');
      if (retried.status === 201) break;
      await sleep(250);
    }
    expect(retried?.status).toBe(201);
    const first = (retried!.body as { id: string }).id;
    const again = (await create('stalled-1')).body as { id: string; value?: string };
    expect(again.id).toBe(first);
    expect(again.value).toBe('v');
    // The warm-up key was used twice and issued once: one lease for it, one for the stall.
    expect(await leasesOf('stall')).toHaveLength(2);
    const replays = vault
      .auditLines()
      .filter((r) => r.action === 'lease.create' && /Idempotency-Key/.test(r.reason ?? ''));
    expect(replays.length).toBeGreaterThanOrEqual(2);
  });

  it('the SDK retries a creation whose outcome is unknown with the same key', async () => {
    const sdk = await Vault.connect({ addr: vault.url, token: vault.rootToken, tenant: vault.tenant });
    await sdk.leases.create({ credentialName: 'stall', ttl: '5m' });
    const before = (await leasesOf('stall')).length;
    stallNextTxn = true;
    setTimeout(() => void etcd.resume(), 1_200);
    const lease = await sdk.leases.create({ credentialName: 'stall', ttl: '5m' });
    expect(lease.value).toBe('v');
    expect(await leasesOf('stall')).toHaveLength(before + 1);
  });

  it('a key reused for another request is refused', async () => {
    await vault.call('POST', '/v1/credentials', { body: { name: 'other', type: 'generic', value: 'w' } });
    const headers = {
      authorization: `Bearer ${vault.rootToken}`,
      'content-type': 'application/json',
      'idempotency-key': 'reused',
    };
    const post = (credentialName: string, more: Record<string, unknown> = {}) =>
      fetch(`${vault.url}/v1/leases`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ credentialName, ttl: '5m', ...more }),
      });
    const first = await post('stall', { labels: { b: '2', a: '1' } });
    expect(first.status).toBe(201);
    const { id } = (await first.json()) as { id: string };
    expect((await post('other')).status).toBe(409);
    // The same credential asked for differently is another request too: refused, not the
    // first lease passed off as the answer to it (a label missing counts too).
    for (const different of [
      { ttl: '1h' },
      { identity: { type: 'agent', name: 'bot' } },
      { renewable: false },
      { labels: { a: '1' } },
    ])
      expect(
        (await post('stall', { labels: { b: '2', a: '1' }, ...different })).status,
        JSON.stringify(different),
      ).not.toBe(201);
    const refused = await post('stall', { ttl: '1h', labels: { a: '1', b: '2' } });
    expect(refused.status).toBe(409);
    expect(await refused.text()).toMatch(/different request/);
    // The same request (labels in another order) is the retry it claims to be.
    const retried = await post('stall', { labels: { a: '1', b: '2' } });
    expect(retried.status).toBe(201);
    expect(((await retried.json()) as { id: string }).id).toBe(id);
    const bad = await fetch(`${vault.url}/v1/leases`, {
      method: 'POST',
      headers: { ...headers, 'idempotency-key': 'not valid!' },
      body: JSON.stringify({ credentialName: 'stall' }),
    });
    expect(bad.status).toBe(400);
  });
});
