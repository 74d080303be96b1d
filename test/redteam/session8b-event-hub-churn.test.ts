import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault } from '../../src/sdk/index.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { followLeaseEvents } from '../support/event-streams.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

// Red team, session 8b (held): the streams of a tenant share one store watch. The last stream
// closing while the next one opens, again and again, never leaves the new stream on a watch
// being closed (it sees a lease issued once it is open), and no watch outlives its streams.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('lease events: the shared watch under open/close churn', () => {
  let etcd: EtcdProcess;
  let store: Store;
  let vault: TestVault;
  let sdk: Vault;
  const watches = { opened: 0, closed: 0 };

  beforeAll(async () => {
    etcd = await startEtcd();
    store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 10_000 });
    // The real store, counting the watches opened and closed through it.
    const counted: Store = {
      ...store,
      watch: async (prefix, from, onEvent, options) => {
        const watcher = await store.watch(prefix, from, onEvent, options);
        if (prefix.includes('/leases/')) watches.opened++;
        return {
          close: async () => {
            if (prefix.includes('/leases/')) watches.closed++;
            await watcher.close();
          },
        };
      },
    };
    vault = await startTestVault({ store: counted });
    expect(
      (await vault.call('POST', '/v1/credentials', { body: { name: 'db', type: 'password', value: 'v-1' } }))
        .status,
    ).toBe(201);
    sdk = await Vault.connect({ addr: vault.url, token: vault.rootToken, tenant: vault.tenant });
  }, 120_000);
  afterAll(async () => {
    await vault?.close();
    await store?.close();
    await etcd?.destroy();
  });

  const open = () => followLeaseEvents(sdk);

  it('a stream opened as the last one closes sees what is issued after it opened', async () => {
    let previous = open();
    await previous.live;
    for (let round = 0; round < 15; round++) {
      const next = open();
      const closing = previous.stop();
      await Promise.all([next.live, closing]);
      const issued = await vault.call('POST', '/v1/leases', { body: { credentialName: 'db', ttl: '5m' } });
      expect(issued.status).toBe(201);
      const deadline = Date.now() + 5_000;
      while (!next.events.some((event) => event.lease.id === issued.body.id)) {
        if (Date.now() > deadline)
          throw new Error(`round ${round}: the new stream missed lease ${issued.body.id}`);
        await sleep(10);
      }
      previous = next;
    }
    await previous.stop();
    const deadline = Date.now() + 5_000;
    while (watches.closed < watches.opened && Date.now() < deadline) await sleep(20);
    expect(watches.opened).toBeGreaterThan(0);
    expect(watches.closed).toBe(watches.opened);
  }, 120_000);
});
