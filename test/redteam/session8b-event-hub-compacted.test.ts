import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault } from '../../src/sdk/index.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, etcdClientOptions, startEtcd } from '../support/etcd.js';
import { followLeaseEvents } from '../support/event-streams.js';
import { type HangingProxy, startHangingProxy } from '../support/hanging-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

// Red team, session 8b (held): replica A's shared lease watch loses etcd; while it is cut off,
// replica B issues leases and etcd's history is compacted past them. When A reaches etcd again
// its watch cannot resume: every stream of the tenant ends (none silently misses the leases),
// and the next stream starts a new watch and sees what is issued after it opened.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('lease events: the shared watch cannot resume after a compaction', () => {
  let etcd: EtcdProcess;
  let proxy: HangingProxy;
  const stores: Store[] = [];
  let a: TestVault;
  let b: TestVault;
  let client: Etcd3;

  beforeAll(async () => {
    etcd = await startEtcd();
    proxy = await startHangingProxy({ host: '127.0.0.1', port: Number(new URL(etcd.endpoint).port) });
    const rootKey = randomBytes(32);
    stores.push(await openEtcdStore({ endpoints: [`http://127.0.0.1:${proxy.port}`], timeoutMs: 5_000 }));
    stores.push(await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 5_000 }));
    a = await startTestVault({ store: stores[0]!, rootKey });
    b = await startTestVault({ store: stores[1]!, rootKey });
    client = new Etcd3(etcdClientOptions(etcd));
    const created = await b.call('POST', '/v1/credentials', {
      body: { name: 'db', type: 'password', value: 'v-1' },
    });
    expect(created.status).toBe(201);
  }, 120_000);
  afterAll(async () => {
    proxy?.resume();
    await a?.close();
    await b?.close();
    for (const store of stores) await store.close();
    client?.close();
    await proxy?.close();
    await etcd?.destroy();
  });

  it('ends every stream of the tenant, and a new stream follows again', async () => {
    const sdk = await Vault.connect({ addr: a.url, token: a.rootToken, tenant: a.tenant });
    const streams = [followLeaseEvents(sdk), followLeaseEvents(sdk)];
    await Promise.all(streams.map((s) => s.live));

    proxy.hang();
    const missed: string[] = [];
    for (let i = 0; i < 3; i++) {
      missed.push(
        (await b.call('POST', '/v1/leases', { body: { credentialName: 'db', ttl: '5m' } })).body.id,
      );
    }
    const revision = (await client.kv.range({ key: Buffer.from('\0') })).header.revision;
    await client.kv.compact({ revision, physical: true });
    proxy.resume();

    const outcomes = await Promise.race([
      Promise.all(streams.map((s) => s.ended)),
      sleep(20_000).then(() => 'still open after 20 s'),
    ]);
    expect(outcomes).toEqual(['ended', 'ended']);
    await Promise.all(streams.map((stream) => stream.stop()));

    const next = followLeaseEvents(sdk);
    await next.live;
    const issued = (await b.call('POST', '/v1/leases', { body: { credentialName: 'db', ttl: '5m' } })).body
      .id;
    const deadline = Date.now() + 10_000;
    while (!next.events.some((event) => event.lease.id === issued)) {
      if (Date.now() > deadline) throw new Error('the new stream missed a lease issued after it opened');
      await sleep(20);
    }
    await next.stop();
  }, 90_000);
});
