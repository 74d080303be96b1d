import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { keys } from '../../src/core/keys.js';
import { createLeaseIndexBackfill } from '../../src/core/lease-index-backfill.js';
import { silentLogger } from '../../src/lib/logger.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

/** The store, until `failAfter` transactions have committed: then every txn fails, as in a crash. */
function crashingStore(store: Store, failAfter: number): Store {
  let commits = 0;
  return {
    ...store,
    kind: store.kind,
    get: (key) => store.get(key),
    range: (prefix, options) => store.range(prefix, options),
    count: (prefix, options) => store.count(prefix, options),
    watch: (prefix, from, onEvent, options) => store.watch(prefix, from, onEvent, options),
    ping: () => store.ping(),
    close: () => store.close(),
    async txn(txn) {
      if (commits >= failAfter) throw new Error('crashed');
      commits += 1;
      return store.txn(txn);
    },
  };
}

describe.each(['etcd', 'embedded'] as const)('lease index backfill on the %s store', (kind) => {
  let etcd: EtcdProcess | undefined;
  let store: Store | undefined;
  let vault: TestVault;

  beforeAll(async () => {
    if (kind === 'etcd') {
      etcd = await startEtcd();
      store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 5_000 });
    }
    vault = await startTestVault(store ? { store } : {});
  }, 60_000);
  afterAll(async () => {
    await vault?.close();
    await store?.close();
    await etcd?.destroy();
  });

  it('indexes leases written before the index existed, resuming after a crash', async () => {
    const ctx = systemContext(vault.tenant, { type: 'human', name: 'root' });
    await vault.call('POST', '/v1/credentials', { body: { name: 'old', type: 'generic', value: 'v' } });
    await Promise.all(
      Array.from({ length: 150 }, () =>
        vault.core.leases.create(ctx, { credentialName: 'old', ttl: '1h', renewable: true }),
      ),
    );
    // A store from before the index: lease records, no index keys, no progress marker.
    await vault.store.txn({
      success: [
        { type: 'deletePrefix', prefix: keys.leaseIndex(vault.tenant) },
        { type: 'delete', key: keys.leaseIndexState(vault.tenant) },
      ],
    });
    const unindexed = await vault.call('GET', '/v1/leases?credentialName=old&limit=1000');
    expect(unindexed.body.leases).toEqual([]);

    // The first run commits two pages, then "crashes".
    const crashing = createLeaseIndexBackfill({
      store: crashingStore(vault.store, 2),
      logger: silentLogger,
    });
    await expect(crashing.backfillAll()).rejects.toThrow('crashed');
    const marker = JSON.parse((await vault.store.get(keys.leaseIndexState(vault.tenant)))!.value);
    expect(marker.done).toBe(false);
    expect(typeof marker.after).toBe('string');
    const partial = await vault.call('GET', '/v1/leases?credentialName=old&limit=1000');
    expect(partial.body.leases.length).toBeGreaterThan(0);
    expect(partial.body.leases.length).toBeLessThan(150);

    // The restart finishes from where it stopped; a second run finds nothing left to do.
    expect(await vault.core.leaseIndex.backfillAll()).toBeLessThan(150);
    expect(await vault.core.leaseIndex.backfillAll()).toBe(0);
    const all = await vault.call('GET', '/v1/leases?credentialName=old&limit=1000');
    expect(all.body.leases).toHaveLength(150);
    expect(await vault.core.leases.countByState()).toEqual({ active: 150, expired: 0, revoked: 0 });
    const revoked = await vault.call('POST', '/v1/leases/revoke', { body: { credentialName: 'old' } });
    expect(revoked.body.revoked).toBe(150);
    expect(await vault.core.leases.countByState()).toEqual({ active: 0, expired: 0, revoked: 150 });
  });
});
